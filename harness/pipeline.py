"""`python -m harness pipeline`: one hub, every plan target through nox, then collate.

This is what `make phase-c4d-b3` runs. It creates the hub first (so all targets share one
timestamp, and an explicit existing `--hub` is refused before anything runs), runs nox once
with the target sessions in plan order plus `collate` (nox carries on after a failing session,
so collate always runs), and ends with two lines scripts can rely on:
`hub: <path relative to the project root>` and `verdict: <overall>` (from manifest.json, or
INCOMPLETE when collate wrote none). Exit code 0 only when the overall verdict is GREEN.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from harness.hub import HubExistsError, create_hub, relative_to_root
from harness.plan import DEFAULT_PLAN, EvidencePlan, load_plan

MANIFEST = "manifest.json"
INCOMPLETE = "INCOMPLETE"


def find_nox() -> str:
    """The nox next to this interpreter (a tool venv) or on PATH; FileNotFoundError says how to get it."""
    beside = Path(sys.executable).parent / "nox"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("nox")
    if found:
        return found
    raise FileNotFoundError(
        f"nox is not installed next to {sys.executable} nor on PATH; run `make phase-c4d-b3` "
        "(it bootstraps .venv-tools) or `pip install -c constraints.txt nox`"
    )


def nox_command(nox: str, plan: EvidencePlan, project_root: Path, no_ledger: bool) -> list[str]:
    """nox once: every target session in plan order, then collate (which gets the posargs)."""
    sessions = [t.session for t in plan.targets] + ["collate"]
    command = [nox, "-f", str(project_root / "noxfile.py"), "-s", *sessions]
    if no_ledger:
        command += ["--", "--no-ledger"]
    return command


def overall_verdict(hub: Path) -> str:
    """The overall verdict collate wrote to manifest.json; INCOMPLETE when there is none."""
    try:
        manifest = json.loads((hub / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return INCOMPLETE
    verdict = manifest.get("overall_verdict") if isinstance(manifest, dict) else None
    return str(verdict) if verdict else INCOMPLETE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plan", type=Path, default=DEFAULT_PLAN, help=f"evidence plan TOML (default: {DEFAULT_PLAN})")
    parser.add_argument("--hub", type=Path, help="explicit hub folder; refused if it exists (default: timestamped)")
    parser.add_argument("--no-ledger", action="store_true", help="collate without touching plan.md / fix_plan.md")
    parser.add_argument("--project-root", type=Path, default=Path.cwd(),
                        help="the project holding noxfile.py (default: the current folder)")


def main(args: argparse.Namespace) -> int:
    root = args.project_root.resolve()
    plan_path = args.plan if args.plan.is_absolute() else root / args.plan
    try:
        plan = load_plan(plan_path)
        nox = find_nox()
        hub = create_hub(plan, root, explicit=args.hub.resolve() if args.hub else None)
    except (ValueError, FileNotFoundError, HubExistsError) as exc:
        print(f"pipeline: {exc}", file=sys.stderr)
        return 2
    rel = relative_to_root(hub.path, root)
    print(f"pipeline: hub {rel}; running {len(plan.targets)} target(s) then collate", flush=True)
    env = dict(os.environ, EVIDENCE_HUB=str(hub.path), EVIDENCE_PLAN=str(plan.path))
    command = nox_command(nox, plan, root, args.no_ledger)
    try:
        nox_status = subprocess.run(command, cwd=root, env=env).returncode
    except KeyboardInterrupt:
        nox_status = 130
    verdict = overall_verdict(hub.path)
    if nox_status and verdict == "GREEN":
        verdict = INCOMPLETE  # collate said GREEN but a session failed: do not trust it
    print(f"hub: {rel}")
    print(f"verdict: {verdict}")
    return 0 if verdict == "GREEN" else 1
