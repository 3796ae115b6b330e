"""Collate a hub: write what a reviewer reads from the verdicts harness/collation.py decides. Exit 0 only when GREEN.

Writes blocker.log (not GREEN), summary.md, junit.xml, manifest.json; `validate` re-checks a GREEN hub; then the
ledger (a hub covering the whole plan only); INCOMPLETE goes last (kept for an interrupted run)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness import UserError
from harness.collation import Collation, build_collation
from harness.context import RunContext, context_for_hub
from harness.fsio import atomic_write_text, inside, sha256_file
from harness.hub import Hub, open_hub
from harness.ledger import apply_ledger
from harness.schema import FileEntry, HubFiles, Manifest, PlanRef, RunRecord, TargetSummary, Verdict
from harness.summary import render_blocker, render_summary, write_junit
from harness.validate import integrity_problems, validate


# manifest.json (schema.Manifest): hub files relative to the hub, so a copied or cloned hub still checks;
# bulky files outside it (the git-ignored artifacts/) apart, relative to the project (validate re-checks both).
_ROLES = {HubFiles.SUMMARY: "summary", HubFiles.RUN: "run-record", HubFiles.BLOCKER: "blocker",
          HubFiles.ENVIRONMENT: "environment", HubFiles.JUNIT: "junit"}
_FOLDERS = {HubFiles.FIGURES: "figure", HubFiles.PARTS: "part-record"}  # <folder>/<target>/...


def file_entry(path: Path, rel: str, *, role: str, target: str | None, verdict: str | None) -> FileEntry:
    """A manifest entry for `path` (listed as `rel`), hashed now; `missing` when it is gone."""
    if not path.is_file():
        return FileEntry(rel, None, None, role, target, verdict, missing=True)
    return FileEntry(rel, path.stat().st_size, sha256_file(path), role, target, verdict)


def hub_role(rel: str, logs: dict[str, str]) -> tuple[str, str | None]:
    """(role, target) of a file inside the hub, from its path."""
    if rel in logs:
        return "log", logs[rel]
    if rel.endswith(".partial") and rel.removesuffix(".partial") in logs:
        return "partial-log", logs[rel.removesuffix(".partial")]
    parts = Path(rel).parts
    if parts[0] == HubFiles.VERDICTS and rel.endswith(".json"):
        return "verdict-record", Path(rel).stem
    if (folder := _FOLDERS.get(parts[0])) and len(parts) > 2:
        return folder, parts[1]
    return _ROLES.get(rel, "other"), None


def external_refs(c: Collation) -> list[tuple[str, str, str]]:
    """(project-relative path, role, target) of the bulky files the verdict records point to."""
    refs: list[tuple[str, str, str]] = []
    for t in (t for t in c.targets if t.record is not None):
        outcomes = c.ctx.rel(c.hub.outcomes(t.name))
        if t.record.kind == "pytest" and c.ctx.path(outcomes).is_file():
            refs.append((outcomes, "outcomes", t.name))
        found = [(str(o["path"]), "output") for o in t.record.outputs if isinstance(o, dict) and o.get("path")]
        found += [(str(t.train_record[k]), k) for k in ("bundle", "checkpoint") if t.train_record.get(k)]
        for ref, role in found:
            path = inside(c.ctx.project, c.ctx.rel(c.ctx.path(ref)))  # a target's own record may name anything
            if path is None:
                continue
            if path.is_dir():
                refs += [(c.ctx.rel(p), role, t.name) for p in sorted(path.rglob("*"))
                         if p.is_file() and not p.is_symlink()]
            elif path.is_file() or t.verdict == Verdict.GREEN:  # a GREEN target's must exist: missing fails validate
                refs.append((c.ctx.rel(path), role, t.name))
    return refs


def build_manifest(c: Collation) -> Manifest:
    """The manifest of a collated hub."""
    verdict_of = {t.name: str(t.verdict) for t in c.targets}
    logs = {t.log: t.name for t in c.targets}
    files = []
    for path in sorted(p for p in c.hub.path.rglob("*") if p.is_file() and not p.is_symlink()):  # validate flags links
        rel = path.relative_to(c.hub.path).as_posix()
        if rel not in HubFiles.UNLISTED:
            role, target = hub_role(rel, logs)
            files.append(file_entry(path, rel, role=role, target=target, verdict=verdict_of.get(target or "")))
    external: dict[str, FileEntry] = {}
    parted: dict[str, FileEntry] = {}
    if (c.hub.path / HubFiles.PARTS).is_dir():  # a merged hub: what each part made on its machine, hashed there
        from harness.parts import part_external
        parted = part_external(c.hub.path)
    for rel, role, target in external_refs(c):
        kept, here = parted.pop(rel, None), c.ctx.path(rel)
        entry = kept if kept and not here.is_file() else file_entry(here, rel, role=role, target=target, verdict=None)
        external.setdefault(rel, replace(entry, verdict=verdict_of[target]))
    for rel, entry in parted.items():  # e.g. a pytest target's outcomes, under the part's artifacts folder
        external.setdefault(rel, replace(entry, verdict=verdict_of.get(entry.target or "")))
    run = c.hub.run
    return Manifest(
        plan=PlanRef(c.ctx.plan_label, c.ctx.plan.sha256, c.ctx.plan.id), hub=c.hub_rel, timestamp=run.timestamp,
        collated_utc=c.collated_utc, overall_verdict=str(c.overall), overall_reason=c.overall_reason,
        complete=not c.interrupted, partial_run=c.partial_run,
        src_changes={k: list(v) for k, v in c.production_changes.items()},
        git={"sha": run.git.sha, "dirty": run.git.dirty, "project_commit": run.project_commit,
             "commit_source": run.commit_source},
        targets=tuple(TargetSummary(t.name, t.kind, str(t.verdict), t.reason, t.log, t.duration_s,
                                    None if t.counts is None else vars(t.counts)) for t in c.targets),
        files=tuple(files), external=tuple(external.values()))


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
        if problems := integrity_problems(hub.path):  # re-collating (e.g. to retry the ledger) needs an intact hub
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
