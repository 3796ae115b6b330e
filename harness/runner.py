"""Run one plan target into a hub: hidden GPU, fixed seed and threads, teed log, verdict record.

The child runs in the project's evidence venv with the project as working folder. Its output is
teed to `<hub>/<log>.partial`, framed by a provenance header and footer; the log is renamed and
`verdicts/<target>.json` written when it ends. A target whose declared inputs are missing is
BLOCKED before anything runs. `python -m harness run-target` is what a nox target session calls.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import time
from concurrent.futures import Executor, Future
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from harness.context import HUB_ENV, RunContext, add_context_arguments, make_context
from harness.envs import ensure_env
from harness.hub import INVOCATION_ENV, Hub, create_hub, invocation_hub, open_hub, reopen_for_target, utc_now_iso
from harness.plan import Target, expand
from harness.process import ChildResult, Children, Interrupted, interrupt_on_sigterm, interrupt_status, run_child
from harness.provenance import git_state, probe_cuda, probe_versions
from harness.reporting import emit, fail, fmt_duration
from harness.schema import EnvironmentRecord, HubFiles, Provenance, Verdict, VerdictRecord
from harness.textlog import last_error_line, log_lines
from harness.verdict import RECORD_PREFIX, command_verdict, load_outcomes, parse_record, pytest_verdict

# A pytest target's per-test limit is its timeout; the whole process gets this much more for
# interpreter start-up, collection and teardown before the wall-clock kill.
PYTEST_WALL_GRACE_S = 60.0
PLUGIN_DIR = Path(__file__).resolve().parent / "pytest_plugin"


@dataclass(frozen=True)
class RunSetup:
    """What every target of one run shares: context, hub, interpreter, probed environment."""

    ctx: RunContext
    hub: Hub
    python: str
    environment: EnvironmentRecord
    cuda_available: Callable[[], bool | None] = lambda: None  # may wait for the run's GPU probe
    pending: Future | None = None  # the background GPU probe, when one runs

    def expand(self, text: str) -> str:
        """`text` with this run's `{python}`, `{artifacts}`, `{hub}` and `{project_root}` filled in."""
        return expand(text, python=self.python, artifacts=self.ctx.rel(self.hub.artifacts),
                      hub=self.ctx.rel(self.hub.path), project_root=str(self.ctx.project))


def child_env(ctx: RunContext, threads: int | None = None, base: dict[str, str] | None = None) -> dict[str, str]:
    """A target's environment: GPU hidden, seed and threads fixed, the checkout off sys.path."""
    env = dict(os.environ if base is None else base)
    threads_text = str(threads or ctx.plan.environment.threads)
    env.update({
        "CUDA_VISIBLE_DEVICES": "",
        "PYTHONHASHSEED": str(ctx.plan.environment.seed),
        "OMP_NUM_THREADS": threads_text,
        "MKL_NUM_THREADS": threads_text,
        # Idle OpenMP threads sleep instead of spinning: on a shared 2-core machine spinning made
        # torch 15-90x slower (measured); results do not depend on it.
        "OMP_WAIT_POLICY": "PASSIVE",
        "PYTHONSAFEPATH": "1",
        "PYTHONUNBUFFERED": "1",
    })
    for key in (HUB_ENV, INVOCATION_ENV):
        env.pop(key, None)
    return env


def build_argv(target: Target, setup: RunSetup) -> list[str]:
    """The exact child command line of a target."""
    if target.kind == "pytest":
        timeout = str(int(target.timeout)) if float(target.timeout).is_integer() else str(target.timeout)
        return [setup.python, "-m", "pytest", str(target.selector), "-vv", "-p", "no:cacheprovider",
                "-p", "harness_outcomes", "--harness-outcomes", str(setup.hub.outcomes(target.name)),
                "--timeout", timeout, "--timeout-method", "signal"]
    return [setup.expand(arg) for arg in target.argv]


def wall_limit(target: Target) -> float:
    return target.timeout + (PYTEST_WALL_GRACE_S if target.kind == "pytest" else 0.0)


def missing_pytest_plugins(packages: dict[str, str]) -> list[str]:
    """What a pytest target needs in the evidence venv and it lacks."""
    return [name for name in ("pytest", "pytest-timeout") if name not in packages]


def _frame(lines: list[str]) -> str:
    return "".join(f"# {line}\n" for line in lines)


