"""Every record a hub holds (file names, verdicts, JSON formats): writers and readers share these classes.

Files of the older format 1 are upgraded on reading by `harness.legacy`. Stdlib-only."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar, get_type_hints

from harness import UserError
from harness.fsio import atomic_write_json


class Verdict(str, Enum):
    """Every verdict the harness gives; a target is evidence only when GREEN."""
    GREEN, RED, TIMEOUT, SKIPPED = "GREEN", "RED", "TIMEOUT", "SKIPPED"
    BLOCKED = "BLOCKED"  # a declared input is missing (or a CUDA target sees no GPU): nothing ran
    UNKNOWN = "UNKNOWN"  # a hand-made log that does not say how it ended
    MISSING = "MISSING"  # collate: no record or no finished log
    INTERRUPTED = "INTERRUPTED"  # collate: the log is still <log>.partial
    INCOMPLETE = "INCOMPLETE"  # a hub whose run did not finish
    NOT_RUN = "NOT RUN"  # collate: a target it comes `after` is not GREEN, so it was not run

    def __str__(self) -> str:
        return self.value


#: Verdicts a target's own record may carry (the others are assigned by collate or to hubs).
RECORD_VERDICTS = (Verdict.GREEN, Verdict.RED, Verdict.TIMEOUT, Verdict.SKIPPED, Verdict.BLOCKED, Verdict.UNKNOWN)


class HubFiles:
    """The names of a hub's files, relative to the hub folder."""
    RUN, ENVIRONMENT, MANIFEST = "run.json", "environment.json", "manifest.json"
    SUMMARY, BLOCKER, INCOMPLETE = "summary.md", "blocker.log", "INCOMPLETE"
    VERDICTS, JUNIT, FIGURES = "verdicts", "junit.xml", "figures"
    NOX_REPORT = "nox-report.json"  # nox's own --report of the run: a hub file like any other
    PARTS = "parts"  # a merged hub: parts/<target>/ keeps the run.json, environment and manifest of its part
    ATTESTATION = "attestation.json"  # harness.attest: the signed Statement about every other file
    UNLISTED = (MANIFEST, INCOMPLETE, ATTESTATION)  # never listed: itself, the in-progress marker, the signature

    @staticmethod
    def verdict(target: str) -> str:
        return f"{HubFiles.VERDICTS}/{target}.json"


class SchemaError(UserError, ValueError):
    """A hub file is unreadable or lacks a required field; the message names the file."""


def read_json(path: Path, schema: str) -> dict[str, Any]:
    """A JSON object of `schema`, format-1 files upgraded; FileNotFoundError passes through."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SchemaError(f"{path}: not readable JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise SchemaError(f"{path}: expected a JSON object, got {type(data).__name__}")
    if (found := data.get("schema")) == schema:
        return data
    if found == schema.replace("/2", "/1"):
        from harness import legacy  # only hubs made before format 2 need it
        return legacy.upgrade(schema, data)
    raise SchemaError(f"{path}: schema {found!r}, expected {schema!r} (written by another harness version)")


def _build(cls: type, data: dict[str, Any], **given: Any) -> Any:
    """`cls(**data)` keeping only its fields: lists become tuples, nested records are built too."""
    values, hints = dict(given), get_type_hints(cls)
    for f in fields(cls):
        kind = hints[f.name]
        if f.name in values or (f.name not in data and not is_dataclass(kind)):
            continue
        value = _build(kind, data.get(f.name) or {}) if is_dataclass(kind) else data[f.name]
        values[f.name] = tuple(value) if isinstance(value, list) and str(f.type).startswith("tuple") else value
    return cls(**values)


class _HubRecord:
    """A JSON file of the hub: `SCHEMA` names its format, `FILE` its path in the hub."""
    SCHEMA: ClassVar[str]
    FILE: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        return {"schema": self.SCHEMA, **asdict(self)}

    def write(self, hub: Path) -> Path:
        return atomic_write_json(Path(hub) / self.FILE, self.to_dict())


@dataclass(frozen=True)
class GitState:
    """The checkout's git state; `production_changed` lists guarded files that differ from HEAD."""
    sha: str | None = None
    dirty: bool | None = None
    dirty_files: tuple[str, ...] = ()
    production_changed: tuple[str, ...] = ()
    note: str = ""

    @property
    def known(self) -> bool:
        return bool(self.sha) and self.sha != "unknown"


