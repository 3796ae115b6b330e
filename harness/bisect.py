"""Name the first commit whose evidence verdict changed between two endpoints (commits or hubs; `make bisect`).

`git bisect run` searches in a worktree of its own; each step (harness/bisectrun.py) runs the targets into a hub of one
`bisect-<timestamp>` folder. What changed is read from verdict records, never log bytes. docs/reproduce.md, "Bisect"."""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

from filelock import FileLock, Timeout

from harness.bisectrun import (NO_HOOKS, STOP_GRACE_S, TERMS, BisectError, Commit, Step, StepError, deferred_signals,
                               finish, git, run_git, step_lock, take, untestable)
from harness.context import HOME, project_identity, same_project
from harness.fsio import atomic_write_json, atomic_write_text
from harness.hub import load_verdicts, new_timestamp
from harness.hubread import read_hub
from harness.hubview import HubUnreadable
from harness.plan import EvidencePlan, load_plan
from harness.reporting import fmt_duration, md_table
from harness.schema import ProjectId, VerdictRecord

SPEC = "bisect-spec.json"  # what every step needs to know, written before `git bisect run`
ROLES = ("older endpoint", "newer endpoint")


@dataclass(frozen=True)
class Endpoint:
    label: str  # GOOD or BAD, as the user named it
    sha: str
    hub: Path | None = None
    verdicts: dict[str, str] | None = None  # a hub's, by target


def resolve(repo: Path, label: str, given: str, plan: EvidencePlan, project: ProjectId) -> Endpoint:
    """A commit, or a hub of this project and plan made on a clean tree (standing for its commit)."""
    path = Path(given).expanduser()
    if not path.is_dir():
        sha = run_git(repo, "rev-parse", "--verify", "--quiet", f"{given}^{{commit}}").stdout.strip()
        if not sha:
            raise BisectError(f"{label} {given!r} is neither a hub folder nor a commit of {repo}")
        return Endpoint(label, sha)
    try:
        view = read_hub(path, plan)
    except HubUnreadable as exc:
        raise BisectError(f"{label} {path}: not a readable hub ({exc.problems[0]})") from None
    run, where = view.run, f"{label} hub {view.path}"
    if view.handmade or run is None or not run.project_commit:
        raise BisectError(f"{where} records no commit; pass the commit it was made at instead")
    if not same_project(run.project_id, project):  # the identity run.json records; paths are only information
        raise BisectError(f"{where} belongs to another project ({run.project_id.describe()}) than {repo} "
                          f"({project.describe()})")
    if run.plan.id != plan.id:
        raise BisectError(f"{where} was made with plan {run.plan.id!r}, not {plan.id!r} ({plan.path}); pass that plan")
    if run.git.dirty or any(r.provenance.git.dirty for r in view.verdicts.values()):
        raise BisectError(f"{where} was made on a dirty tree ({', '.join(run.git.dirty_files) or 'files changed'}), "
                          f"so it stands for no commit; pass its commit {run.project_commit[:12]} to rerun it")
    if run_git(repo, "cat-file", "-e", f"{run.project_commit}^{{commit}}").returncode:
        raise BisectError(f"{where} records commit {run.project_commit[:12]}, which is not in {repo}; fetch it first")
    return Endpoint(label, run.project_commit, view.path, {n: str(r.verdict) for n, r in view.verdicts.items()})


def in_order(repo: Path, good: Endpoint, bad: Endpoint) -> tuple[Endpoint, Endpoint]:
    """(older, newer); refused unless one is a strict ancestor of the other."""
    if good.sha == bad.sha:
        raise BisectError(f"GOOD and BAD are both commit {good.sha[:12]}: nothing to bisect")
    for older, newer in ((good, bad), (bad, good)):
        if not run_git(repo, "merge-base", "--is-ancestor", older.sha, newer.sha).returncode:
            return older, newer
    raise BisectError(f"GOOD {good.sha[:12]} and BAD {bad.sha[:12]} are not in one line of history "
                      "(neither is an ancestor of the other); pick endpoints on one branch")


