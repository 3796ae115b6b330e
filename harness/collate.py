"""`python -m harness collate <hub>`: turn a hub's logs and verdict records into a verdict.

Steps, in order (each file write atomic):
1. read run.json, the plan (the one run.json names unless `--plan`), and `verdicts/*.json`;
   a plan target without a record or without its finished log is MISSING, one whose log is
   still `<log>.partial` was INTERRUPTED;
2. the evidence-only guard: files under src/ that differ from HEAD at the run's start (run.json),
   at each target's start (its provenance), now, or that changed in commits made during the run;
3. the overall verdict: GREEN only when every plan target is GREEN, src/ is untouched, git could
   check it, and no target was interrupted; INCOMPLETE when a target was interrupted; else RED;
4. summary.md, blocker.log (when not GREEN), manifest.json, and `validate` of a GREEN hub;
5. the ledger (harness/ledger.py), unless `--no-ledger`, the run was interrupted, or it selected
   only part of the plan; then INCOMPLETE is removed (kept for an interrupted run).
Exit 0 only when GREEN; the last two printed lines are the hub path and the overall verdict.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from harness.hub import atomic_write_json, atomic_write_text
from harness.ledger import AttemptLinks, LedgerError, LedgerUpdate, record_attempt
from harness.manifest import build_manifest, validate
from harness.plan import EvidencePlan, Target, load_plan
from harness.provenance import git_state
from harness.records import (
    BLOCKER_FILE,
    GREEN,
    INCOMPLETE_MARKER,
    INTERRUPTED,
    MANIFEST_FILE,
    MISSING,
    SUMMARY_FILE,
    Collation,
    RunInfo,
    TargetResult,
    VerdictRecord,
    dataset_notes,
    fmt_duration,
    load_verdicts,
)
from harness.risks import derive_risks
from harness.summary import display_command, render_summary

RED = "RED"
INCOMPLETE = "INCOMPLETE"
BLOCKER_TAIL_LINES = 40


@dataclass(frozen=True)
class CollateResult:
    """What collate did: the collation, where it wrote, and what the ledger step did."""

    collation: Collation
    summary: Path
    manifest: Path
    blocker: Path | None
    ledger: LedgerUpdate | None
    ledger_note: str
    exit_code: int


# --------------------------------------------------------------------------- reading

def _project_root(hub: Path, run: RunInfo, explicit: Path | None) -> Path:
    """Root the hub's relative paths refer to: explicit, else the hub minus its recorded path."""
    if explicit is not None:
        return explicit.resolve()
    if run.hub and not Path(run.hub).is_absolute():
        parts = Path(run.hub).parts
        if len(hub.parts) > len(parts) and hub.parts[-len(parts):] == parts:
            return Path(*hub.parts[: -len(parts)])
    if run.project_root and Path(run.project_root).is_dir():
        return Path(run.project_root).resolve()
    return Path.cwd().resolve()


def _record_contradiction(rec: VerdictRecord) -> str | None:
    """Why a GREEN record cannot be believed (its own fields disagree), else None."""
    if rec.verdict != GREEN:
        return None
    if rec.kind == "pytest":
        c = rec.counts
        if c.tests < 1 or c.passed != c.tests:
            return f"record says GREEN but counts are {c.passed}/{c.tests} passed"
    if rec.exit_code not in (0, None) or rec.timed_out:
        return f"record says GREEN but exit code is {rec.exit_code}, timed_out={rec.timed_out}"
    return None


def assess_target(target: Target, rec: VerdictRecord | None, hub: Path) -> TargetResult:
    """The verdict collate assigns to one plan target (see module docstring)."""
    command = target.selector or shlex.join(target.argv)
    log_present = (hub / target.log).is_file()
    base = dict(name=target.name, kind=target.kind, command=command, log=target.log,
                timeout=target.timeout, record=rec, log_present=log_present)
    if not log_present and (hub / f"{target.log}.partial").is_file():
        return TargetResult(verdict=INTERRUPTED, reason=f"log is still {target.log}.partial: the target was interrupted", **base)
    if rec is None:
        why = "no verdict record" + ("" if log_present else " and no log")
        return TargetResult(verdict=MISSING, reason=f"{why} ({target.name} did not run or did not finish)", **base)
    if not log_present:
        return TargetResult(verdict=MISSING, reason=f"verdict record present but log {target.log} is missing", **base)
    if rec.log != target.log:
        return TargetResult(verdict=RED, reason=f"record names log {rec.log!r}, the plan {target.log!r}", **base)
    contradiction = _record_contradiction(rec)
    if contradiction:
        return TargetResult(verdict=RED, reason=contradiction, **base)
    return TargetResult(verdict=rec.verdict, reason=rec.reason, **base)


