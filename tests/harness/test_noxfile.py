"""The noxfile declares one session per plan target (plan order, tags, shared venv) plus helpers.

Imported through nox's own registry in a child interpreter, so this test process stays clean.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.plan import DEFAULT_PLAN, load_plan

ROOT = Path(__file__).resolve().parents[2]
DUMP = """
import json, runpy, sys
import nox.registry
runpy.run_path(sys.argv[1])
print(json.dumps({name: {"tags": list(f.tags), "requires": list(f.requires or []), "backend": f.venv_backend,
                         "reuse": f.reuse_venv, "doc": (f.__doc__ or "").strip()}
                  for name, f in nox.registry.get().items()}))
"""


@pytest.fixture(scope="module")
def sessions() -> dict:
    out = subprocess.run([sys.executable, "-c", DUMP, str(ROOT / "noxfile.py")], capture_output=True, text=True,
                         cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_one_session_per_target_in_plan_order(sessions):
    plan = load_plan(ROOT / DEFAULT_PLAN)
    names = list(sessions)
    expected = [t.session for t in plan.targets]
    assert expected == ["gridsize_regression", "bundle_loader", "integration", "cli_smoke_gs2"]
    assert [n for n in names if n in expected] == expected
    for target in plan.targets:
        s = sessions[target.session]
        assert s["tags"] == ["evidence", "phase-c4d-b3"]
        assert s["requires"] == ["evidence_env"] and s["backend"] == "none"
        assert s["doc"] == target.summary and "\n" not in s["doc"]


def test_shared_env_provider_and_helper_sessions(sessions):
    env = sessions["evidence_env"]
    assert env["backend"] == "virtualenv" and env["reuse"] is True and env["requires"] == []
    assert sessions["collate"]["tags"] == ["evidence", "phase-c4d-b3"]
    assert sessions["collate"]["requires"] == ["evidence_env"], "collate must not require the targets"
    names = list(sessions)
    assert names.index("collate") > names.index("cli_smoke_gs2")
    for helper in ("tests", "compare", "quality"):
        assert sessions[helper]["requires"] == ["evidence_env"], helper
    assert all(s["doc"] for s in sessions.values()), "every session needs a docstring for `nox -l`"
