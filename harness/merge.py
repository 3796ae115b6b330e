"""`python -m harness merge PART... --into HUB`: one-target parts (made anywhere) into one hub, judged as one run.

Every part is checked first (this project and commit, the same plan, intact, each target once); the new hub gets each
part's target files byte for byte and its records under `parts/<target>/`, then collate judges it (docs/scale.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from harness import UserError
from harness.collate import CollateResult, collate
from harness.context import RunContext, git_state, project_identity, same_project
from harness.fsio import atomic_write_bytes, inside
from harness.hub import create_hub, open_hub
from harness.schema import HubFiles, Manifest, RunRecord, SchemaError
from harness.validate import integrity_problems

KEPT = (HubFiles.RUN, HubFiles.ENVIRONMENT, HubFiles.MANIFEST)  # a part's records, kept under parts/<target>/


class PartError(UserError, ValueError):
    """A part cannot be merged; the one-line message names the part, why, and what to do."""


@dataclass(frozen=True)
class Part:
    """A part as `pipeline --part` left it: one target's hub, collated where it ran."""
    path: Path
    run: RunRecord
    manifest: Manifest

    @property
    def target(self) -> str:
        return self.run.targets[0]


def recorded_plan(paths: Sequence[str | Path]) -> str | None:
    """The plan the first part names: the CI merge job passes no --plan (run.json's path is home-relative)."""
    try:
        return RunRecord.load(Path(paths[0])).plan.path if paths else None
    except (OSError, SchemaError):
        return None  # read_part says what is wrong with it


def read_part(path: Path) -> Part:
    """The part at `path`; PartError when it is no part, an unfinished or a damaged one."""
    if not (path / HubFiles.RUN).is_file():
        raise PartError(f"{path}: not a part (no {HubFiles.RUN}); make one with `make <target> PART={path}`")
    try:
        run = RunRecord.load(path)
    except SchemaError as exc:
        raise PartError(f"damaged part: {exc}") from None
    if not run.part or len(run.targets) != 1:
        raise PartError(f"{path}: a hub of {len(run.targets)} target(s), not a part; merge takes the folders "
                        "that `make <target> PART=<dir>` made")
    if problems := integrity_problems(path):
        more = f" (and {len(problems) - 1} more: `python -m harness validate {path}`)" if len(problems) > 1 else ""
        raise PartError(f"{path}: damaged part: {problems[0]}{more}")
    return Part(path, run, Manifest.load(path))


def check_parts(ctx: RunContext, parts: Sequence[Part]) -> None:
    """One project, one commit (the one checked out here), one plan, each target once; else PartError."""
    here = project_identity(ctx.project)
    git = git_state(ctx.project, ctx.plan.project.production)
    commit = git.sha if git.known else ctx.project_commit
    seen: dict[str, Path] = {}
    for p in parts:
        run = p.run
        if not same_project(run.project_id, here):
            raise PartError(f"{p.path}: a part of another project ({run.project_id.describe()}), not of "
                            f"{ctx.project} ({here.describe()})")
        if (run.plan.id, run.plan.sha256) != (ctx.plan.id, ctx.plan.sha256):
            theirs = f"{run.plan.id} (sha256 {(run.plan.sha256 or 'unknown')[:12]})"
            raise PartError(f"{p.path}: made with plan {theirs}, not "
                            f"{ctx.plan_label} ({ctx.plan.id}, sha256 {ctx.plan.sha256[:12]}); merge parts of one plan")
        if not commit or run.project_commit != commit:
            raise PartError(f"{p.path}: made on commit {(run.project_commit or 'unknown')[:12]}, but {ctx.project} is "
                            f"at {(commit or 'unknown')[:12]}; merge the parts of one commit in a checkout of it")
        if p.target in seen:
            raise PartError(f"{p.path}: target {p.target!r} is in the part {seen[p.target]} too; pass each target once")
        seen[p.target] = p.path


def merge(ctx: RunContext, paths: Sequence[str | Path], into: str | Path, *, ledger: bool = True) -> CollateResult:
    """Check every part, copy them into the new hub `into` (never an existing one), collate it."""
    parts = [read_part(Path(p).expanduser().resolve()) for p in paths]
    check_parts(ctx, parts)
    hub = create_hub(ctx, targets=tuple(t.name for t in ctx.plan.targets), explicit=into)
    for part in parts:  # the part's files of its target, byte for byte, then its records under parts/<target>/
        target = ctx.plan.target(part.target)
        mine = [target.log, f"{target.log}.partial", HubFiles.verdict(target.name)]
        mine += [e.path for e in part.manifest.files if Path(e.path).parts[:2] == (HubFiles.FIGURES, target.name)]
        pairs = [(rel, rel) for rel in mine] + [(name, f"{HubFiles.PARTS}/{target.name}/{name}") for name in KEPT]
        for rel, dest in pairs:
            src, out = inside(part.path, rel), inside(hub.path, dest)
            if src is not None and out is not None and src.is_file():
                atomic_write_bytes(out, src.read_bytes())
    # Production files a part's own guard caught (its watcher, its checkout at collate) make the merge RED too.
    caught = tuple(sorted({f for p in parts for files in p.manifest.src_changes.values() for f in files}))
    return collate(ctx, open_hub(hub.path, ctx), ledger=ledger, written=caught)
