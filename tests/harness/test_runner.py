"""The runner against a synthetic pytest project: verdicts, logs, time limits, hidden GPU."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.hub import create_hub
from harness.plan import load_plan
from harness.runner import child_env, run_target

SYN = "tests/test_synthetic.py"


def run(plan_path: Path, project: Path, name: str) -> tuple[dict, str]:
    plan = load_plan(plan_path)
    hub = create_hub(plan, project)
    record = run_target(plan, name, hub, console=None)
    log = (hub.path / plan.target(name).log).read_text()
    assert json.loads((hub.verdicts / f"{name}.json").read_text()) == record
    return record, log


@pytest.fixture
def one(project, write_plan, targets):
    """Run a single synthetic target: one(target_dict) -> (record, log text)."""

    def go(target: dict) -> tuple[dict, str]:
        return run(write_plan([target]), project, target["name"])

    return go


def test_passing_selector_is_green(one, targets):
    record, log = one(targets.pytest("ok", f"{SYN}::test_pass"))
    assert record["verdict"] == "GREEN", record["reason"]
    assert record["counts"] == {"tests": 1, "passed": 1, "failed": 0, "errors": 0, "skipped": 0, "xfailed": 0}
    assert record["tests"][0]["nodeid"] == f"{SYN}::test_pass"
    assert record["tests"][0]["outcome"] == "passed"
    assert record["exit_code"] == 0 and record["timed_out"] is False
    assert "# verdict: GREEN" in log


def test_failing_selector_is_red_with_the_failure_in_the_log(one, targets):
    record, log = one(targets.pytest("bad", f"{SYN}::test_fail"))
    assert record["verdict"] == "RED"
    assert "1 failed" in record["reason"] and "test_fail" in record["reason"]
    assert "boom-failure-text" in log
    assert record["counts"]["failed"] == 1


def test_skipping_selector_is_not_green(one, targets):
    record, _ = one(targets.pytest("skip", f"{SYN}::test_skip"))
    assert record["verdict"] == "SKIPPED"
    assert record["counts"]["skipped"] == 1 and record["counts"]["passed"] == 0


def test_xfail_is_not_green(one, targets):
    record, _ = one(targets.pytest("xf", f"{SYN}::test_xfail"))
    assert record["verdict"] == "SKIPPED"
    assert record["counts"]["xfailed"] == 1


def test_a_pass_plus_a_skip_is_red(one, targets):
    record, _ = one(targets.pytest("mixed", "tests/test_mixed.py"))
    assert record["verdict"] == "RED"
    assert record["counts"]["passed"] == 1 and record["counts"]["skipped"] == 1


@pytest.mark.parametrize("selector", [f"{SYN}::test_does_not_exist", "tests/test_empty.py", "tests/missing_file.py"])
def test_selector_matching_nothing_is_red(one, targets, selector):
    record, log = one(targets.pytest("none", selector))
    assert record["verdict"] == "RED", record
    assert record["exit_code"] != 0
    assert "no tests ran" in record["reason"] or "no JUnit XML" in record["reason"]


def test_collection_error_is_red_naming_the_module(one, targets, project):
    (project / "tests" / "test_broken.py").write_text("import no_such_module_here\n\ndef test_x():\n    pass\n")
    record, log = one(targets.pytest("broken", "tests/test_broken.py"))
    assert record["verdict"] == "RED"
    assert "error" in record["reason"] and "tests/test_broken.py" in record["reason"]
    assert "no_such_module_here" in log


def test_hanging_test_is_stopped_at_its_timeout(one, targets):
    t0 = time.monotonic()
    record, log = one(targets.pytest("hang", f"{SYN}::test_hang", timeout=2))
    assert time.monotonic() - t0 < 30, "the hung test was not stopped near its 2 s timeout"
    assert record["verdict"] == "TIMEOUT"
    assert record["timed_out"] is False  # pytest-timeout stopped it; the wall clock did not have to
    assert "Timeout" in log


def test_hanging_command_is_killed_with_its_children(one, targets, tmp_path):
    # the child spawns a grandchild that would outlive a plain kill of the child
    code = ("import subprocess, sys, time; "
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            "print('started', flush=True); time.sleep(60)")
    t0 = time.monotonic()
    record, log = one(targets.command("stuck", code, timeout=2))
    elapsed = time.monotonic() - t0
    assert elapsed < 20, f"the command ran {elapsed:.1f} s despite a 2 s limit"
    assert record["verdict"] == "TIMEOUT" and record["timed_out"] is True
    assert "started" in log and "killed at the time limit" in log


def test_gpu_hidden_and_seed_set_in_child(one, targets, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.setenv("PYTHONHASHSEED", "random")
    code = "import os; print('CVD=[%s] HASHSEED=[%s]' % (os.environ['CUDA_VISIBLE_DEVICES'], os.environ['PYTHONHASHSEED']))"
    record, log = one(targets.command("env", code))
    assert "CVD=[] HASHSEED=[0]" in log
    pytest_record, _ = one(targets.pytest("ok", f"{SYN}::test_pass"))  # asserts the same inside pytest
    assert pytest_record["verdict"] == "GREEN", pytest_record["reason"]
    assert record["provenance"]["cuda_visible_devices"] == ""
    assert record["provenance"]["cuda_available"] is False
    assert 'CUDA_VISIBLE_DEVICES=""' in log


def test_child_env_is_deterministic_and_keeps_the_repo_off_sys_path(project, write_plan):
    plan = load_plan(write_plan([{"name": "x", "session": "x", "kind": "command", "argv": ["true"],
                                   "log": "x.log", "timeout": 1, "description": "d"}]))
    env = child_env(plan, {"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "0"})
    assert env == {"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "", "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1",
                   "MKL_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "PYTHONSAFEPATH": "1",
                   "PYTHONUNBUFFERED": "1"}


def test_command_sees_no_project_root_on_sys_path(one, targets, project):
    code = "import json, sys; print('PATHS=' + json.dumps(sys.path))"
    record, log = one(targets.command("paths", code))
    paths = json.loads(next(line for line in log.splitlines() if line.startswith("PATHS="))[6:])
    assert str(project) not in paths and "" not in paths


def test_command_green_needs_its_outputs(one, targets, project):
    code = "import json; open('{artifacts}/out.bin', 'wb').write(b'x'); print('TRAIN_RECORD ' + json.dumps(dict(epochs=1)))"
    record, log = one(targets.command("writes", code, expected_outputs=["{artifacts}/out.bin"]))
    assert record["verdict"] == "GREEN", record["reason"]
    assert record["record"] == {"epochs": 1}
    assert record["outputs"][0]["bytes"] == 1 and record["outputs"][0]["path"].startswith("artifacts/")


def test_command_missing_output_is_red_naming_it(one, targets):
    record, _ = one(targets.command("lazy", "print('did nothing')", expected_outputs=["{artifacts}/model.zip"]))
    assert record["verdict"] == "RED"
    assert "model.zip" in record["reason"]
    assert record["outputs"][0]["bytes"] is None


def test_command_nonzero_exit_is_red(one, targets):
    record, log = one(targets.command("crash", "raise SystemExit(3)"))
    assert record["verdict"] == "RED" and record["exit_code"] == 3


def test_command_that_cannot_start_is_red(project, write_plan):
    target = {"name": "ghost", "session": "ghost", "kind": "command", "argv": ["no-such-program-xyz"],
              "log": "ghost.log", "timeout": 5, "description": "d"}
    record, log = run(write_plan([target]), project, "ghost")
    assert record["verdict"] == "RED" and "could not be started" in record["reason"]
    assert "could not start 'no-such-program-xyz'" in log


def test_log_has_provenance_header_and_footer_and_lands_only_in_the_hub(project, write_plan, targets):
    plan = load_plan(write_plan([targets.pytest("ok", f"{SYN}::test_pass")]))
    before = sorted(p.name for p in project.iterdir())
    hub = create_hub(plan, project)
    run_target(plan, "ok", hub, console=None)
    log = (hub.path / "ok.log").read_text()
    for field in ("# command: ", "# started_utc: ", "# git: sha=unknown", "not a git repository",
                  "torch.cuda.is_available(): False", "# platform: ", "# seed: 0", "| torch ", "| lightning ",
                  "| numpy ", "# ended_utc: ", "# duration_s: ", "# exit_code: 0", "# verdict: GREEN"):
        assert field in log, f"{field!r} missing from the log header/footer"
    assert not (hub.path / "ok.log.partial").exists()
    after = sorted(p.name for p in project.iterdir())
    assert set(after) - set(before) == {"reports", "artifacts"}, "the runner wrote outside the hub/artifacts"
    assert not list(project.glob("*.log")), "a log landed at the project root"
    assert (hub.artifacts / "junit" / "ok.xml").is_file()


def test_a_target_never_reruns_into_the_same_hub(project, write_plan, targets):
    plan = load_plan(write_plan([targets.pytest("ok", f"{SYN}::test_pass")]))
    hub = create_hub(plan, project)
    run_target(plan, "ok", hub, console=None)
    with pytest.raises(FileExistsError, match="already ran in this hub"):
        run_target(plan, "ok", hub, console=None)


def test_run_target_cli_exit_codes(project, write_plan, targets):
    plan = write_plan([targets.pytest("ok", f"{SYN}::test_pass"), targets.pytest("bad", f"{SYN}::test_fail")])
    hub = create_hub(load_plan(plan), project)
    cli = [sys.executable, "-m", "harness", "run-target", "--plan", str(plan), "--hub", str(hub.path),
           "--project-root", str(project)]
    ok = subprocess.run([*cli, "--target", "ok"], capture_output=True, text=True, cwd=project)
    bad = subprocess.run([*cli, "--target", "bad"], capture_output=True, text=True, cwd=project)
    unknown = subprocess.run([*cli, "--target", "nope"], capture_output=True, text=True, cwd=project)
    assert (ok.returncode, bad.returncode, unknown.returncode) == (0, 1, 2), (ok.stderr, bad.stderr)
    assert "ok: GREEN" in ok.stdout and "test_pass PASSED" in ok.stdout  # teed to the console
    assert "no target 'nope'" in unknown.stderr
