"""The harness's own interpreter, `.venv-tools`: built from the lock file on first use, reused after.

nox's interpreter may hold nothing but nox (pipx, `pip install --user nox`), so the harness never
runs there: the noxfile and the Makefile ask this module for the tools venv, which holds the
harness's few libraries pinned by `constraints.txt`. Stdlib-only: it runs in nox's interpreter.
A stamp (sha256 of the lock and the package list) decides whether to install; a file lock keeps
parallel nox sessions from building it twice. `python3 -m harness.tools` prints its python.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

HOME = Path(__file__).resolve().parents[1]
PACKAGES = ("nox", "tabulate", "filelock", "pillow", "uv", "watchdog")
STAMP = ".bootstrapped"


def tools_python(home: Path = HOME) -> Path:
    return home / ".venv-tools" / "bin" / "python"


def _stamp(home: Path) -> str:
    return hashlib.sha256((home / "constraints.txt").read_bytes() + " ".join(PACKAGES).encode()).hexdigest()


def _base_python() -> str:
    """A Python 3.11 to build the venv from (the project requires 3.11): this one, else python3.11 on PATH."""
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    found = os.environ.get("PYTHON") or shutil.which("python3.11")
    if not found:
        raise SystemExit("error: the harness needs Python 3.11 (python3.11 on PATH, or PYTHON=/path/to/python3.11)")
    return found


def ensure_tools(home: Path = HOME) -> Path:
    """The tools venv's python, built (or rebuilt after a lock change) under a lock."""
    venv, stamp = home / ".venv-tools", _stamp(home)
    if (venv / STAMP).is_file() and (venv / STAMP).read_text().strip() == stamp and tools_python(home).is_file():
        return tools_python(home)
    (home / ".nox").mkdir(exist_ok=True)
    with open(home / ".nox" / ".tools.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session may be building it right now
        if not ((venv / STAMP).is_file() and (venv / STAMP).read_text().strip() == stamp):
            print(f"harness: building {venv} from constraints.txt (once)", file=sys.stderr, flush=True)
            for argv in ([_base_python(), "-m", "venv", "--clear", str(venv)],
                         [str(tools_python(home)), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                          "-c", str(home / "constraints.txt"), *PACKAGES]):
                done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
                if done.returncode:
                    tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-10:])
                    raise SystemExit(f"error: building {venv} failed at `{' '.join(argv)}`:\n{tail}")
            (venv / STAMP).write_text(stamp + "\n")
    return tools_python(home)


if __name__ == "__main__":
    print(ensure_tools())
