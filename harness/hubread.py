"""Read a finished hub for comparison, turning every missing or old-format piece into a message.

`compare` and `reproduce` read hubs made elsewhere: by a teammate, by an older harness, or by
hand. Such a hub must never produce a traceback, only a list of what is missing and how to fix
it. Reading never writes: a teammate's hub stays byte-for-byte as it was.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.manifest import validate
from harness.records import (
    MANIFEST_FILE,
    VERDICTS_DIR,
    RecordError,
    RunInfo,
    VerdictRecord,
    load_verdicts,
    sha256_file,
)


class HubUnreadable(Exception):
    """A hub cannot be compared; `problems` says what is missing and how to fix it."""

    def __init__(self, hub: Path, problems: list[str]) -> None:
        self.hub = hub
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"hub {hub} cannot be compared:\n{lines}")


@dataclass(frozen=True)
class Hub:
    """The parts of a finished hub that comparison needs (parsed records, nothing re-run)."""

    path: Path
    run: RunInfo
    manifest: dict[str, Any]
    verdicts: dict[str, VerdictRecord] = field(default_factory=dict)

    @property
    def targets(self) -> list[str]:
        """Target names in run order (manifest order when it lists them, else file order)."""
        return list(self.verdicts)

    def plan_ref(self) -> tuple[str | None, str | None]:
        """(plan path relative to the project root, sha256) recorded by the run."""
        plan = self.manifest.get("plan")
        if isinstance(plan, dict) and plan.get("path"):
            return str(plan["path"]), plan.get("sha256")
        return self.run.plan, self.run.plan_sha256


def _validation(hub: Path) -> tuple[list[str], dict[str, Any]]:
    """Integrity problems from `harness validate` (bulky artifacts outside the hub may be absent).

    RED verdicts are left out: a RED hub is still a sound hub to compare, and finding RED
    targets is what compare is for.
    """
    result = validate(hub, hub_only=True)
    return list(result.integrity_problems), result.manifest or {}


def _manifest_targets(manifest: dict[str, Any]) -> list[str]:
    """Target names listed by the manifest, in run order."""
    return [str(t["name"]) for t in manifest.get("targets") or [] if isinstance(t, dict) and t.get("name")]


def read_hub(path: str | Path) -> Hub:
    """Read and check a finished hub; raise HubUnreadable listing everything that is wrong.

    A hub is comparable when `validate` finds nothing wrong with its integrity (files present
    with their recorded hashes, manifest consistent); RED verdicts are allowed, since finding
    them is what compare is for.
    """
    hub = Path(path)
    if not hub.exists():
        raise HubUnreadable(hub, [f"{hub} does not exist (check the path; hubs live under the plan's reports/ folder)"])
    if not hub.is_dir():
        raise HubUnreadable(hub, [f"{hub} is a file, expected a hub folder (the one holding {MANIFEST_FILE})"])

    problems, manifest = _validation(hub)
    run = None
    try:
        run = RunInfo.load(hub)
    except (FileNotFoundError, RecordError) as exc:
        problems.append(str(exc))
    verdicts, errors = load_verdicts(hub)
    problems.extend(errors)
    if not verdicts and not errors:
        problems.append(
            f"{hub / VERDICTS_DIR} holds no verdict records (<target>.json): the hub predates "
            "per-target verdicts or no target ran; rerun the plan with this harness"
        )
    if problems or run is None:
        raise HubUnreadable(hub, list(dict.fromkeys(problems)))  # validate and records may say the same
    order = _manifest_targets(manifest)
    verdicts = {n: verdicts[n] for n in order if n in verdicts} | verdicts  # run order, extras last
    return Hub(path=hub, run=run, manifest=manifest, verdicts=verdicts)


def hash_tree(root: Path) -> dict[str, str]:
    """sha256 of every file under root (relative posix path -> hex): a before/after fingerprint."""
    digests: dict[str, str] = {}
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        digests[file.relative_to(root).as_posix()] = sha256_file(file)
    return digests