def _header(target: Target, setup: RunSetup, argv: list[str], env: dict[str, str], prov: Provenance) -> str:
    g, r, ctx = prov.git, prov.runtime, setup.ctx
    commit = g.sha if g.known else f"{setup.hub.run.project_commit or 'unknown'} ({setup.hub.run.commit_source})"
    return _frame([
        f"evidence log: target {target.name} ({target.kind}) of plan {ctx.plan.id}",
        f"command: CUDA_VISIBLE_DEVICES= PYTHONHASHSEED={env['PYTHONHASHSEED']} {shlex.join(argv)}",
        f"cwd: {ctx.project}",
        f"started_utc: {utc_now_iso()}",
        f"time limit: {wall_limit(target):g} s",
        f"git: sha={commit} dirty={'unknown' if g.dirty is None else g.dirty}" + (f" ({g.note})" if g.note else ""),
        f"dirty files (tracked): {', '.join(g.dirty_files) or 'none'}",
        f"production code ({', '.join(ctx.plan.project.production)}) differing from HEAD: "
        f"{', '.join(g.production_changed) or ('none' if g.known else 'not checked (no git)')}",
        f"python {r.python} ({r.executable}) | torch {r.torch} | lightning {r.lightning} | numpy {r.numpy}",
        f'CUDA_VISIBLE_DEVICES="{env["CUDA_VISIBLE_DEVICES"]}" (GPU hidden); torch.cuda.is_available() is in the footer',
        f"platform: {r.platform}",
        f"seed: {prov.seed}  PYTHONHASHSEED={env['PYTHONHASHSEED']}  threads: {prov.threads}",
        "----- output -----",
    ])


def _outputs(target: Target, setup: RunSetup) -> list[tuple[str, int | None]]:
    paths = [setup.ctx.path(setup.expand(pattern)) for pattern in target.expected_outputs]
    return [(setup.ctx.rel(path), path.stat().st_size if path.is_file() else None) for path in paths]


def copy_figures(target: Target, setup: RunSetup) -> tuple[str, ...]:
    """Copy the pictures a target declares into `<hub>/figures/<target>/`; hub-relative paths."""
    copied = []
    for pattern in target.figures:
        source = setup.ctx.path(setup.expand(pattern))
        if source.is_file():
            dest = setup.hub.path / HubFiles.FIGURES / target.name / source.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, dest)
            copied.append(dest.relative_to(setup.hub.path).as_posix())
    return tuple(copied)


def _judge(target: Target, setup: RunSetup, result: ChildResult, cuda: bool | None,
           missing: list[str], log: Path) -> tuple[Verdict, str, dict]:
    """The verdict, its reason, and the record fields that depend on the kind; `log` is read for a failed command."""
    if missing:
        return Verdict.BLOCKED, f"missing input(s): {', '.join(missing)}", {}
    if target.kind == "pytest":
        outcomes = load_outcomes(setup.hub.outcomes(target.name))
        verdict, reason = pytest_verdict(outcomes, result.exit_code, result.timed_out, cuda)
        tests = tuple({k: t[k] for k in ("nodeid", "outcome", "duration_s")} for t in outcomes.tests) if outcomes else ()
        reason = reason.replace(f"{setup.ctx.project}/", "")  # messages name files relative to the checkout
        return verdict, reason, {"counts": outcomes.counts if outcomes else None, "tests": tests}
    found = _outputs(target, setup)
    error = last_error_line(log_lines(log)) if result.exit_code else None
    verdict, reason = command_verdict(result.exit_code, result.timed_out, found, cuda, error)
    return verdict, reason, {"outputs": tuple({"path": p, "bytes": s} for p, s in found),
                             "record": parse_record(result.marked_line)}


def run_target(setup: RunSetup, target: Target, *, threads: int | None = None,
               echo: Callable[[str], None] | None = None, children: Children | None = None) -> VerdictRecord:
    """Run `target` into the hub; write and return its verdict record."""
    hub, ctx = setup.hub, setup.ctx
    log_path, partial = hub.path / target.log, hub.path / f"{target.log}.partial"
    existing = hub.earlier_run(target)
    if existing is not None:
        raise FileExistsError(f"{existing} exists: target {target.name!r} already ran in this hub; "
                              "hubs are never overwritten, start a new one")
    if target.kind == "pytest" and missing_pytest_plugins(setup.environment.packages):
        raise RuntimeError(f"{', '.join(missing_pytest_plugins(setup.environment.packages))} not installed in the "
                           f"evidence venv ({setup.python}); add it to the plan's [project] install steps")
    env = child_env(ctx, threads)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PLUGIN_DIR), env.get("PYTHONPATH")]))
    argv = build_argv(target, setup)
    prov = Provenance(git_state(ctx.project, ctx.plan.project.production), setup.environment.runtime,
                      ctx.plan.environment.seed, int(env["OMP_NUM_THREADS"]))
    missing = [p for p in target.inputs if not ctx.path(p).exists()]
    started, t0 = utc_now_iso(), time.monotonic()
    with partial.open("x", encoding="utf-8") as log:
        log.write(_header(target, setup, argv, env, prov))
        log.flush()
        if missing:
            log.write(f"BLOCKED: missing input(s): {', '.join(missing)} (declared in the plan's `inputs`); not run\n")
            result = ChildResult(None, False)
        else:
            if target.kind == "pytest":
                hub.outcomes(target.name).parent.mkdir(parents=True, exist_ok=True)
            try:
                result = run_child(argv, env=env, cwd=ctx.project, limit=wall_limit(target), log=log, echo=echo,
                                   mark=RECORD_PREFIX, children=children)
            except (KeyboardInterrupt, Interrupted):
                log.write(f"# interrupted at {utc_now_iso()}: the log stays .partial and no verdict is recorded\n")
                raise
        duration = time.monotonic() - t0
        cuda = setup.cuda_available()
        log.flush()
        verdict, reason, fields = _judge(target, setup, result, cuda, missing, partial)
        record = VerdictRecord(
            target=target.name, kind=target.kind, log=target.log, verdict=verdict, reason=reason,
            session=target.session, selector=target.selector, argv=tuple(argv), exit_code=result.exit_code,
            timed_out=result.timed_out, started_utc=started, ended_utc=utc_now_iso(), duration_s=round(duration, 3),
            figures=copy_figures(target, setup) if not missing else (),
            provenance=replace(prov, runtime=replace(prov.runtime, cuda_available=cuda)), **fields)
        log.write(_frame([
            "----- end of output -----", f"ended_utc: {record.ended_utc}", f"duration_s: {duration:.2f}",
            f"exit_code: {result.exit_code}" + (" (killed at the time limit)" if result.timed_out else ""),
            f"torch.cuda.is_available(): {cuda}", f"verdict: {verdict} - {reason}"]))
    os.replace(partial, log_path)
    record.write(hub.verdict_path(target.name))
    return record


