"""Hand-built projects and hubs for the collate / summary / manifest / ledger tests.

A project is a tiny git repository in tmp_path holding a src/ file, a fixture with its sidecar,
a three-target evidence plan, and copies of the shipped ledger documents (so the tests also prove
that the real plan.md and fix_plan.md work with the ledger code). A hub is created with the
harness's own `create_hub` (real run.json and git state); the test then writes the logs and
verdict records that the runner would have written, choosing each target's outcome.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from harness.hub import create_hub
from harness.plan import load_plan

REPO = Path(__file__).resolve().parents[2]
# The ledger documents as shipped before any evidence run (B3 [P], last attempt #34): the real
# ones change with every `make phase-c4d-b3`, so tests start from this frozen copy.
LEDGER_BASELINE = Path(__file__).resolve().parent / "ledger_baseline"
PLAN_MD = "plans/active/ADR-003-BACKEND-API/reports/2025-10-20T083500Z/phase_c4d_blockers/plan.md"
FIX_PLAN = "docs/fix_plan.md"
PLAN_TOML = "plans/active/ADR-003-BACKEND-API/evidence/plan.toml"
FIXTURE = "tests/fixtures/data_v1.npz"
TIMESTAMP = "2026-11-29T101500Z"
SELECTORS = {
    "unit": "tests/test_unit.py::TestUnit::test_gridsize",
    "integration": "tests/test_integration.py::test_round_trip",
}
LOGS = {"unit": "pytest_unit_green.log", "integration": "pytest_integration_green.log", "smoke": "cli_smoke.log"}

PLAN = f"""
[plan]
id = "TEST/C4.D.B3"
title = "collate test plan"
hub = "plans/active/ADR-003-BACKEND-API/reports/{{timestamp}}/phase_c4d_at_parallel"
artifacts = "artifacts/{{timestamp}}"

[ledger]
plan_file = "{PLAN_MD}"
row = "B3"
fix_plan = "{FIX_PLAN}"

[[targets]]
name = "unit"
session = "unit"
kind = "pytest"
selector = "{SELECTORS['unit']}"
log = "{LOGS['unit']}"
timeout = 300
description = "unit regression"

[[targets]]
name = "integration"
session = "integration"
kind = "pytest"
selector = "{SELECTORS['integration']}"
log = "{LOGS['integration']}"
timeout = 600
description = "integration"
after = ["unit"]