def bisect_folder(checkout: Path, plan: EvidencePlan) -> Path:
    """A new `bisect-<timestamp>` folder where the plan keeps its hubs (its hub template before `{timestamp}`)."""
    parts = Path(plan.hub_template).parts
    base = checkout.joinpath(*parts[: next(i for i, p in enumerate(parts) if "{timestamp}" in p)])
    stamp = new_timestamp()
    for n in range(1, 100):
        with suppress(FileExistsError):
            (folder := base / (f"bisect-{stamp}" + (f"-{n}" if n > 1 else ""))).mkdir(parents=True)
            return folder
    raise BisectError(f"99 bisect folders exist for {stamp} under {base}; retry in a second")


@contextmanager
def worktree(repo: Path, sha: str) -> Iterator[Path]:
    """A detached worktree of `repo` at `sha`, removed at the end; one bisect per checkout.

    In a private temp folder outside any project (pytest would read a folder above's configuration), at a path
    fixed per checkout: every step, and the next bisect, reuse one evidence venv (keyed by the project folder).
    """
    base = Path(tempfile.gettempdir()) / f"harness-bisect-{os.getuid()}"
    base.mkdir(mode=0o700, exist_ok=True)
    if base.is_symlink() or base.stat().st_uid != os.getuid():
        raise BisectError(f"{base} belongs to another user; remove it or set TMPDIR to a folder of yours")
    key = f"{repo.name}-{hashlib.sha256(str(repo).encode()).hexdigest()[:12]}"
    lock, path = FileLock(str(base / f"{key}.lock")), base / key
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise BisectError(f"another bisect of {repo} is running (it holds {lock.lock_file}); wait for it") from None
    try:
        _remove(repo, path)  # left behind by a bisect that was killed outright
        git(repo, "worktree", "add", "--force", "--detach", "--quiet", str(path), sha)
        yield path
    finally:
        with deferred_signals():
            if path.is_dir():
                run_git(path, "bisect", "reset")
            _remove(repo, path)
            Path(step_lock(path)).unlink(missing_ok=True)
            lock.release()


def _remove(repo: Path, path: Path) -> None:
    run_git(repo, "worktree", "remove", "--force", "--force", str(path))
    shutil.rmtree(path, ignore_errors=True)


def run_git_bisect(wt: Path, spec: Path, home: Path) -> None:
    """`git bisect run` the step entry in `wt` (git ignores SIGINT), then wait for its lock (git may end first)."""
    argv = ["git", *NO_HOOKS, "-C", str(wt), "bisect", "run", sys.executable, "-m", "harness.bisectrun", str(spec)]
    proc = subprocess.Popen(argv, env=dict(os.environ, PYTHONPATH=str(home), PYTHONSAFEPATH="1"), stdout=2,
                            start_new_session=True,
                            preexec_fn=functools.partial(signal.signal, signal.SIGINT, signal.SIG_IGN))
    try:
        finish(proc, proc.wait, grace=2 * STOP_GRACE_S)
    finally:
        with deferred_signals(), suppress(Timeout), FileLock(step_lock(wt), timeout=STOP_GRACE_S):
            pass


def answer(wt: Path) -> list[str]:
    """What git's bisect refs say: [the first changed commit], or the candidates skips left (oldest first)."""
    refs = [line.split() for line in git(wt, "for-each-ref", "--format=%(objectname) %(refname:lstrip=2)",
                                         "refs/bisect").splitlines()]
    new = next(sha for sha, name in refs if name == TERMS[1])
    left = git(wt, "rev-list", new, "--not", *(sha for sha, name in refs if name.startswith(f"{TERMS[0]}-"))).split()
    skipped = {sha for sha, name in refs if name.startswith("skip-")}
    if any(sha != new and sha not in skipped for sha in left):
        raise BisectError(f"git bisect run stopped with {len(left)} commits untested (see its messages above)")
    return left[::-1]


