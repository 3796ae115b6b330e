"""The noxfile: one session per plan target (read through nox's own registry), and real nox runs of them.

A nox invocation's sessions share one hub and leave it collated; `nox -j` keeps the plan's order
(no target session allows parallel runs, so nox runs them one by one in plan order).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.plan import DEFAULT_PLAN, load_plan
from harness.schema import HubFiles, Manifest

ROOT = Path(__file__).resolve().parents[2]
DUMP = """
import json, runpy, sys
import nox.registry
runpy.run_path(sys.argv[1])
print(json.dumps({name: {"tags": list(f.tags), "requires": list(f.requires or []), "backend": f.venv_backend,
                         "parallel": f.allow_parallel, "doc": (f.__doc__ or "").strip()}
                  for name, f in nox.registry.get().items()}))
"""


@pytest.fixture(scope="module")
def sessions() -> dict:
    out = subprocess.run([sys.executable, "-c", DUMP, str(ROOT / "noxfile.py")], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_one_session_per_target_in_plan_order(sessions):
    plan = load_plan(ROOT / DEFAULT_PLAN)
    expected = [t.session for t in plan.targets]
    assert expected == ["gridsize_regression", "bundle_loader", "integration", "cli_smoke_gs2"]
    assert [n for n in sessions if n in expected] == expected
    for target in plan.targets:
        s = sessions[target.session]
        assert s["tags"] == ["evidence", "phase-c4d-b3"] and s["backend"] == "none"
        assert s["requires"] == [], "the plan's `after` is an order, never nox requires= (a target runs alone)"
        assert s["parallel"] is False and s["doc"] == target.summary


def test_helper_sessions_have_docs(sessions):
    assert list(sessions).index("collate") > list(sessions).index("cli_smoke_gs2")
    for helper in ("evidence_env", "collate", "tests", "compare", "quality"):
        assert sessions[helper]["doc"], f"{helper} needs a docstring for `nox -l`"


@pytest.fixture
def nox_project(project, write_plan, targets):
    plan = write_plan([targets.pytest("unit", "tests/test_synthetic.py::test_pass"),
                       targets.command("smoke", "print('smoke')", after=["unit"])])
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "i"]):
        subprocess.run(["git", "-C", str(project), *args], check=True, capture_output=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
    env.update(EVIDENCE_PLAN=str(plan), EVIDENCE_PROJECT=str(project), EVIDENCE_PYTHON=sys.executable)
    return project, env


def nox(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nox", "-f", str(ROOT / "noxfile.py"), *args], capture_output=True,
                          text=True, env=env, cwd=ROOT)


def hubs(project: Path) -> list[Path]:
    return sorted(p for p in (project / "reports").glob("*/hub"))


def test_one_target_session_leaves_a_collated_hub(nox_project):
    project, env = nox_project
    done = nox(env, "-s", "smoke")
    assert done.returncode == 0, done.stdout + done.stderr
    [hub] = hubs(project)
    assert not (hub / HubFiles.INCOMPLETE).exists() and (hub / HubFiles.SUMMARY).is_file()
    manifest = Manifest.load(hub)
    assert manifest.partial_run and [t.verdict for t in manifest.targets] == ["MISSING", "GREEN"]


@pytest.mark.parametrize("parallel", [[], ["-j", "2"]])
def test_sessions_of_one_invocation_share_one_hub_in_plan_order(nox_project, parallel):
    project, env = nox_project
    done = nox(env, *parallel, "-t", "evidence")
    assert done.returncode == 0, done.stdout + done.stderr
    [hub] = hubs(project)
    manifest = Manifest.load(hub)
    assert manifest.overall_verdict == "GREEN" and not manifest.partial_run, manifest.overall_reason
    unit, smoke = (json.loads((hub / HubFiles.verdict(n)).read_text()) for n in ("unit", "smoke"))
    assert unit["ended_utc"] <= smoke["started_utc"]
