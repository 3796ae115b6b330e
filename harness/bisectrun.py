"""One step of a bisect (harness/bisect.py): `python -m harness.bisectrun SPEC`, which `git bisect run` calls, runs the
targets into the next `step-<n>-<sha12>` hub and exits 0 unchanged, 1 changed, 125 cannot test; 130/143 (interrupt)
and 255 (harness error) stop the bisect (git aborts at 128 or more)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import traceback
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from filelock import FileLock

from harness import UserError
from harness.context import HOME
from harness.fsio import atomic_write_json
from harness.hub import load_verdicts
from harness.schema import VerdictRecord

TERMS = ("unchanged", "changed")  # git's old / new terms: the older endpoint's verdicts, or not
CANNOT_TEST = frozenset({"BLOCKED", "NOT RUN", "MISSING", "INCOMPLETE", "INTERRUPTED"})
PYTEST_DID_NOT_RUN = (2, 3, 4)  # interrupted, internal error, usage error: with no outcome record
SKIP, STOP_GRACE_S = 125, 60.0
NO_HOOKS = ("-c", "core.hooksPath=/dev/null")  # the user's hooks never run for the bisect's checkouts
T = TypeVar("T")


class BisectError(UserError, ValueError):
    """The bisect cannot start or finish; the one-line message says why and what to do."""


class StepError(RuntimeError):
    """The run command left no result for a step (e.g. the venv could not be built at that commit)."""


def run_git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *NO_HOOKS, "-C", str(repo), *args], capture_output=True, text=True)


def git(repo: Path, *args: str) -> str:
    """git's output; BisectError with its last error line when it fails."""
    done = run_git(repo, *args)
    if done.returncode:
        raise BisectError(f"git {' '.join(args)} failed in {repo}: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return done.stdout.strip()


@dataclass(frozen=True)
class Commit:
    sha: str
    subject: str
    author: str

    @classmethod
    def of(cls, repo: Path, rev: str) -> Commit:
        return cls(*git(repo, "log", "-1", "--format=%H%x00%s%x00%an <%ae>", rev).split("\0"))


@dataclass(frozen=True)
class Step:
    """One commit judged: its verdicts, what git was told, how long the run took, and its hub."""
    n: int | None  # None: an endpoint hub, read and not run
    commit: Commit
    role: str  # older endpoint | newer endpoint | step
    verdicts: dict[str, str]
    answer: str  # unchanged | changed | skip; "" for an endpoint
    seconds: float | None
    hub: str  # relative to the bisect folder; absolute for an endpoint hub
    note: str = ""

    @classmethod
    def load(cls, path: Path) -> Step:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(**{**data, "commit": Commit(**data["commit"])})

    @property
    def summary(self) -> str:
        return ", ".join(f"{name} {verdict}" for name, verdict in self.verdicts.items()) or "no verdicts"


def untestable(verdicts: dict[str, str], records: dict[str, VerdictRecord]) -> list[str]:
    """Targets whose verdict says nothing about the code: nothing ran, or pytest could not start."""
    def stuck(name: str) -> bool:
        rec = records.get(name)
        return verdicts[name] in CANNOT_TEST or (rec is not None and rec.kind == "pytest" and rec.counts is None
                                                 and rec.exit_code in PYTEST_DID_NOT_RUN)
    return [f"{n} {verdicts[n]}" + (f" ({records[n].reason})" if n in records else "") for n in verdicts if stuck(n)]


def step_exit(verdicts: dict[str, str], records: dict[str, VerdictRecord], older: dict[str, str]) -> int:
    """git's exit code: 125 cannot test, 0 every verdict is the older endpoint's, else 1 (whatever they became)."""
    if untestable(verdicts, records):
        return SKIP
    return 0 if all(verdicts.get(name) == verdict for name, verdict in older.items()) else 1


@contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold Ctrl-C / SIGTERM while cleaning up (they are delivered at the end of the block)."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def finish(proc: subprocess.Popen, wait: Callable[[], T], grace: float = STOP_GRACE_S) -> T:
    """`wait()` for a child in its own session; on Ctrl-C pass one SIGINT to its group, let it stop, re-raise."""
    try:
        return wait()
    except KeyboardInterrupt:
        with deferred_signals():
            for sig in (signal.SIGINT, signal.SIGKILL):
                with suppress(ProcessLookupError, subprocess.TimeoutExpired):
                    os.killpg(proc.pid, sig)
                    proc.wait(timeout=grace)
                    break
        raise


def run_step(worktree: Path, plan: Path, targets: list[str], hub: Path, *, home: Path = HOME) -> dict[str, Any]:
    """Run `targets` on the worktree's commit into the new `hub`: the run command's JSON object, or StepError."""
    argv = [sys.executable, "-m", "harness", "pipeline", "--project", str(worktree), "--plan", str(plan),
            "--targets", *targets, "--no-dependencies", "--hub", str(hub), "--no-ledger", "--format", "json"]
    env = {k: v for k, v in os.environ.items() if k != "GIT_CONFIG_PARAMETERS"}  # NO_HOOKS is for git alone
    proc = subprocess.Popen(argv, env=env | {"PYTHONPATH": str(home), "PYTHONSAFEPATH": "1"},  # no worktree shadowing
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    out, payload = finish(proc, lambda: proc.communicate()[0]), None
    with suppress(ValueError):
        payload = json.loads(out)
    if not isinstance(payload, dict) or not isinstance(payload.get("targets"), list):
        raise StepError(f"the run command exited {proc.returncode} without a result (its messages are above)")
    return payload


def take(folder: Path, project: Path, plan: Path, targets: list[str], role: str, older: dict[str, str] | None,
         home: Path = HOME) -> Step:
    """Run and record the next step; answered for git with `older` (then a step that cannot run is skipped)."""
    commit, note = Commit.of(project, "HEAD"), ""
    n = len(list(folder.glob("step-*.json"))) + 1
    name, t0 = f"step-{n}-{commit.sha[:12]}", time.monotonic()
    try:
        payload = run_step(project, plan, targets, folder / name, home=home)
    except StepError as exc:
        if older is None:
            raise
        payload, note = {"targets": []}, f"cannot test: {exc}"
    if payload.get("interrupted"):
        raise KeyboardInterrupt
    found = {t["name"]: t["verdict"] for t in payload["targets"]}
    verdicts = {t: found.get(t, "MISSING") for t in targets}
    records = load_verdicts(folder / name)[0]
    code = None if older is None else SKIP if note else step_exit(verdicts, records, older)
    step = Step(n, commit, role, verdicts, {None: "", 0: TERMS[0], 1: TERMS[1], SKIP: "skip"}[code],
                round(time.monotonic() - t0, 1), name, note or "; ".join(untestable(verdicts, records)))
    atomic_write_json(folder / f"{name}.json", asdict(step))
    return step


def step_lock(worktree: Path) -> str:
    """Held by a running step: the bisect waits for it before removing the worktree."""
    return str(worktree.with_name(f"{worktree.name}.step.lock"))


class _Terminated(KeyboardInterrupt):
    """SIGTERM, stopped like Ctrl-C (exit 143 instead of 130)."""


def _terminate(signum: int, frame: object) -> None:
    raise _Terminated


if __name__ == "__main__":  # one `git bisect run` step, as the bisect's spec file describes it
    signal.signal(signal.SIGINT, signal.default_int_handler)  # git starts us with Ctrl-C ignored (it must wait)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        spec = Path(sys.argv[1])
        data = json.loads(spec.read_text(encoding="utf-8"))
        with FileLock(data["lock"]):
            step = take(spec.parent, Path(data["project"]), Path(data["plan"]), data["targets"], "step",
                        data["older"], Path(data["home"]))
        print(f"bisect: step {step.n} {step.commit.sha[:12]} {step.summary} -> {step.answer}", file=sys.stderr,
              flush=True)
        sys.exit({TERMS[0]: 0, TERMS[1]: 1}.get(step.answer, SKIP))
    except KeyboardInterrupt as exc:
        sys.exit(143 if isinstance(exc, _Terminated) else 130)
    except Exception:  # a harness bug must stop the bisect, never mark a commit
        traceback.print_exc()
        sys.exit(255)
