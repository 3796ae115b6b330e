"""`python -m harness <command>`: the one command-line layer. Every parser is built here.

Each command resolves the run context once, calls the engine (imported lazily: running one target loads only
what it needs) and prints text or one JSON object; a user mistake is one `error:` line, exit 2.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from pathlib import Path

from harness import UserError

COMMANDS: dict[str, str] = {
    "pipeline": "one hub for the selected targets (default: all), run through nox, then collate; hub + verdict last",
    "run-target": "run one plan target into the run's hub (what a nox target session calls)",
    "collate": "summarise a hub: summary.md, junit.xml, manifest.json, ledger",
    "validate": "re-check a hub against its manifest (tamper check), wherever it is",
    "compare": "compare two hubs (harness-made or hand-made)",
    "reproduce": "rerun the plan that produced a hub and compare",
    "env": "build or reuse the project's evidence venv; print its python",
    "bisect": "name the first commit whose verdict changed between two hubs or commits (git bisect run)",
    "merge": "join parts (one target each, made anywhere) into one new hub and collate it",
    "ci": "write a CI workflow that runs each target as its own job, then merges the parts",
}


def build_parser() -> argparse.ArgumentParser:
    from harness.context import PLAN_ENV, PROJECT_ENV
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    cmd = {name: sub.add_parser(name, help=text, description=text) for name, text in COMMANDS.items()}
    p = cmd["pipeline"]
    p.add_argument("--targets", nargs="+", metavar="NAME", help="only these plan targets (ledger untouched)")
    p.add_argument("--no-dependencies", action="store_true", help="run the named targets alone (nox --no-dependencies)")
    p.add_argument("--hub", help="explicit hub folder; refused if it exists (default: timestamped)")
    p.add_argument("--part", help="one target alone into a part at this folder (to merge with others)")
    p.add_argument("--no-ledger", action="store_true", help="collate without touching the plan row / fix plan")
    p.add_argument("--jobs", "-j", help="targets at once: a number or auto (default: cores)")
    p.add_argument("--verbose", "-v", action="store_true", help="show every child's output and the venv step")
    for name in ("pipeline", "collate", "reproduce"):
        cmd[name].add_argument("--sign", action="store_true", help="sign the collated hub (attestation.json)")
        cmd[name].add_argument("--key", type=Path, help="SSH key to sign with (default: git config user.signingkey)")
    p.add_argument("--nox", dest="nox_python", help=argparse.SUPPRESS)  # the noxfile hands over
    p.add_argument("nox_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    cmd["run-target"].add_argument("target", help="target name from the plan")
    cmd["run-target"].add_argument("--jobs", default="1", help="how many targets nox runs at once (threads rule)")
    for name in ("collate", "validate"):
        cmd[name].add_argument("hub", type=Path, help="hub folder (holds run.json)")
    cmd["collate"].add_argument("--no-ledger", action="store_true", help="do not touch the plan row or the fix plan")
    group = cmd["validate"].add_mutually_exclusive_group()
    group.add_argument("--require-artifacts", action="store_true", help="bulky files outside the hub must be present")
    group.add_argument("--hub-only", action="store_true", help="check only the files inside the hub")
    cmd["validate"].add_argument("--trust", type=Path, help="allowed_signers file (git's format): who may sign hubs")
    cmd["validate"].add_argument("--require-signature", action="store_true", help="an unsigned hub is INVALID")
    b = cmd["bisect"]
    b.add_argument("--good", required=True, help="a commit or a hub (standing for the commit it records)")
    b.add_argument("--bad", required=True, help="a commit or a hub; either endpoint may be the older one")
    b.add_argument("--targets", nargs="+", metavar="NAME", help="only these (default: those whose verdicts differ)")
    c = cmd["compare"]
    c.add_argument("hub_a", type=Path, help="reference hub (e.g. the teammate's)")
    c.add_argument("hub_b", type=Path, help="hub to check against it (e.g. your rerun)")
    c.add_argument("--output", type=Path, help="write the report here (never inside either hub)")
    r = cmd["reproduce"]
    r.add_argument("--from", dest="from_hub", type=Path, required=True, help="the teammate's hub to reproduce")
    r.add_argument("--no-ledger", action="store_true", help="do not update the plan row / fix plan from the rerun")
    r.add_argument("--allow-plan-change", action="store_true", help="rerun even if the recorded plan changed")
    r.add_argument("--hub", type=Path, help="folder for the new hub (default: a fresh one)")
    r.add_argument("--jobs", "-j", help="targets at once: a number or auto (default: cores)")
    m = cmd["merge"]
    m.add_argument("parts", nargs="+", type=Path, metavar="PART", help="part folders (`make <target> PART=<dir>`)")
    m.add_argument("--into", required=True, help="the new hub, relative to the project; refused if it exists")
    m.add_argument("--no-ledger", action="store_true", help="do not touch the plan row or the fix plan")
    g = cmd["ci"]
    g.add_argument("provider", choices=("github",), help="github: a GitHub Actions workflow")
    g.add_argument("--output", type=Path,
                   help="where to write it (default: the harness home's .github/workflows/evidence.yml)")
    g.add_argument("--python", default="3.11", help="the Python version every job sets up (default: 3.11)")
    plan_help = f"evidence plan TOML, relative to the harness home or absolute (default: ${PLAN_ENV})"
    for name, each in cmd.items():
        each.add_argument("--project", "--project-root", dest="project", type=Path,
                          help=f"checkout under test (default: ${PROJECT_ENV}, else the harness home)")
        if name != "run-target":
            each.add_argument("--plan", type=Path, help=plan_help)
        each.add_argument("--project-commit", help="the judged commit, for a checkout without git")
        tables = ("table", "md") if name in ("compare", "reproduce") else ()
        each.add_argument("--format", choices=("text", "json", *tables), default="text",
                          help="json: one JSON object on stdout (progress goes to stderr)")
    return parser


def _context(args: argparse.Namespace):
    from harness.context import make_context
    return make_context(args.project, getattr(args, "plan", None), args.project_commit)


def _sign(args: argparse.Namespace, hub: Path, git_dir: Path) -> None:
    """`--sign`: attestation.json with the user's SSH key (never prompts; a key that would is one error line)."""
    if getattr(args, "sign", False):
        from harness.attest import sign_hub
        print(f"signed: {sign_hub(hub, key=args.key, git_dir=git_dir).name}", file=sys.stderr)


