"""Evidence sessions, generated from the evidence plan; the logic lives in `harness/` (tested there).

Each plan target is a session requiring the targets it comes `after`. The harness runs in its tools venv
(`harness/tools.py`), so nox's interpreter needs nothing but nox. A nox invocation selecting a target session
hands itself over to the driver (`python -m harness pipeline`): one hub, collated whatever nox's exit status.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))  # harness.plan and harness.tools are stdlib-only: safe in nox's interpreter

from harness import tools  # noqa: E402
from harness.plan import DEFAULT_PLAN, Target, load_plan  # noqa: E402

nox.needs_version = ">=2026.10"
nox.options.default_venv_backend = "none"
nox.options.sessions = ["tests"]  # a bare `nox` runs the test suite; `nox -l` lists the rest

PLAN = load_plan(ROOT / (os.environ.get("EVIDENCE_PLAN") or DEFAULT_PLAN))  # relative to the harness home
LISTING = {"-l", "--list", "--list-sessions", "--json", "--usage", "-h", "--help", "--version"}
CPU_ENV = {"CUDA_VISIBLE_DEVICES": "", "OMP_WAIT_POLICY": "PASSIVE"}  # GPU hidden; idle threads sleep

RUN_BY_NOX = __name__ == "user_nox_module"  # what nox names the noxfile it loads (not an import by a test)
if RUN_BY_NOX and "EVIDENCE_DRIVER" not in os.environ and not LISTING & {a.split("=")[0] for a in sys.argv[1:]}:
    tools_python = str(tools.ensure_tools(ROOT))
    os.execv(tools_python, [tools_python, "-m", "harness", "pipeline", "--nox", sys.executable, "--", *sys.argv[1:]])


def _harness(session: nox.Session, *args: str, silent: bool = False) -> str:
    # nox runs sessions in this file's folder, so `-m harness` finds the harness without PYTHONPATH
    # (which the targets inherit: the harness home must not land on their sys.path).
    return str(session.run(str(tools.ensure_tools(ROOT)), "-m", "harness", *args, external=True, silent=silent))


def _target_session(target: Target) -> None:
    def run(session: nox.Session) -> None:
        jobs = os.environ.get("NOX_PARALLEL") or str(os.cpu_count() if session.parallel else 1)
        _harness(session, "run-target", target.name, "--jobs", jobs)

    run.__doc__ = target.summary
    nox.session(name=target.session, tags=list(PLAN.tags), requires=[PLAN.target(a).session for a in target.after],
                allow_parallel=True, venv_backend="none")(run)


for _target in PLAN.targets:
    _target_session(_target)


@nox.session
def evidence_env(session: nox.Session) -> None:
    """Build (or reuse) the project's evidence venv; installs only when its recipe changed."""
    session.log(f"evidence python: {_harness(session, 'env', silent=True).strip().splitlines()[-1]}")


@nox.session
def collate(session: nox.Session) -> None:
    """(Re)collate a hub: `nox -s collate -- <hub> [--no-ledger]`."""
    if not session.posargs:
        session.error("pass a hub: nox -s collate -- <hub> [--no-ledger]")
    _harness(session, "collate", *session.posargs)


def _pytest(session: nox.Session, markers: str) -> None:
    """The project's tests selected by `markers`, in the evidence venv, on every core; posargs go to pytest."""
    python = _harness(session, "env", silent=True).strip().splitlines()[-1]
    session.run(python, "-m", "pytest", "-m", markers, "-n", "auto", *session.posargs, external=True,
                env={**CPU_ENV, "OMP_NUM_THREADS": "1"})


@nox.session
def tests(session: nox.Session) -> None:
    """The project's fast test suite (not slow, not e2e) in the evidence venv, on every core."""
    _pytest(session, "not slow and not e2e")


@nox.session
def e2e(session: nox.Session) -> None:
    """End-to-end tests on real engines (a Slurm cluster, fresh clones, git bisect): CI runs them after `tests`."""
    _pytest(session, "e2e")


@nox.session
def compare(session: nox.Session) -> None:
    """Compare two hubs: `nox -s compare -- <hub A> <hub B>`."""
    _harness(session, "compare", *session.posargs)


@nox.session
def quality(session: nox.Session) -> None:
    """Science benchmark (bench/quality.py) on CPU in the evidence venv; posargs go to it."""
    python = _harness(session, "env", silent=True).strip().splitlines()[-1]
    session.run(python, "bench/quality.py", *session.posargs, external=True, env=CPU_ENV)
