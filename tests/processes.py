"""What the tests that stop a command read of its processes (Linux: from /proc)."""

from __future__ import annotations

from pathlib import Path


def joblib_workers(launcher: int) -> list[int]:
    """The joblib (loky) worker processes of ``launcher``."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if parent == launcher and b"popen_loky" in command:
                out.append(int(entry.name))
    return out


def alive(pids: list[int]) -> list[int]:
    """Those of ``pids`` that are still joblib workers."""
    out = []
    for pid in pids:
        try:
            if b"popen_loky" in Path(f"/proc/{pid}/cmdline").read_bytes():
                out.append(pid)
        except OSError:
            continue
    return out
