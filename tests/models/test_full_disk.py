"""A full output disk ends `lwl-train` with one line and exit status 1; the last good checkpoint stays intact."""

import errno
import subprocess
import sys

import pytest

import lwl.models._checkpoint as checkpoint_module  # a private mechanism on purpose: the run folder's file writer
from lwl.models import load_checkpoint
from lwl.models.commands import train_main


def test_a_full_output_disk_is_one_line_and_the_last_checkpoint_is_kept(tmp_path, monkeypatch, capsys):
    real = checkpoint_module.atomic_write
    checkpoints = []

    def atomic_write(path, write):
        if path.name == "checkpoint.pt":
            checkpoints.append(path)
            if len(checkpoints) == 2:  # the second epoch's checkpoint meets a full disk halfway through

                def half(f):
                    f.write(b"\0" * 1024)
                    raise OSError(errno.ENOSPC, "No space left on device")

                return real(path, half)
        return real(path, write)

    monkeypatch.setattr(checkpoint_module, "atomic_write", atomic_write)
    out = tmp_path / "run"
    argv = ["--dataset", "digits", "--hierarchy", "1,1", "--widths", "8,16", "--epochs", "3", "--device", "cpu"]
    assert train_main([*argv, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("lwl-train:")]
    assert len(lines) == 1, err
    assert "No space left on device (ENOSPC)" in lines[0] and "--resume" in lines[0]
    assert load_checkpoint(out / "checkpoint.pt")["trainer"]["position"]["epoch"] == 1
    assert not list(out.glob(".*.tmp")), "the cut-short temporary file is removed"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_FSIZE and SIGXFSZ as Linux has them")
@pytest.mark.slow
def test_a_write_torch_s_zip_writer_cannot_finish_is_the_one_line_disk_error(tmp_path):
    """A file size limit (as a full disk does) makes torch's zip writer raise `RuntimeError: unexpected pos` at
    some sizes: it is the write error it is, one line and exit status 1, no temporary file left."""
    script = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (60000, 60000))\n"
        "from lwl.models.commands import train_main\n"
        "sys.exit(train_main(sys.argv[1:]))\n"
    )
    argv = ["--dataset", "digits", "--hierarchy", "1,1", "--widths", "8,16", "--epochs", "2", "--device", "cpu"]
    out = tmp_path / "run"
    run = subprocess.run(
        [sys.executable, "-c", script, *argv, "--out", str(out)], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("lwl-train:")]
    assert len(lines) == 1 and "File too large (EFBIG)" in lines[0], run.stderr
    assert not list(out.glob(".*.tmp")) and not (out / "checkpoint.pt").exists()
