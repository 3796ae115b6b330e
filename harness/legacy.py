"""Upgrade hub files of format 1 (the hubs shipped before hub format 2) to the current shapes.

Format 1 kept provenance flat in each verdict record, and listed every file of a manifest with
a path relative to the project root. Readers never see those shapes: `harness.schema.read_json`
hands format-1 data here and gets format-2 data back. Nothing is ever written in format 1.
"""

from __future__ import annotations

from typing import Any

#: Current schema -> the format-1 schema it can upgrade.
V1 = {
    "evidence-verdict/2": "evidence-verdict/1",
    "evidence-run/2": "evidence-run/1",
    "evidence-manifest/2": "evidence-manifest/1",
}
_RUNTIME_KEYS = ("python", "platform", "executable", "torch", "lightning", "numpy", "cuda_available",
                 "cuda_visible_devices", "pythonhashseed")


def _git(data: dict[str, Any]) -> dict[str, Any]:
    """Format-1 git state (`src_changed`, or flat `git_sha`/`git_dirty`) as a GitState dict."""
    return {"sha": data.get("sha", data.get("git_sha")), "dirty": data.get("dirty", data.get("git_dirty")),
            "dirty_files": list(data.get("dirty_files") or ()),
            "production_changed": list(data.get("src_changed") or ()), "note": str(data.get("note") or "")}


def _verdict(data: dict[str, Any]) -> dict[str, Any]:
    flat = data.get("provenance") or {}
    provenance = {"git": _git(flat), "runtime": {k: flat.get(k) for k in _RUNTIME_KEYS if k in flat},
                  "seed": flat.get("seed"), "threads": flat.get("threads")}
    lists = {k: data[k] or [] for k in ("argv", "tests", "outputs", "figures") if k in data}  # format 1 wrote null
    return {**data, **lists, "provenance": provenance}


def _run(data: dict[str, Any]) -> dict[str, Any]:
    plan = data.get("plan")
    if not isinstance(plan, dict):
        plan = {"path": data.get("plan_path", plan), "sha256": data.get("plan_sha256"), "id": data.get("plan_id")}
    git = _git(data.get("git") or data.get("git_start") or {})
    return {**data, "plan": plan, "git": git, "artifacts": data.get("artifacts_dir", data.get("artifacts")),
            "project_commit": git["sha"]}


def _manifest(data: dict[str, Any]) -> dict[str, Any]:
    """Split format 1's one `artifacts` list into hub files (made hub-relative) and external files."""
    hub = str(data.get("hub") or "")
    files, external = [], []
    for entry in data.get("artifacts") or ():
        if isinstance(entry, dict) and entry.get("location") == "hub":
            files.append({**entry, "path": str(entry.get("path") or "").removeprefix(hub + "/")})
        else:
            external.append(entry)
    return {**data, "files": files, "external": external, "format": 1}


def upgrade(schema: str, data: dict[str, Any]) -> dict[str, Any]:
    """`data` of the format-1 predecessor of `schema`, in the shape of `schema`."""
    upgrade_one = {"evidence-verdict/2": _verdict, "evidence-run/2": _run, "evidence-manifest/2": _manifest}[schema]
    return upgrade_one(data)
