import pytest

from lwl.models import PRESETS, Schedule, ScheduleError, get_preset, make_schedule, parse_int_list


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(hierarchy=()), "empty hierarchy"),
        (dict(hierarchy=(1, 0, 2)), "non-positive"),
        (dict(hierarchy=(1, -1)), "non-positive"),
        (dict(hierarchy=(1, 1, 1, 1, 1, 1, 1), input_size=32), "allows at most 5"),
        (dict(hierarchy=(1, 1, 1, 1, 1), input_size=8), "allows at most 3"),
        (dict(hierarchy=(1, 1), family="mlp"), "family must be one of vgg, resnet, got 'mlp'"),
        (dict(hierarchy=(1, 1), block="wide"), "block must be one of basic, bottleneck, got 'wide'"),
        (dict(hierarchy=(1, 1), family="vgg", block="bottleneck"), "resnet family only"),
        (dict(hierarchy=(1, 1), downsample="stride3"), "downsample must be one of maxpool, avgpool, conv"),
        (dict(hierarchy=(1, 1), widths=(64,)), "do not fit 2 stages"),
        (dict(hierarchy=("1", 2)), "list of integers"),
    ],
)
def test_bad_schedules_are_refused_with_one_line(kwargs, message):
    with pytest.raises(ScheduleError, match=message) as info:
        Schedule(**kwargs)
    assert "\n" not in str(info.value)


def test_unknown_preset():
    with pytest.raises(ScheduleError, match="unknown preset 'resnet9'.*resnet18"):
        get_preset("resnet9")


def test_defaults_follow_the_family():
    r = Schedule((1, 1, 2, 4))
    assert r.widths == (64, 128, 256, 512) and r.downsample == "conv" and r.units == 8
    v = Schedule((1, 1, 2, 2, 2), family="vgg")
    assert v.widths == (64, 128, 256, 512, 512) and v.downsample == "maxpool"
    assert Schedule((1,) * 6, input_size=32).resolutions == (32, 16, 8, 4, 2, 1)


def test_schedule_is_frozen_hashable_and_round_trips():
    s = make_schedule(preset="resnet50", num_classes=100)
    assert s.block == "bottleneck" and s.hierarchy == (3, 4, 6, 3)
    assert Schedule.from_dict(s.to_dict()) == s
    assert len({s, Schedule.from_dict(s.to_dict())}) == 1
    with pytest.raises(AttributeError):
        s.hierarchy = (1,)  # type: ignore[misc]


def test_presets_reproduce_the_papers_hierarchies():
    expected = {
        "vgg8": (1, 1, 1, 1, 1),
        "vgg8b": (2, 2, 1, 1),
        "vgg11": (1, 1, 2, 2, 2),
        "vgg16": (2, 2, 3, 3, 3),
        "vgg19": (2, 2, 4, 4, 4),
        "resnet18": (2, 2, 2, 2),
        "resnet34": (3, 4, 6, 3),
        "resnet50": (3, 4, 6, 3),
    }
    assert {k: p.hierarchy for k, p in PRESETS.items()} == expected
    # A preset with another hierarchy keeps its family but not its (stage-count specific) widths.
    s = make_schedule(preset="resnet18", hierarchy="1,1,2,4")
    assert s.hierarchy == (1, 1, 2, 4) and s.family == "resnet"


def test_parse_int_list():
    assert parse_int_list("1,1,2,4") == (1, 1, 2, 4)
    assert parse_int_list("[1, 2, 8, 5]") == (1, 2, 8, 5)
    with pytest.raises(ScheduleError, match="comma-separated"):
        parse_int_list("1;2")