def differing(chosen: list[str], older: Step, newer: Step) -> list[str]:
    """The chosen targets whose verdicts differ between the endpoints; refused when there is none."""
    old, new = older.verdicts, newer.verdicts
    names = [n for n in chosen if n in old and n in new and old[n] != new[n]]
    if not names:
        raise BisectError(f"nothing to bisect: the endpoints agree on every target ({older.summary} at "
                          f"{older.commit.sha[:12]}, {newer.summary} at {newer.commit.sha[:12]})")
    return names


def hub_step(end: Endpoint, role: str, repo: Path, chosen: list[str]) -> Step | None:
    """A hub endpoint as a step (read, not run); None for a commit endpoint."""
    if end.verdicts is None:
        return None
    verdicts = {n: end.verdicts[n] for n in chosen if n in end.verdicts}
    return Step(None, Commit.of(repo, end.sha), role, verdicts, "", None, str(end.hub))


def run_endpoint(end: Endpoint, role: str, folder: Path, project: Path, plan: Path, chosen: list[str],
                 home: Path) -> Step:
    """A commit endpoint, run as a step: its verdicts come from running it."""
    git(project, "checkout", "--detach", "--quiet", end.sha)
    print(f"bisect: running the {role} {end.sha[:12]}", file=sys.stderr, flush=True)
    try:
        return take(folder, project, plan, chosen, role, None, home)
    except StepError as exc:
        raise BisectError(f"the {role} {end.sha[:12]} cannot be run: {exc}") from None


@dataclass(frozen=True)
class BisectResult:
    """The answer: the first commit whose verdicts changed (or the candidates git could not tell apart)."""
    folder: Path
    targets: tuple[str, ...]  # the targets whose verdicts differ between the endpoints
    first: Commit | None  # None: skipped commits leave several `candidates`
    candidates: tuple[Commit, ...]  # oldest first; (first,) when git could tell
    steps: tuple[Step, ...]  # endpoints and every commit tried, in order
    changed: Step  # the step of the newest candidate (its verdicts changed)
    against: Step  # the nearest step before it whose verdicts had not
    changes: tuple[str, ...]  # fact lines that differ between the two (- against, + changed)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": "evidence-bisect/1", **asdict(self), "folder": str(self.folder)}


def facts(records: dict[str, VerdictRecord], targets: tuple[str, ...]) -> list[str]:
    """What a step's verdict records say, one line per target and per test: what a change is read from."""
    lines = []
    for name in targets:
        rec = records.get(name)
        tests = [f"{name}: {t['nodeid']} {t['outcome']}" for t in rec.tests] if rec else []
        lines += [f"{name}: {rec.verdict} - {rec.reason}", *tests] if rec else [f"{name}: no verdict record"]
    return lines


def summarise(folder: Path, repo: Path, live: tuple[str, ...], found: list[str], ends: list[Step]) -> BisectResult:
    """The result: every step in order, the answer, and what changed against the nearest unchanged step."""
    steps = [s for s in ends if s.n is None] + sorted((Step.load(p) for p in folder.glob("step-*.json")),
                                                      key=lambda s: s.n or 0)
    changed = [s for s in steps if s.commit.sha == found[-1]][-1]
    olds = [s for s in steps if s.answer == TERMS[0] or s.role == ROLES[0]]
    against = min(olds, key=lambda s: int(git(repo, "rev-list", "--count", f"{s.commit.sha}..{changed.commit.sha}")))
    commits = tuple(Commit.of(repo, sha) for sha in found)
    before, after = (facts(load_verdicts(folder / s.hub)[0], live) for s in (against, changed))
    changes = [f"- {line}" for line in before if line not in after] + [f"+ {x}" for x in after if x not in before]
    return BisectResult(folder, live, commits[0] if len(commits) == 1 else None, commits, tuple(steps), changed,
                        against, tuple(changes))


