"""Load and validate an evidence plan (TOML) into frozen dataclasses; stdlib-only.

A typo in the plan must fail loudly before anything runs: `harness.planlines` names the file and line.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from harness.planlines import Checker, Lines, PlanError

DEFAULT_PLAN = Path("plans/active/ADR-003-BACKEND-API/evidence/phase_c4d_b3.toml")
KINDS = ("pytest", "command")
DEVICES = ("cpu", "cuda")  # cuda: the only targets that see a GPU (CUDA_VISIBLE_DEVICES is left alone)
EXECUTORS = ("local", "slurm")
PLACEHOLDERS = ("python", "artifacts", "hub", "project_root")
# Sessions the noxfile defines itself; a target may not shadow them.
RESERVED_SESSIONS = ("evidence_env", "collate", "tests", "compare", "quality")
# The embedded backend's recipe: what a plan without a [project] table installs.
DEFAULT_INSTALL = (("-c", "{home}/constraints.txt", "-e", ".[dev]"),)


@dataclass(frozen=True)
class Target:
    """One evidence target: a pytest selector or a command, with its log name, limits and inputs."""
    name: str
    session: str
    kind: str
    log: str
    timeout: float
    description: str
    selector: str | None = None
    argv: tuple[str, ...] = ()
    expected_outputs: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()  # files (relative to the project) that must exist before it runs
    figures: tuple[str, ...] = ()  # pictures it writes, copied into the hub
    after: tuple[str, ...] = ()
    device: str = "cpu"
    runner: str | None = None  # CI runner label (`python -m harness ci github`); default ubuntu-latest
    executor: str = "local"  # slurm: run as a Slurm job (partition, gres, cpus; time from timeout)
    partition: str | None = None
    gres: str | None = None
    cpus: int | None = None
    line: int = 0

    @property
    def summary(self) -> str:
        """First line of the description (what `nox -l` shows)."""
        return self.description.strip().splitlines()[0] if self.description.strip() else self.name


@dataclass(frozen=True)
class ProjectSpec:
    """How to build the project's evidence venv, and which folders are production code."""
    install: tuple[tuple[str, ...], ...] = DEFAULT_INSTALL  # `pip install` argument lists, in order
    production: tuple[str, ...] = ("src",)  # the evidence-only guard watches these


@dataclass(frozen=True)
class EnvironmentSpec:
    """Determinism knobs applied to every child process."""
    seed: int = 0
    threads: int = 2


@dataclass(frozen=True)
class LedgerSpec:
    """Which plan row and fix-plan ledger collate updates (paths relative to the project)."""
    plan_file: str | None = None
    row: str | None = None
    fix_plan: str | None = None

    @property
    def complete(self) -> bool:
        return bool(self.plan_file and self.row and self.fix_plan)


@dataclass(frozen=True)
class CompareSpec:
    """How close two runs must be to agree (`[compare]`)."""
    loss_rtol: float = 1e-4  # relative difference of final_train_loss, deterministic runs only
    duration_ratio_warn: float = 3.0  # warn when a target is this many times slower or faster
    duration_floor_s: float = 5.0  # ...and the slower run took at least this long


@dataclass(frozen=True)
class EvidencePlan:
    """A validated plan; `sha256` identifies the exact file the run used."""
    id: str
    title: str
    hub_template: str
    artifacts_template: str
    tags: tuple[str, ...]
    targets: tuple[Target, ...]
    path: Path
    sha256: str
    environment: EnvironmentSpec = field(default_factory=EnvironmentSpec)
    ledger: LedgerSpec = field(default_factory=LedgerSpec)
    compare: CompareSpec = field(default_factory=CompareSpec)
    project: ProjectSpec = field(default_factory=ProjectSpec)

    def target(self, name: str) -> Target:
        """The target called `name`; PlanError lists the valid names."""
        for t in self.targets:
            if t.name == name:
                return t
        raise PlanError(f"{self.path}: no target {name!r}; targets are {[t.name for t in self.targets]}")

    def hub_for(self, timestamp: str) -> Path:
        return Path(self.hub_template.format(timestamp=timestamp))

    def artifacts_for(self, timestamp: str) -> Path:
        return Path(self.artifacts_template.format(timestamp=timestamp))


