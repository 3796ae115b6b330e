"""The driver: one hub for the targets a nox invocation selects, nox runs them, then collate (whatever nox's exit).

Before nox: the evidence venv, the hub and the interpreter probe. Ctrl-C/SIGTERM reach nox as SIGINT (it has no
SIGTERM handler); meanwhile harness/guard.py watches the production paths: a file written there makes the hub RED.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from harness import UserError
from harness.collate import CollateResult, collate
from harness.context import HOME, HUB_ENV, PLAN_ENV, PROJECT_ENV, VERBOSE_ENV, RunContext
from harness.envs import ensure_env
from harness.guard import ProductionWatch, require
from harness.hub import Hub, create_hub
from harness.provenance import probe_cuda, probe_versions
from harness.logframe import die_with_parent
from harness.runner import child_env
from harness.schema import HubFiles

DRIVER_ENV = "EVIDENCE_DRIVER"  # set for the nox the driver runs: its noxfile must not hand over again


@dataclass(frozen=True)
class PipelineRun:
    """What a finished (or interrupted) run left: the collate result."""
    result: CollateResult
    interrupted: bool
    nox_status: int
    interrupt_status: int = 130  # 143 when SIGTERM stopped it

    @property
    def exit_code(self) -> int:
        return self.interrupt_status if self.interrupted else self.result.exit_code  # collate's: 0 only when GREEN


def nox_command(python: str | None = None, home: Path | None = None) -> list[str]:
    """How to start nox: the interpreter that ran the user's nox (else this one) on the harness's noxfile."""
    return [python or sys.executable, "-m", "nox", "-f", str((home or HOME) / "noxfile.py")]


def parse_jobs(value: str | int | None) -> int:
    """`--jobs`/`JOBS=`/`-j`: a positive integer or `auto` (one per core); UserError says what is wrong."""
    if value in (None, "", "auto"):
        return os.cpu_count() or 1
    try:
        jobs = int(value)
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise UserError(f"--jobs {value!r}: pass a positive number of targets to run at once, or 'auto'")
    return jobs


def selected_targets(ctx: RunContext, nox: list[str], args: list[str]) -> tuple[str, ...]:
    """The plan targets whose sessions nox selects for `args` (`nox -l --json`: nox decides, not us)."""
    env = {**os.environ, DRIVER_ENV: "1", PROJECT_ENV: str(ctx.project), PLAN_ENV: str(ctx.plan.path)}
    done = subprocess.run([*nox, *args, "--list", "--json"], capture_output=True, text=True, env=env,
                          stdin=subprocess.DEVNULL)
    try:
        names = {s["name"] for s in json.loads(done.stdout.strip().splitlines()[-1])}
    except (ValueError, IndexError, KeyError, TypeError):
        raise UserError(f"nox could not list the sessions of `nox {' '.join(args)}`:\n{done.stderr.strip()}") from None
    return tuple(t.name for t in ctx.plan.targets if t.session in names)


def _probe(ctx: RunContext, hub: Hub, python: str) -> threading.Thread:
    """Probe the evidence interpreter once per run: versions now, torch.cuda beside the first target."""
    env = child_env(ctx, ctx.plan.environment.threads)
    versions = probe_versions(python, env, ctx.project)
    versions.write(hub.path)
    worker = threading.Thread(target=lambda: probe_cuda(python, env, ctx.project, versions).write(hub.path))
    worker.daemon = True
    worker.start()
    return worker


def execute(ctx: RunContext, hub: Hub, *, nox: list[str], args: list[str], jobs: int | None, verbose: bool,
            ledger: bool, output: TextIO | None = None) -> PipelineRun:
    """Run nox once into `hub` (its sessions read $EVIDENCE_HUB), watching production code, then collate it."""
    env = {**os.environ, DRIVER_ENV: "1", HUB_ENV: str(hub.path), PROJECT_ENV: str(ctx.project),
           PLAN_ENV: str(ctx.plan.path), VERBOSE_ENV: "1" if verbose else ""}
    if jobs is not None:  # make's JOBS (default: every core); a plain nox keeps its own -j
        env["NOX_PARALLEL"] = str(jobs)
    argv = [*nox, *args, "--report", str(hub.path / HubFiles.NOX_REPORT)]
    with ProductionWatch(ctx.project, ctx.plan.project.production) as watch:
        probe = _probe(ctx, hub, hub.run.python or "")
        status, stopped = _run_nox(argv, env, ctx.home, output or sys.stdout, probe)
    interrupted = bool(stopped) or status in (130, -signal.SIGINT)
    result = collate(ctx, hub, ledger=ledger and not interrupted, interrupted=interrupted, written=watch.written)
    return PipelineRun(result, interrupted, status, 143 if signal.SIGTERM in stopped else 130)


def _run_nox(argv: list[str], env: dict[str, str], cwd: Path, output: TextIO,
             probe: threading.Thread) -> tuple[int, list[int]]:
    """nox's exit status, and the signals forwarded to it (Ctrl-C, SIGTERM) while it (and the probe) ran."""
    try:
        sink = output.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (e.g. captured): relay nox's lines
        sink = subprocess.PIPE
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT, cwd=cwd,
                            text=True, start_new_session=True, preexec_fn=die_with_parent)
    relay = threading.Thread(target=output.writelines, args=(proc.stdout,), daemon=True) if proc.stdout else None
    if relay:
        relay.start()
    stopped: list[int] = []

    def forward(signum: int, frame: object) -> None:
        stopped.append(signum)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C would send to nox

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig, handler in previous.items():
        if handler is not signal.SIG_IGN:  # a run started in the background keeps ignoring Ctrl-C
            signal.signal(sig, forward)
    try:
        status = proc.wait()
        if relay:
            relay.join(timeout=10)
        probe.join(timeout=130)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status, stopped


def start(ctx: RunContext, *, targets: tuple[str, ...], hub: str | Path | None, part: bool, log: TextIO | None) -> Hub:
    """The evidence venv (built before nox, so parallel sessions never race to build it) and a new hub."""
    if not targets:
        raise UserError("no plan target is selected: name one (e.g. -s cli_smoke_gs2) or run `nox -l`")
    if part and len(targets) != 1:
        raise UserError(f"a part holds one target run alone; {len(targets)} are selected ({', '.join(targets)})")
    require()  # the guard's watcher, before anything is built or made
    python = ensure_env(ctx, log=lambda line: print(f"pipeline: {line}", file=log, flush=True) if log else None)
    return create_hub(ctx, targets=targets, explicit=hub, python=str(python), part=part)
