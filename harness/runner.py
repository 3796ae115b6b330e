"""Run one plan target into its run's hub (`run-target NAME`): hidden GPU, fixed seed and threads, sealed log, verdict.

A missing input or an unseen GPU is BLOCKED before anything runs; a Slurm target runs as a job (harness/slurm.py)."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from harness.context import HUB_ENV, RunContext, git_state
from harness.hub import Hub, utc_now_iso
from harness.logframe import END, FIRST, OUTPUT, ChildResult, SealedLog, frame, run_child
from harness.plan import Target, expand
from harness.schema import EnvironmentRecord, HubFiles, Provenance, Runtime, Verdict, VerdictRecord
from harness.verdict import RECORD_PREFIX, command_verdict, load_outcomes, parse_record, pytest_verdict

# A pytest target's per-test limit is its timeout; the whole process gets this much more for
# interpreter start-up, collection and teardown before the wall-clock kill.
PYTEST_WALL_GRACE_S = 60.0
CUDA_WAIT_S = 120.0  # how long a command target waits for the run's GPU probe (the driver runs it)
PLUGIN_DIR = Path(__file__).resolve().parent / "pytest_plugin"
NEEDS_GPU = "needs a CUDA GPU; run it on a GPU runner or with a GPU executor"


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM while a target ran: its log stays `.partial` and no verdict is recorded."""


def child_env(ctx: RunContext, threads: int, device: str = "cpu", base: dict[str, str] | None = None) -> dict[str, str]:
    """A target's environment: GPU hidden (but for a CUDA target), seed and threads fixed, checkout off sys.path."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if k != HUB_ENV and not k.startswith("NOX")}
    # OMP_WAIT_POLICY: idle OpenMP threads sleep; spinning made torch 15-90x slower on a shared 2-core machine.
    env.update({"PYTHONHASHSEED": str(ctx.plan.environment.seed), "OMP_NUM_THREADS": str(threads),
                "MKL_NUM_THREADS": str(threads), "PYTHONSAFEPATH": "1", "PYTHONUNBUFFERED": "1",
                "OMP_WAIT_POLICY": "PASSIVE"})
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def share_threads(ctx: RunContext, selected: tuple[str, ...], target: Target, jobs: int) -> int:
    """The plan's threads // min(jobs, peers), peers: the targets at `target`'s depth of the `after` graph."""
    depth: dict[str, int] = {}
    for t in ctx.plan.targets:
        if t.name in selected:
            depth[t.name] = 1 + max((depth[a] for a in t.after if a in depth), default=-1)
    peers = sum(d == depth.get(target.name, 0) for d in depth.values())
    return max(1, ctx.plan.environment.threads // max(1, min(jobs, peers)))


def gpu_visible() -> bool:
    """Whether this machine shows a CUDA GPU (without importing torch): `nvidia-smi -L` lists one."""
    smi = shutil.which("nvidia-smi")
    try:
        return bool(smi) and "GPU " in subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return False


def _fill(text: str, ctx: RunContext, hub: Hub, python: str) -> str:
    return expand(text, python=python, artifacts=ctx.rel(hub.artifacts), hub=ctx.rel(hub.path),
                  project_root=str(ctx.project))


def build_argv(target: Target, ctx: RunContext, hub: Hub, python: str) -> list[str]:
    """The exact child command line of a target."""
    if target.kind == "pytest":
        return [python, "-m", "pytest", str(target.selector), "-vv", "-p", "no:cacheprovider", "-p", "harness_outcomes",
                "--harness-outcomes", str(hub.outcomes(target.name)), "--timeout", f"{target.timeout:g}",
                "--timeout-method", "signal"]
    return [_fill(arg, ctx, hub, python) for arg in target.argv]


def wall_limit(target: Target) -> float:
    return target.timeout + (PYTEST_WALL_GRACE_S if target.kind == "pytest" else 0.0)


def _header(target: Target, ctx: RunContext, hub: Hub, argv: list[str], env: dict[str, str], prov: Provenance) -> str:
    g, r = prov.git, prov.runtime
    commit = g.sha if g.known else f"{hub.run.project_commit or 'unknown'} ({hub.run.commit_source})"
    gpu = (f'CUDA_VISIBLE_DEVICES="{env["CUDA_VISIBLE_DEVICES"]}" (GPU hidden)' if target.device == "cpu" else
           f"device cuda: CUDA_VISIBLE_DEVICES={env.get('CUDA_VISIBLE_DEVICES', '(unset)')} (GPU target)")
    return frame([
        f"{FIRST} target {target.name} ({target.kind}, device {target.device}) of plan {ctx.plan.id}",
        f"command: PYTHONHASHSEED={env['PYTHONHASHSEED']} {shlex.join(argv)}",
        f"cwd: {ctx.project}", f"started_utc: {utc_now_iso()}", f"time limit: {wall_limit(target):g} s",
        *([_slurm().header_line(target, wall_limit(target))] if target.executor == "slurm" else []),
        f"git: sha={commit} dirty={'unknown' if g.dirty is None else g.dirty}" + (f" ({g.note})" if g.note else ""),
        f"dirty files (tracked): {', '.join(g.dirty_files) or 'none'}",
        f"production code ({', '.join(ctx.plan.project.production)}) differing from HEAD: "
        f"{', '.join(g.production_changed) or ('none' if g.known else 'not checked (no git)')}",
        f"python {r.python} ({r.executable}) | torch {r.torch} | lightning {r.lightning} | numpy {r.numpy}",
        f"{gpu}; torch.cuda.is_available() is in the footer", f"platform: {r.platform}",
        f"seed: {prov.seed}  PYTHONHASHSEED={env['PYTHONHASHSEED']}  threads: {prov.threads}", OUTPUT])


def _slurm() -> ModuleType:
    """harness.slurm, imported only for a Slurm target (most runs never load it)."""
    from harness import slurm
    return slurm


def _blocked(target: Target, ctx: RunContext) -> str | None:
    """Why the target cannot run here: a missing input, no GPU for a CUDA target, no Slurm for a Slurm one."""
    if missing := [p for p in target.inputs if not ctx.path(p).exists()]:
        return f"missing input(s): {', '.join(missing)}"
    if target.executor == "slurm":
        return _slurm().target_blocked(target)  # a GPU is on the node, through the target's gres
    return NEEDS_GPU if target.device == "cuda" and not gpu_visible() else None


def copy_figures(target: Target, ctx: RunContext, hub: Hub, python: str) -> tuple[str, ...]:
    """Copy the pictures a target declares into `<hub>/figures/<target>/` (regular files only); hub-relative paths."""
    copied = []
    for pattern in target.figures:
        source = ctx.path(_fill(pattern, ctx, hub, python))
        if source.is_file() and not source.is_symlink():
            dest = hub.path / HubFiles.FIGURES / target.name / source.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, dest)
            copied.append(dest.relative_to(hub.path).as_posix())
    return tuple(copied)


def run_cuda(hub: Hub, wait: float) -> bool | None:
    """`torch.cuda.is_available()` as the run's probe answered it, waiting a while if one runs (environment.json)."""
    end = time.monotonic() + wait
    while (env := EnvironmentRecord.load(hub.path)) and env.runtime.cuda_available is None and time.monotonic() < end:
        time.sleep(0.2)
    return env.runtime.cuda_available if env else None


