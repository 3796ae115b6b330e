"""A target's log, writer and reader side by side: the child run teed into it, its `# ` frame, its sha256 seal.

The child runs in its own session (a limit or interrupt stops its process group) and dies with the harness process."""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import re
import signal
import subprocess
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable

FIRST = "evidence log:"
OUTPUT, END = "----- output -----", "----- end of output -----"
HEADER_KEYS = 24  # at most this many header lines are kept when reading
TAIL_LINES = 40
LINE_MAX = 1 << 16  # a longer line (a target may print one of any length) is read in pieces
KILL_GRACE_S = 5.0
_FOOTER_VERDICT = re.compile(r"^# verdict: (\S+(?: RUN)?) - ")


def frame(lines: list[str]) -> str:
    """Harness lines as they appear in a log: `# ` before each."""
    return "".join(f"# {line}\n" for line in lines)


class SealedLog:
    """A log file opened for writing that hashes what goes through it (the harness's own bytes)."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle, self.digest, self.size = handle, hashlib.sha256(), 0

    def write(self, text: str) -> None:
        data = text.encode("utf-8", errors="replace")
        self.handle.write(data)
        self.handle.flush()
        self.digest.update(data)
        self.size += len(data)

    @property
    def sha256(self) -> str:
        return self.digest.hexdigest()


@dataclass(frozen=True)
class Frame:
    """What a log file holds, read in one pass: its hash, header, footer verdict and last lines."""
    sha256: str
    size: int
    header: tuple[str, ...]
    tail: tuple[str, ...] = ()

    @property
    def verdict(self) -> str | None:
        """The verdict the footer states, or None when the footer is missing."""
        return next((m.group(1) for line in reversed(self.tail) if (m := _FOOTER_VERDICT.match(line))), None)

    def damage(self) -> str | None:
        """Why the frame is not the one the harness writes (None when intact)."""
        if not self.header or not self.header[0].startswith(f"# {FIRST}"):
            return f"its header does not start with '# {FIRST}'"
        if f"# {OUTPUT}" not in self.header:
            return "its header is cut or overwritten (no output marker)"
        if f"# {END}" not in self.tail or self.verdict is None:
            return "its footer is missing or damaged"
        return None


def read_frame(path: Path) -> Frame:
    """Hash `path` and keep its first header lines and its last lines, streaming (a line is read LINE_MAX at a time)."""
    digest, size, header, tail = hashlib.sha256(), 0, [], deque(maxlen=TAIL_LINES)
    with open(path, "rb") as handle:
        for raw in iter(lambda: handle.readline(LINE_MAX), b""):
            digest.update(raw)
            size += len(raw)
            if len(header) < HEADER_KEYS and (not header or header[-1] != f"# {OUTPUT}"):
                header.append(_text(raw))
            tail.append(raw)
    return Frame(digest.hexdigest(), size, tuple(header), tuple(map(_text, tail)))


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace").rstrip("\r\n")


def seal_problem(path: Path, sha256: str | None, size: int | None, found: Frame | None = None) -> str | None:
    """Why a harness log is not the one its record sealed (None when it is); `found`: its frame, if read already."""
    found = found or read_frame(path)
    if sha256 and (found.sha256 != sha256 or found.size != size):
        return f"{path.name}: its bytes differ from what the harness wrote (sealed sha256 {sha256[:12]}…)"
    return f"{path.name}: {damage}" if (damage := found.damage()) else None


@dataclass(frozen=True)
class ChildResult:
    """How the child ended, and the last line that started with the watched prefix."""
    exit_code: int | None  # None: it could not be started
    timed_out: bool
    marked_line: str | None = None


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """In the child: `sig` when the harness process dies, however it dies (Linux prctl PR_SET_PDEATHSIG)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, sig)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the child's process group, then SIGKILL what is left of it (the leader, if it lingers, or strays)."""
    _signal_group(proc, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=KILL_GRACE_S)
    _signal_group(proc, signal.SIGKILL)
    proc.wait()


def run_child(argv: list[str], *, env: dict[str, str], cwd: Path, limit: float, log: SealedLog,
              echo: Callable[[str], None] | None = None, mark: str = "") -> ChildResult:
    """Run `argv` until it exits or `limit` seconds pass; its output goes to `log` (and `echo`)."""
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, text=True, errors="replace", bufsize=1,
                                start_new_session=True, preexec_fn=die_with_parent)
    except OSError as exc:
        log.write(f"could not start {argv[0]!r}: {exc}\n")
        return ChildResult(None, False)
    marked: list[str] = []

    def tee() -> None:
        for line in proc.stdout:
            log.write(line)
            if echo is not None:
                echo(line)
            if mark and line.startswith(mark):
                marked.append(line[len(mark):])

    reader = threading.Thread(target=tee, daemon=True)
    reader.start()
    timed_out = False
    try:
        proc.wait(timeout=limit)
        _signal_group(proc, signal.SIGKILL)  # the leader is gone; no grandchild may survive it
    except subprocess.TimeoutExpired:
        timed_out = True
        stop_group(proc)
    except BaseException:  # Ctrl-C / SIGTERM of the harness: stop the child, then let it propagate
        stop_group(proc)
        reader.join(timeout=2)
        raise
    reader.join(timeout=30)
    return ChildResult(proc.returncode, timed_out, marked[-1] if marked else None)
