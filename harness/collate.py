"""`python -m harness collate <hub>`: turn a hub's logs and verdict records into one verdict.

`harness.collation` decides the verdicts; this writes them (atomically): blocker.log (when not
GREEN), summary.md, junit.xml, then manifest.json, and re-checks a GREEN hub with `validate`.
Then the ledger (harness/ledger.py), unless `--no-ledger`, the run was interrupted, or it
selected only part of the plan; INCOMPLETE is removed last (kept for an interrupted run).
Exit 0 only when GREEN; the last two printed lines are the hub path and the overall verdict.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path

from harness.collation import Collation, build_collation
from harness.context import RunContext, add_context_arguments, context_for_hub
from harness.fsio import atomic_write_text
from harness.hub import Hub, open_hub
from harness.ledger import LedgerError, LedgerUpdate, apply_ledger
from harness.manifest import build_manifest
from harness.reporting import emit, fail, fmt_duration
from harness.schema import HubFiles, RunRecord, SchemaError, Verdict
from harness.summary import publish_step_summary, render_blocker, render_summary, write_junit
from harness.validate import integrity_problems, validate


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


def collate_path(hub: str | Path, *, ledger: bool = True, project: Path | None = None,
                 plan: Path | None = None) -> CollateResult:
    """`collate` of a hub folder, in the context its run.json records (`project`, `plan` override it)."""
    path = Path(hub).expanduser().resolve()
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such hub folder (pass the folder that holds run.json)")
    ctx = context_for_hub(path, RunRecord.load(path), project, plan)
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
        return fail(f"collate: {exc}")
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
