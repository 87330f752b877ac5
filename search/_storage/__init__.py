"""Where a study lives and what it holds: storage URLs and backends (`backends`), the attributes a study and its
trials carry (`attributes`), and every use of Optuna's private API behind one door (`optuna_private`)."""
