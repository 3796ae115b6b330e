"""Run one command as a Slurm job through `srun` (its output relayed line by line, no shared file system), teed into
the log; the final state comes from `scontrol show job`. The harness cancels the job `limit` seconds after it started
(or was submitted, while queued); srun gets SIGTERM when run-target dies. docs/scale.md, "How a job runs"."""

from __future__ import annotations

import contextlib
import functools
import math
import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Mapping, Protocol

from harness.plan import Target
from harness.logframe import ChildResult, die_with_parent, stop_group
from harness.schema import Verdict

FRAMED = re.compile(r"# slurm: job (\d+) on (\S+) \(partition (\S+)\)$")
QUEUED = re.compile(r"srun: job (\d+) queued and waiting for resources")
# The job's first line names it; then the command runs in `cwd` (Slurm itself would fall back to /tmp), its
# stderr merged into its stdout (one stream, in order, as a local child's).
WRAPPER = ('exec 2>&1; printf "# slurm: job %s on %s (partition %s)\\n" "$SLURM_JOB_ID" "$SLURMD_NODENAME" '
           '"$SLURM_JOB_PARTITION"; cd -- "$1" || exit 126; shift; exec "$@"')
POLL_S = 0.2  # how often the harness looks at its clock and at an interrupt while the job runs
SRUN_EXIT_WAIT_S = 30.0  # srun's own exit after scancel (it waits KillWait for the step)
GONE_WAIT_S = 30.0  # until squeue no longer lists a finished or cancelled job
COMMAND_TIMEOUT_S = 30.0  # one scontrol/squeue/scancel/sinfo call


@dataclass(frozen=True)
class SlurmResult(ChildResult):
    """How the job ended: the child fields, plus where it ran and Slurm's own word on its end."""
    job_id: str | None = None  # None: Slurm never accepted it (see reason)
    node: str | None = None
    partition: str | None = None
    state: str | None = None  # JobState: COMPLETED, FAILED, TIMEOUT, CANCELLED, NODE_FAIL, OUT_OF_MEMORY, ...
    reason: str = ""


class Sink(Protocol):
    def write(self, text: str) -> object: ...


class _JobTee:
    """srun's stdout (the job's output) into the log as it comes, its stderr after it (not inside a traceback)."""
    def __init__(self, proc: subprocess.Popen, log: Sink, echo: Callable[[str], None] | None, mark: str) -> None:
        self.log, self.echo, self.mark = log, echo, mark
        self.job_id: str | None = None
        self.node: str | None = None
        self.partition: str | None = None
        self.started: float | None = None  # monotonic time of the job's first line
        self.marked: str | None = None
        self.error = ""  # srun's last error line: why a job that never started failed
        self.messages: list[str] = []
        self.threads = [threading.Thread(target=self._read, args=(proc.stdout, False), daemon=True),
                        threading.Thread(target=self._read, args=(proc.stderr, True), daemon=True)]
        for thread in self.threads:
            thread.start()

    def _read(self, stream: IO[str], srun: bool) -> None:
        for line in stream:
            if srun:
                if self.job_id is None and (queued := QUEUED.match(line)):
                    self.job_id = queued.group(1)
                if line.startswith("srun: error: "):
                    self.error = line.strip()
                self.messages.append(line)
            else:
                if self.started is None and (framed := FRAMED.match(line.rstrip("\n"))):
                    self.job_id, self.node, self.partition = framed.groups()
                    self.started = time.monotonic()
                if self.mark and line.startswith(self.mark):
                    self.marked = line[len(self.mark):]
                self.log.write(line)
            if self.echo is not None:
                self.echo(line)

    def join(self, timeout: float) -> None:
        """Wait for both streams to end, then log srun's messages (unless the output is still being written)."""
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if not self.threads[0].is_alive():
            self.log.write("".join(self.messages))
            self.messages.clear()


def _slurm(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=COMMAND_TIMEOUT_S)


def slurm_available() -> str | None:
    """None when `sinfo` answers, else a one-line reason."""
    conf = os.environ.get("SLURM_CONF")
    if conf and not Path(conf).is_file():  # sinfo itself would retry for a minute
        return f"SLURM_CONF={conf} is not a file (scripts/slurm-local.sh start prints the local cluster's)"
    try:
        done = _slurm("sinfo", "-h", "-o", "%P")
    except FileNotFoundError:
        return "sinfo not found: Slurm's client tools are not installed (scripts/slurm-local.sh start makes a cluster)"
    except subprocess.TimeoutExpired:
        return f"sinfo did not answer within {COMMAND_TIMEOUT_S:g} s: is slurmctld running?"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        return f"sinfo failed: {last} (set SLURM_CONF to the cluster's slurm.conf)"
    return None


