"""Create a timestamped evidence hub, and find the hub a nox invocation shares.

A hub is one run's folder of logs and verdicts. It is never overwritten: a clash in the same
second gets a `-2`, `-3` suffix, and an explicitly named hub that already exists is refused.
`INCOMPLETE` marks a run that collate has not finished; `run.json` records what the run started
from. Stdlib-only (plus the pinned filelock): the noxfile calls this in nox's own interpreter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock

from harness.context import RunContext
from harness.plan import Target
from harness.fsio import atomic_write_text
from harness.provenance import git_state
from harness.schema import HubFiles, PlanRef, RunRecord

TIMESTAMP_FORMAT = "%Y-%m-%dT%H%M%SZ"
MAX_SUFFIX = 100
#: Set once by the noxfile in nox's process; inherited by every session of that invocation.
INVOCATION_ENV = "EVIDENCE_INVOCATION"
INVOCATIONS = Path(".nox", "invocations")  # in the harness home: one file per invocation, naming its hub


class HubExistsError(FileExistsError):
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

    def earlier_run(self, target: Target) -> Path | None:
        """A file that an earlier run of `target` left here, if any: a target never runs twice into a hub."""
        return next((p for p in (self.path / target.log, self.path / f"{target.log}.partial",
                                 self.verdict_path(target.name)) if p.exists()), None)


def _claim(path: Path) -> bool:
    """Create `path` only if it did not exist; atomic against a concurrent run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir()
    except FileExistsError:
        return False
    return True


def _fresh_stamp(ctx: RunContext, base: str, explicit: bool) -> str:
    """The first `base`, `base-2`, ... whose artifacts folder (and hub, unless named) is free."""
    for n in range(1, MAX_SUFFIX + 1):
        stamp = base if n == 1 else f"{base}-{n}"
        if (ctx.path(ctx.plan.artifacts_for(stamp))).exists():
            continue
        if explicit or _claim(ctx.path(ctx.plan.hub_for(stamp))):
            return stamp
    raise HubExistsError(f"{MAX_SUFFIX} hubs exist for timestamp {base} under {ctx.project}; clean up or retry")


def create_hub(ctx: RunContext, *, explicit: str | Path | None = None, targets: tuple[str, ...] | None = None,
               timestamp: str | None = None) -> Hub:
    """A fresh hub + artifacts folder with INCOMPLETE and run.json for `targets` (None: as nox sessions add them)."""
    stamp = _fresh_stamp(ctx, timestamp or new_timestamp(), explicit is not None)
    if explicit is None:
        hub_path = ctx.path(ctx.plan.hub_for(stamp))
    else:
        hub_path = ctx.path(Path(explicit).expanduser()).resolve()
        if hub_path.exists() or not _claim(hub_path):
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
                    targets=targets, project_root=str(ctx.project), project_commit=commit, commit_source=source,
                    production=ctx.plan.project.production)
    run.write(hub_path)
    return Hub(hub_path, artifacts, run)


def open_hub(path: str | Path, ctx: RunContext) -> Hub:
    """An existing hub of this context; FileNotFoundError says how to make one."""
    hub_path = ctx.path(Path(path).expanduser()).resolve()
    run = RunRecord.load(hub_path)
    return Hub(hub_path, ctx.path(run.artifacts), run)


def invocation_hub(ctx: RunContext, invocation: str) -> Hub:
    """The one hub of a nox invocation: created by its first target session, found by the others.

    Sessions may run in separate processes, so they share only `EVIDENCE_INVOCATION` and a pointer
    file naming the hub (docs/architecture.md, "One hub per nox invocation").
    """
    pointer = ctx.home / INVOCATIONS / invocation
    pointer.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(pointer) + ".lock"):
        if pointer.is_file():
            return open_hub(pointer.read_text(encoding="utf-8").strip(), ctx)
        hub = create_hub(ctx)
        atomic_write_text(pointer, str(hub.path) + "\n")
        return hub


def known_invocation_hub(home: Path, invocation: str) -> Path | None:
    """The hub a nox invocation made, if any (what its `collate` session collates)."""
    pointer = home / INVOCATIONS / invocation
    return Path(pointer.read_text(encoding="utf-8").strip()) if pointer.is_file() else None


def reopen_for_target(hub: Hub, target: Target) -> None:
    """Let one more target run into an existing (e.g. a nox invocation's, collated) hub, if it allows it.

    Only a target the run did not fix in advance may join, and only while the hub still matches
    its manifest; the hub is then marked INCOMPLETE again until re-collated.
    """
    from harness.validate import integrity_problems  # validate reads hubs; only reopening needs it

    existing = hub.earlier_run(target)
    if existing is not None:
        raise HubExistsError(f"{existing} exists: target {target.name!r} already ran in this hub; hubs are never "
                             "overwritten, start a new one (omit --hub)")
    if hub.run.targets is not None and target.name not in hub.run.targets:
        raise HubExistsError(f"{hub.path} was made for targets {list(hub.run.targets)}; {target.name!r} cannot join "
                             "it. Omit --hub to start a new hub.")
    collated = (hub.path / HubFiles.MANIFEST).is_file() and not (hub.path / HubFiles.INCOMPLETE).exists()
    if collated:
        problems = integrity_problems(hub.path)
        if problems:
            raise HubExistsError(f"{hub.path} no longer matches its manifest ({problems[0]}); start a new hub")
        atomic_write_text(hub.path / HubFiles.INCOMPLETE, f"reopened {utc_now_iso()} for target {target.name}\n")
