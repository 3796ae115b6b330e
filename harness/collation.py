"""Decide a hub's verdicts from what it holds, writing nothing: what `collate` then reports.

Every plan target gets a verdict: its record's, or MISSING (no record, or no finished log),
INTERRUPTED (its log is still `<log>.partial`), RED (a record that contradicts itself). The
evidence-only guard then looks for production files (the plan's `[project] production`) that
differ from HEAD at the run's start, at each target's start, now, or in commits made during
the run; a checkout git cannot read is never GREEN. The hub is GREEN only when every target is
GREEN and the guard holds; INCOMPLETE when a target was interrupted; RED otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.context import RunContext
from harness.hub import Hub, utc_now_iso
from harness.plan import Target
from harness.provenance import committed_changes, git_state
from harness.schema import Counts, RunRecord, Verdict, VerdictRecord, load_verdicts


@dataclass(frozen=True)
class TargetResult:
    """One plan target as collate sees it: its record (if any) and the verdict collate assigns."""

    target: Target
    verdict: Verdict
    reason: str
    record: VerdictRecord | None = None
    log_present: bool = False

    @property
    def name(self) -> str:
        return self.target.name

    @property
    def kind(self) -> str:
        return self.target.kind

    @property
    def log(self) -> str:
        return self.target.log

    @property
    def duration_s(self) -> float | None:
        return None if self.record is None else self.record.duration_s

    @property
    def counts(self) -> Counts | None:
        return None if self.record is None else self.record.counts

    @property
    def train_record(self) -> dict[str, Any]:
        """The command's TRAIN_RECORD ({} when it printed none)."""
        return (self.record.record if self.record else None) or {}


@dataclass(frozen=True)
class Collation:
    """Everything collate decided about a hub; summary, manifest, risks and ledger read this."""

    ctx: RunContext
    hub: Hub
    targets: tuple[TargetResult, ...]
    overall: Verdict
    overall_reason: str
    collated_utc: str
    record_errors: tuple[str, ...] = ()
    extra_records: tuple[str, ...] = ()
    production_changes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    partial_run: bool = False
    validation_problems: tuple[str, ...] = ()

    @property
    def green(self) -> bool:
        return self.overall == Verdict.GREEN

    @property
    def interrupted(self) -> bool:
        return self.overall == Verdict.INCOMPLETE

    @property
    def hub_rel(self) -> str:
        return self.ctx.rel(self.hub.path)

    @property
    def plan_changed(self) -> bool:
        return bool(self.hub.run.plan.sha256) and self.hub.run.plan.sha256 != self.ctx.plan.sha256

    @property
    def n_green(self) -> int:
        return sum(t.verdict == Verdict.GREEN for t in self.targets)


def changed_files(changes: dict[str, tuple[str, ...]]) -> list[str]:
    """Every production file the guard caught, at any checkpoint."""
    return sorted({f for files in changes.values() for f in files})


def _contradiction(rec: VerdictRecord) -> str | None:
    """Why a GREEN record cannot be believed (its own fields disagree), else None."""
    if rec.verdict != Verdict.GREEN:
        return None
    c = rec.counts
    if rec.kind == "pytest" and (c is None or c.tests < 1 or c.passed != c.tests):
        return f"record says GREEN but counts are {c.passed if c else 0}/{c.tests if c else 0} passed"
    if rec.exit_code not in (0, None) or rec.timed_out:
        return f"record says GREEN but exit code is {rec.exit_code}, timed_out={rec.timed_out}"
    return None