[[targets]]
name = "smoke"
session = "smoke"
kind = "command"
argv = ["{{python}}", "-m", "ptycho_torch.train", "--output_dir", "{{artifacts}}/smoke", "--device", "cpu"]
expected_outputs = ["{{artifacts}}/smoke/wts.h5.zip"]
log = "{LOGS['smoke']}"
timeout = 600
description = "CLI smoke"
after = ["unit", "integration"]
"""

PROVENANCE = {
    "git_dirty": False, "dirty_files": [], "src_changed": [],
    "python": "3.11.7", "torch": "2.13.0+cpu", "lightning": "2.6.6", "numpy": "2.4.6",
    "cuda_available": False, "cuda_visible_devices": "", "platform": "Linux-6.1-x86_64-with-glibc2.36",
    "seed": 0, "threads": 2, "pythonhashseed": "0",
}


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True).stdout


def make_project(root: Path) -> Path:
    """A committed git project with src/, a fixture + sidecar, the plan and the ledger documents."""
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "pkg" / "core.py").write_text("GRIDSIZE = 2\n")
    fixture = root / FIXTURE
    fixture.parent.mkdir(parents=True)
    fixture.write_bytes(bytes(range(256)) * 16)
    digest = hashlib.sha256(fixture.read_bytes()).hexdigest()
    fixture.with_suffix(".json").write_text(json.dumps({"version": 1, "sha256": digest}))
    for rel, baseline in ((PLAN_MD, "plan.md"), (FIX_PLAN, "fix_plan.md")):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(LEDGER_BASELINE / baseline, root / rel)
    (root / PLAN_TOML).parent.mkdir(parents=True, exist_ok=True)
    (root / PLAN_TOML).write_text(PLAN)
    (root / ".gitignore").write_text("artifacts/\n")
    git(root, "init", "-q")
    git(root, "config", "user.email", "test@example.com")
    git(root, "config", "user.name", "test")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "project")
    return root


def record(name: str, verdict: str = "GREEN", *, sha: str = "", artifacts: str = "") -> dict[str, Any]:
    """A verdict record as the runner writes it, for target `name` of PLAN."""
    kind = "command" if name == "smoke" else "pytest"
    passed = verdict == "GREEN"
    rec: dict[str, Any] = {
        "schema": "evidence-verdict/1", "target": name, "session": name, "kind": kind,
        "selector": SELECTORS.get(name), "log": LOGS[name], "verdict": verdict,
        "reason": ("1 passed" if kind == "pytest" else "exit 0 within 600 s; declared outputs present") if passed
        else ("1 failed: AssertionError: boom" if kind == "pytest" else "the command exited with code 1"),
        "exit_code": 0 if passed else 1, "timed_out": False,
        "started_utc": "2026-11-29T10:15:01Z", "ended_utc": "2026-11-29T10:15:13Z", "duration_s": 12.25,
        "counts": {"tests": 1, "passed": int(passed), "failed": int(not passed), "errors": 0, "skipped": 0,
                   "xfailed": 0} if kind == "pytest" else {},
        "tests": [{"nodeid": SELECTORS[name], "outcome": "passed" if passed else "failed", "duration_s": 11.0}]
        if kind == "pytest" else [],
        "junit_xml": f"{artifacts}/junit/{name}.xml" if kind == "pytest" else None,
        "outputs": [], "record": None,
        "provenance": {**PROVENANCE, "git_sha": sha},
    }
    if kind == "command":
        rec["duration_s"] = 21.75
        rec["argv"] = ["/opt/venv/bin/python", "-m", "ptycho_torch.train", "--output_dir", f"{artifacts}/smoke",
                       "--device", "cpu"]
        rec["outputs"] = [{"path": f"{artifacts}/smoke/wts.h5.zip", "bytes": 5}] if passed else []
        rec["record"] = {
            "epochs": 1, "final_train_loss": 0.0421875, "train_loss_history": [0.0421875], "wall_seconds": 18.5,
            "gridsize": 2, "n_groups": 64, "batch_size": 4, "train_data_file": FIXTURE, "n_patterns": 64,
            "shapes": {"diffraction": [4, 4, 64, 64], "coords_relative": [4, 4, 1, 2],
                       "predicted_object": [4, 4, 64, 64]},
            "bundle": f"{artifacts}/smoke/wts.h5.zip", "checkpoint": None,
        } if passed else None
    else:
        rec["argv"] = ["/opt/venv/bin/python", "-m", "pytest", SELECTORS[name], "-vv"]
    return rec


def log_text(name: str, verdict: str = "GREEN") -> str:
    lines = [f"# command: pytest {SELECTORS.get(name, 'train')}", 'CUDA_VISIBLE_DEVICES=""']
    if verdict == "GREEN":
        lines += [f"{SELECTORS.get(name, 'train')} PASSED", "1 passed in 11.00s"]
    else:
        lines += [f"{SELECTORS.get(name, 'train')} FAILED", "E   AssertionError: boom", "1 failed in 11.00s"]
    if name == "smoke":
        lines.insert(2, "train.py:40: DeprecationWarning: --device is deprecated; use --accelerator")
        lines.insert(3, "train.py:41: DeprecationWarning: --disable_mlflow is deprecated; use --logger none")
    return "\n".join(lines) + "\n"


def make_hub(
    root: Path,
    verdicts: dict[str, str] | None = None,
    *,
    timestamp: str = TIMESTAMP,
    no_record: tuple[str, ...] = (),
    no_log: tuple[str, ...] = (),
    partial: tuple[str, ...] = (),
    edit: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """Create a hub with create_hub, then write each target's log + record as the runner would."""
    plan = load_plan(root / PLAN_TOML)
    hub = create_hub(plan, root, timestamp=timestamp)
    sha = git(root, "rev-parse", "HEAD").strip()
    artifacts = hub.artifacts.relative_to(root).as_posix()
    verdicts = verdicts or {}
    for target in plan.targets:
        name = target.name
        verdict = verdicts.get(name, "GREEN")
        text = log_text(name, verdict)
        if name in partial:
            (hub.path / f"{target.log}.partial").write_text(text[: len(text) // 2])
            continue
        if name not in no_log:
            (hub.path / target.log).write_text(text)
        rec = record(name, verdict, sha=sha, artifacts=artifacts)
        rec.update(copy.deepcopy((edit or {}).get(name, {})))
        if rec.get("junit_xml"):
            junit = root / rec["junit_xml"]
            junit.parent.mkdir(parents=True, exist_ok=True)
            junit.write_text(f'<testsuites><testsuite name="{name}" tests="1"/></testsuites>\n')
        for out in rec["outputs"]:
            (root / out["path"]).parent.mkdir(parents=True, exist_ok=True)
            (root / out["path"]).write_bytes(b"PK\x05\x06zip")
        if name not in no_record:
            (hub.path / "verdicts" / f"{name}.json").write_text(json.dumps(rec, indent=2))
    return hub.path


def attempts(root: Path) -> list[str]:
    """The attempt lines of the project's fix plan."""
    return [line for line in (root / FIX_PLAN).read_text().splitlines() if "Attempt #" in line and line.startswith("- [")]


def row_state(root: Path, row: str = "B3") -> str:
    for line in (root / PLAN_MD).read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells and cells[0] == row:
            return cells[2]
    raise AssertionError(f"row {row} not found in {PLAN_MD}")
