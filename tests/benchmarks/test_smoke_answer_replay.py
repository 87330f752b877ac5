"""benchmarks/answer_replay.py on a synthetic table whose truth is known exactly: every seed of a list gives the
same count of correct validation images, so each replay's truth is that count, ties included; the seeds that define
the truth are never those the search or its confirmation read; coverage, regret and the baselines are computed as
the module says."""

import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
VAL = 100
# list -> (correct validation images out of VAL on every seed, parameters): [3,3] and [4,2] tie for the best;
# the largest network is the worst list
LISTS = {(1, 5): (90, 2000), (2, 4): (93, 3000), (3, 3): (96, 4000), (4, 2): (96, 5000), (5, 1): (85, 9000)}
SEEDS = range(8)
EPOCHS = 10


@pytest.fixture(scope="module")
def scripts():
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(BENCH))
        import answer_replay
        import tabular_table

        yield answer_replay, tabular_table


@pytest.fixture(scope="module")
def table_path(scripts, tmp_path_factory):
    _, tabular_table = scripts
    args = tabular_table.build_parser().parse_args(["--budget", "6", "--stages", "2", "--widths", "4,8"])
    settings = tabular_table.build_settings(args)
    runs = []
    for seed in SEEDS:
        for index, (h, (count, params)) in enumerate(LISTS.items()):
            final = count / VAL
            history = [
                {
                    "step": e,
                    "output_acc": round(final * e / EPOCHS, 5),
                    "unit_acc": [round(final * e / EPOCHS, 5)] * 6,
                    "unit_epochs": 6 * e,
                    "elapsed": 0.1 * e,
                }
                for e in range(1, EPOCHS + 1)
            ]
            runs.append(
                {
                    "hierarchy": list(h),
                    "index": index,
                    "seed": seed,
                    "units": 6,
                    "output_acc": final,
                    "unit_acc": [final] * 6,
                    "params": params,
                    "params_aux": params + 100,
                    "flops": params * 10,
                    "unit_epochs": 6 * EPOCHS,
                    "wall_time": 1.0,
                    "history": history,
                }
            )
    header = {"settings": tabular_table._settings_key(settings), "val_images": VAL, "lists": len(LISTS)}
    path = tmp_path_factory.mktemp("answer") / "table.json"
    path.write_text(json.dumps({"header": header, "runs": runs}))
    return path


def test_the_truth_is_counted_in_images_on_seeds_the_search_never_reads(scripts, table_path):
    answer_replay, _ = scripts
    table = answer_replay.Table(answer_replay.load_table(table_path))
    assert table.seeds == list(SEEDS) and table.val == VAL and table.seed_sd() == 0.0
    for r in range(20):
        split = answer_replay.split_seeds(table.seeds, r)
        assert len(split.truth) == 4 and not set(split.truth) & {split.search, *split.confirm}
        assert sorted([*split.truth, split.search, *split.confirm]) == list(SEEDS)
    truth = table.truth([0, 3, 5, 7])
    assert truth == {h: count / VAL for h, (count, _) in LISTS.items()}
    # ties count: both lists with 96 images are the best; the third-best count (93) bounds the top-3
    assert answer_replay.score((4, 2), truth) == {"regret": 0.0, "best": 1.0, "top": 1.0}
    assert answer_replay.score((2, 4), truth) == pytest.approx({"regret": 0.03, "best": 0.0, "top": 1.0})
    assert answer_replay.score((1, 5), truth) == pytest.approx({"regret": 0.06, "best": 0.0, "top": 0.0})
    assert answer_replay.covered([(3, 3)], truth) == 1.0 and answer_replay.covered([(3, 3), (4, 2)], truth) == 1.0
    assert answer_replay.covered([(2, 4), (1, 5)], truth) == 0.0


def test_baselines_spend_what_they_say(scripts, table_path):
    answer_replay, _ = scripts
    table = answer_replay.Table(answer_replay.load_table(table_path))
    split = answer_replay.split_seeds(table.seeds, 0)
    got = answer_replay.baselines(table, split, budget=120.0, replay=0)
    assert got["sweep"] == ((3, 3), 5 * 60.0)  # the tie goes to fewer parameters
    assert got["largest"] == ((5, 1), 0.0)
    assert got["random"][1] <= 120.0 and got["random"][1] == 120.0  # 2 full lists of 60 unit-epochs
    named, cost = got["topk@1"]
    assert cost == 5 * 6 + 9 * 6  # every list 1 epoch, then 1 list to the end: the budget allows no second
    assert named == (3, 3)  # after one epoch [3,3] and [4,2] tie; the one with fewer parameters is continued


@pytest.mark.slow
def test_a_replay_scores_every_configuration_and_the_noiseless_answer_covers_the_truth(scripts, table_path, tmp_path):
    answer_replay, _ = scripts
    out = tmp_path / "r.json"
    assert answer_replay.main([str(table_path), "--replays", "4", "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["replays"] == 4 and d["chosen_on"] == 2 and d["reported_on"] == 2 and d["truth_seeds"] == 4
    labels = [row["label"] for row in d["table_rows"]]
    assert labels[0].startswith("answer (") and "largest" in labels and "sweep" in labels
    for row in d["table_rows"]:
        low, mean, high = row["best"][1], row["best"][0], row["best"][2]
        assert 0.0 <= low <= mean <= high <= 1.0
    answer_row = d["table_rows"][0]
    assert answer_row["coverage"][0] == 1.0
    # every configuration whose trials reach every list names a best one (cap 10: all 5 lists and their revisits)
    whole = {k: v for k, v in d["every_answer_configuration"].items() if k.split()[2] == "10"}
    assert len(whole) == 10 and all(v["regret"][0] == 0.0 for v in whole.values())
    # all the data outside the truth, judged by the model, names a best list too
    every = next(row for row in d["table_rows"] if row["label"] == "every list x 4 seeds, then the answer's model")
    assert every["regret"][0] == 0.0 and every["cost"] == 4.0
    largest = next(row for row in d["table_rows"] if row["label"] == "largest")
    assert largest["regret"][0] == pytest.approx(0.11) and largest["cost"] == 0.0
    assert answer_replay.main([str(table_path), "--replays", "3"]) == 2  # too few to split in halves