def _git_lines(root: Path, *args: str) -> list[str] | None:
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return [line for line in out.stdout.splitlines() if line.strip()]


def src_guard(root: Path, run: RunInfo, targets: list[TargetResult]) -> tuple[dict[str, tuple[str, ...]], str]:
    """src/ files that differed from HEAD at any checkpoint of the run; and a note if git cannot tell."""
    changes: dict[str, tuple[str, ...]] = {}
    if run.git.src_changed:
        changes["at run start"] = tuple(run.git.src_changed)
    for t in targets:
        if t.record and t.record.provenance.src_changed:
            changes[f"at {t.name} start"] = tuple(t.record.provenance.src_changed)
    now = git_state(root)
    if now.sha == "unknown":
        return changes, f"git cannot check src/ ({now.note or 'no repository'})"
    if now.src_changed:
        changes["at collate"] = tuple(now.src_changed)
    start = run.git.sha
    if start and start != "unknown" and start != now.sha:
        committed = _git_lines(root, "diff", "--name-only", start, now.sha, "--", "src")
        if committed is None:
            return changes, f"cannot diff src/ between the run's start commit {start[:12]} and HEAD {now.sha[:12]}"
        if committed:
            changes[f"committed during the run ({start[:12]}..{now.sha[:12]})"] = tuple(committed)
    return changes, ""


def decide(targets: list[TargetResult], src_changes: dict[str, tuple[str, ...]], git_note: str) -> tuple[str, str]:
    """(overall verdict, one-sentence reason)."""
    interrupted = [t.name for t in targets if t.verdict == INTERRUPTED]
    if interrupted:
        return INCOMPLETE, f"interrupted: {', '.join(interrupted)} did not finish; the hub stays INCOMPLETE."
    bad = [f"{t.name} {t.verdict}" for t in targets if t.verdict != GREEN]
    reasons = []
    if bad:
        reasons.append(f"{len(bad)}/{len(targets)} targets not GREEN ({', '.join(bad)})")
    files = sorted({f for fs in src_changes.values() for f in fs})
    if files:
        reasons.append(f"src/ differs from HEAD ({', '.join(files)})")
    if git_note:
        reasons.append(git_note)
    if reasons:
        return RED, "; ".join(reasons) + "."
    return GREEN, f"all {len(targets)} targets GREEN, src/ unchanged (run start, each target, collate), hub complete."


def build_collation(hub: Path, *, plan_path: Path | None = None, project_root: Path | None = None) -> Collation:
    """Read a hub and decide its verdicts (no writes)."""
    hub = Path(hub).resolve()
    if not hub.is_dir():
        raise FileNotFoundError(f"{hub}: no such hub folder (pass the folder that holds run.json)")
    run = RunInfo.load(hub)
    root = _project_root(hub, run, project_root)
    plan_file = plan_path or (Path(run.plan) if run.plan else None)
    if plan_file is None:
        raise ValueError(f"{run.path}: does not name the evidence plan; pass --plan PLAN.toml")
    plan: EvidencePlan = load_plan(plan_file if plan_file.is_absolute() else root / plan_file)
    records, errors = load_verdicts(hub)
    names = [t.name for t in plan.targets]
    targets = [assess_target(t, records.get(t.name), hub) for t in plan.targets]
    src_changes, git_note = src_guard(root, run, targets)
    overall, reason = decide(targets, src_changes, git_note)
    plan_abs = plan.path.resolve()
    try:
        plan_rel = plan_abs.relative_to(root).as_posix()
    except ValueError:
        plan_rel = str(plan_abs)
    return Collation(
        hub=hub,
        hub_rel=Path(os.path.relpath(hub, root)).as_posix(),
        project_root=root,
        plan_rel=plan_rel,
        plan_id=plan.id,
        plan_sha256=plan.sha256,
        timestamp=run.timestamp or hub.parent.name,
        run=run,
        targets=tuple(targets),
        overall=overall,
        overall_reason=reason,
        collated_utc=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        record_errors=tuple(errors),
        extra_records=tuple(sorted(set(records) - set(names))),
        src_changes=src_changes,
        interrupted=overall == INCOMPLETE,
        partial_run=run.targets is not None and set(run.targets) != set(names),
        plan_changed=bool(run.plan_sha256) and run.plan_sha256 != plan.sha256,
    )


# --------------------------------------------------------------------------- writing

def _tail(path: Path, n: int = BLOCKER_TAIL_LINES) -> list[str]:
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return lines[-n:]


