"""Upgrade hub files of format 1 (flat provenance in verdict records, manifest paths relative to the project) to
the current shapes: `harness.schema.read_json` hands format-1 data here. Nothing is ever written in format 1."""

from __future__ import annotations

from typing import Any

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
    hub, entries = str(data.get("hub") or ""), data.get("artifacts") or ()
    files = [{**e, "path": str(e.get("path") or "").removeprefix(hub + "/")} for e in entries
             if isinstance(e, dict) and e.get("location") == "hub"]
    external = [e for e in entries if not (isinstance(e, dict) and e.get("location") == "hub")]
    return {**data, "files": files, "external": external, "format": 1}


def upgrade(schema: str, data: dict[str, Any]) -> dict[str, Any]:
    """`data` of the format-1 predecessor of `schema`, in the shape of `schema`."""
    return {"evidence-verdict/2": _verdict, "evidence-run/2": _run, "evidence-manifest/2": _manifest}[schema](data)
