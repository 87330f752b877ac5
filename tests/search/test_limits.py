"""Hard cost limits: --max-params, --max-flops and --max-memory filter the feasible set before anything is sampled;
no list above a limit is ever trained (checked from the database), an empty set is refused with the limit to raise."""

import optuna
import pytest
from cases import NO_CONFIRM, tiny

from lwl.models import complexity, paper_recipe
from lwl.search import (
    CostLimits,
    SearchSpace,
    SpaceError,
    StudySettings,
    memory_estimate,
    parse_amount,
    read_settings,
)
from lwl.search.commands import search_main

TINY = tiny("--budget", "8", "--constraint", "none", "--pruner", "none", *NO_CONFIRM)


def _settings(limits=None, batch_size=64):
    recipe = paper_recipe("digits", "resnet", epochs=1, batch_size=batch_size)
    return StudySettings.create(SearchSpace(8, 4, constraint="none"), recipe, widths=(4, 8, 8, 16), limits=limits)


def _costs(settings, h):
    return complexity(settings.schedule(h), settings.recipe.head)


@pytest.mark.parametrize(
    ("text", "memory", "value"),
    [
        ("5M", False, 5_000_000),
        ("250k", False, 250_000),
        ("1.5e6", False, 1_500_000),
        ("1500000", False, 1_500_000),
        ("2GiB", True, 2 * 2**30),
        ("500MB", True, 500_000_000),
        ("64 MiB", True, 64 * 2**20),
    ],
)
def test_amounts_are_read_with_their_units(text, memory, value):
    assert parse_amount(text, "--max-x", memory=memory) == value


@pytest.mark.parametrize("text", ["abc", "-5", "0", "5X", "2GiB", ""])
def test_bad_amounts_are_refused_naming_the_flag(text):
    with pytest.raises(SpaceError, match="^--max-params "):
        parse_amount(text, "--max-params")  # GiB is not a count


def test_the_limited_space_is_exactly_the_lists_within_every_limit():
    full = _settings()
    params = sorted(_costs(full, h).params for h in full.space.lists())
    flops = sorted(_costs(full, h).flops for h in full.space.lists())
    limits = CostLimits(max_params=params[20], max_flops=flops[25])
    limited = _settings(limits)
    expected = [
        h for h in full.space.lists() if _costs(full, h).params <= params[20] and _costs(full, h).flops <= flops[25]
    ]
    assert list(limited.space.lists()) == expected and 0 < len(expected) < len(full.space)
    over = next(h for h in full.space.lists() if h not in expected)
    assert "over the study's limits (--max-params" in limited.space.violation(over)
    assert over not in limited.space and expected[0] in limited.space
    assert f"({len(expected)} of {len(full.space)} lists)" in limited.space.describe()
    # stored and read back: the same restricted space
    again = StudySettings.from_dict(limited.to_dict())
    assert again == limited and again.space.lists() == limited.space.lists()
    assert "limits" not in full.to_dict()  # a study without limits stores what it stored before limits existed


def test_the_memory_limit_follows_its_stated_rule_at_the_study_batch_size():
    s = _settings(batch_size=32)
    c = _costs(s, (1, 1, 1, 5))
    assert memory_estimate(c.activations, c.params_aux, 32) == 4 * 32 * c.activations + 16 * c.params_aux
    exact = memory_estimate(c.activations, c.params_aux, 32)
    assert (1, 1, 1, 5) in _settings(CostLimits(max_memory=exact), batch_size=32).space
    assert (1, 1, 1, 5) not in _settings(CostLimits(max_memory=exact - 1), batch_size=32).space


def test_an_empty_set_is_refused_with_the_nearest_list_and_the_limit_it_needs():
    full = _settings()
    smallest = min(full.space.lists(), key=lambda h: (_costs(full, h).params, h))
    need = _costs(full, smallest).params
    with pytest.raises(SpaceError) as info:
        _settings(CostLimits(max_params=need - 1))
    message = str(info.value)
    assert f"[{','.join(map(str, smallest))}], needs --max-params {need}" in message
    assert smallest in _settings(CostLimits(max_params=need)).space


@pytest.mark.slow
def test_no_list_above_the_limit_is_ever_trained(tmp_path, capsys):
    full = _settings()
    params = sorted(_costs(full, h).params for h in full.space.lists())
    limit = params[5]  # the 6 smallest lists (and any tied with the 6th)
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert (
        search_main([*TINY, "--max-params", str(limit), "--trials", "40", "--storage", url, "--study-name", "s"]) == 0
    )
    study = optuna.load_study(study_name="s", storage=url)
    trained = [tuple(t.user_attrs["hierarchy"]) for t in study.trials]
    assert all(t.user_attrs["params"] <= limit for t in study.trials)
    admitted = [h for h in full.space.lists() if _costs(full, h).params <= limit]
    assert sorted(trained) == sorted(admitted)
    assert f"every feasible list ({len(admitted)}) has been evaluated" in capsys.readouterr().out
    assert read_settings("s", study.user_attrs).limits == CostLimits(max_params=limit)
    # the paper's [2,2,2,2] (ResNet18's schedule) is above the limit here: never enqueued, never trained
    assert (2, 2, 2, 2) not in trained and _costs(full, (2, 2, 2, 2)).params > limit


def test_an_enqueued_list_above_the_limit_and_an_empty_set_are_refused(tmp_path, capsys):
    full = _settings()
    by_size = sorted(full.space.lists(), key=lambda h: (_costs(full, h).params, h))
    smallest, largest = _costs(full, by_size[0]).params, by_size[-1]
    url = f"sqlite:///{tmp_path / 's.db'}"
    args = [*TINY, "--storage", url, "--trials", "1"]
    for extra, words in [
        (["--max-params", str(smallest - 1)], f"no list of the space is within --max-params {smallest - 1}"),
        (
            ["--max-params", str(smallest), "--enqueue", ",".join(map(str, largest))],
            f"its network is over the study's limits (--max-params {smallest})",
        ),
    ]:
        with pytest.raises(SystemExit) as e:
            search_main([*args, *extra])
        err = capsys.readouterr().err
        assert e.value.code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "s.db").exists()
