"""Plan targets with `executor = "slurm"` through the real driver and nox, on the real one-node cluster.

conftest's `cluster` fixture starts scripts/slurm-local.sh (it fails, never skips, if it cannot). The driver
runs in this process (`python -m harness pipeline` as `cli`), except where a signal must reach it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from factory import cli, git

from harness.context import HOME, RunContext
from harness.hub import create_hub
from harness.plan import load_plan
from harness.runner import run_target
from harness.schema import HubFiles, Manifest, Verdict, VerdictRecord

pytestmark = pytest.mark.e2e  # real jobs on a real one-node Slurm cluster

ON_NODE = ("import json, os; job = os.environ['SLURM_JOB_ID']; "
           "print('in job', job, 'gpu=[' + os.environ['CUDA_VISIBLE_DEVICES'] + ']', flush=True); "
           "open('{artifacts}/on_node.txt', 'w').write(job); print('TRAIN_RECORD ' + json.dumps(dict(job=job)))")
IN_JOB_TEST = ("import os\n\n\ndef test_in_job():\n"
               "    assert os.environ['SLURM_JOB_ID'] and os.environ['CUDA_VISIBLE_DEVICES'] == ''\n")
JOB_LINE = re.compile(r"^# slurm: job (\d+) on (\S+) \(partition (\S+)\)$", re.M)


@pytest.fixture
def slurm_project(project, cluster, monkeypatch):
    """The synthetic project, committed, with a test that passes only inside a job; no evidence venv is built."""
    monkeypatch.setenv("EVIDENCE_PYTHON", sys.executable)
    (project / "tests" / "test_in_job.py").write_text(IN_JOB_TEST)
    (project / ".gitignore").write_text("reports/\nartifacts/\nparts/\nmerged/\n")
    return project


def commit(project: Path, plan: Path) -> Path:
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "plan"]):
        git(project, *args)
    return plan


def slurm(**extra: object) -> dict:
    return {"executor": "slurm", **extra}


def pipeline(project: Path, plan: Path, *extra: str) -> int:
    return cli("pipeline", "--plan", plan, "--project", project, "--jobs", "2", *extra)


def hub_of(out: str, project: Path) -> Path:
    line = next(line for line in reversed(out.splitlines()) if line.startswith("hub: "))
    return project / line.removeprefix("hub: ")


def listed(job_id: str) -> str:
    """What squeue still says about the job ('' once it is gone)."""
    return subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True).stdout.strip()


def gone(job_id: str, wait: float = 30) -> bool:
    deadline = time.monotonic() + wait
    while listed(job_id) and time.monotonic() < deadline:
        time.sleep(0.2)
    return listed(job_id) == ""


def test_slurm_targets_are_green_through_the_driver_and_name_their_job(slurm_project, write_plan, targets, capsys):
    plan = commit(slurm_project, write_plan([
        targets.command("prepare", "print('local')"),
        targets.command("on_node", ON_NODE, after=["prepare"], expected_outputs=["{artifacts}/on_node.txt"], **slurm()),
        targets.pytest("in_job", "tests/test_in_job.py", after=["prepare"], **slurm(partition="debug", cpus=1))]))
    assert pipeline(slurm_project, plan) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert out.strip().endswith("verdict: GREEN"), out[-2000:]
    hub = hub_of(out, slurm_project)
    record = VerdictRecord.load(hub / HubFiles.verdict("on_node"))
    log = (hub / "on_node.log").read_text()
    job, node, partition = JOB_LINE.search(log).groups()
    assert record.provenance.slurm == {"job": job, "node": node, "partition": partition} and record.record == {
        "job": job}, "the provenance names the job the command ran in"
    header, output = log.split("# ----- output -----\n")
    assert "# executor: slurm (partition default, gres none, cpus default; --time=1 min)" in header.splitlines()
    assert output.index(f"# slurm: job {job} on") < output.index(f"in job {job} gpu=[]"), "job line first, then output"
    footer = log.split("----- end of output -----")[1]
    assert f"# slurm: job {job} COMPLETED on {node} (partition {partition})" in footer
    pytest_log = (hub / "in_job.log").read_text()
    assert "executor: slurm (partition debug, gres none, cpus 1;" in pytest_log and JOB_LINE.search(pytest_log)
    local = VerdictRecord.load(hub / HubFiles.verdict("prepare"))
    assert local.provenance.slurm is None and "executor:" not in (hub / "prepare.log").read_text()
    assert cli("validate", hub) == 0


def test_how_slurm_ends_a_job_is_its_verdict(slurm_project, write_plan, targets, capsys):
    """One run, one behaviour: each way a job can end, judged from Slurm's own word."""
    expected = {
        "fails": (Verdict.RED, r"^job \d+ FAILED: exit code 1 \(Reason=NonZeroExitCode\); .*ValueError: broken"),
        "over_limit": (Verdict.TIMEOUT, r"^job \d+ CANCELLED: cancelled by the harness at its 3 s limit, while it ran"),
        "cancelled": (Verdict.RED, r"^job \d+ CANCELLED: signal 15$"),
        "rejected": (Verdict.RED, r"^Slurm did not run the job: srun: error: .*[Ii]nvalid partition"),
        "gpu_on_node": (Verdict.RED, r"^Slurm did not run the job: srun: error: .*[Ii]nvalid (generic resource|gres)"),
        "cuda_no_gres": (Verdict.BLOCKED, r"^needs a CUDA GPU; a Slurm target gets one only through its gres"),
    }
    plan = commit(slurm_project, write_plan([
        targets.command("fails", "raise ValueError('broken')", **slurm()),
        targets.command("over_limit", "import time; print('working', flush=True); time.sleep(60)", timeout=3,
                        **slurm()),
        targets.command("cancelled", "import os, subprocess, time; "  # someone else's scancel
                        "subprocess.run(['scancel', os.environ['SLURM_JOB_ID']]); time.sleep(30)", **slurm()),
        targets.command("rejected", "print(1)", **slurm(partition="no-such-partition")),
        targets.command("gpu_on_node", "print(1)", device="cuda", **slurm(gres="gpu:1")),
        targets.command("cuda_no_gres", "print(1)", device="cuda", **slurm())]))
    assert pipeline(slurm_project, plan) == 1
    hub = hub_of(capsys.readouterr().out, slurm_project)
    found = {n: VerdictRecord.load(hub / HubFiles.verdict(n)) for n in expected}
    wrong = {n: (str(r.verdict), r.reason) for n, r in found.items()
             if r.verdict != expected[n][0] or not re.search(expected[n][1], r.reason)}
    assert not wrong, f"expected {expected}, got {wrong}"
    assert "BLOCKED: needs a CUDA GPU" in (hub / "cuda_no_gres.log").read_text() and not JOB_LINE.search(
        (hub / "cuda_no_gres.log").read_text()), "a BLOCKED target never reaches Slurm"
    assert gone(found["over_limit"].provenance.slurm["job"])