def load_plan(path: str | Path) -> EvidencePlan:
    """Read and validate a plan file; PlanError (a ValueError) names the file and line."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: evidence plan not found (default: {DEFAULT_PLAN})") from None
    except IsADirectoryError:
        raise PlanError(f"{path}: is a folder; pass the plan's .toml file") from None
    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PlanError(f"{path}: TOML syntax error: {exc}") from exc
    check = Checker(path, Lines(text))
    check.keys(None, "the plan file", data, {"plan", "project", "environment", "ledger", "compare", "targets"},
               {"plan", "targets"})
    meta = check.table(data, "plan", {"id", "title", "hub", "artifacts", "tags"}, {"id", "title", "hub", "artifacts"})
    templates = {key: check.string("plan", meta, key) for key in ("hub", "artifacts")}
    for key, value in templates.items():
        check.templates("plan", key, [value], ("timestamp",))
        if "{timestamp}" not in value:
            raise check.fail("plan", key, f"{key!r} must contain {{timestamp}} so every run gets a fresh folder")
        check.relative_paths("plan", {key: [value]}, key)
    return EvidencePlan(
        id=check.string("plan", meta, "id"), title=check.string("plan", meta, "title"),
        hub_template=templates["hub"], artifacts_template=templates["artifacts"],
        tags=check.strings("plan", meta, "tags"), targets=_load_targets(check, data.get("targets")),
        path=path, sha256=hashlib.sha256(raw).hexdigest(), environment=_environment(check, data),
        ledger=_ledger(check, data), compare=_compare(check, data), project=_project(check, data))


def _project(check: Checker, data: dict[str, Any]) -> ProjectSpec:
    table = check.table(data, "project", {"install", "production"})
    install = check.lists_of_strings("project", table, "install") if "install" in table else DEFAULT_INSTALL
    check.templates("project", "install", [arg for step in install for arg in step], ("home", "project_root"))
    production = check.relative_paths("project", table, "production") if "production" in table else ("src",)
    return ProjectSpec(install=install, production=production)


def _environment(check: Checker, data: dict[str, Any]) -> EnvironmentSpec:
    env = check.table(data, "environment", {"seed", "threads"})
    return EnvironmentSpec(**{k: check.integer("environment", env, k, least)
                              for k, least in (("seed", 0), ("threads", 1)) if k in env})


def _ledger(check: Checker, data: dict[str, Any]) -> LedgerSpec:
    led = check.table(data, "ledger", {"plan_file", "row", "fix_plan"})
    return LedgerSpec(**{k: check.string("ledger", led, k) for k in led})


def _compare(check: Checker, data: dict[str, Any]) -> CompareSpec:
    table = check.table(data, "compare", {"loss_rtol", "duration_ratio_warn", "duration_floor_s"})
    values = {k: check.number("compare", table, k) for k in table}
    for key in ("loss_rtol", "duration_floor_s"):
        if values.get(key, 0) < 0:
            raise check.fail("compare", key, "tolerances must be >= 0")
    if values.get("duration_ratio_warn", 2) <= 1:
        raise check.fail("compare", "duration_ratio_warn", "'duration_ratio_warn' must be > 1")
    return CompareSpec(**values)


_TARGET_KEYS = {f.name for f in fields(Target)} - {"line"}
_TARGET_REQUIRED = {"name", "session", "kind", "log", "timeout", "description"}


def _load_targets(check: Checker, raw_targets: Any) -> tuple[Target, ...]:
    if not isinstance(raw_targets, list) or not raw_targets:
        raise PlanError(f"{check.path}:1: the plan needs at least one [[targets]] table")
    targets: list[Target] = []
    seen: dict[str, dict[str, int]] = {"name": {}, "session": {}, "log": {}}  # value -> number of its first target
    names = [t.get("name") for t in raw_targets if isinstance(t, dict)]
    for index, item in enumerate(raw_targets):
        tid = ("targets", index)
        if not isinstance(item, dict):
            raise check.fail(None, "targets", "targets must be written as [[targets]] tables")
        check.keys(tid, f"target #{index + 1}", item, _TARGET_KEYS, _TARGET_REQUIRED)
        name, session, log = (check.string(tid, item, k) for k in ("name", "session", "log"))
        check.name(tid, "name", name)
        check.name(tid, "session", session)
        if session in RESERVED_SESSIONS:
            raise check.fail(tid, "session", f"session {session!r} is reserved by the noxfile; pick another name")
        if "/" in log or "\\" in log or not log.endswith(".log") or log.startswith("."):
            raise check.fail(tid, "log", f"log {log!r} must be a plain file name ending in .log (it goes in the hub)")
        for key, first in seen.items():
            if item[key] in first:
                raise check.fail(tid, key, f"duplicate {key} {item[key]!r} (first used by target #{first[item[key]]})")
            first[item[key]] = index + 1
        kind = check.string(tid, item, "kind")
        if kind not in KINDS:
            raise check.fail(tid, "kind", f"kind {kind!r} must be one of {list(KINDS)}")
        wanted, other = ("selector", "argv") if kind == "pytest" else ("argv", "selector")
        if wanted not in item or other in item:
            raise check.fail(tid, other if other in item else None, f"a {kind} target takes {wanted!r}, not {other!r}")
        selector = check.string(tid, item, "selector") if kind == "pytest" else None
        argv = check.strings(tid, item, "argv")  # () for a pytest target: it may not have one
        if kind == "command" and not argv:
            raise check.fail(tid, "argv", "'argv' must not be empty")
        for key in ("argv", "expected_outputs", "figures"):
            check.templates(tid, key, check.strings(tid, item, key), PLACEHOLDERS)
        after = check.strings(tid, item, "after")
        for dep in after:
            if dep == name or dep not in seen["name"]:
                where = "this target" if dep == name else "later in the list" if dep in names else "unknown"
                raise check.fail(tid, "after", f"after = {dep!r}: that target is {where}; "
                                 "list targets in run order, each after the ones it needs")
        placement = _placement(check, tid, item)
        targets.append(Target(
            name=name, session=session, kind=kind, log=log, timeout=check.number(tid, item, "timeout", positive=True),
            description=check.string(tid, item, "description"), selector=selector, argv=argv,
            expected_outputs=check.strings(tid, item, "expected_outputs"),
            inputs=check.relative_paths(tid, item, "inputs"), figures=check.strings(tid, item, "figures"),
            after=after, line=check.lines.of(tid), **placement))
    return tuple(targets)


def _placement(check: Checker, tid: Any, item: dict[str, Any]) -> dict[str, Any]:
    """Where a target runs: device, CI runner label, executor and its Slurm resources."""
    found = {k: check.string(tid, item, k) for k in ("device", "runner", "executor", "partition", "gres") if k in item}
    for key, allowed in (("device", DEVICES), ("executor", EXECUTORS)):
        if found.get(key, allowed[0]) not in allowed:
            raise check.fail(tid, key, f"{key} {found[key]!r} must be one of {list(allowed)}")
    if "cpus" in item:
        found["cpus"] = check.integer(tid, item, "cpus", 1)
    slurm_only = [k for k in ("partition", "gres", "cpus") if k in found]
    if slurm_only and found.get("executor") != "slurm":
        raise check.fail(tid, slurm_only[0], f"{slurm_only[0]!r} applies to executor = \"slurm\" only")
    return found


def expand(text: str, **values: str) -> str:
    """Fill `{python}`, `{artifacts}`, `{hub}`, `{project_root}` (and `{home}`) placeholders."""
    return text.format_map(values)
