"""The harness's own interpreter, `.venv-tools`, built from the lock on first use; stdlib-only (nox's interpreter).

A stamp over the lock and the package list decides whether to install; a file lock keeps parallel nox sessions
from building it twice. `python3 -m harness.tools` prints its python.
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
    venv, lockfile = home / ".venv-tools", home / "constraints.txt"
    python, stamp_file = venv / "bin" / "python", venv / STAMP
    stamp = hashlib.sha256(lockfile.read_bytes() + " ".join(PACKAGES).encode()).hexdigest()
    if stamp_file.is_file() and stamp_file.read_text().strip() == stamp and python.is_file():
        return python
    (home / ".nox").mkdir(exist_ok=True)
    with open(home / ".nox" / ".tools.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session may be building it right now
        if not (stamp_file.is_file() and stamp_file.read_text().strip() == stamp):
            print(f"harness: building {venv} from constraints.txt (once)", file=sys.stderr, flush=True)
            for argv in ([_base_python(), "-m", "venv", "--clear", str(venv)],
                         [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                          "-c", str(lockfile), *PACKAGES]):
                done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
                if done.returncode:
                    tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-10:])
                    raise SystemExit(f"error: building {venv} failed at `{' '.join(argv)}`:\n{tail}")
            stamp_file.write_text(stamp + "\n")
    return python


if __name__ == "__main__":
    print(ensure_tools())
