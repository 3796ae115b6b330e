"""The runner against a synthetic pytest project: one test per outcome, logs, time limits, hidden GPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from harness.context import HOME, RunContext
from harness.hub import create_hub
from harness.plan import load_plan
from harness.provenance import probe_cuda, probe_versions
from harness.runner import child_env, run_target, share_threads
from harness.schema import EnvironmentRecord, HubFiles, Runtime, Verdict, VerdictRecord

SYN = "tests/test_synthetic.py"


@pytest.fixture(scope="session")
def environment():
    """This interpreter's versions, probed once (the runner needs pytest and pytest-timeout in it)."""
    return probe_versions(sys.executable, dict(os.environ), Path.cwd())



@pytest.mark.parametrize("torch, cuda, error", [("2.13.0+cpu", False, None), ("2.13.0", None, "cuda probe failed")])
def test_a_cpu_build_of_torch_is_answered_without_asking_the_interpreter(tmp_path, torch, cuda, error):
    """The interpreter does not exist: only a `+cpu` torch gets an answer (False), any other build needs the probe."""
    record = probe_cuda(str(tmp_path / "no-python"), {}, tmp_path, EnvironmentRecord(Runtime(torch=torch)))
    assert record.runtime.cuda_available is cuda
    assert (error in (record.runtime.error or "")) if error else record.runtime.error is None

def hub_with(ctx: RunContext, environment: EnvironmentRecord, cuda: bool | None = False):
    """A run's hub as the driver leaves it for its targets: run.json, and environment.json with the GPU probe."""
    hub = create_hub(ctx, targets=tuple(t.name for t in ctx.plan.targets), python=sys.executable)
    replace(environment, runtime=replace(environment.runtime, cuda_available=cuda)).write(hub.path)
    return hub


@pytest.fixture
def one(project, write_plan, environment):
    """Run a single synthetic target: one(target_dict) -> (record, log text)."""

    def go(target: dict, cuda: bool | None = False) -> tuple[VerdictRecord, str]:
        ctx = RunContext(HOME, project, load_plan(write_plan([target])))
        hub = hub_with(ctx, environment, cuda)
        record = run_target(ctx, hub, ctx.plan.target(target["name"]), threads=1)
        assert VerdictRecord.load(hub.verdict_path(target["name"])) == record
        return record, (hub.path / target["log"]).read_text()

    return go


@pytest.mark.parametrize(
    ("test", "verdict", "counted", "reason"),
    [
        ("test_pass", Verdict.GREEN, "passed", "1 of 1 selected test(s) passed"),
        ("test_fail", Verdict.RED, "failed", "1 failed"),
        ("test_error", Verdict.RED, "errors", "fixture-setup-failed"),
        ("test_skip", Verdict.SKIPPED, "skipped", "not on this machine"),
        ("test_xfail", Verdict.SKIPPED, "xfailed", "xfailed"),
        ("test_xpass", Verdict.RED, "xpassed", "XPASS"),
    ],
)
def test_each_outcome_gets_its_verdict(one, targets, test, verdict, counted, reason):
    record, log = one(targets.pytest("t", f"{SYN}::{test}"))
    assert record.verdict == verdict, f"{test}: expected {verdict}, got {record.verdict} ({record.reason})"
    assert getattr(record.counts, counted) == 1 and record.counts.tests == 1, record.counts
    assert reason in record.reason, record.reason
    assert record.tests[0]["nodeid"] == f"{SYN}::{test}"
    assert f"# verdict: {verdict}" in log


def test_xpass_is_not_green_although_pytest_exits_0(one, targets):
    """A non-strict XPASS passes in pytest's eyes (and JUnit's); the evidence must still say no."""
    record, log = one(targets.pytest("xp", f"{SYN}::test_xpass"))
    assert record.exit_code == 0 and "XPASS" in log
    assert record.verdict == Verdict.RED and record.counts.passed == 0


def test_a_pass_plus_a_skip_is_red(one, targets):
    record, _ = one(targets.pytest("mixed", "tests/test_mixed.py"))
    assert record.verdict == Verdict.RED
    assert (record.counts.passed, record.counts.skipped) == (1, 1)


@pytest.mark.parametrize("selector", [f"{SYN}::test_does_not_exist", "tests/test_empty.py", "tests/missing_file.py"])
def test_selector_matching_nothing_is_red(one, targets, selector):
    record, _ = one(targets.pytest("none", selector))
    assert record.verdict == Verdict.RED, record
    assert record.exit_code != 0 and "no tests ran" in record.reason


