"""A finished hub as compare and reproduce read it (`HubView`), and why one cannot be (`HubUnreadable`).

Hubs to compare come from anywhere: a teammate's clone, an older harness (format 1), a copy in
another folder. Reading one never needs the machine it was made on, never writes to it, and
never ends in a traceback: whatever is missing becomes a message in `HubUnreadable`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness import UserError
from harness.fsio import sha256_file
from harness.schema import EnvironmentRecord, PlanRef, RunRecord, VerdictRecord


class HubUnreadable(UserError):
    """A hub cannot be compared; `problems` says what is missing and how to fix it."""

    def __init__(self, hub: Path, problems: list[str]) -> None:
        self.hub = hub
        self.problems = list(dict.fromkeys(problems))
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"hub {hub} cannot be compared:\n{lines}")


@dataclass(frozen=True)
class HubView:
    """The parts of a finished hub that comparison needs (parsed records; nothing is re-run)."""

    path: Path
    verdicts: dict[str, VerdictRecord]
    overall: str
    overall_reason: str
    plan: PlanRef
    run: RunRecord | None = None
    environment: EnvironmentRecord | None = None
    handmade: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)  # e.g. a hand-made summary's over-claims

    @property
    def targets(self) -> list[str]:
        return list(self.verdicts)

    @property
    def git_sha(self) -> str | None:
        shas = {r.provenance.git.sha for r in self.verdicts.values() if r.provenance.git.known}
        return ", ".join(sorted(shas)) or (self.run.project_commit if self.run else None)


def hash_tree(root: Path) -> dict[str, str]:
    """sha256 of every file under root (relative posix path -> hex): a before/after fingerprint."""
    return {p.relative_to(root).as_posix(): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}