def cmd_pipeline(args: argparse.Namespace) -> int:
    from harness import pipeline as pl
    from harness.reporting import emit_run
    ctx = _context(args)
    jobs: int | None = pl.parse_jobs(args.jobs if args.jobs is not None else os.environ.get("NOX_PARALLEL"))
    nox = pl.nox_command(args.nox_python, ctx.home)
    rest = args.nox_args[1:] if args.nox_args[:1] == ["--"] else args.nox_args
    user_args, posargs = (rest[:rest.index("--")], rest[rest.index("--") + 1:]) if "--" in rest else (rest, [])
    if args.nox_python:  # handed over by the noxfile: nox's own arguments say what is selected
        targets, ledger, jobs = pl.selected_targets(ctx, nox, user_args), False, None
        if not targets:
            os.execvpe(nox[0], nox + rest, {**os.environ, pl.DRIVER_ENV: "1"})
        extra = argparse.ArgumentParser(prog="nox -s <target> --", add_help=False)
        for option in ("--part", "--hub"):
            extra.add_argument(option)
        _, unknown = extra.parse_known_args(posargs, namespace=args)  # sets args.part, args.hub when given
        if unknown:
            raise UserError(f"unknown session argument(s) {unknown}: a target session takes --part DIR or --hub DIR")
        nox_args = user_args + (["--no-dependencies"] if args.part and "--no-dependencies" not in user_args else [])
    else:
        names = tuple(args.targets or (t.name for t in ctx.plan.targets))
        sessions = [ctx.plan.target(n).session for n in names]
        targets = names if args.no_dependencies or args.part or not args.targets else \
            pl.selected_targets(ctx, nox, ["-s", *sessions])
        nox_args = ["-s", *sessions] + (["--no-dependencies"] if args.no_dependencies or args.part else [])
        ledger = not args.no_ledger and len(targets) == len(ctx.plan.targets) and not args.part
    hub = pl.start(ctx, targets=targets, hub=args.part or args.hub, part=bool(args.part),
                   log=sys.stderr if args.verbose else None)
    if args.format != "json":
        print(f"pipeline: hub {ctx.rel(hub.path)}; {len(targets)} target(s) through nox"
              + (f", up to {jobs} at a time" if jobs else ""), flush=True)
    run = pl.execute(ctx, hub, nox=nox, args=nox_args, jobs=jobs, verbose=args.verbose, ledger=ledger,
                     output=sys.stderr if args.format == "json" else None)
    if not run.interrupted:
        _sign(args, hub.path, ctx.project)
    return emit_run(args.format, "pipeline", run.result, run.exit_code, run.interrupted)


