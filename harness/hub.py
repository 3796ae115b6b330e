"""Create a timestamped evidence hub, and write files atomically.

A hub is one run's folder of logs and verdicts. It is never overwritten: a clash in the same
second gets a `-2`, `-3` suffix, and an explicitly named hub that already exists is refused.
`INCOMPLETE` marks a run that collate has not finished; `run.json` records what the run started
from. Stdlib-only: the noxfile calls `create_hub` in nox's own interpreter.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.plan import EvidencePlan
from harness.provenance import git_state

TIMESTAMP_FORMAT = "%Y-%m-%dT%H%M%SZ"
RUN_SCHEMA = "evidence-run/1"
RUN_FILE = "run.json"
INCOMPLETE = "INCOMPLETE"
VERDICTS_DIR = "verdicts"
MAX_SUFFIX = 100


class HubExistsError(FileExistsError):
    """An explicitly requested hub exists already; hubs are never overwritten."""


def new_timestamp(now: datetime | None = None) -> str:
    """UTC timestamp in the seed's form, e.g. `2025-10-20T111500Z`."""
    return (now or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime(TIMESTAMP_FORMAT)


def utc_now_iso() -> str:
    """UTC time with seconds, for logs and records."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write `text` via a temp file in the same folder and `os.replace`: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(path: str | Path, data: Any) -> Path:
    """`atomic_write_text` of pretty, key-stable JSON with a trailing newline."""
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def relative_to_root(path: Path, root: Path) -> str:
    """`path` relative to the project root when inside it, else absolute (records stay portable)."""
    path, root = Path(path).resolve(), Path(root).resolve()
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


@dataclass(frozen=True)
class Hub:
    """An existing hub folder and what run.json says about it."""

    path: Path
    timestamp: str
    artifacts: Path
    project_root: Path

    @property
    def verdicts(self) -> Path:
        return self.path / VERDICTS_DIR


def _claim(path: Path) -> bool:
    """Create `path` (parents allowed) only if it did not exist; atomic against a concurrent run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir()
    except FileExistsError:
        return False
    return True


def create_hub(
    plan: EvidencePlan,
    project_root: str | Path,
    timestamp: str | None = None,
    explicit: str | Path | None = None,
) -> Hub:
    """Create a fresh hub + artifacts folder, write INCOMPLETE and run.json; never reuse a folder."""
    root = Path(project_root).resolve()
    base = timestamp or new_timestamp()
    if explicit is not None:
        hub_path = Path(explicit)
        hub_path = (hub_path if hub_path.is_absolute() else root / hub_path).resolve()
        if hub_path.exists() or not _claim(hub_path):
            raise HubExistsError(
                f"hub {hub_path} exists already; a hub is never overwritten. "
                "Pick a new HUB= path, or omit it to get a fresh timestamped hub."
            )
        stamp = _free_artifacts_stamp(plan, root, base)
    else:
        for n in range(1, MAX_SUFFIX + 1):
            stamp = base if n == 1 else f"{base}-{n}"
            hub_path = root / plan.hub_for(stamp)
            if (root / plan.artifacts_for(stamp)).exists():
                continue
            if _claim(hub_path):
                break
        else:
            raise HubExistsError(f"{MAX_SUFFIX} hubs exist for timestamp {base} under {root}; clean up or retry")
    artifacts = root / plan.artifacts_for(stamp)
    artifacts.mkdir(parents=True, exist_ok=True)
    (hub_path / VERDICTS_DIR).mkdir()
    hub = Hub(path=hub_path, timestamp=stamp, artifacts=artifacts, project_root=root)
    atomic_write_text(
        hub_path / INCOMPLETE,
        f"run started {utc_now_iso()}; collate removes this file once every target has finished\n",
    )
    atomic_write_json(hub_path / RUN_FILE, run_record(plan, hub))
    return hub


def _free_artifacts_stamp(plan: EvidencePlan, root: Path, base: str) -> str:
    for n in range(1, MAX_SUFFIX + 1):
        stamp = base if n == 1 else f"{base}-{n}"
        if _claim(root / plan.artifacts_for(stamp)):
            return stamp
    raise HubExistsError(f"{MAX_SUFFIX} artifact folders exist for timestamp {base}; clean artifacts/ or retry")


def run_record(plan: EvidencePlan, hub: Hub) -> dict[str, Any]:
    """The content of run.json (schema `evidence-run/1`, documented in docs/harness.md)."""
    git = git_state(hub.project_root)
    return {
        "schema": RUN_SCHEMA,
        "plan": {
            "path": relative_to_root(plan.path, hub.project_root),
            "sha256": plan.sha256,
            "id": plan.id,
        },
        "timestamp": hub.timestamp,
        "created_utc": utc_now_iso(),
        "hub": relative_to_root(hub.path, hub.project_root),
        "artifacts": relative_to_root(hub.artifacts, hub.project_root),
        "project_root": str(hub.project_root),
        "targets": [t.name for t in plan.targets],
        "git": git.as_dict(),
    }


def open_hub(path: str | Path, project_root: str | Path) -> Hub:
    """An existing hub created by `create_hub`; FileNotFoundError says how to make one."""
    hub_path = Path(path)
    root = Path(project_root).resolve()
    hub_path = (hub_path if hub_path.is_absolute() else root / hub_path).resolve()
    run_file = hub_path / RUN_FILE
    if not run_file.is_file():
        raise FileNotFoundError(
            f"{run_file}: not a hub created by the harness; create one with "
            "`python -m harness pipeline` or omit --hub to get a fresh one"
        )
    data = json.loads(run_file.read_text(encoding="utf-8"))
    artifacts = Path(data["artifacts"])
    return Hub(
        path=hub_path,
        timestamp=str(data["timestamp"]),
        artifacts=artifacts if artifacts.is_absolute() else root / artifacts,
        project_root=root,
    )
