"""Read what a run left in its hub: verdict records and run.json, as typed dataclasses.

The runner writes these files (schema in docs/architecture.md, "Verdict record"); collate,
validate, compare and reproduce only read them. Keeping the parsing in one place means a
malformed file is reported once, with its path and the fix, instead of as a KeyError deep in
whichever command happened to touch it first. Documented in docs/harness_manifest.md.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VERDICT_SCHEMA = "evidence-verdict/1"
#: Verdicts a target's record may carry (written by harness/verdict.py).
RECORD_VERDICTS = ("GREEN", "RED", "TIMEOUT", "SKIPPED")
#: Assigned by collate to a plan target that has no verdict record or no finished log.
MISSING = "MISSING"
#: Assigned by collate to a target whose log is still `<log>.partial` (it was interrupted).
INTERRUPTED = "INTERRUPTED"
GREEN = "GREEN"

INCOMPLETE_MARKER = "INCOMPLETE"
RUN_FILE = "run.json"
VERDICTS_DIR = "verdicts"
SUMMARY_FILE = "summary.md"
MANIFEST_FILE = "manifest.json"
BLOCKER_FILE = "blocker.log"


def fmt_duration(seconds: float | None) -> str:
    """`12.3 s`, or `2 min 05.0 s` beyond a minute; `—` when unknown (shared by summary and risks)."""
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)} min {rest:04.1f} s"


class RecordError(ValueError):
    """A hub file is unreadable or lacks a required field; the message names the file."""


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordError(f"{path}: not readable JSON ({exc}); rerun the target or collate") from exc
    if not isinstance(data, dict):
        raise RecordError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _require(data: dict[str, Any], key: str, path: Path) -> Any:
    if key not in data:
        raise RecordError(f"{path}: missing field {key!r} (written by an older or broken runner?)")
    return data[key]


@dataclass(frozen=True)
class Counts:
    """Test counts of a pytest target, read from its JUnit XML by the runner."""

    tests: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    xfailed: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "Counts":
        data = data or {}
        return cls(**{k: int(data.get(k, 0) or 0) for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Provenance:
    """Where and on what a target ran (one per verdict record)."""

    git_sha: str | None = None
    git_dirty: bool | None = None
    dirty_files: tuple[str, ...] = ()
    src_changed: tuple[str, ...] = ()
    python: str | None = None
    torch: str | None = None
    lightning: str | None = None
    numpy: str | None = None
    cuda_available: bool | None = None
    cuda_visible_devices: str | None = None
    platform: str | None = None
    seed: int | None = None
    threads: int | None = None
    pythonhashseed: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "Provenance":
        data = dict(data or {})
        data["dirty_files"] = tuple(data.get("dirty_files") or ())
        data["src_changed"] = tuple(data.get("src_changed") or ())
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


@dataclass(frozen=True)
class VerdictRecord:
    """One `verdicts/<target>.json` (schema `evidence-verdict/1`)."""

    target: str
    kind: str
    log: str
    verdict: str
    reason: str
    path: Path
    session: str | None = None
    selector: str | None = None
    argv: tuple[str, ...] = ()
    exit_code: int | None = None
    timed_out: bool = False
    started_utc: str | None = None
    ended_utc: str | None = None
    duration_s: float | None = None
    counts: Counts = field(default_factory=Counts)
    tests: tuple[dict[str, Any], ...] = ()
    junit_xml: str | None = None
    outputs: tuple[dict[str, Any], ...] = ()
    record: dict[str, Any] | None = None
    provenance: Provenance = field(default_factory=Provenance)

    @property
    def command(self) -> str:
        """The selector of a pytest target, else the command line."""
        return self.selector or " ".join(self.argv)

    @classmethod
    def load(cls, path: Path) -> "VerdictRecord":
        """Parse a verdict record; RecordError names the file and the bad field."""
        path = Path(path)
        data = _read_json(path)
        schema = data.get("schema")
        if schema != VERDICT_SCHEMA:
            raise RecordError(
                f"{path}: schema {schema!r}, expected {VERDICT_SCHEMA!r}; "
                "this record was written by another harness version, rerun the target"
            )
        verdict = _require(data, "verdict", path)
        if verdict not in RECORD_VERDICTS:
            raise RecordError(f"{path}: verdict {verdict!r} is not one of {RECORD_VERDICTS}")
        duration = data.get("duration_s")
        return cls(
            target=str(_require(data, "target", path)),
            kind=str(_require(data, "kind", path)),
            log=str(_require(data, "log", path)),
            verdict=verdict,
            reason=str(data.get("reason") or ""),
            path=path,
            session=data.get("session"),
            selector=data.get("selector"),
            argv=tuple(str(a) for a in data.get("argv") or ()),
            exit_code=data.get("exit_code"),
            timed_out=bool(data.get("timed_out", False)),
            started_utc=data.get("started_utc"),
            ended_utc=data.get("ended_utc"),
            duration_s=None if duration is None else float(duration),
            counts=Counts.from_dict(data.get("counts")),
            tests=tuple(data.get("tests") or ()),
            junit_xml=data.get("junit_xml"),
            outputs=tuple(data.get("outputs") or ()),
            record=data.get("record"),
            provenance=Provenance.from_dict(data.get("provenance")),
        )


def load_verdicts(hub: Path) -> tuple[dict[str, VerdictRecord], list[str]]:
    """All readable records of `<hub>/verdicts/`, keyed by target, plus one error per bad file.

    A broken record must not hide the others: collate reports it and treats its target as
    MISSING instead of crashing.
    """
    records: dict[str, VerdictRecord] = {}
    errors: list[str] = []
    folder = Path(hub) / VERDICTS_DIR
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            rec = VerdictRecord.load(path)
        except RecordError as exc:
            errors.append(str(exc))
            continue
        if rec.target in records:
            errors.append(f"{path}: second record for target {rec.target!r}; keeping {records[rec.target].path.name}")
            continue
        records[rec.target] = rec
    return records, errors


@dataclass(frozen=True)
class GitState:
    """The repository state at the start of a run (from run.json)."""

    sha: str | None = None
    dirty: bool | None = None
    dirty_files: tuple[str, ...] = ()
    src_changed: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class RunInfo:
    """`<hub>/run.json`: which plan, when, where the bulky outputs went, and the git state."""

    path: Path
    plan: str | None
    plan_sha256: str | None
    timestamp: str | None
    artifacts: str | None
    project_root: str | None
    git: GitState
    raw: dict[str, Any]
    hub: str | None = None
    plan_id: str | None = None
    #: Targets this run selected (None when run.json does not say: assume the whole plan).
    targets: tuple[str, ...] | None = None

    @classmethod
    def load(cls, hub: Path) -> "RunInfo":
        """Parse run.json; FileNotFoundError says the hub was not created by the harness."""
        path = Path(hub) / RUN_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: no run.json, so this folder was not created by the harness "
                "(create hubs with `make phase-c4d-b3` or `python -m harness pipeline`)"
            )
        data = _read_json(path)
        plan = data.get("plan_path", data.get("plan"))
        plan_id = data.get("plan_id")
        if isinstance(plan, dict):  # {"plan": {"path": ..., "sha256": ..., "id": ...}}
            plan_sha = plan.get("sha256")
            plan_id = plan.get("id", plan_id)
            plan = plan.get("path")
        else:
            plan_sha = data.get("plan_sha256")
        git = data.get("git") or data.get("git_start") or {}
        return cls(
            path=path,
            plan=str(plan) if plan else None,
            plan_sha256=plan_sha,
            timestamp=data.get("timestamp"),
            artifacts=data.get("artifacts_dir", data.get("artifacts")),
            project_root=data.get("project_root"),
            git=GitState(
                sha=git.get("sha", git.get("git_sha")),
                dirty=git.get("dirty", git.get("git_dirty")),
                dirty_files=tuple(git.get("dirty_files") or ()),
                src_changed=tuple(git.get("src_changed") or ()),
                note=str(git.get("note") or ""),
            ),
            raw=data,
            hub=data.get("hub"),
            plan_id=plan_id,
            targets=None if data.get("targets") is None else tuple(str(t) for t in data["targets"]),
        )


# --------------------------------------------------------------------------- collated view

@dataclass(frozen=True)
class TargetResult:
    """One plan target as collate sees it: its record (if any) and the verdict collate assigns.

    `verdict` is the record's verdict, or MISSING (no record / no finished log) or INTERRUPTED
    (`<log>.partial` left behind), or RED when the record contradicts itself.
    """

    name: str
    kind: str
    command: str
    log: str
    verdict: str
    reason: str
    timeout: float | None
    record: VerdictRecord | None = None
    log_present: bool = False

    @property
    def duration_s(self) -> float | None:
        return None if self.record is None else self.record.duration_s

    @property
    def counts(self) -> Counts | None:
        return None if self.record is None else self.record.counts


@dataclass(frozen=True)
class Collation:
    """Everything collate decided about a hub; summary, manifest, risks and ledger read this.

    Paths: `hub` and `project_root` absolute; `hub_rel` and `plan_rel` relative to the root.
    `src_changes` maps when a src/ change was seen ("run start", "during <target>", "collate")
    to the files.
    """

    hub: Path
    hub_rel: str
    project_root: Path
    plan_rel: str
    plan_id: str
    plan_sha256: str
    timestamp: str
    run: RunInfo
    targets: tuple[TargetResult, ...]
    overall: str
    overall_reason: str
    collated_utc: str
    record_errors: tuple[str, ...] = ()
    extra_records: tuple[str, ...] = ()
    src_changes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    interrupted: bool = False
    partial_run: bool = False
    validation_problems: tuple[str, ...] = ()
    plan_changed: bool = False

    @property
    def green(self) -> bool:
        return self.overall == GREEN

    def abs_path(self, rel: str | Path) -> Path:
        """A project-root-relative path as an absolute one (absolute paths pass through)."""
        rel = Path(rel)
        return rel if rel.is_absolute() else self.project_root / rel


@dataclass(frozen=True)
class DatasetNote:
    """The data a command target trained on, from its TRAIN_RECORD (hashed here if missing)."""

    target: str
    file: str
    sha256: str | None
    sha256_source: str  # "record" | "computed" | "file missing"
    sidecar_sha256: str | None
    n_patterns: int | None
    n_groups: int | None
    gridsize: int | None

    @property
    def name(self) -> str:
        return Path(self.file).name

    @property
    def sidecar_matches(self) -> bool | None:
        if self.sidecar_sha256 is None or self.sha256 is None:
            return None
        return self.sidecar_sha256 == self.sha256


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks (bundles can be large)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def dataset_notes(collation: Collation) -> list[DatasetNote]:
    """One note per command target whose record names a training file."""
    notes = []
    for t in collation.targets:
        rec = (t.record.record if t.record else None) or {}
        file = rec.get("train_data_file")
        if not file:
            continue
        path = collation.abs_path(file)
        sha, source = rec.get("train_data_sha256"), "record"
        if not sha:
            sha, source = (sha256_file(path), "computed") if path.is_file() else (None, "file missing")
        sidecar = None
        sidecar_path = path.with_suffix(".json")
        if sidecar_path.is_file():
            try:
                sidecar = json.loads(sidecar_path.read_text(encoding="utf-8")).get("sha256")
            except (OSError, ValueError, AttributeError):
                sidecar = None
        notes.append(DatasetNote(
            target=t.name,
            file=str(file),
            sha256=sha,
            sha256_source=source,
            sidecar_sha256=sidecar,
            n_patterns=rec.get("n_patterns"),
            n_groups=rec.get("n_groups"),
            gridsize=rec.get("gridsize"),
        ))
    return notes
