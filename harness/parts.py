"""The kept parts of a merged hub (`parts/<target>/`, written by merge), read by collate and the summary; apart from
merge so that collating imports no merge code."""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from harness.schema import EnvironmentRecord, FileEntry, HubFiles, Manifest, RunRecord, SchemaError


@dataclass(frozen=True)
class Origin:
    """Where one target of a merged hub ran: its part's run.json and environment.json."""
    target: str
    run: RunRecord
    environment: EnvironmentRecord | None


def origins(hub: Path) -> list[Origin]:
    """Each kept part of a merged hub, by target ([] for a hub made in one run)."""
    found = []
    for path in sorted((hub / HubFiles.PARTS).glob(f"*/{HubFiles.RUN}")):
        with suppress(SchemaError):  # validate reports a changed file; the summary shows what it can read
            found.append(Origin(path.parent.name, RunRecord.load(path.parent), EnvironmentRecord.load(path.parent)))
    return found


def part_external(hub: Path) -> dict[str, FileEntry]:
    """The files outside the hub that the kept parts' manifests vouch for, by project-relative path."""
    found: dict[str, FileEntry] = {}
    for path in sorted((hub / HubFiles.PARTS).glob(f"*/{HubFiles.MANIFEST}")):
        try:
            entries = Manifest.load(path.parent).external
        except SchemaError:
            continue
        found.update({e.path: e for e in entries if e.target == path.parent.name and not e.missing})
    return found
