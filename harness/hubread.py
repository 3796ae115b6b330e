"""Read a finished hub for comparison, turning every missing or old-format piece into a message.

`compare` and `reproduce` read hubs made elsewhere: by a teammate, by an older harness, or by
hand. Such a hub must never produce a traceback, only a list of what is missing and how to fix
it. Reading never writes: a teammate's hub stays byte-for-byte as it was.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.records import (
    INCOMPLETE_MARKER,
    MANIFEST_FILE,
    VERDICTS_DIR,
    RecordError,
    RunInfo,
    VerdictRecord,
    load_verdicts,
)

MANIFEST_SCHEMA = "evidence-manifest/1"


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


def _manifest(hub: Path, problems: list[str]) -> dict[str, Any]:
    path = hub / MANIFEST_FILE
    if not path.exists():
        problems.append(
            f"{path} is missing: the hub was made by an older harness, by hand, or never "
            f"collated; if it is a finished run, `python -m harness collate {hub}` writes it"
        )
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        problems.append(f"{path} is not readable JSON ({exc}); rerun collate on a finished hub")
        return {}
    if not isinstance(data, dict) or data.get("schema") != MANIFEST_SCHEMA:
        schema = data.get("schema") if isinstance(data, dict) else None
        problems.append(
            f"{path} has schema {schema!r}, expected {MANIFEST_SCHEMA!r} "
            "(written by another harness version: rerun the plan with this harness)"
        )
        return {}
    return data


def _manifest_targets(manifest: dict[str, Any]) -> list[str]:
    """Target names listed by the manifest, in its order (empty when it lists none)."""
    targets = manifest.get("targets") or []
    if isinstance(targets, dict):
        return [str(name) for name in targets]
    names = []
    for item in targets:
        name = item if isinstance(item, str) else None
        if isinstance(item, dict):
            name = item.get("name") or item.get("target")
        if name:
            names.append(str(name))
    return names


def _external_validation(hub: Path) -> list[str]:
    """Problems reported by `harness.manifest.validate`, when that module is installed."""
    try:
        from harness import manifest as manifest_module  # noqa: PLC0415 (optional, owned by D)
    except ImportError:
        return []
    validate = getattr(manifest_module, "validate", None)
    if validate is None:
        return []
    result = validate(hub)
    if result is None or result is True:
        return []
    if result is False:
        return [f"`python -m harness validate {hub}` fails"]
    problems = getattr(result, "problems", None)
    if problems is None and isinstance(result, (list, tuple)):
        problems = result
    return [f"validate: {p}" for p in (problems or [])]


def read_hub(path: str | Path, *, validate: bool = True) -> Hub:
    """Read and check a finished hub; raise HubUnreadable listing everything that is wrong."""
    hub = Path(path)
    if not hub.exists():
        raise HubUnreadable(hub, [f"{hub} does not exist (check the path; hubs live under the plan's reports/ folder)"])
    if not hub.is_dir():
        raise HubUnreadable(hub, [f"{hub} is a file, expected a hub folder (the one holding {MANIFEST_FILE})"])

    problems: list[str] = []
    if (hub / INCOMPLETE_MARKER).exists():
        problems.append(
            f"{hub / INCOMPLETE_MARKER} exists: the run was interrupted or is still running; "
            "rerun the plan (`make phase-c4d-b3`) and compare the new hub"
        )
    run = None
    try:
        run = RunInfo.load(hub)
    except (FileNotFoundError, RecordError) as exc:
        problems.append(str(exc))
    manifest = _manifest(hub, problems)

    verdicts, errors = load_verdicts(hub)
    problems.extend(errors)
    if not verdicts and not errors:
        problems.append(
            f"{hub / VERDICTS_DIR} holds no verdict records (<target>.json): the hub predates "
            "per-target verdicts or no target ran; rerun the plan with this harness"
        )
    listed = _manifest_targets(manifest)
    for name in listed:
        if name not in verdicts and not (hub / VERDICTS_DIR / f"{name}.json").exists():
            problems.append(f"{hub / MANIFEST_FILE} lists target {name!r} but {hub / VERDICTS_DIR / name}.json is missing")
    if listed:  # run order from the manifest, any extras after
        verdicts = {n: verdicts[n] for n in listed if n in verdicts} | verdicts

    if validate and not problems:
        problems.extend(_external_validation(hub))
    if problems or run is None:
        raise HubUnreadable(hub, problems)
    return Hub(path=hub, run=run, manifest=manifest, verdicts=verdicts)


def hash_tree(root: Path) -> dict[str, str]:
    """sha256 of every file under root (relative posix path -> hex): a before/after fingerprint."""
    digests: dict[str, str] = {}
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        digests[file.relative_to(root).as_posix()] = hashlib.sha256(file.read_bytes()).hexdigest()
    return digests
