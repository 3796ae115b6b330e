"""Collate a hub: write what a reviewer reads from the verdicts harness/collation.py decides.

Writes (atomically): blocker.log (when not GREEN), summary.md, junit.xml, manifest.json; a GREEN
hub is re-checked by `validate`; then the ledger (only for a hub that covers the whole plan);
INCOMPLETE is removed last (kept for an interrupted run). Exit 0 only when GREEN.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness import UserError
from harness.collation import Collation, build_collation
from harness.context import RunContext, context_for_hub
from harness.fsio import atomic_write_text
from harness.hub import Hub, open_hub
from harness.ledger import apply_ledger
from harness.manifest import build_manifest
from harness.schema import HubFiles, RunRecord, Verdict
from harness.summary import render_blocker, render_summary, write_junit
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
    ledger: Any
    ledger_note: str
    exit_code: int


class TamperedHubError(UserError, ValueError):
    """A hub collated before no longer matches its manifest; re-collating would hide that."""


def collate(ctx: RunContext, hub: Hub, *, ledger: bool = True, interrupted: bool = False,
            written: tuple[str, ...] = ()) -> CollateResult:
    """Collate a hub end to end (see the module docstring); never raises for a RED run."""
    if not (hub.path / HubFiles.INCOMPLETE).exists() and (hub.path / HubFiles.MANIFEST).is_file():
        problems = integrity_problems(hub.path)  # re-collating (e.g. to retry the ledger) needs an intact hub
        if problems:
            raise TamperedHubError(f"{hub.path} was collated before and no longer matches its manifest.json; refusing "
                                   "to re-collate over changed evidence (rerun the plan into a new hub):\n  "
                                   + "\n  ".join(problems))
    (hub.path / HubFiles.ATTESTATION).unlink(missing_ok=True)  # a signature vouches for what it saw: sign again
    c = build_collation(ctx, hub, interrupted=interrupted, written=written)
    blocker = _write_hub_files(c)
    if c.green:
        check = validate(c.hub.path, ignore_incomplete=True, home=ctx.home, project=ctx.project)
        if not check.ok:
            c = replace(c, overall=Verdict.RED, validation_problems=tuple(check.problems),
                        overall_reason=f"validate found {len(check.problems)} problem(s): {'; '.join(check.problems)}.")
            blocker = _write_hub_files(c)
    update, note, code = None, "ledger skipped (--no-ledger)", 0 if c.green else 1
    if c.partial_run:
        note = f"ledger untouched: a partial hub ({len(c.targets)} of {len(ctx.plan.targets)} targets) never marks it"
    elif ledger:
        try:
            update, note = apply_ledger(c, blocker)
        except (ValueError, OSError) as exc:
            note, code = f"ledger NOT updated: {exc}", 2  # a user mistake: fix the file or pass --no-ledger
    if not c.interrupted:
        (c.hub.path / HubFiles.INCOMPLETE).unlink(missing_ok=True)
    return CollateResult(c, blocker, update, note, code)


def collate_path(hub: str | Path, *, ledger: bool = True, project: Path | None = None,
                 plan: Path | None = None) -> CollateResult:
    """`collate` of a hub folder, in the context its run.json records (`project`, `plan` override it)."""
    path = Path(hub).expanduser().resolve()
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such hub folder (pass the folder that holds run.json)")
    ctx = context_for_hub(path, RunRecord.load(path), project, plan)  # the project is ours, never the hub's say
    return collate(ctx, open_hub(path, ctx), ledger=ledger)
