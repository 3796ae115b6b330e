"""Write files so that no reader ever sees half of one (temp file, fsync, `os.replace`), and hash them. Stdlib-only.

A new file gets 0666 less the umask as the kernel applies it (no umask is read or changed, so threads are safe);
a replaced file keeps its mode. A failed write raises `HubWriteError` naming the file and leaves the old one."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import stat
from pathlib import Path
from typing import Any

from harness import UserError


class HubWriteError(UserError, OSError):
    """A hub file could not be written (disk full, read-only folder); nothing was half-written."""


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` all at once, or not at all."""
    path, tmp = Path(path), None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = stat.S_IMODE(path.stat().st_mode) if path.is_file() else None
        name = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        # Not mkstemp: its 0600 would make every hub file private to the user who collated it.
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        tmp = name
        with os.fdopen(fd, "wb") as handle:
            if mode is not None:
                os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp:
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise HubWriteError(exc.errno, f"cannot write {path}: {exc.strerror or exc}; "
                                "free some disk space or pick a writable folder (nothing was changed)") from exc
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, data: Any) -> Path:
    """Pretty JSON with a trailing newline; enums and tuples serialise as their values and lists."""
    return atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, streamed (bundles can be large)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def inside(root: Path, rel: str) -> Path | None:
    """`root / rel` when `rel` is relative and stays inside `root` through no symlink, else None: hubs are untrusted."""
    if not rel or Path(rel).is_absolute() or ".." in Path(rel).parts:
        return None
    path, real = root / rel, root.resolve()
    for step in [path, *path.parents]:
        if step == root or step.resolve() == real:
            return path
        if step.is_symlink():
            return None
    return None