def render_blocker(c: Collation) -> str:
    """blocker.log: what failed (selector or command), why, and the tail of its log."""
    out = [
        f"BLOCKED: {c.plan_id} {c.timestamp}: overall {c.overall}",
        f"reason: {c.overall_reason}",
        f"hub: {c.hub_rel}",
        f"collated: {c.collated_utc}",
        "",
    ]
    for t in c.targets:
        if t.verdict == GREEN:
            continue
        rec = t.record
        out += [f"== {t.name}: {t.verdict} ==", f"{'selector' if t.kind == 'pytest' else 'command'}: {display_command(c, t)}",
                f"reason: {t.reason}"]
        if rec is not None:
            out.append(f"exit code: {rec.exit_code}  timed out: {rec.timed_out}  duration: {fmt_duration(rec.duration_s)}")
            failed = [x.get("nodeid") for x in rec.tests if isinstance(x, dict) and x.get("outcome") != "passed"]
            if failed:
                out.append("not passed: " + ", ".join(str(f) for f in failed))
        log = c.hub / t.log if t.log_present else c.hub / f"{t.log}.partial"
        tail = _tail(log)
        if tail:
            out += [f"--- last {len(tail)} lines of {log.name} ---", *tail, f"--- end of {log.name} ---"]
        else:
            out.append(f"(no log: {t.log} not found)")
        out.append("")
    files = [(phase, fs) for phase, fs in c.src_changes.items() if fs]
    if files:
        out.append("== src/ differs from HEAD (evidence-only loop) ==")
        out += [f"{phase}: {', '.join(fs)}" for phase, fs in files]
        out.append("")
    if c.validation_problems:
        out.append("== validate ==")
        out += list(c.validation_problems)
        out.append("")
    if c.record_errors:
        out.append("== unreadable verdict records ==")
        out += list(c.record_errors)
        out.append("")
    return "\n".join(out)


def _write_hub_files(c: Collation) -> Path | None:
    """summary.md, blocker.log (not GREEN), then manifest.json (which lists the other two)."""
    datasets = dataset_notes(c)
    risks = derive_risks(c, datasets)
    blocker = None
    if not c.green:
        blocker = atomic_write_text(c.hub / BLOCKER_FILE, render_blocker(c))
    atomic_write_text(c.hub / SUMMARY_FILE, render_summary(c, risks, datasets, blocker_written=blocker is not None))
    atomic_write_json(c.hub / MANIFEST_FILE, build_manifest(c))
    return blocker


def _ledger_text(c: Collation) -> tuple[str, list[str]]:
    n_green = sum(t.verdict == GREEN for t in c.targets)
    if c.green:
        headline = f"{c.plan_id} evidence: **GREEN** ({n_green}/{len(c.targets)} targets)."
    else:
        headline = f"{c.plan_id} evidence: **BLOCKED** ({c.overall}: {c.overall_reason})"
    details = []
    for t in c.targets:
        part = f"`{t.name}` {t.verdict}"
        if t.counts is not None and t.kind == "pytest":
            part += f", {t.counts.passed}/{t.counts.tests} passed"
        part += f", {fmt_duration(t.duration_s)}"
        rec = (t.record.record if t.record else None) or {}
        loss = rec.get("final_train_loss")
        if isinstance(loss, (int, float)):
            part += f"; final loss {loss:.6g} after {rec.get('epochs')} epoch(s)"
        shape = (rec.get("shapes") or {}).get("diffraction")
        if isinstance(shape, list):
            part += f", diffraction {tuple(shape)}"
        if t.verdict != GREEN:
            part += f" — {t.reason}"
        details.append(part + ".")
    sha = c.run.git.sha or "unknown"
    details.append(f"Code `{sha[:12]}` ({'dirty' if c.run.git.dirty else 'clean'} tree at start); hub `{c.hub_rel}`.")
    return headline, details


def apply_ledger(c: Collation, plan: EvidencePlan, blocker: Path | None) -> tuple[LedgerUpdate | None, str]:
    """Ledger step (or why it was skipped)."""
    if c.interrupted:
        return None, "ledger untouched: the run was interrupted (hub stays INCOMPLETE)"
    if c.partial_run:
        return None, "ledger untouched: this run selected only part of the plan"
    spec = plan.ledger
    if not (spec.plan_file and spec.row and spec.fix_plan):
        return None, f"ledger untouched: {plan.path} has no complete [ledger] table (plan_file, row, fix_plan)"
    headline, details = _ledger_text(c)
    links = AttemptLinks(
        summary=f"{c.hub_rel}/{SUMMARY_FILE}",
        logs=tuple(f"{c.hub_rel}/{t.log}" for t in c.targets if t.log_present),
        blocker=f"{c.hub_rel}/{BLOCKER_FILE}" if blocker else None,
    )
    update = record_attempt(c.project_root, plan_file=spec.plan_file, fix_plan=spec.fix_plan, row=spec.row,
                            hub_rel=c.hub_rel, timestamp=c.timestamp, green=c.green, headline=headline,
                            details=details, links=links)
    if update.skipped_reason:
        return update, f"ledger unchanged: {update.skipped_reason}"
    return update, f"ledger: row {update.row} → {update.state}, Attempt #{update.attempt} appended to {spec.fix_plan}"