@dataclass(frozen=True)
class Runtime:
    """What a target's interpreter sees: versions, GPU visibility, platform."""
    python: str | None = None
    platform: str | None = None
    executable: str | None = None
    torch: str | None = None
    lightning: str | None = None
    numpy: str | None = None
    cuda_available: bool | None = None
    cuda_visible_devices: str | None = None
    pythonhashseed: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class Provenance:
    """Where and on what one target ran."""
    git: GitState = field(default_factory=GitState)
    runtime: Runtime = field(default_factory=Runtime)
    seed: int | None = None
    threads: int | None = None
    slurm: dict[str, str | None] | None = None  # executor slurm: the job it ran as ({"job", "node", "partition"})

    def value(self, key: str) -> Any:
        """A field by its flat name (`git_sha`, `torch`, `seed`), as compare and the summary show them."""
        owner = self if key in ("seed", "threads") else self.git if key.startswith("git_") else self.runtime
        return getattr(owner, key[4:] if owner is self.git else key)


@dataclass(frozen=True)
class Counts:
    """Outcome counts of a pytest target (an XPASS is counted apart from a pass)."""
    tests: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    xfailed: int = 0
    xpassed: int = 0


@dataclass(frozen=True)
class VerdictRecord:
    """`verdicts/<target>.json`: one target's verdict; `outputs` are project-relative, `figures` hub-relative."""
    target: str
    kind: str
    log: str
    verdict: Verdict
    reason: str = ""
    session: str | None = None
    selector: str | None = None
    argv: tuple[str, ...] = ()
    exit_code: int | None = None
    timed_out: bool = False
    started_utc: str | None = None
    ended_utc: str | None = None
    duration_s: float | None = None
    counts: Counts | None = None
    tests: tuple[dict[str, Any], ...] = ()
    outputs: tuple[dict[str, Any], ...] = ()
    figures: tuple[str, ...] = ()
    record: dict[str, Any] | None = None
    provenance: Provenance = field(default_factory=Provenance)
    derived_from: str | None = None  # e.g. "hand-made log": read from a hub the harness did not make
    device: str = "cpu"
    log_sha256: str | None = None  # the seal: what the harness wrote into the log (harness/logframe.py)
    log_bytes: int | None = None
    SCHEMA = "evidence-verdict/2"

    @property
    def command(self) -> str:
        return self.selector or " ".join(self.argv)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": self.SCHEMA, **asdict(self), "verdict": self.verdict.value}

    @classmethod
    def load(cls, path: Path) -> VerdictRecord:
        data = read_json(path, cls.SCHEMA)
        if missing := [k for k in ("target", "kind", "log", "verdict") if k not in data]:
            raise SchemaError(f"{path}: missing field(s) {', '.join(missing)}")
        if data["verdict"] not in (known := [v.value for v in RECORD_VERDICTS]):
            raise SchemaError(f"{path}: verdict {data['verdict']!r} is not one of {known}")
        counts = data.get("counts")
        return _build(cls, data, verdict=Verdict(data["verdict"]), counts=_build(Counts, counts) if counts else None)

    def write(self, path: Path) -> Path:
        return atomic_write_json(path, self.to_dict())


@dataclass(frozen=True)
class PlanRef:
    """Which plan file a run used: its path as given, sha256 and id."""
    path: str | None = None
    sha256: str | None = None
    id: str | None = None


@dataclass(frozen=True)
class ProjectId:
    """A project's identity: its history's root commit and origin URL; `name` (its folder) is information only."""
    root: str | None = None
    origin: str | None = None
    name: str | None = None

    def describe(self) -> str:
        return f"root commit {(self.root or 'unknown')[:12]}" + (f", origin {self.origin}" if self.origin else "")


