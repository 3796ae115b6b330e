"""The log frame: the provenance header and footer the harness writes around a target's output, and its seal.

One owner for the format of a harness-made log, writer and reader side by side. Every line the
harness writes starts with `# `; the header begins with `# evidence log:` and ends with the
output marker, the footer begins with the end marker and ends with `# verdict: V - reason`.
`SealedLog` hashes every byte as it is written, so a log whose bytes later differ from what the
harness wrote (a target that reopened its own log, a hand edit) is caught: the verdict record
keeps the sha256. `read_frame` streams the file (bounded memory, whatever the log's size).
"""

from __future__ import annotations

import hashlib
import re
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

FIRST = "evidence log:"
OUTPUT, END = "----- output -----", "----- end of output -----"
HEADER_KEYS = 24  # at most this many header lines are kept when reading
TAIL_LINES = 40
LINE_MAX = 1 << 16  # a longer line (a target may print one of any length) is read in pieces
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
    tail: tuple[str, ...] = field(default_factory=tuple)

    @property
    def verdict(self) -> str | None:
        """The verdict the footer states, or None when the footer is missing."""
        hits = [m.group(1) for line in self.tail if (m := _FOOTER_VERDICT.match(line))]
        return hits[-1] if hits else None

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
    damage = found.damage()
    return f"{path.name}: {damage}" if damage else None
