"""Reproduce a teammate's evidence (`make reproduce`): rerun the plan behind their hub into a NEW hub, compare;
their hub is only read (hashed before and after). Exit 0 agree, 1 disagree, 2 unreadable (docs/reproduce.md)."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Callable

from harness import UserError
from harness.compare import compare_hubs
from harness.comparereport import render_json, render_table, report_unreadable
from harness.context import HOME, make_context, resolve_plan
from harness.hubread import read_hub
from harness.hubview import HubUnreadable, HubView, hash_tree
from harness.envs import ensure_env
from harness.guard import require
from harness.hub import create_hub
from harness.pipeline import execute, nox_command, parse_jobs
from harness.plan import load_plan


class ReproduceError(UserError):
    """The reproduction cannot go on; the message says why and what to do."""


def recorded_plan(hub: HubView, explicit: Path | None, allow_change: bool) -> tuple[Path, str | None]:
    """The plan to rerun, and a warning when it changed since the hub was made (an error unless allowed)."""
    if explicit is not None or hub.handmade:
        return resolve_plan(explicit), None  # a hand-made hub records no plan: the given or default one
    if not hub.plan.path:
        raise ReproduceError(f"{hub.path}: its manifest does not record the plan that produced it; pass --plan")
    plan = resolve_plan(hub.plan.path, HOME)
    if not plan.is_file():
        raise ReproduceError(f"{hub.path} was produced by plan {hub.plan.path}, which is not found here ({plan}); "
                             f"check out the teammate's commit ({hub.git_sha or 'unknown'}) or pass --plan")
    if (current := load_plan(plan).sha256) == hub.plan.sha256:
        return plan, None
    message = (f"plan {hub.plan.path} has changed since {hub.path} was made (recorded sha256 "
               f"{str(hub.plan.sha256)[:12]}, now {current[:12]}): the rerun would not run the same plan; "
               "check out the teammate's plan, or pass --allow-plan-change")
    if not allow_change:
        raise ReproduceError(message)
    return plan, message


def reproduce(from_hub: Path, *, project: Path | None, plan: Path | None, project_commit: str | None, hub: Path | None,
              jobs: str | None, ledger: bool, allow_plan_change: bool, fmt: str,
              sign: Callable[[Path, Path], None] = lambda hub, git_dir: None) -> int:
    """Rerun the plan behind `from_hub` into a new hub and compare; ends with `hub:` and `verdict:` lines."""
    try:
        teammate = read_hub(from_hub, load_plan(resolve_plan(plan)) if plan else None)
    except HubUnreadable as exc:
        return report_unreadable([exc], fmt, "reproduce")
    before = hash_tree(teammate.path)
    echo = sys.stderr if fmt == "json" else sys.stdout  # keep stdout pure JSON
    plan_path, warning = recorded_plan(teammate, plan, allow_plan_change)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    ctx = make_context(project, plan_path, project_commit)
    if hub is not None and ctx.path(hub).resolve().is_relative_to(teammate.path.resolve()):
        raise ReproduceError(f"--hub {hub} is inside the teammate's hub {teammate.path}; pick another folder")
    workers = parse_jobs(jobs)
    require()  # the production-code guard's watcher, before a venv or a hub is made
    with contextlib.redirect_stdout(echo):
        python = ensure_env(ctx, log=lambda line: print(f"reproduce: {line}", flush=True))
        new = create_hub(ctx, targets=tuple(t.name for t in ctx.plan.targets), explicit=hub, python=str(python))
        print(f"reproduce: rerunning {ctx.plan_label} into {ctx.rel(new.path)}", flush=True)
        run = execute(ctx, new, nox=nox_command(home=ctx.home), args=["-s", *(t.session for t in ctx.plan.targets)],
                      jobs=workers, verbose=False, ledger=ledger, output=echo)
    if not run.interrupted:
        sign(new.path, ctx.project)  # the new hub, signed as the main job's would be (--sign)
    if hash_tree(teammate.path) != before:
        raise ReproduceError(f"{teammate.path} changed during the reproduction; it must stay read-only "
                             "(report this as a harness bug)")
    tail = [f"hub: {ctx.rel(new.path)}", f"verdict: {run.result.collation.overall}"]
    try:
        rerun = read_hub(new.path)
    except HubUnreadable as exc:
        print("error: the rerun's hub fails validation, so there is nothing sound to compare", file=sys.stderr)
        report_unreadable([exc], fmt, "reproduce")
        print("\n".join(tail), file=echo)
        return 2
    result = compare_hubs(teammate, rerun, ctx.plan.compare, f"{ctx.plan_label} [compare]")
    if fmt == "json":
        print(render_json(result, "reproduce"))
    else:
        print("\n".join([f"\nreproduce: comparing A = the teammate's hub with B = the rerun "
                         f"({run.result.collation.overall})", render_table(result), "", *tail]))
    return run.exit_code if run.interrupted else result.exit_code