@pytest.mark.parametrize(("conf", "reason"), [
    ("down.conf", "sinfo failed: slurm_load_partitions: Unable to contact slurm controller (connect failure)"),
    ("no-such.conf", "SLURM_CONF={conf} is not a file"),
])
def test_a_slurm_target_without_a_cluster_is_blocked_before_it_runs(slurm_project, write_plan, targets, cluster,
                                                                   monkeypatch, tmp_path, conf, reason):
    """A controller that does not answer (the local cluster's conf on a port where nothing listens), or no conf."""
    (tmp_path / "down.conf").write_text(cluster.read_text() + "SlurmctldPort=1\nMessageTimeout=2\n")
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / conf))
    ctx = RunContext(HOME, slurm_project, load_plan(write_plan([targets.command("on_node", "print(1)", **slurm())])))
    hub = create_hub(ctx, targets=("on_node",), python=sys.executable)
    record = run_target(ctx, hub, ctx.plan.target("on_node"), threads=1)
    assert record.verdict == Verdict.BLOCKED and record.reason.startswith(reason.format(conf=tmp_path / conf)), \
        record.reason
    assert record.exit_code is None and record.provenance.slurm is None
    assert not JOB_LINE.search((hub.path / "on_node.log").read_text()), "nothing reached Slurm"


