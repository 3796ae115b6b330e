"""Build (or reuse) a project's evidence venv from its plan's `[project]` recipe, under `.nox/evidence/`.

A stamp over the recipe, the files it names, the interpreter and the package sources decides whether to
install. uv builds it when present (seconds), pip otherwise; uv does not read pip's settings: they are passed on.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Mapping

from harness import UserError
from harness.context import RunContext
from harness.plan import expand

STAMP_FILE = ".evidence-stamp"
TORCH_INDEX_ENV, TORCH_FIND_LINKS_ENV = "EVIDENCE_TORCH_INDEX_URL", "EVIDENCE_TORCH_FIND_LINKS"
INSTALLER_ENV = "EVIDENCE_INSTALLER"  # "uv" or "pip": force one (default: uv when present)
PYTHON_ENV = "EVIDENCE_PYTHON"  # use this interpreter as it is: no venv is built (your own environment)
_FILE_FLAGS = ("-r", "--requirement", "-c", "--constraint")
_PROJECT_FILES = ("pyproject.toml", "setup.py", "setup.cfg")
_PIP_KEYS = {"find-links": "--find-links", "index-url": "--index-url", "extra-index-url": "--extra-index-url"}


class EnvBuildError(UserError, RuntimeError):
    """The evidence venv could not be built; the message names the failing step."""


def install_steps(ctx: RunContext) -> list[list[str]]:
    """The recipe's `pip install` argument lists, placeholders filled."""
    values = {"home": str(ctx.home), "project_root": str(ctx.project)}
    return [[expand(arg, **values) for arg in step] for step in ctx.plan.project.install]


def recipe_files(ctx: RunContext) -> list[Path]:
    """Files whose content decides what the recipe installs (requirement files, project metadata)."""
    found: list[Path] = []
    for step in install_steps(ctx):
        for flag, value in zip(step, step[1:] + [""]):
            if flag in _FILE_FLAGS:
                found.append(ctx.path(value))
            elif flag.startswith(("-r", "-c")) and len(flag) > 2 and not flag.startswith("--"):
                found.append(ctx.path(flag[2:]))
        for arg in step:
            local = ctx.path(re.sub(r"\[.*\]$", "", arg))
            if arg.startswith((".", "/")) and local.is_dir():
                found += [local / name for name in _PROJECT_FILES if (local / name).is_file()]
    return found


def pip_config_sources(pip_config: str | None = None) -> list[str]:
    """pip's find-links / index settings as arguments (from `pip config list` unless given)."""
    if pip_config is None:
        out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True)
        pip_config = out.stdout if out.returncode == 0 else ""
    args: list[str] = []
    for line in pip_config.splitlines():
        key, _, value = line.partition("=")
        flag = _PIP_KEYS.get(key.rsplit(".", 1)[-1].strip())
        for item in value.strip().strip("'\"").split() if flag else ():
            if item not in args:
                args += [flag, item]
    return args


def torch_source_args(env: Mapping[str, str] | None = None) -> list[str]:
    """EVIDENCE_TORCH_INDEX_URL / EVIDENCE_TORCH_FIND_LINKS as pip/uv arguments."""
    env = os.environ if env is None else env
    args = ["--extra-index-url", env[TORCH_INDEX_ENV]] if env.get(TORCH_INDEX_ENV) else []
    return args + (["--find-links", env[TORCH_FIND_LINKS_ENV]] if env.get(TORCH_FIND_LINKS_ENV) else [])


def compute_stamp(ctx: RunContext, sources: list[str], python_version: str | None = None) -> str:
    """sha256 over the recipe, the files it names, the interpreter version and the sources."""
    recipe = [install_steps(ctx), sources, python_version or platform.python_version()]
    digest = hashlib.sha256(json.dumps(recipe).encode())
    for path in recipe_files(ctx):
        try:
            digest.update(path.as_posix().encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
        except FileNotFoundError:
            raise EnvBuildError(f"{path}: named by the plan's [project] install steps but missing") from None
    return digest.hexdigest()


def venv_dir(ctx: RunContext) -> Path:
    """`.nox/evidence/<project>-<key>` in the harness home: one per project folder and recipe."""
    key = hashlib.sha256(json.dumps([str(ctx.project), install_steps(ctx)]).encode()).hexdigest()[:10]
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", ctx.project.name) or "project"
    return ctx.home / ".nox" / "evidence" / f"{name}-{key}"


def build_commands(venv: Path, steps: list[list[str]], sources: list[str], uv: str | None) -> list[list[str]]:
    """The commands that create the venv and run every install step, with uv or with pip."""
    python = str(venv / "bin" / "python")
    if uv:
        create = [uv, "venv", "--quiet", "--python", sys.executable, str(venv)]
        # pip takes the best version across all its indexes; uv must be told to do the same.
        install = [uv, "pip", "install", "--quiet", "--python", python, "--index-strategy", "unsafe-best-match"]
        return [create] + [[*install, *sources, *step] for step in steps]
    # `sources` are pip's own settings (pip reads them itself) followed by EVIDENCE_TORCH_*.
    pip = [python, "-m", "pip", "install", "--quiet", *torch_source_args()]
    return [[sys.executable, "-m", "venv", str(venv)]] + [[*pip, *step] for step in steps]


def ensure_env(ctx: RunContext, log: Callable[[str], None] = print) -> Path:
    """The evidence venv's python, built or rebuilt only when its stamp changed."""
    if os.environ.get(PYTHON_ENV):
        python = Path(os.environ[PYTHON_ENV])
        if not python.is_file():
            raise EnvBuildError(f"{PYTHON_ENV}={python}: no such interpreter; unset it to let the harness build "
                                "the venv")
        log(f"{PYTHON_ENV} is set: using {python} as it is (no venv built from the plan's recipe)")
        return python
    venv = venv_dir(ctx)
    python, stamp_file = venv / "bin" / "python", venv / STAMP_FILE
    built = stamp_file.read_text(encoding="utf-8").strip() if stamp_file.is_file() else ""
    if built and python.is_file():
        try:  # pip's settings as read at the build: a warm run must not pay for `pip config list`
            cached = list(json.loads((venv / "pip-sources.json").read_text(encoding="utf-8")))
        except (OSError, ValueError):
            cached = pip_config_sources()
        if compute_stamp(ctx, cached + torch_source_args()) == built:
            log(f"evidence env is current (stamp {built[:12]}): skipping install ({venv})")
            return python
    pip_sources = pip_config_sources()
    sources = pip_sources + torch_source_args()
    stamp = compute_stamp(ctx, sources)
    beside = Path(sys.executable).parent / "uv"  # uv next to this interpreter (the tools venv), else on PATH
    uv = str(beside) if beside.is_file() else shutil.which("uv")
    uv = None if os.environ.get(INSTALLER_ENV, "").lower() == "pip" else uv
    log(f"evidence env {venv}: installing with {'uv' if uv else 'pip'} (stamp {stamp[:12]})")
    shutil.rmtree(venv, ignore_errors=True)
    for command in build_commands(venv, install_steps(ctx), sources, uv):
        done = subprocess.run(command, cwd=ctx.project, capture_output=True, text=True)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
            raise EnvBuildError(f"building the evidence venv failed at `{' '.join(command)}` "
                                f"(exit {done.returncode}):\n{tail}")
    (venv / "pip-sources.json").write_text(json.dumps(pip_sources), encoding="utf-8")
    stamp_file.write_text(stamp + "\n", encoding="utf-8")  # last: a failed build is retried
    return python
