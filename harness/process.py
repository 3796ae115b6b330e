"""Run one child process with a wall-clock limit, teeing its output line by line.

The child gets its own session, so at the limit (or on Ctrl-C) its whole process group is
stopped: SIGTERM, then SIGKILL after a grace period, then anything left in the group. A hung
grandchild can therefore never hold the log pipe open. Stdlib-only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Mapping

KILL_GRACE_S = 5.0


@dataclass(frozen=True)
class ChildResult:
    """How the child ended, and the last line that started with the watched prefix."""

    exit_code: int | None  # None: it could not be started
    timed_out: bool
    marked_line: str | None = None


class _Tee(threading.Thread):
    """Copy the child's output to the log and (optionally) a console writer; remember a marked line."""

    def __init__(self, stream: IO[str], log: IO[str], echo: Callable[[str], None] | None, mark: str) -> None:
        super().__init__(daemon=True)
        self.stream, self.log, self.echo, self.mark = stream, log, echo, mark
        self.marked: str | None = None

    def run(self) -> None:
        for line in self.stream:
            self.log.write(line)
            self.log.flush()
            if self.echo is not None:
                self.echo(line)
            if self.mark and line.startswith(self.mark):
                self.marked = line[len(self.mark):]


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the child's process group, SIGKILL it if it lingers, then reap any stray member."""
    _signal_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=KILL_GRACE_S)
    except subprocess.TimeoutExpired:
        _signal_group(proc, signal.SIGKILL)
        proc.wait()
    _signal_group(proc, signal.SIGKILL)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that a run stops the same clean way (exit 143 instead of 130)."""


def interrupt_on_sigterm() -> None:
    """Make SIGTERM stop a run the way Ctrl-C does: cleanly, without a traceback."""

    def _raise(signum: int, frame: object) -> None:
        raise Terminated

    signal.signal(signal.SIGTERM, _raise)


def interrupt_status(exc: BaseException | None) -> int:
    """The conventional exit status of a run stopped by `exc`: 143 for SIGTERM, 130 for Ctrl-C."""
    return 143 if isinstance(exc, Terminated) else 130


class Interrupted(Exception):
    """The run was stopped (Ctrl-C or SIGTERM) while this child ran; its log stays `.partial`."""


class Children:
    """The children running right now, so that an interrupt can stop every one of them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._procs: set[subprocess.Popen] = set()
        self.stopping = threading.Event()

    def add(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._procs.add(proc)
        if self.stopping.is_set():
            stop_group(proc)

    def discard(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._procs.discard(proc)

    def stop_all(self) -> None:
        """Stop every running child's process group (called from the main thread on an interrupt)."""
        self.stopping.set()
        with self._lock:
            running = list(self._procs)
        for proc in running:
            stop_group(proc)


def run_child(argv: list[str], *, env: Mapping[str, str], cwd: Path, limit: float, log: IO[str],
              echo: Callable[[str], None] | None = None, mark: str = "", children: Children | None = None) -> ChildResult:
    """Run `argv` until it exits or `limit` seconds pass; its output goes to `log` (and `echo`).

    With `children`, the child is registered while it runs; if the run is being stopped when it
    ends, `Interrupted` is raised instead of returning a result.
    """
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, text=True, errors="replace", bufsize=1,
                                start_new_session=True)
    except OSError as exc:
        log.write(f"could not start {argv[0]!r}: {exc}\n")
        return ChildResult(None, False)
    tee = _Tee(proc.stdout, log, echo, mark)
    tee.start()
    timed_out = False
    if children is not None:
        children.add(proc)
    try:
        proc.wait(timeout=limit)
        _signal_group(proc, signal.SIGKILL)  # the leader is gone; no grandchild may survive it
    except subprocess.TimeoutExpired:
        timed_out = True
        stop_group(proc)
    except BaseException:  # Ctrl-C / SIGTERM of the harness: stop the child, then let it propagate
        stop_group(proc)
        tee.join(timeout=10)
        raise
    finally:
        if children is not None:
            children.discard(proc)
    tee.join(timeout=30)
    if children is not None and children.stopping.is_set():
        raise Interrupted(f"{argv[0]} stopped by an interrupt")
    return ChildResult(proc.returncode, timed_out, tee.marked)
