"""Create a timestamped hub (one run's logs and verdicts) for the selected targets, and open one. Stdlib-only.

A hub is never overwritten: a clash in the same second gets a `-2`, `-3` suffix; a named hub that exists is refused.
A *part* is a hub of one target run alone, to be merged with others."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from harness import UserError
from harness.context import RunContext, git_state, project_identity
from harness.fsio import atomic_write_text
from harness.plan import Target
from harness.schema import HubFiles, PlanRef, RunRecord, SchemaError, VerdictRecord

TIMESTAMP_FORMAT = "%Y-%m-%dT%H%M%SZ"
MAX_SUFFIX = 100


class HubExistsError(UserError, FileExistsError):
    """An explicitly requested hub exists already; hubs are never overwritten."""


def new_timestamp(now: datetime | None = None) -> str:
    """UTC timestamp in the seed's form, e.g. `2025-10-20T111500Z`."""
    return (now or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime(TIMESTAMP_FORMAT)


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Hub:
    """An existing hub folder (absolute paths) and its run.json."""
    path: Path
    artifacts: Path
    run: RunRecord

    @property
    def timestamp(self) -> str:
        return self.run.timestamp

    def verdict_path(self, target: str) -> Path:
        return self.path / HubFiles.verdict(target)

    def outcomes(self, target: str) -> Path:
        """Where a pytest target's outcome record goes (bulky: under artifacts/, not in the hub)."""
        return self.artifacts / "pytest" / f"{target}.json"

    @property
    def selected(self) -> tuple[str, ...]:
        return self.run.targets

    def earlier_run(self, target: Target) -> Path | None:
        """A file that an earlier run of `target` left here, if any: a target never runs twice into a hub."""
        return next((p for p in (self.path / target.log, self.path / f"{target.log}.partial",
                                 self.verdict_path(target.name)) if p.exists()), None)


def _claim(path: Path) -> bool:
    """Create `path` only if it did not exist; atomic against a concurrent run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir()
        return True
    except FileExistsError:
        return False


def _fresh_stamp(ctx: RunContext, base: str, explicit: bool) -> str:
    """The first `base`, `base-2`, ... whose artifacts folder (and hub, unless named) is free."""
    for n in range(1, MAX_SUFFIX + 1):
        stamp = base if n == 1 else f"{base}-{n}"
        free = not ctx.path(ctx.plan.artifacts_for(stamp)).exists()
        if free and (explicit or _claim(ctx.path(ctx.plan.hub_for(stamp)))):
            return stamp
    raise HubExistsError(f"{MAX_SUFFIX} hubs exist for timestamp {base} under {ctx.project}; clean up or retry")


def create_hub(ctx: RunContext, *, targets: tuple[str, ...], explicit: str | Path | None = None,
               timestamp: str | None = None, python: str | None = None, part: bool = False) -> Hub:
    """A fresh hub + artifacts folder with INCOMPLETE and run.json for the selected `targets`."""
    named = explicit is not None
    stamp = _fresh_stamp(ctx, timestamp or new_timestamp(), named)
    hub_path = ctx.path(Path(explicit).expanduser()).resolve() if named else ctx.path(ctx.plan.hub_for(stamp))
    if named and (hub_path.exists() or not _claim(hub_path)):
        raise HubExistsError(f"hub {hub_path} exists already; a hub is never overwritten. "
                                 "Pick a new HUB= path, or omit it to get a fresh timestamped hub.")
    artifacts = ctx.path(ctx.plan.artifacts_for(stamp))
    artifacts.mkdir(parents=True, exist_ok=True)
    (hub_path / HubFiles.VERDICTS).mkdir()
    atomic_write_text(hub_path / HubFiles.INCOMPLETE,
                      f"run started {utc_now_iso()}; collate removes this file once every target has finished\n")
    git = git_state(ctx.project, ctx.plan.project.production)
    commit, source = (git.sha, "git") if git.known else (ctx.project_commit, "--project-commit") \
        if ctx.project_commit else (None, "unknown")
    run = RunRecord(plan=PlanRef(ctx.plan_label, ctx.plan.sha256, ctx.plan.id), timestamp=stamp,
                    hub=ctx.rel(hub_path), artifacts=ctx.rel(artifacts), git=git, created_utc=utc_now_iso(),
                    targets=tuple(targets), project_root=str(ctx.project), project_commit=commit,
                    commit_source=source, production=ctx.plan.project.production,
                    project_id=project_identity(ctx.project), python=python, part=part,
                    host=socket.gethostname() or None, runner=os.environ.get("RUNNER_NAME") or None)
    run.write(hub_path)
    return Hub(hub_path, artifacts, run)


def open_hub(path: str | Path, ctx: RunContext) -> Hub:
    """An existing hub of this context; FileNotFoundError says how to make one. Old hubs selected every target."""
    hub_path = ctx.path(Path(path).expanduser()).resolve()
    run = RunRecord.load(hub_path)
    run = run if run.targets else replace(run, targets=tuple(t.name for t in ctx.plan.targets))
    artifacts = ctx.path(run.artifacts).resolve()
    if not artifacts.is_relative_to(ctx.project):
        raise ValueError(f"{hub_path / HubFiles.RUN}: artifacts {run.artifacts!r} lie outside the project "
                         f"{ctx.project}")
    return Hub(hub_path, artifacts, run)


def load_verdicts(hub: Path) -> tuple[dict[str, VerdictRecord], list[str]]:
    """Every readable record of `<hub>/verdicts/` by target, and one message per bad file."""
    records: dict[str, VerdictRecord] = {}
    errors: list[str] = []
    for path in sorted((Path(hub) / HubFiles.VERDICTS).glob("*.json")):
        try:
            rec = VerdictRecord.load(path)
        except SchemaError as exc:
            errors.append(f"{exc}; rerun the target")
            continue
        if rec.target in records:
            errors.append(f"{path}: second record for target {rec.target!r}")
        else:
            records[rec.target] = rec
    return records, errors