def _judge(target: Target, ctx: RunContext, hub: Hub, python: str, result: ChildResult,
           blocked: str | None, log: Path) -> tuple[Verdict, str, dict]:
    """The verdict, its reason, and the record fields that depend on the kind; `log` is read for a failed command."""
    if blocked:
        return Verdict.BLOCKED, blocked, {}
    cuda = None if target.device == "cuda" else run_cuda(hub, CUDA_WAIT_S if target.kind == "command" else 0)
    if target.kind == "pytest":
        outcomes = load_outcomes(hub.outcomes(target.name))
        verdict, reason = pytest_verdict(outcomes, result.exit_code, result.timed_out, cuda,
                                         hidden=target.device == "cpu")
        tests = tuple({k: t[k] for k in ("nodeid", "outcome", "duration_s")}
                      for t in outcomes.tests) if outcomes else ()
        reason = reason.replace(f"{ctx.project}/", "")  # messages name files relative to the checkout
        return verdict, reason, {"counts": outcomes.counts if outcomes else None, "tests": tests, "cuda": cuda}
    paths = [ctx.path(_fill(p, ctx, hub, python)) for p in target.expected_outputs]
    found = [(ctx.rel(p), p.stat().st_size if p.is_file() else None) for p in paths]
    error = None
    if result.exit_code:  # a RED command's reason quotes its last error line, as a pytest target's does
        from harness.textlog import last_error_line, log_lines
        error = last_error_line(log_lines(log))
    verdict, reason = command_verdict(result.exit_code, result.timed_out, found, cuda, error)
    return verdict, reason, {"outputs": tuple({"path": p, "bytes": s} for p, s in found),
                             "record": parse_record(result.marked_line), "cuda": cuda}


