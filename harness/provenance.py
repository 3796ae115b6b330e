"""What a run ran on: the evidence interpreter, probed once per run in a child with the targets' environment.

`probe_versions` reads every installed distribution (fast; a uv-built venv has no pip), `probe_cuda` imports
torch (seconds: the driver runs it beside the first target). The git state is read in harness/context.py."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Mapping

from harness.schema import EnvironmentRecord, Runtime

PROBE_TIMEOUT_S = 120
_PROBE_ERRORS = (OSError, subprocess.SubprocessError, RuntimeError, ValueError, IndexError)
_VERSIONS = r"""
import json, os, platform, sys
from importlib import metadata
packages = {d.metadata["Name"].lower(): d.version for d in metadata.distributions() if d.metadata["Name"]}
print(json.dumps({"python": platform.python_version(), "platform": platform.platform(),
                  "executable": sys.executable, "packages": dict(sorted(packages.items())),
                  "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
                  "pythonhashseed": os.environ.get("PYTHONHASHSEED")}))
"""
_CUDA = r"""
try:
    import torch
    print("true" if torch.cuda.is_available() else "false")
except ImportError:
    print("null")
"""


def _run_probe(python: str, code: str, env: Mapping[str, str], cwd: Path) -> str:
    result = subprocess.run([python, "-c", code], env=dict(env), cwd=cwd, capture_output=True, text=True,
                            timeout=PROBE_TIMEOUT_S)
    if result.returncode != 0:
        raise RuntimeError((result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1])
    return result.stdout.strip().splitlines()[-1]


def probe_versions(python: str, env: Mapping[str, str], cwd: Path) -> EnvironmentRecord:
    """Versions of the interpreter and of every installed distribution (no heavy import)."""
    try:
        data = json.loads(_run_probe(python, _VERSIONS, env, cwd))
    except _PROBE_ERRORS as exc:
        return EnvironmentRecord(Runtime(executable=python, cuda_visible_devices=env.get("CUDA_VISIBLE_DEVICES"),
                                         pythonhashseed=env.get("PYTHONHASHSEED"),
                                         error=f"version probe failed: {exc}"))
    packages = data.pop("packages")
    return EnvironmentRecord(Runtime(**data, **{k: packages.get(k) for k in ("torch", "lightning", "numpy")}), packages)


def probe_cuda(python: str, env: Mapping[str, str], cwd: Path, record: EnvironmentRecord) -> EnvironmentRecord:
    """`record` with `torch.cuda.is_available()` as the targets' interpreter answers it.

    A CPU build of torch (version `+cpu`) never sees a GPU: it is False without importing torch (seconds)."""
    if (record.runtime.torch or "").endswith("+cpu"):
        return replace(record, runtime=replace(record.runtime, cuda_available=False))
    try:
        runtime = replace(record.runtime, cuda_available=json.loads(_run_probe(python, _CUDA, env, cwd)))
    except _PROBE_ERRORS as exc:
        note = f"cuda probe failed: {exc}"
        runtime = replace(record.runtime, error="; ".join(filter(None, [record.runtime.error, note])))
    return replace(record, runtime=runtime)
