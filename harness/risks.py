"""Derive the "remaining risks" of a collated hub from what the run actually left behind.

A reviewer should not have to read four logs to learn that a target was skipped, that the CLI
still warns about deprecated flags, that the tree was dirty, or that a target used most of its
timeout. Every risk here is computed from the hub (records, logs, run.json, git), never typed
by hand; "blocker" risks are the reasons the run is not GREEN, "warning" risks do not block.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.records import GREEN, Collation, DatasetNote, fmt_duration

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


def derive_risks(collation: Collation, datasets: list[DatasetNote] | None = None) -> list[Risk]:
    """All risks of a hub, blockers first, in a stable order."""
    risks: list[Risk] = []
    c = collation
    if c.interrupted:
        risks.append(Risk(BLOCKER, "The run was interrupted: a target left its log as `.partial`; "
                                   "the hub stays INCOMPLETE and the ledger was not touched."))
    if c.partial_run:
        selected = ", ".join(c.run.targets or ())
        risks.append(Risk(BLOCKER, f"Only part of the plan was selected for this run ({selected}); "
                                   "a partial run never updates the ledger."))
    for t in c.targets:
        if t.verdict != GREEN:
            risks.append(Risk(BLOCKER, f"`{t.name}` is {t.verdict}: {t.reason}", t.name))
    src_files = sorted({f for files in c.src_changes.values() for f in files})
    if src_files:
        phases = ", ".join(phase for phase, files in c.src_changes.items() if files)
        risks.append(Risk(BLOCKER, f"Files under src/ differ from HEAD ({phases}): "
                                   f"{', '.join(f'`{f}`' for f in src_files)}; evidence-only runs must not "
                                   "change production code."))
    for problem in c.validation_problems:
        risks.append(Risk(BLOCKER, f"validate: {problem}"))
    for error in c.record_errors:
        risks.append(Risk(BLOCKER, f"Unreadable verdict record: {error}"))
    for extra in c.extra_records:
        risks.append(Risk(WARNING, f"Verdict record for `{extra}`, which is not a target of the plan (ignored)."))
    if c.plan_changed:
        risks.append(Risk(WARNING, f"The plan file `{c.plan_rel}` changed since the run started "
                                   "(sha256 differs from run.json); the summary uses the current file."))

    dirty = sorted(set(c.run.git.dirty_files).union(*(t.record.provenance.dirty_files for t in c.targets if t.record)))
    if dirty:
        risks.append(Risk(WARNING, f"The working tree was dirty (tracked files differ from HEAD): "
                                   f"{', '.join(f'`{f}`' for f in dirty[:10])}"
                                   + (f" and {len(dirty) - 10} more" if len(dirty) > 10 else "") + "."))
    shas = sorted({t.record.provenance.git_sha for t in c.targets if t.record and t.record.provenance.git_sha}
                  | ({c.run.git.sha} if c.run.git.sha else set()))
    if len(shas) > 1:
        risks.append(Risk(WARNING,
                          f"Targets ran on different commits ({', '.join(s[:12] for s in shas)}): HEAD moved during the run."))
    for t in c.targets:
        prov = t.record.provenance if t.record else None
        if prov and (prov.cuda_available or (prov.cuda_visible_devices not in ("", None))):
            risks.append(Risk(WARNING, f"`{t.name}`: GPU not hidden (CUDA_VISIBLE_DEVICES="
                                       f"{prov.cuda_visible_devices!r}, cuda_available={prov.cuda_available}).", t.name))

    for t in c.targets:
        scan = scan_deprecations(c.hub / t.log) if t.log_present else None
        if scan:
            risks.append(Risk(WARNING, f"`{scan.log}`: {scan.count} DeprecationWarning line(s); first: `{scan.first}`", t.name))
    for t in c.targets:
        if t.duration_s is not None and t.timeout and t.duration_s >= SLOW_FRACTION * t.timeout:
            risks.append(Risk(WARNING, f"`{t.name}` took {fmt_duration(t.duration_s)}, {t.duration_s / t.timeout:.0%} of its "
                                       f"{fmt_duration(t.timeout)} timeout: a slower machine may time out.", t.name))
    for note in datasets or []:
        if note.sha256 is None:
            risks.append(Risk(WARNING, f"Dataset `{note.file}` of `{note.target}` has no sha256 and is not on disk to hash."))
        elif note.sidecar_matches is False:
            risks.append(Risk(WARNING,
                              f"Dataset `{note.name}` sha256 {note.sha256[:12]}… does not match its sidecar "
                              f"({note.sidecar_sha256[:12]}…): the fixture changed."))
    return sorted(risks, key=lambda r: 0 if r.severity == BLOCKER else 1)
