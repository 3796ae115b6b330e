"""The result of a bisect (harness/bisect.py): the answer, the commits tried, what changed; bisect.md.

What changed is read from the verdict records of two steps (each target's verdict and reason,
each test's id and outcome: the failing test and its error line), never from log bytes, which
differ between any two honest runs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.bisectrun import TERMS, Commit, Step, git
from harness.reporting import fmt_duration, md_table
from harness.hub import load_verdicts
from harness.schema import VerdictRecord

ROLES = ("older endpoint", "newer endpoint")


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


def changed_lines(before: list[str], after: list[str]) -> list[str]:
    return [f"- {line}" for line in before if line not in after] + [f"+ {line}" for line in after if line not in before]


def records(folder: Path, step: Step) -> dict[str, VerdictRecord]:
    return load_verdicts(folder / step.hub)[0]


def summarise(folder: Path, repo: Path, live: tuple[str, ...], found: list[str], ends: list[Step]) -> BisectResult:
    """The result: every step in order, the answer, and what changed against the nearest unchanged step."""
    steps = [s for s in ends if s.n is None] + sorted((Step.load(p) for p in folder.glob("step-*.json")),
                                                      key=lambda s: s.n or 0)
    changed = [s for s in steps if s.commit.sha == found[-1]][-1]
    olds = [s for s in steps if s.answer == TERMS[0] or s.role == ROLES[0]]
    against = min(olds, key=lambda s: int(git(repo, "rev-list", "--count", f"{s.commit.sha}..{changed.commit.sha}")))
    commits = tuple(Commit.of(repo, sha) for sha in found)
    return BisectResult(folder, live, commits[0] if len(commits) == 1 else None, commits, tuple(steps), changed,
                        against, tuple(changed_lines(facts(records(folder, against), live),
                                                     facts(records(folder, changed), live))))


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
