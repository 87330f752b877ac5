"""When the median pruner may first judge: after the first learning-rate drop (simultaneous), 40 % of the units
(sequential). Pinned because the tabular benchmark measured what an earlier start costs."""

import pytest

from lwl.models import paper_recipe
from lwl.search import SearchSpace, StudySettings, make_pruner, median_warmup


@pytest.mark.parametrize(
    ("epochs", "mode", "warmup"),
    [
        (10, "simultaneous", 6),
        (15, "simultaneous", 8),
        (400, "simultaneous", 201),
        (3, "simultaneous", 2),
        (5, "sequential", 7),
    ],
)
def test_the_median_pruner_waits_for_the_first_learning_rate_drop(epochs, mode, warmup):
    settings = StudySettings.create(SearchSpace(16, 4), paper_recipe("digits", "resnet", epochs=epochs, mode=mode))
    assert median_warmup(settings) == warmup
    assert make_pruner("median", settings)._n_warmup_steps == warmup
