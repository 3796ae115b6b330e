"""Reproduce a teammate's evidence: rerun the plan behind their hub, then compare (`make reproduce`).

The plan must hash as recorded (unless `--allow-plan-change`), the rerun goes into a NEW hub,
and the teammate's hub is only read: it is hashed before and after, and a change is an error.
Exit 0 agree, 1 disagree, 2 a hub unreadable or the rerun could not start (docs/reproduce.md).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from harness.compare import compare_hubs
from harness.comparereport import render_json, render_table, report_unreadable
from harness.context import HOME, add_context_arguments, make_context, resolve_plan
from harness.envs import ensure_env
from harness.hub import create_hub
from harness.hubread import read_hub
from harness.hubview import HubUnreadable, HubView, hash_tree
from harness.pipeline import USER_ERRORS, execute
from harness.plan import load_plan
from harness.reporting import fail


class ReproduceError(Exception):
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
    current = load_plan(plan).sha256
    if current == hub.plan.sha256:
        return plan, None
    message = (f"plan {hub.plan.path} has changed since {hub.path} was made (recorded sha256 "
               f"{str(hub.plan.sha256)[:12]}, now {current[:12]}): the rerun would not run the same plan; "
               "check out the teammate's plan, or pass --allow-plan-change")
    if not allow_change:
        raise ReproduceError(message)
    return plan, message


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="from_hub", type=Path, required=True, help="the teammate's hub to reproduce")
    parser.add_argument("--no-ledger", action="store_true", help="do not update the plan row / fix plan from the rerun")
    parser.add_argument("--allow-plan-change", action="store_true",
                        help="rerun even if the recorded plan file now hashes differently (compare warns)")
    parser.add_argument("--hub", type=Path, default=None, help="folder for the new hub (default: a fresh one)")
    parser.add_argument("--jobs", "-j", type=int, default=2, help="targets at once (default: 2)")
    parser.add_argument("--format", choices=("table", "json"), default="table", dest="fmt")
    add_context_arguments(parser)


def main(args: argparse.Namespace) -> int:
    """Rerun the plan behind `--from` into a new hub and compare; the CLI's exit status."""
    try:
        given_plan = load_plan(resolve_plan(args.plan)) if args.plan else None
    except (OSError, ValueError) as exc:
        return fail(f"reproduce: --plan: {exc}")
    try:
        teammate = read_hub(args.from_hub, given_plan)
    except HubUnreadable as exc:
        return report_unreadable([exc], args.fmt, "reproduce")
    before = hash_tree(teammate.path)
    echo = sys.stderr if args.fmt == "json" else sys.stdout  # keep stdout pure JSON
    try:
        plan, warning = recorded_plan(teammate, args.plan, args.allow_plan_change)
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
        ctx = make_context(args.project, plan, args.project_commit)
        if args.hub is not None and ctx.path(args.hub).resolve().is_relative_to(teammate.path.resolve()):
            raise ReproduceError(f"--hub {args.hub} is inside the teammate's hub {teammate.path}; pick another folder")
        with contextlib.redirect_stdout(echo):
            python = ensure_env(ctx, log=lambda line: print(f"reproduce: {line}", flush=True))
            hub = create_hub(ctx, explicit=args.hub, targets=tuple(t.name for t in ctx.plan.targets))
            print(f"reproduce: rerunning {ctx.plan_label} into {ctx.rel(hub.path)}", flush=True)
            run = execute(ctx, hub, str(python), jobs=args.jobs, verbose=False, ledger=not args.no_ledger)
    except (ReproduceError, *USER_ERRORS) as exc:
        return fail(f"reproduce: {exc}")
    if hash_tree(teammate.path) != before:
        return fail(f"{teammate.path} changed during the reproduction; it must stay read-only "
                    "(report this as a harness bug)")
    try:
        rerun = read_hub(hub.path)
    except HubUnreadable as exc:
        print("error: the rerun's hub fails validation, so there is nothing sound to compare", file=sys.stderr)
        return report_unreadable([exc], args.fmt, "reproduce")
    result = compare_hubs(teammate, rerun, ctx.plan.compare, f"{ctx.plan_label} [compare]")
    if args.fmt == "json":
        print(render_json(result, "reproduce"))
    else:
        print(f"\nreproduce: comparing A = the teammate's hub with B = the rerun ({run.result.collation.overall})")
        print(render_table(result))
    return result.exit_code
