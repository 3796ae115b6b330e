"""Evidence sessions, generated from the evidence plan; logic lives in `harness/` (tested there).

`nox -l` lists them. One shared venv (`evidence_env`, built from constraints.txt, reinstalled only
when its stamp changes) serves every session, so a cold run pays for torch once. Each plan target
becomes a session that runs `python -m harness run-target` in that venv; all targets of one nox
invocation share one hub (EVIDENCE_HUB, or one created on first use). See docs/environments.md.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))  # nox's interpreter imports the stdlib-only harness.plan/envstamp/hub

import nox  # noqa: E402

from harness import envstamp  # noqa: E402
from harness.hub import create_hub, relative_to_root  # noqa: E402
from harness.plan import DEFAULT_PLAN, Target, load_plan  # noqa: E402

nox.needs_version = ">=2026.10"
nox.options.default_venv_backend = "virtualenv"
nox.options.sessions = ["tests"]  # a bare `nox` runs the test suite; `nox -l` lists the rest

PLAN_PATH = Path(os.environ.get("EVIDENCE_PLAN") or ROOT / DEFAULT_PLAN)
PLAN = load_plan(PLAN_PATH if PLAN_PATH.is_absolute() else ROOT / PLAN_PATH)
_STATE: dict[str, str] = {}  # evidence venv python + this invocation's hub
# GPU hidden; idle OpenMP threads sleep (spinning made torch 15-90x slower on a shared 2-core box).
CPU_ENV = {"CUDA_VISIBLE_DEVICES": "", "OMP_WAIT_POLICY": "PASSIVE"}


@nox.session(python=None, venv_backend="virtualenv", reuse_venv=True)
def evidence_env(session: nox.Session) -> None:
    """Build (or reuse) the shared evidence venv from constraints.txt; installs only when stale."""
    venv = Path(session.virtualenv.location)
    stamp = envstamp.compute_stamp(ROOT)
    if envstamp.is_current(venv, stamp):
        session.log(f"evidence env is current (stamp {stamp[:12]}): skipping install")
    else:
        session.log(f"evidence env stamp {stamp[:12]} differs from {str(envstamp.read_stamp(venv))[:12]}: installing")
        session.install(*envstamp.install_args())
        envstamp.write_stamp(venv, stamp)
    _STATE["python"] = str(Path(session.virtualenv.bin) / "python")


def _python(session: nox.Session) -> str:
    if "python" not in _STATE:
        session.error("the evidence venv is unknown: run this session through nox (it requires evidence_env)")
    return _STATE["python"]


def _hub() -> str:
    """EVIDENCE_HUB (made by `harness pipeline`), else one hub made on first use and shared."""
    if os.environ.get("EVIDENCE_HUB"):
        return os.environ["EVIDENCE_HUB"]
    if "hub" not in _STATE:
        hub = create_hub(PLAN, ROOT)
        _STATE["hub"] = relative_to_root(hub.path, ROOT)
    return _STATE["hub"]


def _target_session(target: Target) -> None:
    def run(session: nox.Session) -> None:
        session.run(_python(session), "-m", "harness", "run-target", "--plan", str(PLAN.path),
                    "--target", target.name, "--hub", _hub(), "--project-root", str(ROOT), external=True)

    run.__doc__ = target.summary
    run.__name__ = target.session
    nox.session(name=target.session, tags=list(PLAN.tags), requires=["evidence_env"], venv_backend="none")(run)


for _target in PLAN.targets:
    _target_session(_target)


@nox.session(tags=list(PLAN.tags), requires=["evidence_env"], venv_backend="none")
def collate(session: nox.Session) -> None:
    """Summarise the hub (summary.md, manifest.json, ledger); `-- <hub>` when run on its own."""
    hub = os.environ.get("EVIDENCE_HUB") or _STATE.get("hub")
    ledger = []
    if not os.environ.get("EVIDENCE_HUB") and "--no-ledger" not in session.posargs:
        # Only `harness pipeline` (make phase-c4d-b3) runs the whole plan; a hand-picked set of
        # sessions must not mark the plan row or append an attempt.
        session.log("hub not made by `harness pipeline`: collating with --no-ledger")
        ledger = ["--no-ledger"]
    session.run(_python(session), "-m", "harness", "collate", *([hub] if hub else []), *ledger,
                *session.posargs, external=True)


@nox.session(requires=["evidence_env"], venv_backend="none")
def tests(session: nox.Session) -> None:
    """The project's own test suite (not slow) in the evidence venv; posargs go to pytest."""
    # no path given: pytest uses pyproject's testpaths (tests/); `-- tests/harness` narrows it
    session.run(_python(session), "-m", "pytest", "-m", "not slow", *session.posargs,
                external=True, env=CPU_ENV)


@nox.session(requires=["evidence_env"], venv_backend="none")
def compare(session: nox.Session) -> None:
    """Compare two hubs: `nox -s compare -- <hub A> <hub B>`."""
    session.run(_python(session), "-m", "harness", "compare", *session.posargs, external=True)


@nox.session(requires=["evidence_env"], venv_backend="none")
def quality(session: nox.Session) -> None:
    """Science benchmark (bench/quality.py) on CPU in the evidence venv; posargs go to it."""
    session.run(_python(session), "bench/quality.py", *session.posargs, external=True,
                env=CPU_ENV)