class TamperedHubError(ValueError):
    """A hub collated before no longer matches its manifest; re-collating would hide that."""


def _refuse_tampered(hub: Path) -> None:
    """Re-collating a finished hub is allowed (e.g. to retry the ledger) only if it is intact."""
    if (hub / INCOMPLETE_MARKER).exists() or not (hub / MANIFEST_FILE).is_file():
        return
    check = validate(hub, hub_only=True)
    if check.manifest is not None and check.integrity_problems:
        raise TamperedHubError(
            f"{hub} was collated before and no longer matches its manifest.json; refusing to re-collate "
            "over changed evidence (rerun the plan into a new hub instead):\n  "
            + "\n  ".join(check.integrity_problems)
        )


def collate(hub: Path, *, plan_path: Path | None = None, ledger: bool = True, project_root: Path | None = None) -> CollateResult:
    """Collate a hub end to end (see the module docstring); never raises for a RED run."""
    _refuse_tampered(Path(hub).resolve())
    c = build_collation(hub, plan_path=plan_path, project_root=project_root)
    plan = load_plan(c.project_root / c.plan_rel if not Path(c.plan_rel).is_absolute() else Path(c.plan_rel))
    blocker = _write_hub_files(c)
    if c.green:
        check = validate(c.hub, ignore_incomplete=True)
        if not check.ok:
            c = replace(c, overall=RED, overall_reason=f"validate found {len(check.problems)} problem(s): "
                        + "; ".join(check.problems) + ".", validation_problems=tuple(check.problems))
            blocker = _write_hub_files(c)
    ledger_update, note = None, "ledger skipped (--no-ledger)"
    exit_code = 0 if c.green else 1
    if ledger:
        try:
            ledger_update, note = apply_ledger(c, plan, blocker)
        except (LedgerError, FileNotFoundError) as exc:
            note, exit_code = f"ledger NOT updated: {exc}", 1
    if not c.interrupted:
        (c.hub / INCOMPLETE_MARKER).unlink(missing_ok=True)
    return CollateResult(c, c.hub / SUMMARY_FILE, c.hub / MANIFEST_FILE, blocker, ledger_update, note, exit_code)


# --------------------------------------------------------------------------- CLI

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`python -m harness collate <hub> [--no-ledger] [--plan P] [--project-root R]`."""
    parser.description = "Turn a hub's verdict records into summary.md + manifest.json and update the ledger."
    parser.add_argument("hub", type=Path, help="hub folder (holds run.json and verdicts/)")
    parser.add_argument("--plan", type=Path, default=None, help="evidence plan (default: the one run.json names)")
    parser.add_argument("--no-ledger", action="store_true", help="do not touch the plan row or docs/fix_plan.md")
    parser.add_argument("--project-root", type=Path, default=None,
                        help="root the hub's relative paths refer to (default: derived from the hub's location)")


def main(args: argparse.Namespace) -> int:
    """Print what was written, then the hub path and the overall verdict as the last two lines."""
    try:
        result = collate(args.hub, plan_path=args.plan, ledger=not args.no_ledger, project_root=args.project_root)
    except (FileNotFoundError, ValueError) as exc:
        print(f"collate: {exc}", file=sys.stderr)
        return 2
    c = result.collation
    for t in c.targets:
        print(f"{t.verdict:<11} {t.name:<24} {fmt_duration(t.duration_s):>12}  {t.reason}")
    print(f"summary: {_show(result.summary)}")
    print(f"manifest: {_show(result.manifest)}")
    if result.blocker:
        print(f"blocker: {_show(result.blocker)}")
    print(result.ledger_note)
    print(f"hub: {c.hub_rel}")
    print(f"overall verdict: {c.overall}")
    return result.exit_code


def _show(path: Path) -> str:
    try:
        return path.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(path)


__all__ = ["CollateResult", "add_arguments", "assess_target", "build_collation", "collate", "decide", "main",
           "render_blocker", "src_guard"]
