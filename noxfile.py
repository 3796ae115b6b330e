"""Evidence sessions, generated from the evidence plan; the logic lives in `harness/` (tested there).

`nox -l` lists them. Each plan target is a session (`nox -s cli_smoke_gs2`) that runs
`python -m harness run-target` from nox's own interpreter; the target itself runs in the
project's evidence venv (`python -m harness env` builds or reuses it). The sessions of one nox
invocation share one hub: this file sets EVIDENCE_INVOCATION once in nox's process, every
session inherits it, and `harness.hub.invocation_hub` keeps a pointer file per invocation
(docs/architecture.md, "One hub per nox invocation"). Each target session collates the hub
(ledger untouched), so the hub is complete after every session. `make phase-c4d-b3` does not go
through nox: `harness pipeline` runs the targets itself, in parallel where the plan allows.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))  # nox's interpreter imports the stdlib-only harness

import nox  # noqa: E402

from harness.context import PLAN_ENV, resolve_plan  # noqa: E402
from harness.hub import INVOCATION_ENV  # noqa: E402
from harness.plan import load_plan  # noqa: E402

nox.needs_version = ">=2026.10"
nox.options.default_venv_backend = "none"
nox.options.sessions = ["tests"]  # a bare `nox` runs the test suite; `nox -l` lists the rest

PLAN = load_plan(resolve_plan(os.environ.get(PLAN_ENV)))
os.environ.setdefault(INVOCATION_ENV, uuid.uuid4().hex)  # one id per nox invocation, inherited by its sessions
HARNESS = [sys.executable, "-m", "harness"]
HARNESS_ENV = {"PYTHONPATH": str(ROOT)}
CPU_ENV = {"CUDA_VISIBLE_DEVICES": "", "OMP_WAIT_POLICY": "PASSIVE"}  # GPU hidden; idle threads sleep


def _evidence_python(session: nox.Session) -> str:
    """The project's evidence venv interpreter (built or reused by `python -m harness env`)."""
    out = session.run(*HARNESS, "env", external=True, silent=True, env=HARNESS_ENV)
    return str(out).strip().splitlines()[-1]


@nox.session
def evidence_env(session: nox.Session) -> None:
    """Build (or reuse) the project's evidence venv; installs only when its recipe changed."""
    session.log(f"evidence python: {_evidence_python(session)}")


def _target_session(name: str, summary: str) -> None:
    def run(session: nox.Session) -> None:
        session.run(*HARNESS, "run-target", "--target", name, "--collate", *session.posargs, external=True,
                    env=HARNESS_ENV)

    run.__doc__ = summary
    nox.session(name=PLAN.target(name).session, tags=list(PLAN.tags), allow_parallel=False, venv_backend="none")(run)


for _target in PLAN.targets:
    _target_session(_target.name, _target.summary)


@nox.session(tags=list(PLAN.tags), allow_parallel=False)
def collate(session: nox.Session) -> None:
    """Collate this invocation's hub (ledger untouched), or `-- <hub> [--no-ledger]`."""
    args = list(session.posargs)
    if not args:
        from harness.hub import known_invocation_hub

        hub = known_invocation_hub(ROOT, os.environ[INVOCATION_ENV])
        if hub is None:
            session.error("no target ran in this nox invocation; pass a hub: nox -s collate -- <hub>")
        args = [str(hub), "--no-ledger"]
    session.run(*HARNESS, "collate", *args, external=True, env=HARNESS_ENV)


@nox.session
def tests(session: nox.Session) -> None:
    """The project's own test suite (not slow) in the evidence venv, on every core; posargs go to pytest."""
    session.run(_evidence_python(session), "-m", "pytest", "-m", "not slow", "-n", "auto", *session.posargs,
                external=True, env={**CPU_ENV, "OMP_NUM_THREADS": "1"})


@nox.session
def compare(session: nox.Session) -> None:
    """Compare two hubs: `nox -s compare -- <hub A> <hub B>`."""
    session.run(*HARNESS, "compare", *session.posargs, external=True, env=HARNESS_ENV)


@nox.session
def quality(session: nox.Session) -> None:
    """Science benchmark (bench/quality.py) on CPU in the evidence venv; posargs go to it."""
    session.run(_evidence_python(session), "bench/quality.py", *session.posargs, external=True, env=CPU_ENV)