def prepare_setup(ctx: RunContext, hub: Hub, python: str, background: Executor | None = None) -> RunSetup:
    """The run's shared setup; the environment is probed once per hub and kept in environment.json.

    With `background`, the slow GPU probe runs there, beside the first target; `finish_environment` then writes it.
    """
    known = EnvironmentRecord.load(hub.path)
    if known is not None and known.runtime.cuda_available is not None:
        return RunSetup(ctx, hub, python, known, lambda: known.runtime.cuda_available)
    env, cwd = child_env(ctx), ctx.project
    versions = probe_versions(python, env, cwd)
    if background is None:
        full = probe_cuda(python, env, cwd, versions)
        full.write(hub.path)
        return RunSetup(ctx, hub, python, full, lambda: full.runtime.cuda_available)
    future = background.submit(probe_cuda, python, env, cwd, versions)
    return RunSetup(ctx, hub, python, versions, lambda: future.result().runtime.cuda_available, future)


def finish_environment(setup: RunSetup) -> None:
    """Write environment.json once the background probe has answered (no-op when already written)."""
    if setup.pending is not None:
        setup.pending.result().write(setup.hub.path)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", required=True, help="target name from the plan")
    parser.add_argument("--hub", type=Path, help="existing hub folder (default: $EVIDENCE_HUB, the nox "
                                                 "invocation's hub, else a fresh one)")
    parser.add_argument("--collate", action="store_true", help="collate the hub afterwards (ledger untouched)")
    parser.add_argument("--verbose", "-v", action="store_true", help="echo the target's output to the console")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    add_context_arguments(parser)


def _hub_for(args: argparse.Namespace, ctx: RunContext) -> Hub:
    """--hub, else $EVIDENCE_HUB, else the nox invocation's hub (each reopened for the target), else a new hub."""
    chosen = args.hub or (Path(os.environ[HUB_ENV]) if os.environ.get(HUB_ENV) else None)
    if chosen is not None:
        hub = open_hub(chosen, ctx)
    elif os.environ.get(INVOCATION_ENV):
        hub = invocation_hub(ctx, os.environ[INVOCATION_ENV])
    else:
        return create_hub(ctx)
    reopen_for_target(hub, ctx.plan.target(args.target))
    return hub


def main(args: argparse.Namespace) -> int:
    """Exit 0 when GREEN, 1 otherwise, 2 on bad usage; the last line names the hub."""
    from harness.collate import collate  # the nox session's hub is collated after each target

    interrupt_on_sigterm()
    quiet = args.format == "json"
    say = (lambda line: print(line, file=sys.stderr, flush=True)) if quiet else (lambda line: print(line, flush=True))
    hub = None
    try:
        ctx = make_context(args.project, args.plan, args.project_commit)
        target = ctx.plan.target(args.target)
        python = ensure_env(ctx, log=lambda line: say(f"run-target: {line}"))
        hub = _hub_for(args, ctx)
        setup = prepare_setup(ctx, hub, str(python))
        say(f"[{target.name}] started in {ctx.rel(hub.path)}")
        record = run_target(setup, target, echo=(lambda line: say(line.rstrip("\n"))) if args.verbose else None)
        if args.collate:
            collate(ctx, hub, ledger=False)
    except (KeyboardInterrupt, Interrupted) as exc:
        where = f": the hub {ctx.rel(hub.path)} stays INCOMPLETE" if hub else ""
        print(f"interrupted{where}", file=sys.stderr)
        return interrupt_status(exc)
    except (ValueError, KeyError, FileNotFoundError, FileExistsError, RuntimeError, OSError) as exc:
        return fail(f"run-target: {exc.args[0] if isinstance(exc, KeyError) else exc}")
    code = 0 if record.verdict == Verdict.GREEN else 1
    emit(args.format, "run-target", {"hub": ctx.rel(hub.path), "target": target.name, "verdict": str(record.verdict),
                                     "reason": record.reason, "duration_s": record.duration_s, "exit_code": code},
         f"[{target.name}] {record.verdict} {fmt_duration(record.duration_s)} - {record.reason}\nhub: {ctx.rel(hub.path)}")
    return code
