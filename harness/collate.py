"""`python -m harness collate <hub>`: turn a hub's logs and verdict records into one verdict.

Steps, in order (each file write atomic):
1. every plan target gets a verdict: its record's, or MISSING (no record / no finished log),
   INTERRUPTED (its log is still `<log>.partial`), RED (a record that contradicts itself);
2. the evidence-only guard: production files (the plan's `[project] production`, `src/` by
   default) that differ from HEAD at the run's start, at each target's start, now, or that
   commits made during the run changed; a checkout git cannot read is never GREEN;
3. the overall verdict: GREEN only when every plan target is GREEN and the guard holds;
   INCOMPLETE when a target was interrupted; RED otherwise;
4. blocker.log (not GREEN), summary.md, junit.xml, then manifest.json, and `validate` of a GREEN hub;
5. the ledger (harness/ledger.py), unless `--no-ledger`, the run was interrupted, or it selected
   only part of the plan; then INCOMPLETE is removed (kept for an interrupted run).
Exit 0 only when GREEN; the last two printed lines are the hub path and the overall verdict.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from harness.context import RunContext, add_context_arguments, context_for_hub
from harness.fsio import atomic_write_text
from harness.hub import Hub, open_hub, utc_now_iso
from harness.ledger import LedgerError, LedgerUpdate, apply_ledger
from harness.manifest import build_manifest
from harness.plan import Target
from harness.provenance import committed_changes, git_state
from harness.reporting import emit, fmt_duration
from harness.schema import Counts, HubFiles, RunRecord, SchemaError, Verdict, VerdictRecord, load_verdicts
from harness.summary import publish_step_summary, render_blocker, render_summary, write_junit
from harness.validate import integrity_problems, validate


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
    files = sorted({f for fs in changes.values() for f in fs})
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


def _write_hub_files(c: Collation) -> Path | None:
    """blocker.log (not GREEN), summary.md and junit.xml, then manifest.json (which lists them)."""
    blocker = atomic_write_text(c.hub.path / HubFiles.BLOCKER, render_blocker(c)) if not c.green else None
    atomic_write_text(c.hub.path / HubFiles.SUMMARY, render_summary(c, blocker_written=blocker is not None))
    write_junit(c)
    build_manifest(c).write(c.hub.path)
    return blocker


@dataclass(frozen=True)
class CollateResult:
    """What collate did: the collation, the blocker file (if any), and the ledger step."""

    collation: Collation
    blocker: Path | None
    ledger: LedgerUpdate | None
    ledger_note: str
    exit_code: int


class TamperedHubError(ValueError):
    """A hub collated before no longer matches its manifest; re-collating would hide that."""


def collate(ctx: RunContext, hub: Hub, *, ledger: bool = True) -> CollateResult:
    """Collate a hub end to end (see the module docstring); never raises for a RED run."""
    if not (hub.path / HubFiles.INCOMPLETE).exists() and (hub.path / HubFiles.MANIFEST).is_file():
        problems = integrity_problems(hub.path)  # re-collating (e.g. to retry the ledger) needs an intact hub
        if problems:
            raise TamperedHubError(f"{hub.path} was collated before and no longer matches its manifest.json; refusing "
                                   "to re-collate over changed evidence (rerun the plan into a new hub):\n  "
                                   + "\n  ".join(problems))
    c = build_collation(ctx, hub)
    blocker = _write_hub_files(c)
    if c.green:
        check = validate(c.hub.path, ignore_incomplete=True, home=ctx.home)
        if not check.ok:
            c = replace(c, overall=Verdict.RED, validation_problems=tuple(check.problems),
                        overall_reason=f"validate found {len(check.problems)} problem(s): {'; '.join(check.problems)}.")
            blocker = _write_hub_files(c)
    update, note, code = None, "ledger skipped (--no-ledger)", 0 if c.green else 1
    if ledger:
        try:
            update, note = apply_ledger(c, blocker)
        except (LedgerError, FileNotFoundError) as exc:
            note, code = f"ledger NOT updated: {exc}", 1
    if not c.interrupted:
        (c.hub.path / HubFiles.INCOMPLETE).unlink(missing_ok=True)
    return CollateResult(c, blocker, update, note, code)


def collate_path(hub: str | Path, *, ledger: bool = True, project: Path | None = None, plan: Path | None = None,
                 ctx: RunContext | None = None) -> CollateResult:
    """`collate` of a hub folder, its context read from its run.json unless given."""
    path = Path(hub).expanduser().resolve()
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such hub folder (pass the folder that holds run.json)")
    ctx = ctx or context_for_hub(path, RunRecord.load(path), project, plan)
    return collate(ctx, open_hub(path, ctx), ledger=ledger)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Turn a hub's verdict records into summary.md + manifest.json and update the ledger."
    parser.add_argument("hub", type=Path, help="hub folder (holds run.json and verdicts/)")
    parser.add_argument("--no-ledger", action="store_true", help="do not touch the plan row or the fix plan")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    add_context_arguments(parser)


def main(args: argparse.Namespace) -> int:
    """Print each target, what was written, then the hub path and the overall verdict last."""
    try:
        result = collate_path(args.hub, ledger=not args.no_ledger, project=args.project, plan=args.plan)
    except (FileNotFoundError, ValueError, SchemaError, OSError) as exc:
        emit(args.format, "collate", {"hub": str(args.hub), "error": str(exc), "exit_code": 2}, "")
        print(f"error: collate: {exc}", file=sys.stderr)
        return 2
    c = result.collation
    publish_step_summary(c)
    written = [HubFiles.SUMMARY, HubFiles.JUNIT, HubFiles.MANIFEST] + ([HubFiles.BLOCKER] if result.blocker else [])
    lines = [f"{t.verdict:<11} {t.name:<24} {fmt_duration(t.duration_s):>12}  {t.reason}" for t in c.targets]
    lines += [f"wrote: {', '.join(written)}", result.ledger_note, f"hub: {c.hub_rel}", f"overall verdict: {c.overall}"]
    emit(args.format, "collate", {"hub": c.hub_rel, "verdict": str(c.overall), "reason": c.overall_reason,
                                  "targets": [{"name": t.name, "verdict": str(t.verdict), "reason": t.reason,
                                               "duration_s": t.duration_s} for t in c.targets],
                                  "written": written, "ledger": result.ledger_note, "exit_code": result.exit_code},
         "\n".join(lines))
    return result.exit_code