def assess_target(target: Target, rec: VerdictRecord | None, hub: Path, selected: bool = True) -> TargetResult:
    """The verdict collate assigns to one plan target (see the module docstring)."""
    log_present = (hub / target.log).is_file()

    def result(verdict: Verdict, reason: str) -> TargetResult:
        return TargetResult(target, verdict, reason, rec, log_present)

    if not log_present and (hub / f"{target.log}.partial").is_file():
        return result(Verdict.INTERRUPTED, f"log is still {target.log}.partial: the target was interrupted")
    if rec is None:
        if not selected:
            return result(Verdict.MISSING, "not selected in this run")
        return result(Verdict.MISSING, "no verdict record" + ("" if log_present else " and no log")
                      + f" ({target.name} did not run or did not finish)")
    if not log_present:
        return result(Verdict.MISSING, f"verdict record present but log {target.log} is missing")
    if rec.log != target.log:
        return result(Verdict.RED, f"record names log {rec.log!r}, the plan {target.log!r}")
    return result(Verdict.RED, _contradiction(rec)) if _contradiction(rec) else result(rec.verdict, rec.reason)


def production_guard(ctx: RunContext, run: RunRecord, targets: list[TargetResult]) -> tuple[dict[str, tuple[str, ...]], str]:
    """Production files that differed from HEAD at any checkpoint; and a note when git cannot tell."""
    production = ctx.plan.project.production
    changes: dict[str, tuple[str, ...]] = {}
    if run.git.production_changed:
        changes["at run start"] = run.git.production_changed
    for t in targets:
        if t.record and t.record.provenance.git.production_changed:
            changes[f"at {t.name} start"] = t.record.provenance.git.production_changed
    now = git_state(ctx.project, production)
    if not now.known or not run.git.known:
        commit = run.project_commit or "unknown"
        return changes, f"commit {commit[:12]} ({run.commit_source}); production-code guard not checked: {now.note or 'no git'}"
    if now.production_changed:
        changes["at collate"] = now.production_changed
    if run.git.sha != now.sha:
        committed = committed_changes(ctx.project, str(run.git.sha), str(now.sha), production)
        if committed is None:
            return changes, f"cannot diff {', '.join(production)} between {run.git.sha} and HEAD {now.sha}"
        if committed:
            changes[f"committed during the run ({str(run.git.sha)[:12]}..{str(now.sha)[:12]})"] = tuple(committed)
    return changes, ""


def decide(targets: list[TargetResult], changes: dict[str, tuple[str, ...]], git_note: str,
           production: tuple[str, ...] = ("src",)) -> tuple[Verdict, str]:
    """(overall verdict, one-sentence reason)."""
    interrupted = [t.name for t in targets if t.verdict == Verdict.INTERRUPTED]
    if interrupted:
        return Verdict.INCOMPLETE, f"interrupted: {', '.join(interrupted)} did not finish; the hub stays INCOMPLETE."
    bad = [f"{t.name} {t.verdict}" for t in targets if t.verdict != Verdict.GREEN]
    reasons = [f"{len(bad)}/{len(targets)} targets not GREEN ({', '.join(bad)})"] if bad else []
    files = changed_files(changes)
    if files:
        reasons.append(f"production code ({', '.join(production)}) differs from HEAD ({', '.join(files)})")
    if git_note:
        reasons.append(git_note)
    if reasons:
        return Verdict.RED, "; ".join(reasons) + "."
    return Verdict.GREEN, (f"all {len(targets)} targets GREEN, {', '.join(production)} unchanged "
                           "(run start, each target, collate), hub complete.")


def build_collation(ctx: RunContext, hub: Hub) -> Collation:
    """Read a hub and decide its verdicts (no writes)."""
    records, errors = load_verdicts(hub.path)
    selected = hub.run.targets if hub.run.targets is not None else \
        [t.name for t in ctx.plan.targets if t.name in records or (hub.path / f"{t.log}.partial").exists()
         or (hub.path / t.log).exists()]
    targets = [assess_target(t, records.get(t.name), hub.path, t.name in selected) for t in ctx.plan.targets]
    changes, note = production_guard(ctx, hub.run, targets)
    overall, reason = decide(targets, changes, note, ctx.plan.project.production)
    names = {t.name for t in ctx.plan.targets}
    return Collation(ctx=ctx, hub=hub, targets=tuple(targets), overall=overall, overall_reason=reason,
                     collated_utc=utc_now_iso(), record_errors=tuple(errors),
                     extra_records=tuple(sorted(set(records) - names)), production_changes=changes,
                     partial_run=set(selected) != names)
