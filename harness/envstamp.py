"""Decide whether the shared evidence venv must be (re)installed.

Installing torch into a venv costs ~20 s; a warm run must install nothing. The stamp is the
sha256 of everything that determines the venv's content: the lock (constraints.txt), the
package metadata (pyproject.toml), the interpreter version, the extras and the torch source
settings. nox stores it in the venv after a successful install and compares on the next run.
Stdlib-only: the noxfile imports this module in nox's own interpreter.
"""

from __future__ import annotations

import hashlib
import os
import platform
from pathlib import Path
from typing import Mapping

STAMP_FILE = ".evidence-stamp"
LOCK_FILES = ("constraints.txt", "pyproject.toml")
# `dev` = test (pytest, pytest-timeout) + bench (scikit-image, for the quality session) + nox
# (the noxfile's own test): one venv serves the targets, tests, quality and compare sessions.
EXTRAS = "dev"
TORCH_INDEX_ENV = "EVIDENCE_TORCH_INDEX_URL"
TORCH_FIND_LINKS_ENV = "EVIDENCE_TORCH_FIND_LINKS"


def torch_source_args(env: Mapping[str, str] | None = None) -> list[str]:
    """Extra pip arguments pointing at a CPU torch wheel source, from the environment.

    Empty by default: pip's own configuration applies (on the build machine it already
    provides the CPU wheel).
    """
    env = os.environ if env is None else env
    args: list[str] = []
    if env.get(TORCH_INDEX_ENV):
        args += ["--extra-index-url", env[TORCH_INDEX_ENV]]
    if env.get(TORCH_FIND_LINKS_ENV):
        args += ["--find-links", env[TORCH_FIND_LINKS_ENV]]
    return args


def install_args(env: Mapping[str, str] | None = None) -> list[str]:
    """`pip install` arguments of the evidence venv: the lock, the torch source, the package."""
    return ["-c", "constraints.txt", *torch_source_args(env), "-e", f".[{EXTRAS}]"]


def compute_stamp(project_root: str | Path, python_version: str | None = None,
                  env: Mapping[str, str] | None = None) -> str:
    """sha256 over the lock files, interpreter version, extras and torch source settings."""
    root = Path(project_root)
    digest = hashlib.sha256()
    for name in LOCK_FILES:
        path = root / name
        try:
            content = path.read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: needed to build the evidence venv; run from the project root") from None
        digest.update(f"{name}\0".encode() + hashlib.sha256(content).digest())
    parts = [python_version or platform.python_version(), EXTRAS, *torch_source_args(env)]
    digest.update("\0".join(parts).encode())
    return digest.hexdigest()


def stamp_path(venv_dir: str | Path) -> Path:
    return Path(venv_dir) / STAMP_FILE


def read_stamp(venv_dir: str | Path) -> str | None:
    try:
        return stamp_path(venv_dir).read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def is_current(venv_dir: str | Path, stamp: str) -> bool:
    """True when the venv was last installed with exactly this stamp."""
    return read_stamp(venv_dir) == stamp


def write_stamp(venv_dir: str | Path, stamp: str) -> None:
    """Record a successful install (written last, so a failed install is retried)."""
    path = stamp_path(venv_dir)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(stamp + "\n", encoding="utf-8")
    os.replace(tmp, path)
