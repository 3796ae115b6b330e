"""Build a hub's `manifest.json` (`harness.schema.Manifest`): the bytes a run produced, with their verdicts.

Hub files are listed relative to the hub, so a copied or cloned hub still checks (format 2);
bulky files outside it (the git-ignored `artifacts/`) are listed apart, relative to the project
root, and a reader without them reports them as absent. `harness/validate.py` re-checks it.
A merged hub's external files were made on its parts' machines: the manifest kept with each part
(harness/merge.py) vouches for them.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from harness.collate import Collation
from harness.fsio import inside, sha256_file
from harness.merge import part_external
from harness.schema import FileEntry, HubFiles, Manifest, PlanRef, TargetSummary, Verdict

_ROLES = {HubFiles.SUMMARY: "summary", HubFiles.RUN: "run-record", HubFiles.BLOCKER: "blocker",
          HubFiles.ENVIRONMENT: "environment", HubFiles.JUNIT: "junit"}


def file_entry(path: Path, rel: str, *, role: str, target: str | None, verdict: str | None) -> FileEntry:
    """A manifest entry for `path` (listed as `rel`), hashed now; `missing` when it is gone."""
    if not path.is_file():
        return FileEntry(rel, None, None, role, target, verdict, missing=True)
    return FileEntry(rel, path.stat().st_size, sha256_file(path), role, target, verdict)


def hub_role(rel: str, logs: dict[str, str]) -> tuple[str, str | None]:
    """(role, target) of a file inside the hub, from its path."""
    parts = Path(rel).parts
    if rel in logs:
        return "log", logs[rel]
    if rel.endswith(".partial") and rel.removesuffix(".partial") in logs:
        return "partial-log", logs[rel.removesuffix(".partial")]
    if parts[0] == HubFiles.VERDICTS and rel.endswith(".json"):
        return "verdict-record", Path(rel).stem
    if parts[0] == HubFiles.FIGURES and len(parts) > 2:
        return "figure", parts[1]
    if parts[0] == HubFiles.PARTS and len(parts) > 2:
        return "part-record", parts[1]
    return _ROLES.get(rel, "other"), None


def external_refs(c: Collation) -> list[tuple[str, str, str]]:
    """(project-relative path, role, target) of the bulky files the verdict records point to."""
    refs: list[tuple[str, str, str]] = []
    for t in c.targets:
        rec = t.record
        if rec is None:
            continue
        outcomes = c.ctx.rel(c.hub.outcomes(t.name))
        if rec.kind == "pytest" and c.ctx.path(outcomes).is_file():
            refs.append((outcomes, "outcomes", t.name))
        found = [(str(o["path"]), "output") for o in rec.outputs if isinstance(o, dict) and o.get("path")]
        found += [(str(t.train_record[k]), k) for k in ("bundle", "checkpoint") if t.train_record.get(k)]
        for ref, role in found:
            path = inside(c.ctx.project, c.ctx.rel(c.ctx.path(ref)))  # a target's own record may name anything
            if path is None:
                continue
            if path.is_dir():
                refs += [(c.ctx.rel(p), role, t.name) for p in sorted(path.rglob("*")) if p.is_file() and not p.is_symlink()]
            elif path.is_file() or t.verdict == Verdict.GREEN:
                # A failed target's outputs were usually never produced: nothing to list. A GREEN
                # target's must exist; listing it as missing makes the hub fail validation.
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
    parted = part_external(c.hub.path)  # a merged hub: what each part made on its machine, hashed there
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
