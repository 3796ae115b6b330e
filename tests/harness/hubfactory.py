"""Hand-built hubs for compare/reproduce tests: the shape of a real four-target run, no training.

A hub is built from plain dicts, then a test edits one verdict record (`edit_verdict`) to create
exactly the disagreement it wants to see detected.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any, Callable

REPO_ROOT = Path(__file__).resolve().parents[2]
PLAN_PATH = "plans/active/ADR-003-BACKEND-API/evidence/phase_c4d_b3.toml"
PLAN_SHA = "ab" * 32
DATA_SHA = "5e" * 32

PROVENANCE = {
    "git_sha": "c1e49ef0c1e49ef0c1e49ef0c1e49ef0c1e49ef0", "git_dirty": False, "dirty_files": [],
    "python": "3.11.7", "torch": "2.13.0+cpu", "lightning": "2.6.6", "numpy": "2.4.6",
    "cuda_available": False, "cuda_visible_devices": "", "platform": "Linux-6.1-x86_64-with-glibc2.36",
    "seed": 0, "threads": 2, "pythonhashseed": "0",
}

TRAIN_RECORD = {
    "epochs": 1, "final_train_loss": 0.123456, "train_loss_history": [0.123456], "wall_seconds": 20.0,
    "gridsize": 2, "n_groups": 64, "batch_size": 4,
    "train_data_file": "tests/fixtures/pytorch_integration/minimal_dataset_v1.npz",
    "train_data_sha256": DATA_SHA, "n_patterns": 64,
    "shapes": {"diffraction": [4, 4, 64, 64], "coords_relative": [4, 4, 1, 2], "predicted_object": [4, 4, 64, 64]},
    "bundle": "artifacts/T/cli_smoke/wts.h5.zip", "checkpoint": "artifacts/T/cli_smoke/checkpoints/last.ckpt",
}

# name -> (kind, log, node ids)
TARGETS = {
    "gridsize_regression": ("pytest", "pytest_gridsize_green.log", [
        "tests/torch/test_workflows_components.py::TestWorkflowsComponentsTraining::"
        "test_lightning_training_respects_gridsize"]),
    "bundle_loader": ("pytest", "pytest_bundle_loader_green.log", [
        "tests/torch/test_integration_workflow_torch.py::test_bundle_loader_returns_modules"]),
    "integration": ("pytest", "pytest_integration_green.log", [
        "tests/torch/test_integration_workflow_torch.py::test_run_pytorch_train_save_load_infer"]),
    "cli_smoke_gs2": ("command", "manual_cli_smoke_gs2.log", []),
}


def verdict_record(name: str) -> dict[str, Any]:
    """A GREEN evidence-verdict/1 record for one of TARGETS."""
    kind, log, nodeids = TARGETS[name]
    tests = [{"nodeid": n, "outcome": "passed", "duration_s": 1.5} for n in nodeids]
    argv = (["{python}", "-m", "ptycho_torch.train", "--gridsize", "2", "--deterministic"]
            if kind == "command" else ["{python}", "-m", "pytest", nodeids[0], "-vv"])
    return {
        "schema": "evidence-verdict/1", "target": name, "session": name, "kind": kind,
        "selector": nodeids[0] if nodeids else None, "argv": argv, "log": log,
        "verdict": "GREEN", "reason": "all selected tests passed" if nodeids else "exit 0, outputs present",
        "exit_code": 0, "timed_out": False,
        "started_utc": "2026-11-29T100000Z", "ended_utc": "2026-11-29T100010Z", "duration_s": 10.0,
        "counts": {"tests": len(tests), "passed": len(tests), "failed": 0, "errors": 0, "skipped": 0, "xfailed": 0},
        "tests": tests, "junit_xml": f"artifacts/T/junit/{name}.xml" if nodeids else None,
        "outputs": [], "record": copy.deepcopy(TRAIN_RECORD) if kind == "command" else None,
        "provenance": dict(PROVENANCE),
    }


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _verdict_of(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return {"verdict": "MISSING"}


def write_manifest(hub: Path) -> None:
    """(Re)write summary.md and manifest.json (schema evidence-manifest/1) over the hub, as collate would.

    Paths are relative to the project root that build_hub recorded in run.json ("hub").
    """
    order = list(TARGETS)
    paths = sorted((hub / "verdicts").glob("*.json"), key=lambda p: order.index(p.stem) if p.stem in order else 99)
    verdicts = {p.stem: _verdict_of(p) for p in paths}
    overall = "GREEN" if verdicts and all(v.get("verdict") == "GREEN" for v in verdicts.values()) else "RED"
    red = [n for n, v in verdicts.items() if v.get("verdict") != "GREEN"]
    reason = f"not GREEN: {', '.join(red)}" if red else "every target GREEN; src/ untouched"
    (hub / "summary.md").write_text(f"# {hub.name}\n\noverall: {overall}\n")
    run = json.loads((hub / "run.json").read_text())
    hub_rel = run["hub"]
    logs = {v.get("log"): n for n, v in verdicts.items()}
    artifacts = []
    for path in sorted(p for p in hub.rglob("*") if p.is_file() and p.name not in ("manifest.json", "INCOMPLETE")):
        rel = path.relative_to(hub).as_posix()
        target = logs.get(rel) or (path.stem if rel.startswith("verdicts/") else None)
        artifacts.append({"path": f"{hub_rel}/{rel}", "bytes": path.stat().st_size, "sha256": _sha(path),
                          "verdict": verdicts[target].get("verdict") if target in verdicts else None,
                          "target": target, "role": "log" if rel in logs else "other", "location": "hub"})
    manifest = {
        "schema": "evidence-manifest/1", "hub": hub_rel, "plan": run["plan"], "timestamp": hub.name,
        "collated_utc": "2026-11-29T12:00:00Z", "overall_verdict": overall, "overall_reason": reason,
        "complete": True, "partial_run": False, "src_changes": {}, "git": run["git"],
        "targets": [{"name": n, "kind": v.get("kind"), "verdict": v.get("verdict"), "reason": v.get("reason"),
                     "log": v.get("log"), "duration_s": v.get("duration_s"), "counts": v.get("counts")}
                    for n, v in verdicts.items()],
        "artifacts": artifacts,
    }
    (hub / "manifest.json").write_text(json.dumps(manifest, indent=2))


def build_hub(hub: Path, targets: tuple[str, ...] = tuple(TARGETS), plan_sha: str = PLAN_SHA,
              root: Path | None = None) -> Path:
    """A finished hub (run.json, logs, verdicts/, summary.md, manifest.json), every target GREEN.

    `root` is the project root the hub's paths are relative to (default: the hub's parent).
    """
    (hub / "verdicts").mkdir(parents=True)
    (hub / "run.json").write_text(json.dumps({
        "schema": "evidence-run/1", "plan": {"path": PLAN_PATH, "sha256": plan_sha, "id": "ADR-003-BACKEND-API/C4.D.B3"},
        "timestamp": hub.name, "artifacts": f"artifacts/{hub.name}", "project_root": "/somewhere/else",
        "hub": hub.relative_to(root).as_posix() if root else hub.name,
        "targets": list(targets), "git": {"sha": PROVENANCE["git_sha"], "dirty": False, "dirty_files": []},
    }))
    ordered = [n for n in TARGETS if n in targets]
    for name in ordered:
        record = verdict_record(name)
        (hub / record["log"]).write_text(f"log of {name} in {hub.name}\n")
        (hub / "verdicts" / f"{name}.json").write_text(json.dumps(record, indent=2))
    write_manifest(hub)
    return hub


def edit_verdict(hub: Path, name: str, change: Callable[[dict[str, Any]], None]) -> None:
    """Apply `change` to one verdict record in place, then refresh the manifest hashes."""
    path = hub / "verdicts" / f"{name}.json"
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record, indent=2))
    write_manifest(hub)


def write_plan(path: Path, compare_table: str) -> Path:
    """A copy of the real evidence plan whose `[compare]` table is replaced by `compare_table`."""
    text = (REPO_ROOT / PLAN_PATH).read_text()
    start, end = text.index("[compare]"), text.index("[[targets]]")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text[:start] + compare_table.strip() + "\n\n" + text[end:])
    return path