def job_info(job_id: str) -> dict[str, str]:
    """`scontrol show job` as a dict (first occurrence wins: the command line comes last); {} when unknown."""
    done = _slurm("scontrol", "-o", "show", "job", job_id)
    info: dict[str, str] = {}
    for key, sep, value in (t.partition("=") for t in (done.stdout.split() if done.returncode == 0 else ())):
        if sep:
            info.setdefault(key, value)
    return info


def wait_gone(job_id: str | None) -> None:
    """Wait (bounded) until `squeue` no longer lists the job."""
    deadline = time.monotonic() + GONE_WAIT_S
    while job_id is not None and time.monotonic() <= deadline:
        done = _slurm("squeue", "-h", "-j", job_id, "-o", "%T")
        if done.returncode == 0 and not done.stdout.strip():
            return
        time.sleep(POLL_S)


def srun_argv(argv: list[str], *, cwd: Path, job_name: str, minutes: int, partition: str | None = None,
              gres: str | None = None, cpus: int | None = None) -> list[str]:
    """The srun command line: one task, the given environment exported, options only when given."""
    options = [f"--partition={partition}"] * bool(partition) + [f"--gres={gres}"] * bool(gres)
    options += [f"--cpus-per-task={cpus}"] * bool(cpus)
    return ["srun", f"--job-name={job_name}", "--nodes=1", "--ntasks=1", f"--time={minutes}", f"--chdir={cwd}",
            "--export=ALL", *options, "--", "/bin/sh", "-c", WRAPPER, "sh", str(cwd), *argv]


def _cancel(proc: subprocess.Popen, tee: _JobTee) -> None:
    """scancel the job (or, before Slurm named it, stop srun, which revokes the request); srun then exits."""
    if tee.job_id is not None:
        _slurm("scancel", tee.job_id)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=SRUN_EXIT_WAIT_S)
            return
    stop_group(proc)


def _result(srun_code: int | None, harness_timeout: bool, tee: _JobTee, limit: float) -> SlurmResult:
    """The job's end as Slurm's controller records it; exit code None when the command never ran."""
    info = job_info(tee.job_id) if tee.job_id else {}
    ran = tee.started is not None
    if not info:
        why = tee.error or f"srun exited {srun_code} and Slurm has no record of job {tee.job_id}"
        return SlurmResult(srun_code if ran else None, harness_timeout, tee.marked, tee.job_id, reason=why)
    state = info.get("JobState", "UNKNOWN")
    code = None  # Slurm's `ExitCode=<code>:<signal>` as Popen reports a child: the code, or minus the signal
    if ran and ":" in info.get("ExitCode", ""):
        status, signal_number = (int(part) for part in info["ExitCode"].split(":", 1))
        code = -signal_number if signal_number else status
    if harness_timeout:
        where = "while it ran" if ran else f"still queued (Reason={info.get('Reason')})"
        why = f"cancelled by the harness at its {limit:g} s limit, {where}"
    elif state == "TIMEOUT":
        why = f"Slurm ended it at its time limit (TimeLimit={info.get('TimeLimit')})"
    else:
        why = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        why += f" (Reason={info['Reason']})" if info.get("Reason", "None") != "None" else ""
    return SlurmResult(code, harness_timeout or state == "TIMEOUT", tee.marked, tee.job_id,
                       tee.node or info.get("NodeList") or None, tee.partition or info.get("Partition"), state,
                       f"job {tee.job_id} {state}: {why}")


def slurm_minutes(limit: float) -> int:
    """Slurm's `--time` for a limit in seconds: whole minutes, rounded up."""
    return max(1, math.ceil(limit / 60))


