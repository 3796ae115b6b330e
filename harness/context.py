"""The run context (harness home, project, plan, commit), built once per command and handed down; stdlib-only.

A plan path is resolved against the harness home, never the project. Also: a checkout's git state and identity.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness import UserError
from harness.plan import DEFAULT_PLAN, EvidencePlan, load_plan
from harness.schema import GitState, ProjectId, RunRecord

HOME = Path(__file__).resolve().parents[1]
#: Environment variables that carry the context into nox sessions (set by `make` and the driver).
PROJECT_ENV, PLAN_ENV, HUB_ENV = "EVIDENCE_PROJECT", "EVIDENCE_PLAN", "EVIDENCE_HUB"
VERBOSE_ENV = "EVIDENCE_VERBOSE"  # V=1: every child's output on the console


class ContextError(UserError, ValueError):
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
        return self.project / rel

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
    plan = Path(plan or os.environ.get(PLAN_ENV) or DEFAULT_PLAN)  # home / an absolute plan is that plan
    if not (home / plan).exists() and project is not None and (project / plan).exists():
        return project / plan
    return home / plan


def make_context(project: str | Path | None = None, plan: str | Path | None = None,
                 project_commit: str | None = None, home: Path = HOME) -> RunContext:
    """The context of a new run; ContextError / PlanError / FileNotFoundError name what is wrong."""
    root = Path(project or os.environ.get(PROJECT_ENV) or home).expanduser().resolve()
    if not root.is_dir():
        raise ContextError(f"--project {root}: not a folder; pass the checkout to judge (default: {home})")
    return RunContext(home, root, load_plan(resolve_plan(plan, home)), project_commit)


def project_root_of(hub: Path, hub_rel: str) -> Path | None:
    """The checkout a hub sits in: the hub's path minus the project-relative path it was made at."""
    parts, hub = Path(hub_rel).parts, hub.resolve()
    if parts and not Path(hub_rel).is_absolute() and hub.parts[-len(parts):] == parts:
        return Path(*hub.parts[: -len(parts)])
    return None


def context_for_hub(hub: Path, run: RunRecord, project: Path | None = None, plan: Path | None = None,
                    home: Path = HOME) -> RunContext:
    """An existing hub's context: `project` (default: the checkout it sits in, never a path run.json names)."""
    root = project or project_root_of(hub, run.hub)
    if root is None:
        raise ContextError(f"{hub}: not inside the checkout it was made for (run.json says hub {run.hub!r}); "
                           "pass --project <checkout>")
    if plan is None and not run.plan.path:
        raise ContextError(f"{hub / 'run.json'}: does not name its evidence plan; pass --plan PLAN.toml")
    ctx = RunContext(home, Path(root).resolve(), load_plan(resolve_plan(plan or run.plan.path, home, Path(root))),
                     run.project_commit)
    mine = project_identity(ctx.project)
    if not same_project(run.project_id, mine):
        raise ContextError(f"{hub}: made for another project ({run.project_id.describe()}), not {ctx.project} "
                           f"({mine.describe()}); pass the --project it belongs to")
    return ctx


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=60,
                          check=True, stdin=subprocess.DEVNULL).stdout


def _git_or_none(root: Path, *args: str) -> str | None:
    try:
        return _git(root, *args)
    except (OSError, subprocess.SubprocessError):
        return None


def git_state(root: Path, production: tuple[str, ...] = ("src",)) -> GitState:
    """SHA, dirty flag and files, and the production files that differ from HEAD (untracked too)."""
    try:
        top, sha = _git(root, "rev-parse", "--show-toplevel", "HEAD").splitlines()
    except FileNotFoundError:
        return GitState("unknown", None, note="git is not installed")
    except subprocess.CalledProcessError as exc:
        return GitState("unknown", None, note=f"{root} is not a git repository with a commit ({exc.stderr.strip()})")
    porcelain = _git(root, "status", "--porcelain", "--untracked-files=no")
    dirty_files = tuple(sorted(line[3:].strip() for line in porcelain.splitlines() if line.strip()))
    changed = set(_git(root, "diff", "--name-only", "HEAD", "--", *production).split())
    changed |= set(_git(root, "ls-files", "--others", "--exclude-standard", "--", *production).split())
    note = "" if Path(top).resolve() == root.resolve() else f"repository root is {top}"
    return GitState(sha, bool(dirty_files), dirty_files, tuple(sorted(changed)), note)


def committed_changes(root: Path, start: str, end: str, production: tuple[str, ...]) -> list[str] | None:
    """Production files changed by commits between `start` and `end` (None when git cannot tell)."""
    out = _git_or_none(root, "diff", "--name-only", start, end, "--", *production)
    return None if out is None else out.split()


def project_identity(root: Path) -> ProjectId:
    """What makes a checkout a project: its history's root commit and origin URL; never its path."""
    roots = _git_or_none(root, "rev-list", "--max-parents=0", "HEAD")
    if roots is None:
        return ProjectId(None, None, root.name)
    origin = (_git_or_none(root, "remote", "get-url", "origin") or "").strip() or None
    return ProjectId(min(roots.split(), default=None), origin, root.name)


def same_project(a: ProjectId, b: ProjectId) -> bool:
    """Two clones of one repository are one project: same root commit (and origin, where both have one)."""
    if a.root is None or b.root is None:
        return a.root is None and b.root is None  # without git history nothing can tell them apart
    return a.root == b.root and (a.origin is None or b.origin is None or _url(a.origin) == _url(b.origin))


def _url(origin: str) -> str:
    """An origin URL without the differences two clones of one repository may show (`.git`, a trailing /)."""
    url = re.sub(r"^[a-z+]+://", "", origin.strip().rstrip("/").removesuffix(".git"))
    return re.sub(r"^[^@/]+@([^:/]+):", r"\1/", re.sub(r"^[^@/]+@(?=[^:]+/)", "", url))
