"""Stopping a candidate early: the pruners a study can use (`pruners`), the dominance-aware one (`dominance`), and a
pruned candidate's state kept paused so that a revisit continues it (`paused`)."""