def run_target(ctx: RunContext, hub: Hub, target: Target, *, threads: int,
               echo: Callable[[str], None] | None = None) -> VerdictRecord:
    """Run `target` into the hub; write and return its verdict record."""
    python = hub.run.python or ""
    if (existing := hub.earlier_run(target)) is not None:
        raise FileExistsError(f"{existing} exists: target {target.name!r} already ran in this hub; "
                              "hubs are never overwritten, start a new one")
    environment = EnvironmentRecord.load(hub.path) or EnvironmentRecord(Runtime(executable=python))
    needed = {"pytest", "pytest-timeout"}
    if target.kind == "pytest" and environment.packages and not needed <= set(environment.packages):
        raise RuntimeError(f"pytest and pytest-timeout must be installed in the evidence venv ({python}); "
                           "add them to the plan's [project] install steps")
    env = child_env(ctx, threads, target.device)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PLUGIN_DIR), env.get("PYTHONPATH")]))
    argv = build_argv(target, ctx, hub, python)
    prov = Provenance(git_state(ctx.project, ctx.plan.project.production), environment.runtime,
                      ctx.plan.environment.seed, threads)
    blocked = _blocked(target, ctx)
    partial = hub.path / f"{target.log}.partial"
    started, t0 = utc_now_iso(), time.monotonic()
    with open(partial, "xb") as handle:
        log = SealedLog(handle)
        log.write(_header(target, ctx, hub, argv, env, prov))
        if blocked:
            log.write(f"BLOCKED: {blocked}; not run\n")
            result = ChildResult(None, False)
        else:
            child: dict[str, Any] = dict(env=env, cwd=ctx.project, limit=wall_limit(target), log=log, echo=echo,
                                         mark=RECORD_PREFIX)
            try:
                result = _slurm().run_target_job(target, argv, **child) if target.executor == "slurm" else \
                    run_child(argv, **child)
            except KeyboardInterrupt:
                log.write(frame([f"interrupted at {utc_now_iso()}: the log stays .partial and no verdict is recorded"]))
                raise
        duration = time.monotonic() - t0
        verdict, reason, fields = _judge(target, ctx, hub, python, result, blocked, partial)
        cuda, job = fields.pop("cuda", None), []
        if target.executor == "slurm" and not blocked:  # how Slurm ended the job overrules, and says where it ran
            verdict, reason = _slurm().job_verdict(result, verdict, reason)
            job, prov = [_slurm().footer_line(result)], replace(prov, slurm=_slurm().placement(result))
        log.write(frame([END, f"ended_utc: {utc_now_iso()}", f"duration_s: {duration:.2f}", *job,
                         f"exit_code: {result.exit_code}" + (" (killed at the time limit)" if result.timed_out else ""),
                         f"torch.cuda.is_available(): {cuda}", f"verdict: {verdict} - {reason}"]))
    record = VerdictRecord(
        target=target.name, kind=target.kind, log=target.log, verdict=verdict, reason=reason,
        session=target.session, selector=target.selector, argv=tuple(argv), exit_code=result.exit_code,
        timed_out=result.timed_out, started_utc=started, ended_utc=utc_now_iso(), duration_s=round(duration, 3),
        figures=copy_figures(target, ctx, hub, python) if not blocked else (), device=target.device,
        provenance=replace(prov, runtime=replace(prov.runtime, cuda_available=cuda)),
        log_sha256=log.sha256, log_bytes=log.size, **fields)
    os.replace(partial, hub.path / target.log)
    record.write(hub.verdict_path(target.name))
    return record


def _stop_on_sigterm(signum: int, frame_: object) -> None:
    raise Interrupted


def run_one(ctx: RunContext, hub: Hub, name: str, *, jobs: int,
            echo: Callable[[str], None] | None = None) -> VerdictRecord:
    """`run-target`: one selected target of the hub, its threads shared by the rule of `share_threads`."""
    target = ctx.plan.target(name)
    if name not in hub.selected:
        raise ValueError(f"{hub.path} was made for targets {list(hub.selected)}; {name!r} is not one of them")
    signal.signal(signal.SIGTERM, _stop_on_sigterm)  # nox stops a session with SIGTERM: stop the child as for Ctrl-C
    return run_target(ctx, hub, target, threads=share_threads(ctx, hub.selected, target, jobs), echo=echo)
