"""`python -m harness pipeline`: one hub, every plan target, then collate (`make phase-c4d-b3`).

The hub is created first (one timestamp for all; an existing `--hub` is refused before anything
runs). The targets then run each in its own interpreter, as many at once as the plan's `after`
and the cores allow, with the threads split between them; the GPU probe runs beside the first.
It prints a line per target, a table, then `hub:` and `verdict:` last. Exit 0 only when GREEN.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Callable, TextIO

from harness.collate import CollateResult, collate
from harness.context import RunContext, add_context_arguments, make_context
from harness.envs import EnvBuildError, ensure_env
from harness.hub import Hub, HubExistsError, create_hub
from harness.plan import Target
from harness.process import Children, Interrupted, interrupt_on_sigterm, interrupt_status
from harness.reporting import emit, fail, fmt_duration, md_table
from harness.runner import RunSetup, finish_environment, prepare_setup, run_target
from harness.schema import VerdictRecord
from harness.summary import publish_step_summary


def ready(targets: list[Target], done: set[str], started: set[str]) -> list[Target]:
    """Targets not started whose `after` targets (those selected) have all finished, in plan order."""
    selected = {t.name for t in targets}
    return [t for t in targets if t.name not in started and set(t.after) & selected <= done]


def schedule(targets: list[Target], run_one: Callable[[Target, int], VerdictRecord], jobs: int, threads: int,
             on_start: Callable[[Target], None] = lambda t: None,
             on_interrupt: Callable[[], None] = lambda: None) -> dict[str, VerdictRecord]:
    """Run every target once its `after` targets are done, at most `jobs` at a time.

    A target started while k targets run gets `threads // k` threads (at least 1), so parallel
    children share the cores instead of fighting over them.
    """
    results: dict[str, VerdictRecord] = {}
    running: dict[Future, Target] = {}
    started: set[str] = set()
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        try:
            while len(results) < len(targets):
                batch = ready(targets, set(results), started)[: max(0, jobs - len(running))]
                share = max(1, threads // max(1, len(running) + len(batch)))
                for target in batch:
                    started.add(target.name)
                    on_start(target)
                    running[pool.submit(run_one, target, share)] = target
                if not running:
                    raise RuntimeError(f"cannot schedule {[t.name for t in targets if t.name not in started]}")
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    results[running.pop(future).name] = future.result()
        except BaseException:
            on_interrupt()  # stop the children first: the pool waits for its threads on the way out
            for future in running:
                future.cancel()
            raise
    return results


def run_pipeline(ctx: RunContext, setup: RunSetup, *, jobs: int, verbose: bool, children: Children,
                 progress: TextIO | None = None) -> None:
    """Run every target of the plan into `setup.hub`, printing a line as each starts and ends."""
    targets = [t for t in ctx.plan.targets if t.name in (setup.hub.run.targets or ())]
    index = {t.name: i + 1 for i, t in enumerate(targets)}
    lock = threading.Lock()

    def say(text: str) -> None:
        with lock:
            print(text, file=progress or sys.stdout, flush=True)

    def run_one(target: Target, threads: int) -> VerdictRecord:
        echo = (lambda line: say(f"  {target.name} | {line.rstrip()}")) if verbose else None
        record = run_target(setup, target, threads=threads, echo=echo, children=children)
        say(f"[{index[target.name]}/{len(targets)}] {target.name} {record.verdict} {fmt_duration(record.duration_s)}")
        return record

    schedule(targets, run_one, jobs, ctx.plan.environment.threads,
             on_start=lambda t: say(f"[{index[t.name]}/{len(targets)}] {t.name} started"), on_interrupt=children.stop_all)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hub", help="explicit hub folder; refused if it exists (default: timestamped)")
    parser.add_argument("--no-ledger", action="store_true", help="collate without touching the plan row / fix plan")
    parser.add_argument("--targets", nargs="+", metavar="NAME", help="run only these plan targets (ledger untouched)")
    parser.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1, help="targets at once (default: cores)")
    parser.add_argument("--verbose", "-v", action="store_true", help="show every child's output and the venv step")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    add_context_arguments(parser)


@dataclass(frozen=True)
class PipelineRun:
    """What a finished (or interrupted) pipeline left: the collate result."""

    result: CollateResult
    interrupted: bool
    interrupt_status: int = 130  # 143 when SIGTERM stopped it

    @property
    def exit_code(self) -> int:
        return self.interrupt_status if self.interrupted else self.result.exit_code  # collate's: 0 only when GREEN


def execute(ctx: RunContext, hub: Hub, python: str, *, jobs: int, verbose: bool, ledger: bool,
            progress: TextIO | None = None) -> PipelineRun:
    """Run the hub's targets, then collate it (also after an interrupt: the hub then says INCOMPLETE)."""
    children, stopped = Children(), None
    with ThreadPoolExecutor(max_workers=1) as probe:
        try:
            setup = prepare_setup(ctx, hub, python, background=probe)
            run_pipeline(ctx, setup, jobs=jobs, verbose=verbose, children=children, progress=progress)
            finish_environment(setup)
        except (KeyboardInterrupt, Interrupted) as exc:
            stopped = exc
            children.stop_all()
    return PipelineRun(collate(ctx, hub, ledger=ledger), stopped is not None, interrupt_status(stopped))