def cmd_run_target(args: argparse.Namespace) -> int:
    from harness.context import HUB_ENV, VERBOSE_ENV
    from harness.hub import open_hub
    from harness.runner import Interrupted, run_one
    if not os.environ.get(HUB_ENV):
        raise UserError(f"run-target runs inside a run's hub (${HUB_ENV}); use `nox -s {args.target}` or make")
    ctx = _context(args)
    hub = open_hub(os.environ[HUB_ENV], ctx)
    # Progress lines: stdout, or stderr when stdout carries one JSON object.
    say = functools.partial(print, file=sys.stderr if args.format == "json" else sys.stdout, flush=True)
    say(f"[{args.target}] started in {ctx.rel(hub.path)}")
    jobs = os.cpu_count() or 1 if args.jobs == "auto" else max(1, int(args.jobs))
    echo = (lambda line: say(f"  {args.target} | {line.rstrip()}")) if os.environ.get(VERBOSE_ENV) else None
    try:
        record = run_one(ctx, hub, args.target, jobs=jobs, echo=echo)
    except Interrupted:
        print(f"[{args.target}] interrupted: its log stays .partial", file=sys.stderr)
        return 130
    code = 0 if str(record.verdict) == "GREEN" else 1
    if args.format == "json":
        from harness.reporting import emit
        emit("json", "run-target", {"hub": ctx.rel(hub.path), "target": args.target, "verdict": str(record.verdict),
                                    "reason": record.reason, "duration_s": record.duration_s, "exit_code": code}, "")
    else:  # the one line nox shows per target (this process stays light: docs/architecture.md)
        print(f"[{args.target}] {record.verdict} {record.duration_s or 0:.1f} s - {record.reason}")
    return code


def cmd_collate(args: argparse.Namespace) -> int:
    from harness.collate import collate_path
    from harness.reporting import emit_run
    result = collate_path(args.hub, ledger=not args.no_ledger, project=args.project, plan=args.plan)
    _sign(args, result.collation.hub.path, result.collation.ctx.project)
    return emit_run(args.format, "collate", result, result.exit_code, False)