@dataclass(frozen=True)
class RunRecord(_HubRecord):
    """`run.json`: what a run started from. Paths are relative to the project root."""
    plan: PlanRef
    timestamp: str
    hub: str
    artifacts: str
    git: GitState
    created_utc: str | None = None
    targets: tuple[str, ...] = ()  # the targets this run selected: its verdict covers these
    project_root: str | None = None  # informational: no reader needs it
    project_commit: str | None = None
    commit_source: str = "git"  # git | --project-commit | unknown
    production: tuple[str, ...] = ("src",)
    project_id: ProjectId = field(default_factory=ProjectId)
    python: str | None = None  # the evidence interpreter every target of the run uses
    part: bool = False  # one target run alone to be merged with others (`harness merge`)
    host: str | None = None  # the machine the run started on (a merged hub: where each part ran)
    runner: str | None = None  # the CI runner's name ($RUNNER_NAME on GitHub Actions), if any
    SCHEMA, FILE = "evidence-run/2", HubFiles.RUN

    @classmethod
    def load(cls, hub: Path) -> RunRecord:
        path = Path(hub) / cls.FILE
        try:
            return _build(cls, read_json(path, cls.SCHEMA))
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no run.json, so {hub} is not a hub the harness created") from None


@dataclass(frozen=True)
class EnvironmentRecord(_HubRecord):
    """`environment.json`: the evidence interpreter, probed once per run, and every distribution in it."""
    runtime: Runtime
    packages: dict[str, str] = field(default_factory=dict)
    SCHEMA, FILE = "evidence-environment/1", HubFiles.ENVIRONMENT

    @classmethod
    def load(cls, hub: Path) -> EnvironmentRecord | None:
        try:
            data = read_json(Path(hub) / cls.FILE, cls.SCHEMA)
        except FileNotFoundError:
            return None
        return _build(cls, data, packages=dict(data.get("packages") or {}))


@dataclass(frozen=True)
class FileEntry:
    """One file a manifest vouches for: hub files relative to the hub, external ones to the project."""
    path: str
    bytes: int | None
    sha256: str | None
    role: str = "other"
    target: str | None = None
    verdict: str | None = None
    missing: bool = False


@dataclass(frozen=True)
class TargetSummary:
    """One plan target as collate judged it."""
    name: str
    kind: str | None = None
    verdict: str | None = None
    reason: str = ""
    log: str | None = None
    duration_s: float | None = None
    counts: dict[str, int] | None = None


@dataclass(frozen=True)
class Manifest(_HubRecord):
    """`manifest.json`: every byte a run produced and collate's verdicts; relocatable (format 2)."""
    plan: PlanRef
    hub: str  # the hub relative to its project root at collate time: finds external files again
    timestamp: str
    collated_utc: str
    overall_verdict: str
    overall_reason: str
    complete: bool
    partial_run: bool
    src_changes: dict[str, list[str]]
    git: dict[str, Any]
    targets: tuple[TargetSummary, ...]
    files: tuple[FileEntry, ...]
    external: tuple[FileEntry, ...] = ()
    format: int = 2
    SCHEMA, FILE = "evidence-manifest/2", HubFiles.MANIFEST

    @classmethod
    def load(cls, hub: Path) -> Manifest:
        path = Path(hub) / cls.FILE
        data = read_json(path, cls.SCHEMA)
        entries = {}
        for key in ("files", "external"):
            if bad := [e for e in data.get(key) or () if not isinstance(e, dict) or not e.get("path")]:
                raise SchemaError(f"{path}: {key} entry without a path: {bad[0]!r}")
            entries[key] = tuple(_build(FileEntry, e) for e in data.get(key) or ())
        targets = [_build(TargetSummary, t) for t in data.get("targets") or () if isinstance(t, dict) and t.get("name")]
        return _build(cls, data, targets=tuple(targets), **entries)
