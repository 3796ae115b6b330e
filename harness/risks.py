"""Derive the "remaining risks" of a collated hub from what the run actually left behind.

A reviewer should not have to read four logs to learn that a target was skipped, that the CLI
still warns about deprecated flags, that the tree was dirty, or that a target used most of its
timeout. Every risk here is computed from the hub (records, logs, run.json, git), never typed
by hand; "blocker" risks are the reasons the run is not GREEN, "warning" risks do not block.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.collation import Collation, changed_files
from harness.fsio import sha256_file
from harness.reporting import fmt_duration
from harness.schema import Verdict

BLOCKER = "blocker"
WARNING = "warning"
#: A target that used at least this fraction of its timeout is flagged as slow.
SLOW_FRACTION = 0.5
_EXAMPLE_CHARS = 160


@dataclass(frozen=True)
class Risk:
    """One risk line: severity, the target it concerns (or None) and a sentence."""

    severity: str
    text: str
    target: str | None = None


@dataclass(frozen=True)
class WarningScan:
    """DeprecationWarning lines of one log: how many and the first one."""

    log: str
    count: int
    first: str


def scan_deprecations(log_path: Path) -> WarningScan | None:
    """Count lines mentioning DeprecationWarning in a log (None when there are none)."""
    if not log_path.is_file():
        return None
    count, first = 0, ""
    with log_path.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if "DeprecationWarning" in line:
                count += 1
                if not first:
                    first = line.strip()
    if not count:
        return None
    if len(first) > _EXAMPLE_CHARS:
        first = first[: _EXAMPLE_CHARS - 1] + "…"
    return WarningScan(log_path.name, count, first)


@dataclass(frozen=True)
class DatasetNote:
    """The data a command target trained on, from its TRAIN_RECORD (hashed here if the record lacks it)."""

    target: str
    file: str
    sha256: str | None
    computed: bool
    sidecar_sha256: str | None
    record: dict[str, Any]


def dataset_notes(c: Collation) -> list[DatasetNote]:
    notes = []
    for t in c.targets:
        rec = t.train_record
        if not rec.get("train_data_file"):
            continue
        path = c.ctx.path(rec["train_data_file"])
        sha = rec.get("train_data_sha256") or (sha256_file(path) if path.is_file() else None)
        try:
            sidecar = json.loads(path.with_suffix(".json").read_text(encoding="utf-8")).get("sha256")
        except (OSError, ValueError, AttributeError):
            sidecar = None
        notes.append(DatasetNote(t.name, str(rec["train_data_file"]), sha, not rec.get("train_data_sha256"), sidecar, rec))
    return notes


def derive_risks(c: Collation) -> list[Risk]:
    """All risks of a hub, blockers first, in a stable order."""
    risks: list[Risk] = []
    run = c.hub.run
    if c.interrupted:
        risks.append(Risk(BLOCKER, "The run was interrupted: a target left its log as `.partial`; "
                                   "the hub stays INCOMPLETE and the ledger was not touched."))
    if c.partial_run:
        risks.append(Risk(WARNING, f"A partial hub: {len(c.targets)} of the plan's {len(c.ctx.plan.targets)} targets "
                                   f"({', '.join(t.name for t in c.targets)}); its verdict covers those only, and "
                                   "it never updates the ledger."))
    for t in c.targets:
        if t.verdict != Verdict.GREEN:
            risks.append(Risk(BLOCKER, f"`{t.name}` is {t.verdict}: {t.reason}", t.name))
    changed = changed_files(c.production_changes)
    if changed:
        phases = ", ".join(phase for phase, files in c.production_changes.items() if files)
        risks.append(Risk(BLOCKER, f"Production files differ from HEAD ({phases}): {', '.join(f'`{f}`' for f in changed)}; "
                                   "evidence-only runs must not change production code."))
    if not run.git.known:
        risks.append(Risk(BLOCKER, f"The checkout is not a git repository: commit {run.project_commit or 'unknown'} "
                                   f"({run.commit_source}); the production-code guard was not checked."))
    risks += [Risk(BLOCKER, f"validate: {p}") for p in c.validation_problems]
    risks += [Risk(BLOCKER, f"Unreadable verdict record: {e}") for e in c.record_errors]
    risks += [Risk(WARNING, f"Verdict record for `{x}`, which is not a target of the plan (ignored).") for x in c.extra_records]
    if c.plan_changed:
        risks.append(Risk(WARNING, f"The plan file `{c.ctx.plan_label}` changed since the run started "
                                   "(sha256 differs from run.json); the summary uses the current file."))
    records = [t.record for t in c.targets if t.record]
    dirty = sorted(set(run.git.dirty_files).union(*(r.provenance.git.dirty_files for r in records)))
    if dirty:
        risks.append(Risk(WARNING, f"The working tree was dirty (tracked files differ from HEAD): "
                                   f"{', '.join(f'`{f}`' for f in dirty[:10])}"
                                   + (f" and {len(dirty) - 10} more" if len(dirty) > 10 else "") + "."))
    shas = sorted({r.provenance.git.sha for r in records if r.provenance.git.known} | ({run.git.sha} if run.git.known else set()))
    if len(shas) > 1:
        risks.append(Risk(WARNING, f"Targets ran on different commits ({', '.join(s[:12] for s in shas)}): HEAD moved."))
    for t in c.targets:
        r = t.record.provenance.runtime if t.record else None
        if r and (r.cuda_available or r.cuda_visible_devices not in ("", None)):
            risks.append(Risk(WARNING, f"`{t.name}`: GPU not hidden (CUDA_VISIBLE_DEVICES={r.cuda_visible_devices!r}, "
                                       f"cuda_available={r.cuda_available}).", t.name))
    for t in c.targets:
        scan = scan_deprecations(c.hub.path / t.log) if t.log_present else None
        if scan:
            risks.append(Risk(WARNING, f"`{scan.log}`: {scan.count} DeprecationWarning line(s); first: `{scan.first}`", t.name))
        if t.duration_s is not None and t.duration_s >= SLOW_FRACTION * t.target.timeout:
            risks.append(Risk(WARNING, f"`{t.name}` took {fmt_duration(t.duration_s)}, {t.duration_s / t.target.timeout:.0%} "
                                       f"of its {fmt_duration(t.target.timeout)} timeout: a slower machine may time out.", t.name))
    for note in dataset_notes(c):
        if note.sha256 is None:
            risks.append(Risk(WARNING, f"Dataset `{note.file}` of `{note.target}` has no sha256 and is not on disk to hash."))
        elif note.sidecar_sha256 and note.sidecar_sha256 != note.sha256:
            risks.append(Risk(WARNING, f"Dataset `{Path(note.file).name}` sha256 {note.sha256[:12]}… does not match its "
                                       f"sidecar ({note.sidecar_sha256[:12]}…): the fixture changed."))
    return sorted(risks, key=lambda r: 0 if r.severity == BLOCKER else 1)