def render(result: BisectResult) -> str:
    """bisect.md (and what the command prints): the answer, every commit tried, then what changed."""
    r, label = result, (lambda s: f"step {s.n}" if s.n else s.role)
    first = f"{r.first.sha} {r.first.subject!r} by {r.first.author}" if r.first else \
        f"one of {len(r.candidates)} (git could not test the skipped ones): " + \
        ", ".join(f"{c.sha[:12]} {c.subject!r}" for c in r.candidates)
    rows = [[s.n or "hub", s.commit.sha[:12], s.commit.subject, s.summary, (s.answer or s.role) + (
        f": {s.note}" if s.note else ""), fmt_duration(s.seconds), s.hub] for s in r.steps]
    return "\n".join([
        f"# bisect: {', '.join(r.targets)}", "", f"first commit whose verdict changed: {first}", "",
        md_table(rows, ["step", "commit", "subject", "verdicts", "git was told", "duration", "hub"]), "",
        f"## What changed at {r.changed.commit.sha[:12]} ({label(r.changed)}) against "
        f"{r.against.commit.sha[:12]} ({label(r.against)})", "", "```", *r.changes, "```", "",
        f"bisect folder: {r.folder}", ""])


def bisect(checkout: Path, good: str, bad: str, *, plan: Path, targets: list[str] | None,
           home: Path = HOME) -> BisectResult:
    """The first commit between GOOD and BAD (either one the older) whose verdicts changed; writes bisect.md/.json."""
    checkout = Path(checkout).expanduser().resolve()
    top = run_git(checkout, "rev-parse", "--show-toplevel")
    if top.returncode:
        raise BisectError(f"{checkout} is not a git checkout; bisect needs its history")
    repo, prefix = Path(top.stdout.strip()), git(checkout, "rev-parse", "--show-prefix")
    try:
        evidence = load_plan(Path(plan).expanduser().resolve())
    except (OSError, ValueError) as exc:
        raise BisectError(f"--plan: {exc}") from None
    names = [t.name for t in evidence.targets]
    if unknown := [t for t in targets or () if t not in names]:
        raise BisectError(f"{evidence.path}: no target {unknown[0]!r}; targets are {names}")
    mine = project_identity(repo)
    older, newer = in_order(repo, *(resolve(repo, label, given, evidence, mine)
                                    for label, given in (("GOOD", good), ("BAD", bad))))
    chosen = list(targets or names)
    hubs = [hub_step(end, role, repo, chosen) for end, role in zip((older, newer), ROLES)]
    if None not in hubs:  # two hubs: refuse before making anything
        differing(chosen, *hubs)
    with worktree(repo, older.sha) as wt:
        folder, project = bisect_folder(checkout, evidence), wt / prefix
        ends = [step or run_endpoint(end, role, folder, project, evidence.path, chosen, home)
                for step, end, role in zip(hubs, (older, newer), ROLES)]
        live = differing(chosen, *ends)
        for step in ends:
            if stuck := untestable({n: step.verdicts[n] for n in live}, load_verdicts(folder / step.hub)[0]):
                raise BisectError(f"the {step.role} {step.commit.sha[:12]} cannot be tested: {stuck[0]}")
        atomic_write_json(folder / SPEC, {"project": str(project), "plan": str(evidence.path), "targets": live,
                                          "older": {n: ends[0].verdicts[n] for n in live}, "home": str(home),
                                          "lock": step_lock(wt)})
        git(wt, "bisect", "start", f"--term-old={TERMS[0]}", f"--term-new={TERMS[1]}", newer.sha, older.sha)
        if git(wt, "rev-list", "--count", f"{older.sha}..{newer.sha}") != "1":  # else git knows without a step
            run_git_bisect(wt, folder / SPEC, home)
        found = answer(wt)
        atomic_write_text(folder / "git-bisect.log", git(wt, "bisect", "log") + "\n")
    result = summarise(folder, repo, tuple(live), found, ends)
    atomic_write_text(folder / "bisect.md", render(result))
    atomic_write_json(folder / "bisect.json", result.to_dict())
    return result
