"""The engine's commands, run as a user runs them."""

import json
import subprocess
import sys

import pytest


def run(*args: str, cwd: object = None) -> subprocess.CompletedProcess:
    # The console scripts' own entry points (pyproject.toml [project.scripts]), run as a user runs them.
    code = "import sys; from lwl.models.commands import {0}; sys.exit({0}(sys.argv[1:]))"
    name = "inspect_main" if args[0] == "lwl-inspect" else "train_main"
    return subprocess.run(
        [sys.executable, "-c", code.format(name), *args[1:]], capture_output=True, text=True, timeout=300, cwd=cwd
    )


def test_inspect_json_has_the_documented_keys():
    out = run(
        "lwl-inspect",
        "--family",
        "resnet",
        "--block",
        "basic",
        "--hierarchy",
        "2,2,2,2",
        "--dataset",
        "cifar100",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert {"hierarchy", "family", "units", "conv_layers", "params", "params_aux", "flops", "stages"} <= set(d)
    assert d["params"] == 11_220_132 and d["units"] == 8 and d["conv_layers"] == 17
    assert d["stages"] == [{"units": 2, "resolution": 32 // 2**i, "width": 64 * 2**i} for i in range(4)]
    assert d["params_aux"] > d["params"] and round(d["flops"] / 1e9, 2) == 1.11


def test_inspect_preset_and_text():
    out = run("lwl-inspect", "--preset", "resnet50", "--dataset", "cifar10")
    assert out.returncode == 0 and "bottleneck [3,4,6,3]" in out.stdout and "23,520,842" in out.stdout


def test_inspect_defaults_to_digits_like_every_command():
    out = run("lwl-inspect", "--hierarchy", "1,1,2,4")
    assert out.returncode == 0 and "on digits (1x16x16, 10 classes)" in out.stdout, out.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--hierarchy", "1,0,2"], "non-positive"),
        (["--hierarchy", ""], "empty hierarchy"),
        (["--hierarchy", "1,1,1,1,1,1,1"], "downsamplings"),
        (["--preset", "resnet9"], "unknown preset"),
        (["--hierarchy", "1,2", "--dataset", "imagenet"], "unknown data set"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message):
    out = run("lwl-inspect", *args)
    assert out.returncode == 2
    assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


def test_bad_family_is_refused_by_argparse():
    assert run("lwl-inspect", "--hierarchy", "1,1", "--family", "mlp").returncode == 2


@pytest.mark.slow
def test_train_digits_end_to_end():
    out = run(
        "lwl-train",
        "--dataset",
        "digits",
        "--hierarchy",
        "1,1",
        "--widths",
        "8,16",
        "--epochs",
        "2",
        "--device",
        "cpu",
        "--test",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["hierarchy"] == [1, 1] and d["loss"] == "predsim" and len(d["unit_acc"]) == 2
    assert 0.0 <= d["test_output_acc"] <= 1.0 and d["device"] == "cpu"
    assert "epoch   2/2" in out.stderr


@pytest.mark.slow
def test_the_flags_alone_train_what_the_same_flags_train_into_a_run_folder(tmp_path):
    """One training path: the flags become a config, and a run without --out trains exactly what the same flags
    train into a folder (the seed seeding the validation split too), writing nothing."""
    flags = ["--hierarchy", "1,1", "--widths", "4,8", "--epochs", "1", "--device", "cpu", "--seed", "3", "--json"]
    alone = run("lwl-train", *flags, "--test", cwd=tmp_path)
    folder = run("lwl-train", *flags, "--test", "--out", str(tmp_path / "r"))
    assert alone.returncode == 0 and folder.returncode == 0, alone.stderr + folder.stderr
    a, f = json.loads(alone.stdout), json.loads(folder.stdout)
    for key in ("output_acc", "unit_acc", "test_output_acc", "test_unit_acc", "unit_epochs", "params"):
        assert a[key] == f[key], key
    assert [p.name for p in tmp_path.iterdir()] == ["r"]  # the run without a folder wrote nothing
    assert "training resnet basic [1,1]" in alone.stderr and "epoch   1/1" in alone.stderr
    assert f"predsim: test accuracy {100 * a['test_output_acc']:.1f} %" in alone.stderr


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.slow
def test_train_says_which_precision_it_trained_in(tmp_path, precision):
    """The flag reaches the run and its record: the summary line, --json, and the run folder's config (which a
    later --config run then follows unless --precision overrides it)."""
    flags = ["--hierarchy", "1,1", "--widths", "4,8", "--epochs", "1", "--device", "cpu", "--val-fraction", "0.2"]
    out = run("lwl-train", *flags, "--precision", precision, "--json", "--out", str(tmp_path / "r"))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["precision"] == precision and f"on cpu in {precision})" in out.stderr
    config = tmp_path / "r" / "config.yaml"
    assert f"precision: {precision}" in config.read_text()
    other = "bf16" if precision == "fp32" else "fp32"
    again = run(
        "lwl-train",
        "--config",
        str(config),
        "--epochs",
        "1",
        "--precision",
        other,
        "--json",
        "--out",
        str(tmp_path / "again"),
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["precision"] == other


@pytest.mark.slow
def test_missing_cifar_is_a_clear_error(tmp_path):
    out = run("lwl-train", "--dataset", "cifar10", "--hierarchy", "1,1", "--data-root", str(tmp_path))
    assert out.returncode == 2 and "--download" in out.stderr and str(tmp_path) in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_an_interrupt_that_cut_a_cleanup_short_is_still_an_interrupt(capsys):
    """Ctrl-C inside a library's cleanup (Optuna's journal lock: the rename it was undoing is gone) surfaces as that
    cleanup's error; the command still ends as interrupted (130, one line, no traceback). Other errors are not."""
    from lwl.models import interrupted
    from lwl.models.cli import run_command

    def cut_short() -> int:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise FileNotFoundError("lock.rename") from None  # `from None` hides it in tracebacks, not in __context__

    assert run_command("lwl-x", cut_short) == 130
    assert capsys.readouterr().err == "lwl-x: interrupted\n"

    def broken() -> int:
        raise FileNotFoundError("data.bin")

    with pytest.raises(FileNotFoundError):
        run_command("lwl-x", broken)
    assert not interrupted(FileNotFoundError("x")) and interrupted(KeyboardInterrupt())


def test_torch_out_of_memory_is_the_one_line_out_of_memory_exit(capsys):
    """A device's OutOfMemoryError (torch's own class, looked up only once torch is loaded) ends in the one line."""
    import torch

    from lwl.models.cli import run_command

    def exhausted() -> int:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    assert run_command("lwl-train", exhausted) == 1
    err = capsys.readouterr().err
    assert err.startswith("lwl-train: out of memory (OutOfMemoryError: CUDA out of memory") and err.count("\n") == 1


def test_a_cpu_allocation_failure_is_the_one_line_out_of_memory_exit(capsys):
    """torch's CPU allocator raises a RuntimeError, not an OutOfMemoryError: it still ends in the one line."""
    import torch

    from lwl.models.cli import run_command

    assert run_command("lwl-train", lambda: int(torch.empty(2**62, dtype=torch.uint8).numel())) == 1
    err = capsys.readouterr().err
    assert err.startswith("lwl-train: out of memory (RuntimeError:") and len(err.strip().splitlines()) == 1, err
