"""Where and on what a target ran: git state, package versions, GPU visibility, platform.

Evidence without provenance cannot be trusted or reproduced. Git state comes from `git` itself
(a project root that is not a repository gives sha "unknown" and says so); versions and
`torch.cuda.is_available()` are probed in a child process run with the target's own
environment, because that is what the target saw. Stdlib-only at import time.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping

PACKAGES = ("torch", "lightning", "numpy")
UNKNOWN = "unknown"


@dataclass(frozen=True)
class GitState:
    """Git state of the project root; `dirty` counts tracked changes only."""

    sha: str
    dirty: bool | None
    dirty_files: tuple[str, ...] = ()
    src_changed: tuple[str, ...] = ()
    note: str = ""

    def as_dict(self) -> dict:
        data = asdict(self)
        data["dirty_files"] = list(self.dirty_files)
        data["src_changed"] = list(self.src_changed)
        return data


def _git(root: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout


def git_state(root: Path) -> GitState:
    """SHA, dirty flag and files, and the src/ files that differ from HEAD (incl. untracked)."""
    try:
        inside = _git(root, "rev-parse", "--show-toplevel").strip()
        sha = _git(root, "rev-parse", "HEAD").strip()
    except FileNotFoundError:
        return GitState(UNKNOWN, None, note="git is not installed")
    except subprocess.CalledProcessError as exc:
        return GitState(UNKNOWN, None, note=f"{root} is not a git repository with a commit ({exc.stderr.strip()})")
    porcelain = _git(root, "status", "--porcelain", "--untracked-files=no")
    dirty_files = tuple(sorted(line[3:].strip() for line in porcelain.splitlines() if line.strip()))
    changed = set(_git(root, "diff", "--name-only", "HEAD", "--", "src").split())
    changed |= set(_git(root, "ls-files", "--others", "--exclude-standard", "--", "src").split())
    note = "" if Path(inside).resolve() == root.resolve() else f"repository root is {inside}"
    return GitState(sha, bool(dirty_files), dirty_files, tuple(sorted(changed)), note)


_PROBE = r"""
import json, os, platform, sys
from importlib import metadata
out = {"python": platform.python_version(), "platform": platform.platform(),
       "executable": sys.executable,
       "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
       "pythonhashseed": os.environ.get("PYTHONHASHSEED")}
for name in %(packages)r:
    try:
        out[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
        out[name] = None
try:
    import torch
    out["cuda_available"] = bool(torch.cuda.is_available())
except ImportError:
    out["cuda_available"] = None
print(json.dumps(out))
"""


@dataclass(frozen=True)
class RuntimeInfo:
    """What the child process sees: versions, GPU visibility, platform."""

    python: str
    platform: str
    executable: str
    torch: str | None
    lightning: str | None
    numpy: str | None
    cuda_available: bool | None
    cuda_visible_devices: str | None
    pythonhashseed: str | None
    error: str | None = None


def probe_runtime(python: str, env: Mapping[str, str], cwd: Path) -> RuntimeInfo:
    """Run a tiny probe with the target's interpreter and environment.

    Cached within one process per interpreter and the variables that can change the answer
    (PYTHON*, CUDA*, NVIDIA*, LD_*): importing torch costs seconds. The child runs with
    PYTHONSAFEPATH, so the working folder does not change what it imports.
    """
    key = (python, tuple(sorted((k, v) for k, v in env.items() if k.startswith(_PROBE_ENV_PREFIXES))))
    if key not in _PROBES:
        _PROBES[key] = _probe(python, env, cwd)
    return _PROBES[key]


_PROBES: dict[tuple, RuntimeInfo] = {}
_PROBE_ENV_PREFIXES = ("PYTHON", "CUDA", "NVIDIA", "LD_")


def _probe(python: str, env: Mapping[str, str], cwd: Path) -> RuntimeInfo:
    code = _PROBE % {"packages": PACKAGES}
    try:
        result = subprocess.run(
            [python, "-c", code], env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=120
        )
        data = json.loads(result.stdout.strip().splitlines()[-1])
        return RuntimeInfo(**data)
    except (OSError, subprocess.SubprocessError, ValueError, IndexError, TypeError) as exc:
        return RuntimeInfo(
            python=UNKNOWN, platform=UNKNOWN, executable=python, torch=None, lightning=None, numpy=None,
            cuda_available=None, cuda_visible_devices=env.get("CUDA_VISIBLE_DEVICES"),
            pythonhashseed=env.get("PYTHONHASHSEED"), error=f"runtime probe failed: {exc}",
        )


@dataclass(frozen=True)
class Provenance:
    """The `provenance` block of a verdict record (docs/architecture.md)."""

    git: GitState
    runtime: RuntimeInfo
    seed: int
    threads: int

    def as_record(self) -> dict:
        return {
            "git_sha": self.git.sha,
            "git_dirty": self.git.dirty,
            "dirty_files": list(self.git.dirty_files),
            "src_changed": list(self.git.src_changed),
            "python": self.runtime.python,
            "torch": self.runtime.torch,
            "lightning": self.runtime.lightning,
            "numpy": self.runtime.numpy,
            "cuda_available": self.runtime.cuda_available,
            "cuda_visible_devices": self.runtime.cuda_visible_devices,
            "platform": self.runtime.platform,
            "seed": self.seed,
            "threads": self.threads,
            "pythonhashseed": self.runtime.pythonhashseed,
        }

    def header_lines(self) -> list[str]:
        g, r = self.git, self.runtime
        dirty = "unknown" if g.dirty is None else str(g.dirty)
        lines = [
            f"git: sha={g.sha} dirty={dirty}" + (f" ({g.note})" if g.note else ""),
            f"dirty files (tracked): {', '.join(g.dirty_files) or 'none'}",
            f"src/ differing from HEAD: {', '.join(g.src_changed) or 'none'}",
            f"python {r.python} ({r.executable}) | torch {r.torch} | lightning {r.lightning} | numpy {r.numpy}",
            f"torch.cuda.is_available(): {r.cuda_available}",
            f'CUDA_VISIBLE_DEVICES="{r.cuda_visible_devices}"',
            f"platform: {r.platform}",
            f"seed: {self.seed}  PYTHONHASHSEED={r.pythonhashseed}  threads: {self.threads}",
        ]
        if r.error:
            lines.append(r.error)
        return lines