def start(args: argparse.Namespace) -> tuple[RunContext, Hub, str]:
    """The context, a new hub and the evidence venv's python; raises with a user-facing message."""
    ctx = make_context(args.project, args.plan, args.project_commit)
    names = tuple(args.targets or (t.name for t in ctx.plan.targets))
    for name in names:
        ctx.plan.target(name)
    python = ensure_env(ctx, log=(lambda line: print(f"pipeline: {line}", flush=True)) if args.verbose else
                        (lambda line: None))
    return ctx, create_hub(ctx, explicit=args.hub, targets=names), str(python)


def report(run: PipelineRun, fmt: str) -> None:
    """The compact table, the ledger line, then `hub:` and `verdict:` last (or one JSON object)."""
    c = run.result.collation
    rows = [[t.name, str(t.verdict), fmt_duration(t.duration_s), t.reason] for t in c.targets]
    verdict = f"{c.overall}" + (f" (interrupted; hub {c.hub_rel})" if run.interrupted else "")
    emit(fmt, "pipeline", {"hub": c.hub_rel, "verdict": str(c.overall), "interrupted": run.interrupted,
                           "targets": [{"name": r[0], "verdict": r[1], "duration": r[2], "reason": r[3]} for r in rows],
                           "ledger": run.result.ledger_note, "exit_code": run.exit_code},
         "\n".join(["", md_table(rows, ["target", "verdict", "duration", "reason"], 100, terminal=True), "",
                    run.result.ledger_note, f"hub: {c.hub_rel}", f"verdict: {verdict}"]))


USER_ERRORS = (ValueError, KeyError, FileNotFoundError, HubExistsError, EnvBuildError, OSError)


def main(args: argparse.Namespace) -> int:
    interrupt_on_sigterm()
    try:
        ctx, hub, python = start(args)
    except USER_ERRORS as exc:
        return fail(f"pipeline: {exc.args[0] if isinstance(exc, KeyError) else exc}")
    except KeyboardInterrupt as exc:
        print("interrupted before any target ran; nothing was recorded", file=sys.stderr)
        return interrupt_status(exc)
    if args.format != "json":
        print(f"pipeline: hub {ctx.rel(hub.path)}; {len(hub.run.targets or ())} target(s), "
              f"up to {args.jobs} at a time", flush=True)
    try:
        run = execute(ctx, hub, python, jobs=args.jobs, verbose=args.verbose, ledger=not args.no_ledger,
                      progress=sys.stderr if args.format == "json" else None)
    except USER_ERRORS as exc:  # e.g. the hub's disk filled up while collating
        return fail(f"pipeline: {exc}\nhub: {ctx.rel(hub.path)}\nverdict: INCOMPLETE")
    report(run, args.format)
    publish_step_summary(run.result.collation)
    return run.exit_code
