"""A full disk, a killed write, the user's umask: finished files are never lost or hidden."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import auxrun.report.results as results
from auxrun.errors import StorageError
from auxrun.atomic import atomic_write, write_json
from auxrun.train.commands import run
from auxrun.transfer.zeroshot import run as zeroshot_run

from conftest import read_result


def _full(fh):
    fh.write(b"{\"partial")
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary_file(tmp_path):
    path = write_json(tmp_path / "result.json", {"status": "completed"})
    with pytest.raises(OSError, match="No space left"):
        atomic_write(path, _full)
    assert json.loads(path.read_text()) == {"status": "completed"}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_files_follow_the_users_umask(tmp_path):
    import auxrun.atomic as io

    old = os.umask(0o022)
    try:
        io.UMASK = 0o022
        assert (write_json(tmp_path / "a.json", {}).stat().st_mode & 0o777) == 0o644
        io.UMASK = 0o077
        assert (write_json(tmp_path / "b.json", {}).stat().st_mode & 0o777) == 0o600
    finally:
        os.umask(old)
        io.UMASK = io._umask()


def test_a_finished_run_that_cannot_write_its_result_logs_its_metrics(make_cfg, tmp_path, monkeypatch, caplog):
    def full(path, obj):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(results, "write_json", full)
    with pytest.raises(StorageError, match="the run completed but its result could not be written"):
        run(make_cfg("mtl", "trainer=fast", "trainer.checkpoint=false"), tmp_path / "r")
    assert "its metrics: {\"val\": {" in caplog.text and "f1_micro" in caplog.text


@pytest.mark.parametrize("command", ["mtl", "zeroshot"])
def test_a_full_disk_costs_checkpoints_and_trace_but_never_the_run(make_cfg, tmp_path, monkeypatch, caplog, command):
    """The one loop writes best.pt, last.pt and trace.csv through the full-disk guard for every command."""
    from auxrun.train import loop

    def full(path, *args):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    for writer in ("save_torch", "save_run_state", "write_trace"):
        monkeypatch.setattr(loop, writer, full)
    scheme = zeroshot_run if command == "zeroshot" else run
    result = scheme(make_cfg(command, "trainer=fast", "trainer.max_epochs=2"), tmp_path / "r")
    assert result["status"] == "completed" and result["metrics"]["test"]
    assert read_result(tmp_path / "r")["metrics"] == result["metrics"]
    for what in ("the best epoch's checkpoint", "the checkpoint", "trace.csv"):
        assert f"could not write {what} ([Errno 28]" in caplog.text


def test_stale_temporary_files_of_a_killed_write_are_removed_on_start(make_cfg, tmp_path):
    run_dir = tmp_path / "r"
    (run_dir / "checkpoints").mkdir(parents=True)
    stale = [run_dir / ".result.json.x1.tmp", run_dir / "checkpoints" / ".last.pt.x2.tmp"]
    for p in stale:
        p.write_bytes(b"half")
    run(make_cfg("mtl", "trainer=fast", "trainer.max_epochs=1"), run_dir)
    assert not any(p.exists() for p in stale)


def _mount_tmpfs(where: Path, size: str) -> bool:
    if shutil.which("mount") is None or os.geteuid() != 0:
        return False
    where.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True).returncode == 0


@pytest.mark.slow
def test_a_really_full_disk_ends_in_one_line_and_keeps_the_finished_result(tmp_path):
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "8m"):
        pytest.skip("cannot mount a tmpfs here (needs root); the ENOSPC injection tests cover the logic")
    try:
        args = [sys.executable, "-m", "auxrun", "mtl", "trainer=fast", "trainer.progress=false",
                f"hydra.run.dir={disk / 'r'}", f"paths.outputs={disk}"]
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        first = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
        assert first.returncode == 0, first.stderr[-2000:]
        before = (disk / "r" / "result.json").read_text()
        with open(disk / "filler", "wb") as f:  # fill every byte that is left
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        again = subprocess.run([*args, "rerun=true"], capture_output=True, text=True, env=env, timeout=300)
        assert again.returncode == 1 and "Traceback" not in again.stderr, again.stderr[-2000:]
        assert "No space left on device" in again.stderr
        assert (disk / "r" / "result.json").read_text() == before
        assert not list((disk / "r").rglob(".*.tmp"))
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


# holds a run folder's lock as the process running its job does, until its stdin closes
HOLDER = """
import sys
from filelock import FileLock
from auxrun.run_folder import RunFolder
lock = FileLock(str(RunFolder(sys.argv[1]).lock), timeout=0)
lock.acquire()
print("held", flush=True)
sys.stdin.read()
"""


def test_a_folder_another_process_runs_is_left_alone_by_a_second_launch(tmp_path):
    """A second launch of a run or sweep whose job is running in another process (simulated by a
    process that holds the folder's lock) stops there in one line, exit 2, and touches nothing:
    not the other's temporary files (which a start removes as a killed write's), nor its
    checkpoint, nor its record. A sweep runs its other jobs and lists that one as not run."""
    from conftest import run_cli

    quick = ["trainer=fast", "trainer.max_epochs=1", "trainer.progress=false", f"paths.outputs={tmp_path / 'out'}"]
    single, job = tmp_path / "single", tmp_path / "sweep" / "0"
    files = {}
    for folder in (single, job):
        (folder / "checkpoints").mkdir(parents=True)
        files[folder] = {folder / "checkpoints" / ".last.pt.abc123.tmp": b"being written",
                         folder / "checkpoints" / "last.pt": b"the other's checkpoint"}
        for path, data in files[folder].items():
            path.write_bytes(data)
    holders = [subprocess.Popen([sys.executable, "-c", HOLDER, str(f)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True) for f in (single, job)]
    try:
        assert all(h.stdout.readline().strip() == "held" for h in holders)
        one = run_cli("mtl", *quick, f"hydra.run.dir={single}", cwd=tmp_path)
        many = run_cli("mtl", "-m", "seed=0,1", *quick, f"hydra.sweep.dir={tmp_path / 'sweep'}",
                       "hydra.sweep.subdir=${hydra.job.num}", cwd=tmp_path)
    finally:
        for h in holders:
            h.communicate("")
    text = " ".join(one.stderr.split())
    assert one.returncode == 2 and "Traceback" not in text, text
    assert [line for line in one.stderr.splitlines() if line.startswith("error:")] == [
        line for line in one.stderr.splitlines() if "another auxrun process is running this job now" in line]
    sweep_text = " ".join(many.stderr.split())
    assert many.returncode == 2 and "1 job(s) of the sweep failed or were not run" in sweep_text, sweep_text
    assert f"{job}: another auxrun process is running this job now" in sweep_text
    for folder in (single, job):
        assert all(path.read_bytes() == data for path, data in files[folder].items())
        assert not (folder / "result.json").exists()
    assert read_result(tmp_path / "sweep" / "1")["status"] == "completed"
    again = run_cli("mtl", *quick, f"hydra.run.dir={single}", "rerun=true", cwd=tmp_path)  # released: it runs
    assert again.returncode == 0 and read_result(single)["status"] == "completed", again.stderr