def cmd_validate(args: argparse.Namespace) -> int:
    from harness.reporting import emit
    from harness.schema import HubFiles
    from harness.validate import handmade_report, validate
    hub = Path(args.hub).expanduser()
    if hub.is_dir() and not (hub / HubFiles.MANIFEST).exists() and not (hub / HubFiles.RUN).exists():
        return handmade_report(hub.resolve(), args.format)
    mode = "require" if args.require_artifacts else "hub-only" if args.hub_only else "default"
    result = validate(hub, mode=mode, project=args.project.resolve() if args.project else None)
    signer = "unsigned"
    if result.manifest and (args.trust or args.require_signature or (hub / HubFiles.ATTESTATION).exists()):
        from harness.attest import check_signature
        check = check_signature(hub.resolve(), trust=args.trust, require=args.require_signature)
        result.problems += check.problems
        result.warnings += check.warnings
        signer = f"signed by {check.signer}" if check.signed and not check.problems else signer
    elif result.manifest:
        result.warnings.append("unsigned: nothing says who made this hub (collate --sign; validate --trust)")
    code = 0 if result.ok else 2 if result.unreadable else 1
    n = len(result.manifest.files) + len(result.manifest.external) if result.manifest else 0
    scope = "partial, " if result.manifest and result.manifest.partial_run else ""
    status = f"valid ({n} files, {scope}overall GREEN; {signer})" if result.ok else \
        f"INVALID ({len(result.problems)} problem(s))"
    lines = [f"warning: {w}" for w in result.warnings] + [f"problem: {p}" for p in result.problems]
    emit(args.format, "validate", {"hub": str(result.hub), "valid": result.ok, "problems": result.problems,
                                   "warnings": result.warnings, "signer": signer, "exit_code": code},
         "\n".join(lines + [f"{result.hub}: {status}"]))
    return code


def cmd_compare(args: argparse.Namespace) -> int:
    from harness.comparereport import compare_paths
    return compare_paths(args.hub_a, args.hub_b, plan=args.plan, fmt=args.format, output=args.output)


def cmd_reproduce(args: argparse.Namespace) -> int:
    from harness.reproduce import reproduce
    return reproduce(args.from_hub, project=args.project, plan=args.plan, project_commit=args.project_commit,
                     hub=args.hub, jobs=args.jobs, ledger=not args.no_ledger, allow_plan_change=args.allow_plan_change,
                     fmt=args.format, sign=lambda hub, git_dir: _sign(args, hub, git_dir))


def cmd_bisect(args: argparse.Namespace) -> int:
    from harness.bisect import bisect, render
    from harness.reporting import emit
    ctx = _context(args)
    result = bisect(ctx.project, args.good, args.bad, plan=ctx.plan.path, targets=args.targets, home=ctx.home)
    code = 0 if result.first else 1
    emit(args.format, "bisect", {**result.to_dict(), "exit_code": code}, render(result))
    return code


def cmd_env(args: argparse.Namespace) -> int:
    from harness.envs import ensure_env
    print(ensure_env(_context(args), log=lambda line: print(line, file=sys.stderr)))
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from harness.context import make_context
    from harness.merge import merge, recorded_plan
    from harness.reporting import emit_run
    ctx = make_context(args.project, args.plan or recorded_plan(args.parts), args.project_commit)
    result = merge(ctx, args.parts, args.into, ledger=not args.no_ledger)
    return emit_run(args.format, "merge", result, result.exit_code, False)


def cmd_ci(args: argparse.Namespace) -> int:
    from harness.cigithub import github_workflow, job_ids
    from harness.fsio import atomic_write_text
    from harness.reporting import emit
    ctx = _context(args)
    try:
        text = github_workflow(ctx.plan, plan_arg=ctx.plan_label, python=args.python)
    except ValueError as exc:  # a plan the workflow cannot follow: the message names the file, line and fix
        raise UserError(str(exc)) from None
    output = args.output or ctx.home / ".github" / "workflows" / "evidence.yml"
    atomic_write_text(output, text)
    jobs = len(job_ids(ctx.plan)) + 1
    emit(args.format, "ci", {"output": str(output), "plan": ctx.plan_label, "jobs": jobs, "exit_code": 0},
         f"ci: wrote {output}: {jobs - 1} target job(s) and the merge job, from {ctx.plan_label}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = globals()[f"cmd_{args.command.replace('-', '_')}"]
    try:
        return int(handler(args))
    except (UserError, OSError) as exc:
        print(f"error: {args.command}: {exc}", file=sys.stderr)
        return getattr(exc, "code", 2)
    except KeyboardInterrupt:
        print(f"{args.command}: interrupted; nothing more was recorded", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
