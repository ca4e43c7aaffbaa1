"""The folder the processes of one command share (auxrun.sweep): failure notes, the stop and
the workers that handle it, seen alike from every process that inherits the environment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from auxrun import sweep


def test_failure_notes_survive_odd_messages(tmp_path):
    with sweep.shared():
        sweep.note_failure(tmp_path / "a[/x]", "two\nlines\tand a tab", 2)
        sweep.note_failure(tmp_path / "b", "other", 1)
        assert sweep.failures() == [(2, str(tmp_path / "a[/x]"), "two lines and a tab"), (1, str(tmp_path / "b"), "other")]


def test_a_stop_and_the_workers_noted_in_one_process_are_seen_by_another_started_later():
    """What a worker that joblib starts after the signal needs: a new process, which inherits
    only the environment, reads the stop the launcher recorded; the first stop stays."""
    read = ("from auxrun import sweep; import os; sweep.add_worker(); "
            "print(sweep.stopped(), os.getpid() in sweep.workers(), len(sweep.failures()))")
    with sweep.shared() as folder:
        assert sweep.stopped() is None and sweep.workers() == set()
        before = subprocess.run([sys.executable, "-c", read], capture_output=True, text=True, check=True).stdout.split()
        assert before == ["None", "True", "0"]
        sweep.note_stop(signal.SIGTERM)
        sweep.note_stop(signal.SIGINT)  # a later signal does not replace the first
        sweep.note_failure(folder / "job", "failed", 2)
        after = subprocess.run([sys.executable, "-c", read], capture_output=True, text=True, check=True).stdout.split()
        assert after == [str(int(signal.SIGTERM)), "True", "1"]
        assert len(sweep.workers()) == 2 and os.getpid() not in sweep.workers()
    assert not folder.exists() and sweep.ENV not in os.environ  # removed after the command
    assert sweep.stopped() is None and sweep.failures() == [] and sweep.workers() == set()
    sweep.note_stop(signal.SIGTERM)  # outside a command: nothing to write to, and no error
    assert sweep.stopped() is None


def test_a_nested_shared_folder_gives_back_the_outer_one():
    with sweep.shared() as outer:
        with sweep.shared() as inner:
            assert sweep.folder() == inner != outer
        assert sweep.folder() == outer and outer.exists() and not inner.exists()
