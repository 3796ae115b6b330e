"""The noxfile: one session per plan target (read through nox's own registry), and real nox runs of them.

A target session requires the targets it comes `after` and allows parallel runs; any nox invocation
that runs a target ends with one collated hub of exactly the targets nox selected. The last test runs
a fresh clone's noxfile under a venv that holds nox alone, as a user who installed nox with pipx would.
"""

from __future__ import annotations

import json
import os
import shutil
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
runpy.run_path(sys.argv[1], run_name="user_nox_module")
print(json.dumps({name: {"tags": list(f.tags), "requires": list(f.requires or []), "backend": f.venv_backend,
                         "parallel": f.allow_parallel, "doc": (f.__doc__ or "").strip()}
                  for name, f in nox.registry.get().items()}))
"""


@pytest.fixture(scope="module")
def sessions() -> dict:
    env = {**os.environ, "EVIDENCE_DRIVER": "1"}
    out = subprocess.run([sys.executable, "-c", DUMP, str(ROOT / "noxfile.py")], capture_output=True, text=True,
                         cwd=ROOT, env=env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_one_session_per_target_requiring_the_targets_it_comes_after(sessions):
    plan = load_plan(ROOT / DEFAULT_PLAN)
    assert [t.session for t in plan.targets] == ["gridsize_regression", "bundle_loader", "integration", "cli_smoke_gs2"]
    for target in plan.targets:
        s = sessions[target.session]
        assert s["tags"] == ["evidence", "phase-c4d-b3"] and s["backend"] == "none"
        assert s["requires"] == [plan.target(a).session for a in target.after], "the plan's `after` is nox requires="
        assert s["parallel"] is True and s["doc"] == target.summary


def test_helper_sessions_have_docs_and_are_not_tagged_as_evidence(sessions):
    for helper in ("evidence_env", "collate", "tests", "compare", "quality"):
        assert sessions[helper]["doc"], f"{helper} needs a docstring for `nox -l`"
        assert "evidence" not in sessions[helper]["tags"], f"{helper} must not run with `nox -t evidence`"


@pytest.fixture
def nox_project(project, write_plan, targets):
    plan = write_plan([targets.pytest("unit", "tests/test_synthetic.py::test_pass"),
                       targets.command("smoke", "print('smoke')", after=["unit"]),
                       targets.command("other", "print('other')")])
    (project / ".gitignore").write_text("reports/\nartifacts/\n")
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "i"]):
        subprocess.run(["git", "-C", str(project), *args], check=True, capture_output=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVIDENCE_", "NOX"))}
    env.update(EVIDENCE_PLAN=str(plan), EVIDENCE_PROJECT=str(project), EVIDENCE_PYTHON=sys.executable)
    return project, env


def nox(env: dict, *args: str, python: str = sys.executable, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([python, "-m", "nox", "-f", str(cwd / "noxfile.py"), *args], capture_output=True,
                          text=True, env=env, cwd=cwd, stdin=subprocess.DEVNULL)


def hubs(project: Path) -> list[Path]:
    return sorted(p for p in (project / "reports").glob("*/hub"))


def test_a_target_session_runs_its_requirements_first_into_one_collated_hub(nox_project):
    project, env = nox_project
    done = nox(env, "-s", "smoke")
    assert done.returncode == 0, done.stdout + done.stderr
    [hub] = hubs(project)
    assert not (hub / HubFiles.INCOMPLETE).exists() and (hub / HubFiles.SUMMARY).is_file()
    manifest = Manifest.load(hub)
    assert [(t.name, t.verdict) for t in manifest.targets] == [("unit", "GREEN"), ("smoke", "GREEN")]
    assert manifest.partial_run, "`other` was not selected: the hub covers two of three targets"
    unit, smoke = (json.loads((hub / HubFiles.verdict(n)).read_text()) for n in ("unit", "smoke"))
    assert unit["ended_utc"] <= smoke["started_utc"], "the smoke runs after the target it requires"
    assert done.stdout.rstrip().endswith("verdict: GREEN (partial: 2 of 3 plan targets)"), done.stdout[-300:]


def test_no_dependencies_runs_one_target_alone(nox_project):
    project, env = nox_project
    done = nox(env, "-s", "smoke", "--no-dependencies")
    assert done.returncode == 0, done.stdout + done.stderr
    [hub] = hubs(project)
    assert [t.name for t in Manifest.load(hub).targets] == ["smoke"]


@pytest.mark.parametrize("parallel", [[], ["-j", "2"]])
def test_every_target_by_tag_into_one_hub(nox_project, parallel):
    project, env = nox_project
    done = nox(env, *parallel, "-t", "evidence")
    assert done.returncode == 0, done.stdout + done.stderr
    [hub] = hubs(project)
    manifest = Manifest.load(hub)
    assert manifest.overall_verdict == "GREEN" and not manifest.partial_run, manifest.overall_reason
    assert json.loads((hub / HubFiles.NOX_REPORT).read_text())["result"] == 1


def test_listing_as_json_names_every_target_session_and_makes_no_hub(nox_project):
    project, env = nox_project
    done = nox(env, "-l", "--json", "-t", "evidence")
    assert done.returncode == 0, done.stderr
    assert [s["name"] for s in json.loads(done.stdout)] == ["unit", "smoke", "other"] and not hubs(project)


@pytest.mark.e2e
def test_a_fresh_clone_runs_under_a_nox_that_holds_nothing_else(tmp_path, nox_project):
    """The design's command, as a user runs it: nox from its own venv (pipx-like), a clone of this repository."""
    project, env = nox_project
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    for path in ("harness", "noxfile.py", "constraints.txt", "Makefile"):  # this checkout's state, committed or not
        src, dst = ROOT / path, clone / path
        shutil.rmtree(dst) if dst.is_dir() else dst.unlink(missing_ok=True)
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__")) if src.is_dir() else shutil.copy(src, dst)
    uv = ROOT / ".venv-tools" / "bin" / "uv"
    venv = tmp_path / "nox-only"
    subprocess.run([str(uv), "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    subprocess.run([str(uv), "pip", "install", "-q", "--python", str(venv / "bin" / "python"),
                    "-c", str(ROOT / "constraints.txt"), "nox"], check=True)
    isolated = subprocess.run([str(venv / "bin" / "python"), "-c", "import tabulate"], capture_output=True)
    assert isolated.returncode != 0, "the venv must hold nox alone"
    done = nox({**env, "PATH": f"{venv / 'bin'}:{env['PATH']}"}, "-s", "smoke", "--no-dependencies",
               python=str(venv / "bin" / "python"), cwd=clone)
    assert done.returncode == 0 and "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    [hub] = hubs(project)
    manifest = Manifest.load(hub)
    assert manifest.overall_verdict == "GREEN" and manifest.partial_run
    assert (clone / ".venv-tools" / "bin" / "python").is_file(), "the noxfile built the harness's own interpreter"
