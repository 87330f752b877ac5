"""lwl-search's own numeric flags (`OPTIONS`): one declaration gives each its type, bounds, default and help, and a
value is accepted or refused alike from the command line and from a study preset."""

import pytest
import yaml

from lwl.search import parse_search_flags
from lwl.search._console.flags import OPTIONS, build_parser
from lwl.search.commands import search_main


def _out_of_range(name):
    """Each value just outside the field's declared bounds, as a flag's text and as a YAML value."""
    spec, out = OPTIONS[name].spec, []
    step = 1 if spec.kind is int else 0.5
    if spec.low is not None:
        out.append(spec.low if spec.low_open else spec.low - step)
    if spec.high is not None:
        out.append(spec.high if spec.high_open else spec.high + step)
    return [spec.kind(v) for v in out]


# Out of range; not a number; not a whole number (for a whole-number field).
CASES = [
    (name, value)
    for name, option in OPTIONS.items()
    for value in [*_out_of_range(name), "many", *([1.5] if option.spec.kind is int else [])]
]


def _refusal(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        search_main(argv)
    assert exc.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    return lines[0]


@pytest.mark.parametrize(("name", "value"), CASES, ids=[f"{n}={v}" for n, v in CASES])
def test_a_value_out_of_range_is_refused_alike_by_the_flag_and_a_preset(tmp_path, monkeypatch, capsys, name, value):
    spec = OPTIONS[name].spec
    monkeypatch.chdir(tmp_path)
    flag = "--" + name.replace("_", "-")
    by_flag = _refusal([flag, str(value)], capsys)
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({name: value}))
    by_preset = _refusal(["--preset", str(path)], capsys)
    assert by_preset == by_flag.replace(f"{flag} ", f"--preset {path}: {name} ", 1)
    assert by_flag.startswith(f"lwl-search: error: {flag} ") and by_flag.endswith(spec.describe())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.yaml"]  # nothing written


@pytest.mark.parametrize("name", OPTIONS)
def test_a_presets_true_is_not_a_number(tmp_path, monkeypatch, capsys, name):
    """YAML's true, which no flag can give, is refused as what it is: not a number (not read as 1)."""
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({name: True}))
    monkeypatch.chdir(tmp_path)
    expected = f"--preset {path}: {name} True: not a number: {OPTIONS[name].spec.describe()}"
    assert _refusal(["--preset", str(path)], capsys) == f"lwl-search: error: {expected}"


def test_values_in_range_are_read_alike_and_defaults_come_from_the_declaration(tmp_path):
    given = {"trials": 7, "timeout": 30, "batch": "auto", "confirm": "off", "prefix_store_gb": 1, "heartbeat": 5.0}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"budget": 10, **given}))
    flags = [x for k, v in given.items() for x in ("--" + k.replace("_", "-"), str(v))]
    from_flags = parse_search_flags(["--budget", "10", *flags, "--device", "cpu"])[1]
    from_preset = parse_search_flags(["--preset", str(path), "--device", "cpu"])[1]
    for key in given:
        assert getattr(from_flags, key) == getattr(from_preset, key)
    assert (from_flags.trials, from_flags.timeout, from_flags.heartbeat, from_flags.prefix_store_gb) == (
        7,
        30.0,
        5,
        1.0,
    )
    assert from_flags.batch_auto and from_flags.confirm == "off"
    defaults = parse_search_flags(["--budget", "10", "--device", "cpu"])[1]
    for name, option in OPTIONS.items():
        if option.default is not None:
            assert getattr(defaults, name) == option.default
            assert str(option.default) in build_parser().format_help() or isinstance(option.default, float)