def test_collection_error_beside_a_passing_test_is_red_naming_the_module(one, targets, project):
    (project / "tests" / "test_broken.py").write_text(
        "import pytest\n\ndef test_ok():\n    pass\n\n"
        "@pytest.mark.parametrize('x', [1], ids=lambda v: 1 / 0)\ndef test_bad(x):\n    pass\n")
    record, log = one(targets.pytest("broken", "tests/test_broken.py"))
    assert record.verdict == Verdict.RED
    assert "error" in record.reason and "tests/test_broken.py" in record.reason
    assert "ZeroDivisionError" in log or "error raised" in log


def test_hanging_test_is_stopped_at_its_timeout(one, targets):
    t0 = time.monotonic()
    record, log = one(targets.pytest("hang", f"{SYN}::test_hang", timeout=2))
    assert time.monotonic() - t0 < 30, "the hung test was not stopped near its 2 s timeout"
    assert record.verdict == Verdict.TIMEOUT and "pytest-timeout stopped" in record.reason
    assert record.timed_out is False  # pytest-timeout stopped it; the wall clock did not have to


def test_hanging_command_is_killed_with_its_children(one, targets):
    code = ("import subprocess, sys, time; "
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            "print('started', flush=True); time.sleep(60)")
    t0 = time.monotonic()
    record, log = one(targets.command("stuck", code, timeout=2))
    assert time.monotonic() - t0 < 20, "the command ran far beyond its 2 s limit"
    assert record.verdict == Verdict.TIMEOUT and record.timed_out is True
    assert "started" in log and "killed at the time limit" in log


def test_hang_that_ignores_sigterm_is_killed(one, targets, monkeypatch):
    monkeypatch.setattr("harness.logframe.KILL_GRACE_S", 0.5)  # SIGKILL follows SIGTERM after this grace
    code = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "signal.pthread_sigmask(signal.SIG_BLOCK, {{signal.SIGALRM}}); print('deaf', flush=True); time.sleep(60)")
    t0 = time.monotonic()
    record, _ = one(targets.command("deaf", code, timeout=1))
    assert time.monotonic() - t0 < 20 and record.verdict == Verdict.TIMEOUT


def test_shell_command_with_two_sleeping_children_is_killed(one, targets):
    target = {**targets.command("sh", ""), "argv": ["sh", "-c", "sleep 60 & sleep 60 & wait"], "timeout": 1}
    t0 = time.monotonic()
    record, _ = one(target)
    assert time.monotonic() - t0 < 20 and record.verdict == Verdict.TIMEOUT


