"""The harness's shape: what a process loads to run one target or to collate, module sizes, the lint setting.

Why: running a target happens once per target session, so it must stay light (docs/architecture.md lists
the modules); a module over 350 lines has more than one job; the line limit is ruff's (pyproject.toml).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from factory import collated, context, make_project

from harness.context import HOME, RunContext
from harness.hub import create_hub
from harness.plan import load_plan

ROOT = Path(__file__).resolve().parents[2]
LOADED = """
import atexit, json, runpy, sys
atexit.register(lambda: print("MODULES " + json.dumps(sorted(m for m in sys.modules if m.split(".")[0] == "harness"))))
sys.argv = ["harness", *sys.argv[1:]]
runpy.run_module("harness", run_name="__main__")
"""


def harness_modules(*argv: str, env: dict[str, str] | None = None) -> list[str]:
    done = subprocess.run([sys.executable, "-c", LOADED, *argv], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})})
    line = next((x for x in done.stdout.splitlines() if x.startswith("MODULES ")), None)
    assert line, done.stdout + done.stderr
    return json.loads(line.removeprefix("MODULES "))


def test_running_one_target_loads_at_most_ten_harness_modules(project, write_plan, targets):
    plan = write_plan([targets.command("ok", "print('fine')")])
    ctx = RunContext(HOME, project, load_plan(plan))
    hub = create_hub(ctx, targets=("ok",), python=sys.executable)
    env = {"EVIDENCE_HUB": str(hub.path), "EVIDENCE_PROJECT": str(project), "EVIDENCE_PLAN": str(plan)}
    loaded = harness_modules("run-target", "ok", env=env)
    assert len(loaded) <= 10, loaded
    assert "harness.runner" in loaded and "harness.collate" not in loaded, loaded


def test_collating_a_hub_loads_at_most_fourteen_harness_modules(tmp_path):
    root = make_project(tmp_path / "project")
    hub = collated(context(root))
    loaded = harness_modules("collate", str(hub), "--no-ledger", "--project", str(root))
    assert len(loaded) <= 14, loaded
    assert "harness.collate" in loaded and "harness.runner" not in loaded, loaded


def test_no_harness_module_is_over_350_lines():
    sizes = {p.name: len(p.read_text().splitlines()) for p in (ROOT / "harness").rglob("*.py")}
    assert max(sizes.values()) <= 350, {n: s for n, s in sizes.items() if s > 350}


def test_ruff_finds_no_long_line_or_unused_import():
    ruff = Path(sys.executable).parent / "ruff"
    done = subprocess.run([str(ruff), "check", "harness", "noxfile.py"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
