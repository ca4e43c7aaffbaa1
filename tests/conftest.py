"""Shared fixtures: composing configs in-process and running the CLI as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import DictConfig

QUIET = ["trainer.progress=false"]


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``make test`` runs ``-n auto``), each worker keeps to its own share of
    the cores: its affinity mask (which the ``auxrun`` processes it starts inherit, and which
    ``threads=auto`` reads) and its thread pools. Workers that each spun on every core would slow
    each other far more than their number."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER"), os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if not worker or not count or not hasattr(os, "sched_setaffinity"):
        return
    index, count, cores = int(worker.removeprefix("gw")), int(count), sorted(os.sched_getaffinity(0))
    share = cores[index::count] if count <= len(cores) else [cores[index % len(cores)]]
    os.sched_setaffinity(0, share)
    from auxrun.threads import apply

    apply(len(share))  # torch's and BLAS's pools, and the environment children inherit


@pytest.fixture
def make_cfg() -> Iterator[Callable[..., DictConfig]]:
    """``make_cfg("mtl", "weighting=none", ...)`` composes a config like the CLI does."""
    with initialize_config_module("auxrun.conf", version_base="1.3"):
        yield lambda command, *overrides: compose(command, overrides=[*QUIET, *overrides])


# The modules every ``auxrun`` process imports (torch, PyG, Hydra, the registries): about four of
# the five or more seconds a short ``auxrun`` command takes here. run_cli's processes are forked
# from a server that imported them once (multiprocessing's forkserver); AUXRUN_TEST_EXEC=1 runs
# each command in a new interpreter instead.
PRELOAD = ["torch", "torch_geometric", "hydra", "pandas", "scipy.stats", "matplotlib.pyplot", "filelock",
           "auxrun.cli", "auxrun.schema", "auxrun.train.runner", "auxrun.report.compare"]
CLI_ENV = {"PYTHONWARNINGS": "ignore", "COLUMNS": "200"}
_server: dict = {}


def _cli_child(args: list[str], cwd: str | None, env: dict[str, str], out: str, err: str,
               session: bool = False) -> None:
    """What ``python -m auxrun ARGS`` does, in a process forked from the preloaded server: the
    environment, folder, arguments and output files of its own, and the exit code it ends with;
    with ``session``, in a session of its own (what a terminal's Ctrl-C reaches)."""
    import traceback
    import warnings

    if session:
        os.setsid()
    os.environ.clear()
    os.environ.update(env)
    warnings.simplefilter("ignore")
    if cwd:
        os.chdir(cwd)
    for fd, path in ((1, out), (2, err)):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(target, fd)
        os.close(target)
    sys.argv = ["auxrun", *args]
    code = 1
    try:
        from auxrun.cli import main

        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, (int, type(None))):
            print(exc.code, file=sys.stderr)
    except BaseException:  # what the interpreter does with an exception nothing caught
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        _end_joblib_workers()
    os._exit(code)


def _end_joblib_workers() -> None:
    """End the joblib (loky) workers this command started, idle now: a forked child ends with
    ``os._exit``, which skips the interpreter's exit that would end them (they would idle, torch
    loaded, until loky's timeout, minutes after the tests). Killed, not asked to finish: that
    would wait seconds for each to tear torch down."""
    import signal

    from processes import joblib_workers

    if "joblib.externals.loky.process_executor" not in sys.modules:  # no pool was started: skip reading /proc
        return
    for pid in joblib_workers(os.getpid()):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:  # ended already
            pass


def _server_context():
    """multiprocessing's forkserver context, its server started with :data:`PRELOAD` imported."""
    import multiprocessing

    if "context" not in _server:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        _server["context"] = context
        saved = dict(os.environ)
        os.environ.update(CLI_ENV)  # the server's environment: what its preloaded modules read on import
        try:
            multiprocessing.forkserver.ensure_running()
        finally:
            os.environ.clear()
            os.environ.update(saved)
    return _server["context"]


def _new_interpreter() -> bool:
    """Whether each ``auxrun`` command runs in a new interpreter rather than forked from the server."""
    return os.environ.get("AUXRUN_TEST_EXEC") == "1" or sys.platform != "linux"


class Running:
    """An ``auxrun`` command running as its own process: forked from the preloaded server, or a
    new interpreter under ``AUXRUN_TEST_EXEC=1``; with ``session``, in a session of its own, as a
    user's terminal would run it. The part of ``subprocess.Popen`` the tests use: ``pid``,
    ``poll()``, ``send_signal(signum)``, ``communicate(timeout)``, ``returncode``."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path | None, session: bool) -> None:
        import tempfile

        self.args, self.session, self.returncode = ["auxrun", *args], session, None
        self._popen: subprocess.Popen | None = None
        if _new_interpreter():
            self._popen = subprocess.Popen([sys.executable, "-m", "auxrun", *args], stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, text=True, cwd=cwd, env=env,
                                           start_new_session=session)
            self.pid = self._popen.pid
            return
        self._tmp = tempfile.mkdtemp(prefix="auxrun-cli-")
        self._out, self._err = os.path.join(self._tmp, "stdout"), os.path.join(self._tmp, "stderr")
        self._proc = _server_context().Process(target=_cli_child, args=(
            args, str(cwd) if cwd else None, env, self._out, self._err, session))
        self._proc.start()
        self.pid = self._proc.pid

    def poll(self) -> int | None:
        if self._popen is not None:
            self.returncode = self._popen.poll()
        elif not self._proc.is_alive():
            self.returncode = self._proc.exitcode
        return self.returncode

    def send_signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def communicate(self, timeout: float) -> tuple[str, str]:
        """Wait for the end (at most ``timeout`` seconds, then kill it: ``TimeoutExpired``);
        its standard output and error."""
        import shutil

        if self._popen is not None:
            try:
                out, err = self._popen.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._popen.kill()
                self._popen.communicate()
                raise
            self.returncode = self._popen.returncode
            return out, err
        try:
            self._proc.join(timeout)
            if self._proc.is_alive():
                if self.session:  # it and the workers it started
                    os.killpg(self.pid, 9)
                else:
                    self._proc.kill()
                self._proc.join()
                raise subprocess.TimeoutExpired(self.args, timeout)
            self.returncode = self._proc.exitcode
            with open(self._out) as o, open(self._err) as e:
                return o.read(), e.read()
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)


def start_cli(*args: str, env: dict[str, str], cwd: Path | None = None) -> Running:
    """Start ``auxrun ARGS`` in a session of its own, with the whole environment ``env``, and
    return at once: a test sends it signals (to it, or with ``os.killpg`` to its session, as a
    terminal's Ctrl-C) and reads its files while it runs."""
    return Running(list(args), env, cwd, session=True)


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``auxrun ARGS`` as its own process, as a user would; returns the completed process.
    The process is forked from a server that has already imported the heavy modules
    (:data:`PRELOAD`), unless ``AUXRUN_TEST_EXEC=1`` asks for a new interpreter each time."""
    proc = Running(list(args), {**os.environ, **CLI_ENV}, cwd, session=False)
    out, err = proc.communicate(timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def read_result(run_dir: Path) -> dict:
    return json.loads((run_dir / "result.json").read_text())