def test_gpu_hidden_and_seed_set_in_child(one, targets, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.setenv("PYTHONHASHSEED", "random")
    code = "import os; print('CVD=[%s] HASHSEED=[%s]' % (os.environ['CUDA_VISIBLE_DEVICES'], os.environ['PYTHONHASHSEED']))"
    record, log = one(targets.command("env", code))
    assert "CVD=[] HASHSEED=[0]" in log and 'CUDA_VISIBLE_DEVICES=""' in log
    pytest_record, _ = one(targets.pytest("ok", f"{SYN}::test_pass"))  # asserts the same inside pytest
    assert pytest_record.verdict == Verdict.GREEN, pytest_record.reason
    assert record.provenance.runtime.cuda_available is False


@pytest.mark.parametrize("kind", ["pytest", "command"])
def test_a_visible_gpu_is_red(one, targets, kind):
    target = targets.pytest("gpu", f"{SYN}::test_pass") if kind == "pytest" else targets.command("gpu", "pass")
    record, log = one(target, cuda=True)
    assert record.verdict == Verdict.RED and "GPU was not hidden" in record.reason
    assert "torch.cuda.is_available(): True" in log


def test_child_env_is_deterministic_and_keeps_the_checkout_off_sys_path(project, write_plan):
    plan = load_plan(write_plan([{"name": "x", "session": "x", "kind": "command", "argv": ["true"],
                                   "log": "x.log", "timeout": 1, "description": "d"}]))
    env = child_env(RunContext(HOME, project, plan), 1, base={"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "0",
                                                              "EVIDENCE_HUB": "x", "NOX_X": "1"})
    assert env == {"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "", "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1",
                   "MKL_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "PYTHONSAFEPATH": "1",
                   "PYTHONUNBUFFERED": "1"}
    assert child_env(RunContext(HOME, project, plan), 3, base={})["OMP_NUM_THREADS"] == "3"
    assert "CUDA_VISIBLE_DEVICES" not in child_env(RunContext(HOME, project, plan), 1, "cuda", base={})


def test_threads_are_shared_by_the_targets_that_can_run_side_by_side(project, write_plan, targets):
    path = write_plan([targets.command("a", "1"), targets.command("b", "1", after=["a"]),
                       targets.command("c", "1", after=["a"]), targets.command("d", "1", after=["b", "c"])], "wide.toml")
    path.write_text(path.read_text().replace("threads = 1", "threads = 4"))
    plan = load_plan(path)
    ctx = RunContext(HOME, project, plan)
    every = ("a", "b", "c", "d")
    assert [share_threads(ctx, every, plan.target(n), jobs=2) for n in every] == [4, 2, 2, 4]
    assert share_threads(ctx, every, plan.target("b"), jobs=1) == 4, "one job at a time: every thread"
    assert share_threads(ctx, ("b",), plan.target("b"), jobs=2) == 4, "run alone: every thread"


def test_command_sees_no_project_root_on_sys_path(one, targets, project, monkeypatch):
    monkeypatch.delenv("PYTHONPATH", raising=False)  # the user's own PYTHONPATH reaches a target as it is
    record, log = one(targets.command("paths", "import json, sys; print('PATHS=' + json.dumps(sys.path))"))
    paths = json.loads(next(line for line in log.splitlines() if line.startswith("PATHS="))[6:])
    assert str(project) not in paths and "" not in paths


def test_command_green_needs_its_outputs_and_keeps_its_record(one, targets):
    code = "import json; open('{artifacts}/out.bin', 'wb').write(b'x'); print('TRAIN_RECORD ' + json.dumps(dict(epochs=1)))"
    record, _ = one(targets.command("writes", code, expected_outputs=["{artifacts}/out.bin"]))
    assert record.verdict == Verdict.GREEN, record.reason
    assert record.record == {"epochs": 1}
    assert record.outputs[0]["bytes"] == 1 and record.outputs[0]["path"].startswith("artifacts/")


@pytest.mark.parametrize(("code", "reason"), [("print('did nothing')", "expected output missing: artifacts/"),
                                              ("open('{artifacts}/model.zip', 'w').close()", "expected output is empty")])
def test_command_output_missing_or_empty_is_red_naming_it(one, targets, code, reason):
    record, _ = one(targets.command("lazy", code, expected_outputs=["{artifacts}/model.zip"]))
    assert record.verdict == Verdict.RED and reason in record.reason and "model.zip" in record.reason


def test_command_nonzero_exit_is_red(one, targets):
    record, _ = one(targets.command("crash", "raise SystemExit(3)"))
    assert record.verdict == Verdict.RED and record.exit_code == 3


def test_a_command_that_raises_is_red_naming_its_exception(one, targets):
    record, _ = one(targets.command("crash", "raise KeyError('diff3d')"))
    assert record.reason == "the command exited with code 1: KeyError: 'diff3d'", record.reason


def test_command_that_cannot_start_is_red(one, targets):
    record, log = one({**targets.command("ghost", ""), "argv": ["no-such-program-xyz"]})
    assert record.verdict == Verdict.RED and "could not be started" in record.reason
    assert "could not start 'no-such-program-xyz'" in log


def test_missing_input_blocks_the_target_before_it_runs(one, targets, project):
    marker = project / "ran.txt"
    code = f"open({str(marker)!r}, 'w').write('ran')"
    record, log = one(targets.command("needs", code, inputs=["datasets/big.npz"]))
    assert record.verdict == Verdict.BLOCKED and "datasets/big.npz" in record.reason
    assert not marker.exists(), "a BLOCKED target must not run"
    assert "BLOCKED: missing input(s): datasets/big.npz" in log


def test_declared_figures_are_copied_into_the_hub(one, targets):
    code = "open('{artifacts}/curve.png', 'wb').write(b'png')"
    record, _ = one(targets.command("fig", code, figures=["{artifacts}/curve.png", "{artifacts}/absent.png"]))
    assert record.figures == ("figures/fig/curve.png",)


def test_log_has_provenance_and_lands_only_in_the_hub(one, targets, project):
    before = sorted(p.name for p in project.iterdir())
    record, log = one(targets.pytest("ok", f"{SYN}::test_pass"))
    for field in ("# command: ", "# started_utc: ", "# git: sha=unknown", "not checked (no git)", "# platform: ",
                  "# seed: 0", "| torch ", "| lightning ", "| numpy ", "# ended_utc: ", "# duration_s: ",
                  "# exit_code: 0", "torch.cuda.is_available(): False", "# verdict: GREEN"):
        assert field in log, f"{field!r} missing from the log header/footer"
    assert set(p.name for p in project.iterdir()) - set(before) == {"plan.toml", "reports", "artifacts"}
    assert not list(project.glob("*.log")), "a log landed at the project root"


def test_a_target_never_reruns_into_the_same_hub(project, write_plan, targets, environment):
    ctx = RunContext(HOME, project, load_plan(write_plan([targets.pytest("ok", f"{SYN}::test_pass")])))
    hub = hub_with(ctx, environment)
    run_target(ctx, hub, ctx.plan.target("ok"), threads=1)
    with pytest.raises(FileExistsError, match="already ran in this hub"):
        run_target(ctx, hub, ctx.plan.target("ok"), threads=1)


def test_pytest_target_without_pytest_timeout_is_a_clear_error(project, write_plan, targets, environment):
    ctx = RunContext(HOME, project, load_plan(write_plan([targets.pytest("ok", f"{SYN}::test_pass")])))
    bare = replace(environment, packages={k: v for k, v in environment.packages.items() if k != "pytest-timeout"})
    with pytest.raises(RuntimeError, match="pytest and pytest-timeout must be installed in the evidence venv"):
        run_target(ctx, hub_with(ctx, bare), ctx.plan.target("ok"), threads=1)


def test_run_target_cli_exit_codes(project, write_plan, targets, environment, monkeypatch):
    """End to end through `python -m harness run-target`, in a hub the driver made ($EVIDENCE_HUB)."""
    plan = write_plan([targets.pytest("ok", f"{SYN}::test_pass"), targets.pytest("bad", f"{SYN}::test_fail")])
    ctx = RunContext(HOME, project, load_plan(plan))
    hub = hub_with(ctx, environment)
    env = {**os.environ, "EVIDENCE_HUB": str(hub.path), "EVIDENCE_PLAN": str(plan), "EVIDENCE_PROJECT": str(project),
           "PYTHONPATH": str(HOME)}
    runs = {name: subprocess.run([sys.executable, "-m", "harness", "run-target", name], capture_output=True, text=True,
                                 cwd=project, env=env) for name in ("ok", "bad", "nope")}
    assert [runs[n].returncode for n in ("ok", "bad", "nope")] == [0, 1, 2], {n: r.stderr for n, r in runs.items()}
    assert "[ok] GREEN" in runs["ok"].stdout
    assert "no target 'nope'" in runs["nope"].stderr and "Traceback" not in runs["nope"].stderr
    alone = subprocess.run([sys.executable, "-m", "harness", "run-target", "ok"], capture_output=True, text=True,
                           cwd=project, env={k: v for k, v in env.items() if k != "EVIDENCE_HUB"})
    assert alone.returncode == 2 and "runs inside a run's hub" in alone.stderr


def test_a_cuda_target_where_no_gpu_is_visible_is_blocked_before_it_runs(one, targets, project, monkeypatch):
    monkeypatch.setattr("harness.runner.gpu_visible", lambda: False)
    marker = project / "ran.txt"
    record, log = one(targets.command("gpu", f"open({str(marker)!r}, 'w').write('ran')", device="cuda"))
    assert record.verdict == Verdict.BLOCKED and "needs a CUDA GPU" in record.reason and not marker.exists()
    assert "device cuda" in log and "(GPU target)" in log


def test_a_cuda_target_with_a_gpu_runs_without_the_gpu_hidden(one, targets, monkeypatch):
    monkeypatch.setattr("harness.runner.gpu_visible", lambda: True)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    code = "import os; print('CVD=[%s]' % os.environ.get('CUDA_VISIBLE_DEVICES'))"
    record, log = one(targets.command("gpu", code, device="cuda"), cuda=True)
    assert record.verdict == Verdict.GREEN and "CVD=[0]" in log, record.reason
