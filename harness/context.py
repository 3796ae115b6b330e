"""The run context: harness home, project under test, plan and project commit, resolved once.

Every command builds one `RunContext` at its entry (from its options, or from a hub's run.json)
and hands it down, so nothing below re-derives a root or re-loads the plan. A plan path is
resolved against the harness home, never against the project (docs/architecture.md). Stdlib-only.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from harness.plan import DEFAULT_PLAN, EvidencePlan, load_plan
from harness.schema import RunRecord

HOME = Path(__file__).resolve().parents[1]
#: Environment variables that carry the context into nox sessions (set by `make`, `pipeline`).
PROJECT_ENV, PLAN_ENV, HUB_ENV = "EVIDENCE_PROJECT", "EVIDENCE_PLAN", "EVIDENCE_HUB"


class ContextError(ValueError):
    """The project, plan or hub given cannot be used; the message says which and how to fix it."""


@dataclass(frozen=True)
class RunContext:
    """Where the harness lives, which checkout it judges, with which plan."""

    home: Path
    project: Path
    plan: EvidencePlan
    project_commit: str | None = None  # --project-commit: the commit of a checkout without git

    def path(self, rel: str | Path) -> Path:
        """A project-relative path as an absolute one (absolute paths pass through)."""
        return Path(rel) if Path(rel).is_absolute() else self.project / rel

    def rel(self, path: str | Path) -> str:
        """`path` relative to the project when inside it, else absolute."""
        return relative_to(path, self.project)

    @property
    def plan_label(self) -> str:
        """The plan as run.json records it: relative to the harness home when inside it."""
        return relative_to(self.plan.path, self.home)


def relative_to(path: str | Path, root: Path) -> str:
    """POSIX `path` relative to `root` when inside it, else absolute."""
    path = Path(path).resolve()
    try:
        return path.relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def resolve_plan(plan: str | Path | None, home: Path = HOME, project: Path | None = None) -> Path:
    """A plan path: absolute as given, else under the harness home (a format-1 hub's: under the project)."""
    plan = Path(plan or os.environ.get(PLAN_ENV) or DEFAULT_PLAN)
    if plan.is_absolute():
        return plan
    if not (home / plan).exists() and project is not None and (project / plan).exists():
        return project / plan
    return home / plan


def make_context(project: str | Path | None = None, plan: str | Path | None = None,
                 project_commit: str | None = None, home: Path = HOME) -> RunContext:
    """The context of a new run; ContextError / PlanError / FileNotFoundError name what is wrong."""
    root = Path(project or os.environ.get(PROJECT_ENV) or home).expanduser().resolve()
    if not root.is_dir():
        raise ContextError(f"--project {root}: not a folder; pass the checkout to judge (default: {home})")
    return RunContext(home=home, project=root, plan=load_plan(resolve_plan(plan, home)), project_commit=project_commit)


def project_root_of(hub: Path, hub_rel: str) -> Path | None:
    """The checkout a hub sits in: the hub's path minus the project-relative path it was made at."""
    parts, hub = Path(hub_rel).parts, hub.resolve()
    if parts and not Path(hub_rel).is_absolute() and hub.parts[-len(parts):] == parts:
        return Path(*hub.parts[: -len(parts)])
    return None


def context_for_hub(hub: Path, run: RunRecord, project: Path | None = None, plan: Path | None = None,
                    home: Path = HOME) -> RunContext:
    """The context a hub was made in: its project root (from where the hub sits) and its plan."""
    recorded = Path(run.project_root) if run.project_root and Path(run.project_root).is_dir() else None
    project = project or project_root_of(hub, run.hub) or recorded
    if project is None:
        raise ContextError(f"{hub}: cannot tell which checkout it belongs to (run.json says hub {run.hub!r}); "
                           "pass --project <checkout>")
    root = Path(project).resolve()
    if plan is None and not run.plan.path:
        raise ContextError(f"{hub / 'run.json'}: does not name its evidence plan; pass --plan PLAN.toml")
    plan_path = resolve_plan(plan or run.plan.path, home, root)
    return RunContext(home=home, project=root, plan=load_plan(plan_path), project_commit=run.project_commit)


def add_context_arguments(parser: argparse.ArgumentParser, *, plan: bool = True) -> None:
    """`--project` (alias `--project-root`), `--plan`, `--project-commit`: one spelling for every command."""
    parser.add_argument("--project", "--project-root", dest="project", type=Path, default=None,
                        help=f"checkout under test (default: ${PROJECT_ENV}, else the harness home)")
    if plan:
        parser.add_argument("--plan", type=Path, default=None,
                            help=f"evidence plan TOML, relative to the harness home or absolute "
                                 f"(default: ${PLAN_ENV}, else {DEFAULT_PLAN})")
    parser.add_argument("--project-commit", default=None,
                        help="the judged commit, for a checkout that is not a git repository")
