"""Reproduce a teammate's evidence: rerun the plan that produced their hub, then compare.

`python -m harness reproduce --from <hub>` (or `make reproduce FROM=<hub>`):
1. reads the teammate's hub (it must be finished and pass validate) and the plan it records;
2. refuses when that plan file now hashes differently, unless `--allow-plan-change`;
3. runs `python -m harness pipeline --plan <plan>` into a NEW hub, streaming its output;
4. validates the new hub, then compares teammate (A) with rerun (B) and exits with compare's
   status: 0 agree, 1 disagree, 2 a hub unreadable / invalid or the rerun could not start.
The teammate's hub is only read: every file is hashed before and after, and a change is an error.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections import deque
from pathlib import Path
from typing import TextIO

from harness.compare import compare_hubs, render_json, render_table, report_unreadable, tolerance_from_plan
from harness.hubread import Hub, HubUnreadable, hash_tree, read_hub
from harness.plan import load_plan


class ReproduceError(Exception):
    """The reproduction cannot go on; the message says why and what to do."""


def recorded_plan(hub: Hub, project_root: Path) -> tuple[Path, str | None]:
    """The plan file the hub says produced it (resolved against this project root) and its sha256."""
    path, sha = hub.plan_ref()
    if not path:
        raise ReproduceError(f"{hub.path}: neither manifest.json nor run.json records the plan that produced it")
    plan = Path(path)
    plan = plan if plan.is_absolute() else project_root / plan
    if not plan.is_file():
        raise ReproduceError(
            f"{hub.path} was produced by plan {path}, which does not exist under {project_root}; "
            f"check out the teammate's commit ({_hub_git_sha(hub)}) or pass --project-root"
        )
    return plan, sha


def _hub_git_sha(hub: Hub) -> str:
    shas = {r.provenance.git_sha for r in hub.verdicts.values() if r.provenance.git_sha}
    return ", ".join(sorted(shas)) or hub.run.git.sha or "unknown commit"


def check_plan_unchanged(plan: Path, recorded_sha: str | None, hub: Hub, allow_change: bool) -> str | None:
    """None when the plan file still hashes as recorded; else a message (an error unless allowed)."""
    current = load_plan(plan).sha256
    if recorded_sha == current:
        return None
    message = (
        f"plan {plan} has changed since {hub.path} was made "
        f"(recorded sha256 {str(recorded_sha)[:12]}, now {current[:12]}): the rerun would not run the same plan. "
        f"See `git diff {_hub_git_sha(hub)[:12]} -- {plan}`; check out the teammate's plan, "
        "or pass --allow-plan-change to rerun the current plan anyway"
    )
    if not allow_change:
        raise ReproduceError(message)
    return message


def pipeline_command(plan: Path, hub: Path | None, no_ledger: bool) -> list[str]:
    """The `harness pipeline` command line for the rerun."""
    command = [sys.executable, "-m", "harness", "pipeline", "--plan", str(plan)]
    if hub is not None:
        command += ["--hub", str(hub)]
    if no_ledger:
        command.append("--no-ledger")
    return command


def run_pipeline(plan: Path, project_root: Path, *, hub: Path | None = None, no_ledger: bool = False,
                 echo: TextIO | None = None) -> Path:
    """Run the whole plan into a new hub (output streamed through) and return that hub's path.

    A RED run still yields a hub worth comparing, so the pipeline's exit status is not an
    error here; only a run that printed no `hub: <path>` line is.
    """
    command = pipeline_command(plan, hub, no_ledger)
    echo = echo or sys.stdout
    print(f"reproduce: running {' '.join(command[1:])}", file=echo, flush=True)
    tail: deque[str] = deque(maxlen=20)
    with subprocess.Popen(command, cwd=project_root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, bufsize=1) as process:
        assert process.stdout is not None
        for line in process.stdout:
            print(line, end="", file=echo, flush=True)
            tail.append(line.rstrip("\n"))
    hubs = [line.removeprefix("hub:").strip() for line in tail if line.startswith("hub:")]
    if not hubs:
        raise ReproduceError(
            f"`{' '.join(command[1:])}` exited {process.returncode} without printing `hub: <path>`; "
            "see its output above"
        )
    new_hub = Path(hubs[-1])
    return new_hub if new_hub.is_absolute() else project_root / new_hub


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve() == folder.resolve() or folder.resolve() in path.resolve().parents


def reproduce(from_hub: Path, *, project_root: Path, new_hub: Path | None = None, no_ledger: bool = False,
              allow_plan_change: bool = False, fmt: str = "table") -> int:
    """Rerun the plan behind `from_hub` into a new hub and compare; the CLI's exit status."""
    try:
        teammate = read_hub(from_hub)
    except HubUnreadable as exc:
        return report_unreadable([exc], fmt)
    before = hash_tree(teammate.path)
    try:
        plan, recorded_sha = recorded_plan(teammate, project_root)
        warning = check_plan_unchanged(plan, recorded_sha, teammate, allow_plan_change)
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
        if new_hub is not None and _inside(new_hub if new_hub.is_absolute() else project_root / new_hub,
                                           teammate.path):
            raise ReproduceError(f"--hub {new_hub} is inside the teammate's hub {teammate.path}; pick another folder")
        tolerance = tolerance_from_plan(plan)
        echo = sys.stderr if fmt == "json" else sys.stdout  # keep stdout pure JSON
        rerun_path = run_pipeline(plan, project_root, hub=new_hub, no_ledger=no_ledger, echo=echo)
        if _inside(rerun_path, teammate.path):
            raise ReproduceError(f"the pipeline reported hub {rerun_path}, inside the teammate's hub; refusing to compare")
    except (ReproduceError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if hash_tree(teammate.path) != before:
        print(f"error: {teammate.path} changed during the reproduction; it must stay read-only "
              "(report this as a harness bug)", file=sys.stderr)
        return 2
    try:
        rerun = read_hub(rerun_path)
    except HubUnreadable as exc:
        print("error: the rerun's hub fails validation, so there is nothing sound to compare", file=sys.stderr)
        return report_unreadable([exc], fmt)
    label = plan.relative_to(project_root) if _inside(plan, project_root) else plan
    result = compare_hubs(teammate, rerun, tolerance, f"{label} [compare]")
    if fmt == "json":
        print(render_json(result))
    else:
        print("\nreproduce: comparing A = the teammate's hub with B = the rerun")
        print(render_table(result))
    return result.exit_code


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """CLI: reproduce --from HUB [--no-ledger] [--allow-plan-change] [--hub DIR] [--format]."""
    parser.add_argument("--from", dest="from_hub", type=Path, required=True, help="the teammate's hub to reproduce")
    parser.add_argument("--no-ledger", action="store_true",
                        help="do not update the plan row / fix-plan ledger from the rerun")
    parser.add_argument("--allow-plan-change", action="store_true",
                        help="rerun even if the recorded plan file now hashes differently (compare warns)")
    parser.add_argument("--hub", type=Path, default=None,
                        help="folder for the new hub (default: a fresh one from the plan's hub template)")
    parser.add_argument("--project-root", type=Path, default=None,
                        help="checkout to rerun in; recorded plan paths resolve against it (default: cwd)")
    parser.add_argument("--format", choices=("table", "json"), default="table", dest="fmt")


def main(args: argparse.Namespace) -> int:
    """Exit 0 when the rerun agrees with the teammate's hub, 1 when not, 2 when it cannot tell."""
    root = (args.project_root or Path.cwd()).resolve()
    return reproduce(args.from_hub, project_root=root, new_hub=args.hub, no_ledger=args.no_ledger,
                     allow_plan_change=args.allow_plan_change, fmt=args.fmt)