def run_slurm_job(argv: list[str], *, env: Mapping[str, str], cwd: Path, limit: float, log: Sink,
                  echo: Callable[[str], None] | None = None, mark: str = "", partition: str | None = None,
                  gres: str | None = None, cpus: int | None = None, job_name: str,
                  minutes: int | None = None) -> SlurmResult:
    """Run `argv` as a one-task job; Ctrl-C/SIGTERM cancels it, waits until `squeue` no longer lists it, re-raises."""
    command = srun_argv(argv, cwd=cwd, job_name=job_name, minutes=minutes or slurm_minutes(limit),
                        partition=partition, gres=gres, cpus=cpus)
    # The job's environment: never a step of an allocation the harness itself may run in.
    clean = {k: v for k, v in env.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_", "SALLOC_"))}
    if os.environ.get("SLURM_CONF"):
        clean["SLURM_CONF"] = os.environ["SLURM_CONF"]
    try:
        proc = subprocess.Popen(command, cwd=cwd, env=clean, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, text=True, errors="replace", bufsize=1,
                                start_new_session=True, preexec_fn=functools.partial(die_with_parent, signal.SIGTERM))
    except OSError as exc:
        log.write(f"could not start srun: {exc}\n")
        return SlurmResult(None, False, reason=f"could not start srun: {exc}")
    tee = _JobTee(proc, log, echo, mark)
    submitted, timed_out = time.monotonic(), False
    try:
        while proc.poll() is None:
            timed_out = timed_out or time.monotonic() > (tee.started or submitted) + limit
            if timed_out:
                _cancel(proc, tee)
            else:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=POLL_S)
    except BaseException:  # Ctrl-C / SIGTERM of the harness: cancel the job, then let it propagate
        # A second Ctrl-C/SIGTERM is held off meanwhile (nox follows its SIGINT with SIGTERM).
        main = threading.current_thread() is threading.main_thread()
        saved = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)} if main else {}
        try:
            _cancel(proc, tee)
            tee.join(timeout=10)
            wait_gone(tee.job_id)
        finally:
            for sig, handler in saved.items():
                signal.signal(sig, handler)
        raise
    tee.join(timeout=30)
    wait_gone(tee.job_id)
    return _result(proc.returncode, timed_out, tee, limit)


# --------------------------------------------------------------------------- a plan target as a Slurm job

def has_gpu_gres(gres: str | None) -> bool:
    """Whether a `--gres` request asks for a GPU (`gpu`, `gpu:2`, `gpu:a100:1`, `...,gpu:1`)."""
    return any(item.split(":")[0].strip() == "gpu" for item in (gres or "").split(","))


def target_blocked(target: Target) -> str | None:
    """Why a Slurm target cannot run here (None: it can): a CUDA target without a GPU gres, no cluster."""
    if target.device == "cuda" and not has_gpu_gres(target.gres):
        return 'needs a CUDA GPU; a Slurm target gets one only through its gres: add gres = "gpu:1" to the target'
    return slurm_available()


def run_target_job(target: Target, argv: list[str], **child: Any) -> SlurmResult:
    """`run_slurm_job` with the target's resources; `child` as for runner.run_child (env, cwd, limit, log, ...)."""
    return run_slurm_job(argv, partition=target.partition, gres=target.gres, cpus=target.cpus,
                         job_name=f"evidence-{target.name}", **child)


def header_line(target: Target, limit: float) -> str:
    return (f"executor: slurm (partition {target.partition or 'default'}, gres {target.gres or 'none'}, "
            f"cpus {target.cpus or 'default'}; --time={slurm_minutes(limit)} min)")


def footer_line(result: SlurmResult) -> str:
    where = f" on {result.node} (partition {result.partition})" if result.node else ""
    return f"slurm: job {result.job_id} {result.state}{where}" if result.job_id else f"slurm: no job ({result.reason})"


def placement(result: SlurmResult) -> dict[str, str | None]:
    """Where a target ran as a Slurm job: schema.Provenance.slurm."""
    return {"job": result.job_id, "node": result.node, "partition": result.partition}


def job_verdict(result: SlurmResult, verdict: Verdict, reason: str) -> tuple[Verdict, str]:
    """The verdict judged from the output, unless Slurm ended the job otherwise (limit: TIMEOUT; else RED)."""
    if result.timed_out:
        return Verdict.TIMEOUT, result.reason or reason
    if result.job_id is None:
        return Verdict.RED, f"Slurm did not run the job: {result.reason}"
    if result.state != "COMPLETED":
        exited = verdict == Verdict.RED and (result.exit_code or 0) > 0  # the command's own failure: say which
        return Verdict.RED, result.reason + (f"; {reason}" if exited else "")
    return verdict, reason
