"""Slurm jobs on a real one-node cluster (scripts/slurm-local.sh): output, exit codes, limits, Ctrl-C.

The cluster is started once per test process by conftest's `cluster` fixture; a cluster that cannot
start fails these tests, it never skips them. Every job has its own name, so parallel workers never
look at each other's jobs.
"""

from __future__ import annotations

import ctypes
import io
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest

from harness.schema import Verdict
from harness.slurm import FRAMED, SlurmResult, has_gpu_gres, job_info, job_verdict, run_slurm_job, slurm_available, \
    srun_argv

pytestmark = pytest.mark.e2e  # real jobs on a real one-node Slurm cluster


@pytest.fixture
def job(cluster, tmp_path):
    """run(argv, **options) -> (SlurmResult, log text), as a uniquely named job in tmp_path."""

    def run(argv: list[str], limit: float = 60, **options) -> tuple[SlurmResult, str]:
        log = io.StringIO()
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "EVIDENCE_PROBE": "exported"}
        result = run_slurm_job(argv, env=env, cwd=tmp_path, limit=limit, log=log,
                               job_name=f"test-{uuid.uuid4().hex[:10]}", **options)
        return result, log.getvalue()

    return run


def listed(job_id: str) -> str:
    """What squeue still says about the job ('' once it is gone)."""
    return subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True).stdout.strip()


def test_command_job_streams_its_output_after_the_slurm_line(job, tmp_path):
    code = 'echo "cwd=$PWD gpu=[$CUDA_VISIBLE_DEVICES] probe=$EVIDENCE_PROBE"; echo "RECORD: {}"'
    result, log = job(["sh", "-c", code], mark="RECORD: ")
    assert (result.exit_code, result.timed_out, result.state) == (0, False, "COMPLETED"), result
    assert f"# slurm: job {result.job_id} on {result.node} (partition debug)\n" in log, log
    lines = log.splitlines()
    assert lines.index(f"cwd={tmp_path} gpu=[] probe=exported") > lines.index(
        f"# slurm: job {result.job_id} on {result.node} (partition debug)"), "the job's output came before its frame"
    assert result.partition == "debug" and result.marked_line == "{}\n"


def test_failing_job_reports_its_exit_code_and_state(job):
    result, log = job(["sh", "-c", "echo about to fail; exit 3"])
    assert (result.exit_code, result.timed_out, result.state) == (3, False, "FAILED"), result
    assert "exit code 3" in result.reason and "about to fail" in log


def test_harness_cancels_a_job_at_its_own_limit(job):
    t0 = time.monotonic()
    result, log = job(["sh", "-c", "echo started; sleep 60"], limit=3)
    assert time.monotonic() - t0 < 20, "the job ran far beyond its 3 s harness limit"
    assert result.timed_out and result.state == "CANCELLED", result
    assert "cancelled by the harness at its 3 s limit, while it ran" in result.reason
    assert "started" in log and listed(result.job_id) == ""


def test_job_still_queued_at_the_limit_is_cancelled_and_never_ran(job):
    result, _ = job(["true"], limit=2, cpus=64)  # more CPUs than the node has: it can only wait
    assert result.timed_out and result.exit_code is None and result.state == "CANCELLED", result
    assert "still queued" in result.reason and listed(result.job_id) == ""


def test_slurm_timeout_at_its_one_minute_limit(job):
    """Slurm's own limit (the harness's is longer): the smallest Slurm time, so this takes 60-90 s."""
    result, log = job(["sh", "-c", "echo waiting; sleep 300"], limit=240, minutes=1)
    assert result.state == "TIMEOUT" and result.timed_out, result
    assert "time limit (TimeLimit=00:01:00)" in result.reason and "DUE TO TIME LIMIT" in log


def test_rejected_job_never_gets_an_id(job):
    result, log = job(["true"], partition="no-such-partition")
    assert (result.job_id, result.exit_code, result.state) == (None, None, None), result
    assert "Invalid partition" in result.reason and "Invalid partition" in log


def test_ctrl_c_cancels_the_job_before_propagating(cluster, tmp_path):
    """KeyboardInterrupt is raised in this thread by the tee as soon as the job says it is ready.

    An asynchronous exception, not SIGINT: a suite started in the background inherits SIGINT ignored.
    """
    caller, log = threading.get_ident(), io.StringIO()

    def interrupt_when_ready(line: str) -> None:
        if line == "ready\n":
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(caller), ctypes.py_object(KeyboardInterrupt))

    with pytest.raises(KeyboardInterrupt):
        run_slurm_job(["sh", "-c", "echo ready; sleep 60"], env=dict(os.environ), cwd=tmp_path, limit=120, log=log,
                      echo=interrupt_when_ready, job_name=f"test-{uuid.uuid4().hex[:10]}")
    framed = next(m for m in map(FRAMED.match, log.getvalue().splitlines()) if m)
    assert listed(framed.group(1)) == "", "the job is still queued or running after the interrupt"
    assert job_info(framed.group(1))["JobState"] == "CANCELLED"


