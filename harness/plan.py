"""Load and validate an evidence plan (TOML) into frozen dataclasses.

The plan is data, not code: which targets to run, in which order, where their logs go. A typo
in it must fail loudly before anything runs, so every error names the plan file and the line
(tomllib reports line numbers for syntax errors only; for semantic errors we locate the table
header or `key =` line in the raw text ourselves). Stdlib-only: nox imports this module in its
own interpreter.
"""

from __future__ import annotations

import hashlib
import math
import re
import string
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

DEFAULT_PLAN = Path("plans/active/ADR-003-BACKEND-API/evidence/phase_c4d_b3.toml")
KINDS = ("pytest", "command")
PLACEHOLDERS = ("python", "artifacts", "hub", "project_root")
# Sessions the noxfile defines itself; a target may not shadow them.
RESERVED_SESSIONS = ("evidence_env", "collate", "tests", "compare", "quality")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class PlanError(ValueError):
    """The plan file is invalid; the message names the file, the line and the fix."""


@dataclass(frozen=True)
class Target:
    """One evidence target: a pytest selector or a command, with its log name and limits."""

    name: str
    session: str
    kind: str
    log: str
    timeout: float
    description: str
    selector: str | None = None
    argv: tuple[str, ...] = ()
    expected_outputs: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    line: int = 0

    @property
    def summary(self) -> str:
        """First line of the description (what `nox -l` shows)."""
        return self.description.strip().splitlines()[0] if self.description.strip() else self.name


@dataclass(frozen=True)
class EnvironmentSpec:
    """Determinism knobs applied to every child process."""

    seed: int = 0
    threads: int = 2


@dataclass(frozen=True)
class LedgerSpec:
    """Which plan row and fix-plan ledger collate updates (read by harness.ledger)."""

    plan_file: str | None = None
    row: str | None = None
    fix_plan: str | None = None


@dataclass(frozen=True)
class CompareSpec:
    """Tolerances for comparing two hubs (read by harness.compare).

    Extra numeric keys are kept in `extra` and readable as attributes, so compare can grow a
    tolerance without a plan-format change.
    """

    loss_rtol: float = 1e-4
    duration_ratio_warn: float = 3.0
    extra: Mapping[str, float] = field(default_factory=dict)

    def __getattr__(self, name: str) -> float:
        extra = self.__dict__.get("extra") or {}
        if name in extra:
            return extra[name]
        raise AttributeError(name)


@dataclass(frozen=True)
class EvidencePlan:
    """A validated plan; `sha256` identifies the exact file the run used."""

    id: str
    title: str
    hub_template: str
    artifacts_template: str
    tags: tuple[str, ...]
    environment: EnvironmentSpec
    ledger: LedgerSpec
    compare: CompareSpec
    targets: tuple[Target, ...]
    path: Path
    sha256: str

    def target(self, name: str) -> Target:
        """The target called `name`; KeyError lists the valid names."""
        for t in self.targets:
            if t.name == name:
                return t
        raise KeyError(f"{self.path}: no target {name!r}; targets are {[t.name for t in self.targets]}")

    def hub_for(self, timestamp: str) -> Path:
        """The hub folder (relative to the project root) for a timestamp."""
        return Path(self.hub_template.format(timestamp=timestamp))

    def artifacts_for(self, timestamp: str) -> Path:
        """The artifacts folder (relative to the project root) for a timestamp."""
        return Path(self.artifacts_template.format(timestamp=timestamp))


# --------------------------------------------------------------------------- line lookup

_HEADER_RE = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.-]+)\s*\]\]?")
_KEY_RE = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*=")


class _Lines:
    """Map (table, key) to line numbers in the raw TOML text."""

    def __init__(self, text: str) -> None:
        self.tables: dict[Any, int] = {}
        self.keys: dict[tuple[Any, str], int] = {}
        current: Any = None
        counts: dict[str, int] = {}
        depth = 0  # bracket depth of a multi-line array value
        for number, raw in enumerate(text.splitlines(), start=1):
            line = _strip_comment(raw)
            if depth == 0:
                header = _HEADER_RE.match(line)
                if header:
                    name = header.group(2)
                    if header.group(1) == "[[":
                        index = counts.get(name, 0)
                        counts[name] = index + 1
                        current = (name, index)
                    else:
                        current = name
                    self.tables.setdefault(current, number)
                    continue
                key = _KEY_RE.match(line)
                if key:
                    self.keys.setdefault((current, key.group(1)), number)
            depth = max(0, depth + line.count("[") - line.count("]"))

    def of(self, table: Any, key: str | None = None) -> int:
        if key is not None and (table, key) in self.keys:
            return self.keys[(table, key)]
        return self.tables.get(table, 1)