def _as_typed_in_a_terminal() -> None:
    """Default dispositions: a suite started in the background inherits SIGINT ignored (see test_pipeline)."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)


@pytest.mark.parametrize("jobs", ["1", "2"])  # nox stops a session itself (1) or through a child nox (2)
def test_ctrl_c_cancels_the_job_and_leaves_the_hub_incomplete(slurm_project, write_plan, targets, jobs):
    plan = commit(slurm_project, write_plan([targets.command(
        "slow", "import time; print('ready', flush=True); time.sleep(60)", timeout=120, **slurm())]))
    env = dict(os.environ, PYTHONPATH=str(HOME))
    proc = subprocess.Popen([sys.executable, "-m", "harness", "pipeline", "--plan", str(plan), "--project",
                             str(slurm_project), "--jobs", jobs], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env, preexec_fn=_as_typed_in_a_terminal)
    deadline, partial = time.monotonic() + 60, None
    while time.monotonic() < deadline and not (partial and "ready\n" in partial.read_text()):
        partial = next(iter(slurm_project.glob("reports/*/hub/slow.log.partial")), None)
        time.sleep(0.1)
    assert proc.poll() is None and partial and "ready\n" in partial.read_text(), "the job never started"
    job = JOB_LINE.search(partial.read_text()).group(1)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 130 and "Traceback" not in out, out
    assert out.strip().splitlines()[-1].startswith("verdict: INCOMPLETE (interrupted; hub reports/"), out[-1500:]
    assert (partial.parent / HubFiles.INCOMPLETE).exists() and partial.is_file()
    assert gone(job), f"job {job} is still listed by squeue after the run was interrupted"
    state = subprocess.run(["scontrol", "-o", "show", "job", job], capture_output=True, text=True).stdout
    assert "JobState=CANCELLED" in state, state


def test_a_slurm_part_merges_with_local_parts_into_one_green_hub(slurm_project, write_plan, targets, capsys):
    """Each target alone into a part (`--part`), one of them a Slurm job; `merge` joins them (harness/merge.py)."""
    plan = commit(slurm_project, write_plan([
        targets.command("prepare", "print('local')"),
        targets.command("on_node", ON_NODE, after=["prepare"], expected_outputs=["{artifacts}/on_node.txt"], **slurm()),
        targets.pytest("unit", "tests/test_synthetic.py::test_pass", after=["prepare"])]))
    parts = [slurm_project / "parts" / name for name in ("prepare", "on_node", "unit")]
    for part in parts:
        assert pipeline(slurm_project, plan, "--targets", part.name, "--part", str(part)) == 0, capsys.readouterr()
    assert JOB_LINE.search((parts[1] / "on_node.log").read_text()), "the Slurm part holds the job's log"
    merged = slurm_project / "merged"
    code = cli("merge", *parts, "--into", merged, "--plan", plan, "--project", slurm_project, "--no-ledger")
    assert code == 0, capsys.readouterr()
    manifest = Manifest.load(merged)
    assert manifest.overall_verdict == "GREEN" and {t.name for t in manifest.targets} == {"prepare", "on_node", "unit"}
    on_node = VerdictRecord.load(merged / HubFiles.verdict("on_node"))
    assert on_node.provenance.slurm["job"], "the job survives the merge"
    assert (merged / "on_node.log").read_bytes() == (parts[1] / "on_node.log").read_bytes()
    assert cli("validate", merged) == 0
    assert json.loads((merged / HubFiles.RUN).read_text()).get("part") is not True


def test_local_runs_never_import_the_slurm_module():
    """harness.slurm is imported by the runner only for a Slurm target (the module-count budget)."""
    code = "import sys, harness.__main__, harness.pipeline, harness.runner; print('harness.slurm' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=HOME,
                          env=dict(os.environ, PYTHONPATH=str(HOME)))
    assert done.stdout.strip() == "False", done.stderr
