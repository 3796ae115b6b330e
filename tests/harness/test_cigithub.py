"""`ci github`: the workflow for the real plans passes actionlint, and its jobs follow the plan."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from harness.cigithub import MERGE, _JOB_ID, github_workflow, job_commands, job_id
from harness.plan import EvidencePlan, load_plan

ROOT = Path(__file__).resolve().parents[2]
REPO_PLAN = "plans/active/ADR-003-BACKEND-API/evidence/phase_c4d_b3.toml"
UPSTREAM_PLAN = "plans/upstream/ptychopinn_c4d_b3.toml"


def _actionlint(workflow: str, tmp_path: Path, labels: set[str]) -> subprocess.CompletedProcess[str]:
    """Run the real actionlint binary (from the venv of this interpreter, else PATH) on the workflow text."""
    found = shutil.which("actionlint", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    if found is None:
        pytest.fail("actionlint is not installed: pip install -c constraints.txt -e .[test]")
    path = tmp_path / ".github" / "workflows" / "evidence.yml"
    path.parent.mkdir(parents=True)
    path.write_text(workflow)
    config = tmp_path / ".github" / "actionlint.yaml"  # custom runner labels must be declared to actionlint
    config.write_text(yaml.safe_dump({"self-hosted-runner": {"labels": sorted(labels)}}))
    return subprocess.run([found, "-config-file", str(config), str(path)], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)


def _labels(plan: EvidencePlan) -> set[str]:
    return {t.runner for t in plan.targets if t.runner}


@pytest.mark.parametrize("plan_arg", [REPO_PLAN, UPSTREAM_PLAN])
def test_workflow_for_the_real_plans_passes_actionlint(plan_arg: str, tmp_path: Path) -> None:
    plan = load_plan(ROOT / plan_arg)
    done = _actionlint(github_workflow(plan, plan_arg=plan_arg), tmp_path, _labels(plan))
    assert done.returncode == 0, f"actionlint rejected the workflow:\n{done.stdout}{done.stderr}"


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    plan = load_plan(ROOT / REPO_PLAN)
    broken = github_workflow(plan, plan_arg=REPO_PLAN).replace('needs: ["gridsize_regression"]', 'needs: ["nope"]')
    done = _actionlint(broken, tmp_path, set())
    assert done.returncode != 0 and "nope" in done.stdout, f"actionlint missed an unknown job in needs:\n{done.stdout}"


def test_jobs_follow_the_plan_and_run_job_commands() -> None:
    plan = load_plan(ROOT / UPSTREAM_PLAN)
    jobs = yaml.safe_load(github_workflow(plan, plan_arg=UPSTREAM_PLAN))["jobs"]
    assert list(jobs) == ["gridsize_regression", "bundle_loader", "integration", "cli_smoke_gs2", MERGE]
    assert {name: job["runs-on"] for name, job in jobs.items()} == {
        "gridsize_regression": "ubuntu-latest", "bundle_loader": "gpu", "integration": "gpu",
        "cli_smoke_gs2": "ubuntu-latest", MERGE: "ubuntu-latest"}
    assert {name: job.get("needs") for name, job in jobs.items()} == {
        "gridsize_regression": None, "bundle_loader": ["gridsize_regression"], "integration": ["gridsize_regression"],
        "cli_smoke_gs2": ["gridsize_regression", "bundle_loader", "integration"],
        MERGE: ["gridsize_regression", "bundle_loader", "integration", "cli_smoke_gs2"]}
    assert jobs[MERGE]["if"] == "always()"
    for name, job in jobs.items():
        runs = [step["run"] for step in job["steps"] if "run" in step]
        assert runs == job_commands(plan, name, plan_arg=UPSTREAM_PLAN), f"job {name} runs other commands"
        uploads = [step for step in job["steps"] if step.get("uses", "").startswith("actions/upload-artifact@")]
        assert uploads and all(step["if"] == "always()" for step in uploads), f"job {name}: an upload may not run"
    assert job_commands(plan, "integration", plan_arg=UPSTREAM_PLAN) == [
        f"make integration PART=parts/integration PLAN={UPSTREAM_PLAN} NO_LEDGER=1"]
    assert jobs["integration"]["steps"][-1]["with"] == {"name": "part-integration", "path": "parts/integration"}
    download = next(step for step in jobs[MERGE]["steps"] if "download-artifact" in step.get("uses", ""))
    assert download["with"] == {"pattern": "part-*", "path": "parts"}


def test_a_cuda_target_without_a_runner_is_refused() -> None:
    plan = load_plan(ROOT / UPSTREAM_PLAN)
    gpu_less = replace(plan, targets=tuple(replace(t, runner=None) for t in plan.targets))
    with pytest.raises(ValueError, match=r"target 'bundle_loader' has device = \"cuda\" but no runner; set runner ="):
        github_workflow(gpu_less, plan_arg=UPSTREAM_PLAN)


@pytest.mark.parametrize(("name", "expected"), [("cli_smoke_gs2", "cli_smoke_gs2"), ("smoke.v2", "smoke_v2"),
                                                ("2nd-pass", "_2nd-pass"), ("A.b-c_d", "A_b-c_d")])
def test_job_ids_are_valid_for_github(name: str, expected: str) -> None:
    assert job_id(name) == expected and _JOB_ID.match(expected)


@pytest.mark.parametrize(("names", "message"), [
    (("a.b", "a_b"), "target 'a_b' gets the GitHub job id 'a_b', already used by target 'a.b'"),
    (("merge",), "target 'merge' gets the GitHub job id 'merge', already used by the merge job"),
    (("Smoke", "smoke"), "target 'smoke' gets the GitHub job id 'smoke', already used by target 'Smoke'"),
])
def test_clashing_job_ids_are_refused(names: tuple[str, ...], message: str) -> None:
    plan = load_plan(ROOT / REPO_PLAN)
    base = plan.targets[0]
    clashing = replace(plan, targets=tuple(replace(base, name=n, session=f"s{i}") for i, n in enumerate(names)))
    with pytest.raises(ValueError, match=re.escape(message)):
        github_workflow(clashing, plan_arg=REPO_PLAN)


def test_the_summary_command_appends_to_the_step_summary(tmp_path: Path) -> None:
    plan = load_plan(ROOT / REPO_PLAN)
    (tmp_path / "evidence-hub").mkdir()
    (tmp_path / "evidence-hub" / "summary.md").write_text("# verdict GREEN\n")
    (tmp_path / "step.md").write_text("earlier step\n")
    summary = job_commands(plan, MERGE, plan_arg=REPO_PLAN)[-1]
    subprocess.run(["bash", "-c", summary], cwd=tmp_path, check=True, timeout=30,
                   env={**os.environ, "GITHUB_STEP_SUMMARY": str(tmp_path / "step.md")})
    assert (tmp_path / "step.md").read_text() == "earlier step\n# verdict GREEN\n"