def _strip_comment(line: str) -> str:
    """Drop a trailing comment and string contents, so brackets inside strings do not count."""
    out = []
    quote = None
    for ch in line:
        if quote:
            if ch == quote:
                quote = None
            continue
        if ch in "\"'":
            quote = ch
            out.append(ch + ch)
            continue
        if ch == "#":
            break
        out.append(ch)
    return "".join(out)


# --------------------------------------------------------------------------- validation

class _Checker:
    def __init__(self, path: Path, lines: _Lines) -> None:
        self.path = path
        self.lines = lines

    def fail(self, table: Any, key: str | None, message: str) -> PlanError:
        return PlanError(f"{self.path}:{self.lines.of(table, key)}: {message}")

    def table(self, data: Mapping[str, Any], name: str, required: bool) -> dict[str, Any]:
        value = data.get(name)
        if value is None:
            if required:
                raise PlanError(f"{self.path}:1: missing table [{name}]; see docs/harness.md for the plan format")
            return {}
        if not isinstance(value, dict):
            raise self.fail(None, name, f"{name!r} must be a table [{name}]")
        return value

    def keys(self, table_id: Any, label: str, data: Mapping[str, Any], allowed: set[str], required: set[str]) -> None:
        for key in data:
            if key not in allowed:
                raise self.fail(table_id, key, f"unknown key {key!r} in {label}; allowed: {sorted(allowed)}")
        for key in sorted(required):
            if key not in data:
                raise self.fail(table_id, None, f"missing key {key!r} in {label}")

    def string(self, table_id: Any, data: Mapping[str, Any], key: str, *, nonempty: bool = True) -> str:
        value = data[key]
        if not isinstance(value, str) or (nonempty and not value.strip()):
            raise self.fail(table_id, key, f"{key!r} must be a non-empty string, got {value!r}")
        return value

    def number(self, table_id: Any, data: Mapping[str, Any], key: str, *, positive: bool = False) -> float:
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(table_id, key, f"{key!r} must be a number, got {value!r}")
        if positive and value <= 0:
            raise self.fail(table_id, key, f"{key!r} must be > 0, got {value!r}")
        return float(value)

    def integer(self, table_id: Any, data: Mapping[str, Any], key: str, minimum: int) -> int:
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(table_id, key, f"{key!r} must be an integer >= {minimum}, got {value!r}")
        return value

    def strings(self, table_id: Any, data: Mapping[str, Any], key: str) -> tuple[str, ...]:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(table_id, key, f"{key!r} must be a list of non-empty strings, got {value!r}")
        return tuple(value)

    def template(self, table_id: Any, key: str, text: str, allowed: tuple[str, ...]) -> None:
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
        except ValueError as exc:
            raise self.fail(table_id, key, f"bad placeholder in {text!r}: {exc}") from exc
        for name in fields:
            if name not in allowed:
                raise self.fail(table_id, key, f"unknown placeholder {{{name}}} in {text!r}; allowed: {list(allowed)}")