HARNESS = textwrap.dedent("""
    import io, os, sys, uuid
    from pathlib import Path
    from harness.slurm import run_slurm_job

    run_slurm_job(["sh", "-c", "trap '' TERM; echo ready; sleep 60"], env=dict(os.environ), cwd=Path(sys.argv[1]),
                  limit=120, log=io.StringIO(), echo=lambda line: print(line, end="", flush=True),
                  job_name=f"test-{uuid.uuid4().hex[:10]}")
""")


def test_a_harness_killed_outright_still_ends_its_job(cluster, tmp_path):
    """nox SIGKILLs a stopped session soon after its SIGTERM: srun, SIGTERMed as its parent dies, ends the job.

    The job ignores SIGTERM, so only srun's own end of the job (after KillWait) can stop it.
    """
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.Popen([sys.executable, "-c", HARNESS, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=env)
    framed = FRAMED.match(proc.stdout.readline().rstrip("\n"))
    assert framed and proc.stdout.readline() == "ready\n", "the job did not start"
    t0 = time.monotonic()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    while listed(framed.group(1)) and time.monotonic() - t0 < 30:
        time.sleep(0.2)
    assert listed(framed.group(1)) == "", "the job outlived the harness process that started it"


@pytest.mark.parametrize(("options", "expected"), [
    ({}, []),
    ({"partition": "gpu", "gres": "gpu:1", "cpus": 4}, ["--partition=gpu", "--gres=gpu:1", "--cpus-per-task=4"]),
])
def test_srun_options_only_when_given(options, expected):
    argv = srun_argv(["python", "x.py"], cwd=Path("/p"), job_name="t", minutes=2, **options)
    assert argv[:7] == ["srun", "--job-name=t", "--nodes=1", "--ntasks=1", "--time=2", "--chdir=/p", "--export=ALL"]
    assert argv[7:argv.index("--")] == expected and argv[-4:] == ["sh", "/p", "python", "x.py"]


def test_slurm_available(cluster, monkeypatch):
    assert slurm_available() is None
    monkeypatch.setenv("PATH", "/nonexistent")
    assert "sinfo not found" in slurm_available()


@pytest.mark.parametrize(("gres", "gpu"), [(None, False), ("", False), ("gpu", True), ("gpu:2", True),
                                            ("gpu:a100:1", True), ("mps:1,gpu:1", True), ("gpumem:4G", False)])
def test_gpu_gres(gres, gpu):
    assert has_gpu_gres(gres) is gpu


def _job(state: str | None, code: int | None = 0, timed_out: bool = False, job: str | None = "7") -> SlurmResult:
    return SlurmResult(code, timed_out, None, job, "vm", "debug", state, f"job {job} {state}: why")


@pytest.mark.parametrize(("result", "judged", "expected"), [
    (_job("COMPLETED"), (Verdict.GREEN, "ok"), (Verdict.GREEN, "ok")),
    (_job("COMPLETED"), (Verdict.RED, "expected output missing: x"), (Verdict.RED, "expected output missing: x")),
    (_job("TIMEOUT", -15, True), (Verdict.TIMEOUT, "killed"), (Verdict.TIMEOUT, "job 7 TIMEOUT: why")),
    (_job("CANCELLED", -15, True), (Verdict.TIMEOUT, "killed"), (Verdict.TIMEOUT, "job 7 CANCELLED: why")),
    (_job("FAILED", 3), (Verdict.RED, "1 failed: boom"), (Verdict.RED, "job 7 FAILED: why; 1 failed: boom")),
    (_job("FAILED", -9), (Verdict.RED, "exited -9"), (Verdict.RED, "job 7 FAILED: why")),
    (_job("CANCELLED", -15), (Verdict.RED, "exited -15"), (Verdict.RED, "job 7 CANCELLED: why")),
    (_job("NODE_FAIL", None), (Verdict.RED, "no record"), (Verdict.RED, "job 7 NODE_FAIL: why")),
    (SlurmResult(None, False, reason="srun: error: Invalid partition"), (Verdict.RED, "could not be started"),
     (Verdict.RED, "Slurm did not run the job: srun: error: Invalid partition")),
])
def test_how_slurm_ended_the_job_overrules_the_judged_verdict(result, judged, expected):
    assert job_verdict(result, *judged) == expected