def load_plan(path: str | Path) -> EvidencePlan:
    """Read and validate a plan file; PlanError (a ValueError) names the file and line."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: evidence plan not found (default: {DEFAULT_PLAN})") from None
    text = raw.decode("utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PlanError(f"{path}: TOML syntax error: {exc}") from exc
    check = _Checker(path, _Lines(text))
    check.keys(None, "the plan file", data, {"plan", "environment", "ledger", "compare", "targets"}, {"plan", "targets"})

    meta = check.table(data, "plan", required=True)
    check.keys("plan", "[plan]", meta, {"id", "title", "hub", "artifacts", "tags"}, {"id", "title", "hub", "artifacts"})
    hub = check.string("plan", meta, "hub")
    artifacts = check.string("plan", meta, "artifacts")
    for key, value in (("hub", hub), ("artifacts", artifacts)):
        check.template("plan", key, value, ("timestamp",))
        if "{timestamp}" not in value:
            raise check.fail("plan", key, f"{key!r} must contain {{timestamp}} so every run gets a fresh folder")
        if Path(value).is_absolute() or ".." in Path(value).parts:
            raise check.fail("plan", key, f"{key!r} must be a relative path inside the project, got {value!r}")
    tags = check.strings("plan", meta, "tags")

    env = check.table(data, "environment", required=False)
    check.keys("environment", "[environment]", env, {"seed", "threads"}, set())
    environment = EnvironmentSpec(
        seed=check.integer("environment", env, "seed", 0) if "seed" in env else 0,
        threads=check.integer("environment", env, "threads", 1) if "threads" in env else 2,
    )

    led = check.table(data, "ledger", required=False)
    check.keys("ledger", "[ledger]", led, {"plan_file", "row", "fix_plan"}, set())
    ledger = LedgerSpec(**{k: check.string("ledger", led, k) for k in led})

    cmp_table = check.table(data, "compare", required=False)
    known = {"loss_rtol", "duration_ratio_warn"}
    values = {k: check.number("compare", cmp_table, k) for k in cmp_table}
    compare = CompareSpec(
        **{k: v for k, v in values.items() if k in known},
        extra={k: v for k, v in values.items() if k not in known},
    )

    targets = _load_targets(check, data.get("targets"))
    return EvidencePlan(
        id=check.string("plan", meta, "id"),
        title=check.string("plan", meta, "title"),
        hub_template=hub,
        artifacts_template=artifacts,
        tags=tags,
        environment=environment,
        ledger=ledger,
        compare=compare,
        targets=targets,
        path=path,
        sha256=hashlib.sha256(raw).hexdigest(),
    )


_TARGET_KEYS = {"name", "session", "kind", "selector", "argv", "log", "timeout", "expected_outputs", "description", "after"}


def _load_targets(check: _Checker, raw_targets: Any) -> tuple[Target, ...]:
    if not isinstance(raw_targets, list) or not raw_targets:
        raise PlanError(f"{check.path}:1: the plan needs at least one [[targets]] table")
    targets: list[Target] = []
    seen: dict[str, dict[str, int]] = {"name": {}, "session": {}, "log": {}}
    for index, item in enumerate(raw_targets):
        tid = ("targets", index)
        if not isinstance(item, dict):
            raise check.fail(None, "targets", "targets must be written as [[targets]] tables")
        check.keys(tid, f"target #{index + 1}", item, _TARGET_KEYS, {"name", "session", "kind", "log", "timeout", "description"})
        name = check.string(tid, item, "name")
        session = check.string(tid, item, "session")
        log = check.string(tid, item, "log")
        for key, value in (("name", name), ("session", session)):
            if not _NAME_RE.match(value):
                raise check.fail(tid, key, f"{key} {value!r} may hold only letters, digits, '_', '.', '-'")
        if session in RESERVED_SESSIONS:
            raise check.fail(tid, "session", f"session {session!r} is reserved by the noxfile; pick another name")
        if "/" in log or "\\" in log or not log.endswith(".log") or log.startswith("."):
            raise check.fail(tid, "log", f"log {log!r} must be a plain file name ending in .log (it goes in the hub)")
        for key, value in (("name", name), ("session", session), ("log", log)):
            if value in seen[key]:
                raise check.fail(tid, key, f"duplicate {key} {value!r} (first used by target #{seen[key][value] + 1})")
            seen[key][value] = index
        kind = check.string(tid, item, "kind")
        if kind not in KINDS:
            raise check.fail(tid, "kind", f"kind {kind!r} must be one of {list(KINDS)}")
        selector = None
        argv: tuple[str, ...] = ()
        if kind == "pytest":
            if "selector" not in item or "argv" in item:
                raise check.fail(tid, "argv" if "argv" in item else None, "a pytest target takes 'selector', not 'argv'")
            selector = check.string(tid, item, "selector")
        else:
            if "argv" not in item or "selector" in item:
                raise check.fail(tid, "selector" if "selector" in item else None, "a command target takes 'argv', not 'selector'")
            argv = check.strings(tid, item, "argv")
            if not argv:
                raise check.fail(tid, "argv", "'argv' must not be empty")
            for arg in argv:
                check.template(tid, "argv", arg, PLACEHOLDERS)
        outputs = check.strings(tid, item, "expected_outputs")
        for out in outputs:
            check.template(tid, "expected_outputs", out, PLACEHOLDERS)
        after = check.strings(tid, item, "after")
        earlier = {t.name for t in targets}
        for dep in after:
            if dep == name or dep not in earlier:
                where = "later in the list" if any(t.get("name") == dep for t in raw_targets if isinstance(t, dict)) else "unknown"
                raise check.fail(tid, "after", f"after = {dep!r}: that target is {where if dep != name else 'this target'}; "
                                 "list targets in run order, each after the ones it needs")
        targets.append(Target(
            name=name,
            session=session,
            kind=kind,
            log=log,
            timeout=check.number(tid, item, "timeout", positive=True),
            description=check.string(tid, item, "description"),
            selector=selector,
            argv=argv,
            expected_outputs=outputs,
            after=after,
            line=check.lines.of(tid),
        ))
    return tuple(targets)


def expand(text: str, **values: str) -> str:
    """Fill `{python}`, `{artifacts}`, `{hub}`, `{project_root}` placeholders."""
    return text.format_map(values)
