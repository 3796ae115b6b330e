"""Run one plan target: hidden GPU, fixed seed/threads, teed log with provenance, time limit.

`python -m harness run-target --plan P --target NAME [--hub H]` runs the target in a child
process (its own session, so a hung target's whole process group can be killed), tees its
output line by line to the console and to `<hub>/<log>.partial`, frames it with a provenance
header and footer, renames the log when done, and writes `verdicts/<target>.json`.
Exit code: 0 when GREEN, 1 otherwise, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import IO, Any, Mapping

from harness.hub import Hub, atomic_write_json, create_hub, open_hub, relative_to_root, utc_now_iso
from harness.plan import DEFAULT_PLAN, EvidencePlan, Target, expand, load_plan
from harness.provenance import Provenance, git_state, probe_runtime
from harness.verdict import GREEN, command_verdict, load_junit, pytest_verdict

VERDICT_SCHEMA = "evidence-verdict/1"
RECORD_PREFIX = "TRAIN_RECORD "
KILL_GRACE_S = 5.0
# A pytest target's per-test limit is its timeout; the whole process gets this much more for
# interpreter start-up, collection and teardown before the wall-clock kill.
PYTEST_WALL_GRACE_S = 60.0


def child_env(plan: EvidencePlan, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The target's environment: GPU hidden, seed and threads fixed, repo root off sys.path."""
    env = dict(os.environ if base is None else base)
    threads = str(plan.environment.threads)
    env.update({
        "CUDA_VISIBLE_DEVICES": "",
        "PYTHONHASHSEED": str(plan.environment.seed),
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        # Idle OpenMP threads sleep instead of spinning: on a shared 2-core machine spinning made
        # torch 15-90x slower (measured); results do not depend on it.
        "OMP_WAIT_POLICY": "PASSIVE",
        "PYTHONSAFEPATH": "1",
        "PYTHONUNBUFFERED": "1",
    })
    return env


def placeholders(hub: Hub, python: str) -> dict[str, str]:
    return {
        "python": python,
        "artifacts": relative_to_root(hub.artifacts, hub.project_root),
        "hub": relative_to_root(hub.path, hub.project_root),
        "project_root": str(hub.project_root),
    }


def junit_path(hub: Hub, target: Target) -> Path:
    return hub.artifacts / "junit" / f"{target.name}.xml"


def build_argv(target: Target, hub: Hub, python: str = sys.executable) -> list[str]:
    """The exact child command line of a target."""
    if target.kind == "pytest":
        return [
            python, "-m", "pytest", str(target.selector), "-vv", "-p", "no:cacheprovider",
            "--junitxml", str(junit_path(hub, target)),
            "--timeout", _num(target.timeout), "--timeout-method", "signal",
            "-o", "junit_family=xunit2",
        ]
    values = placeholders(hub, python)
    return [expand(arg, **values) for arg in target.argv]


def wall_limit(target: Target) -> float:
    return target.timeout + (PYTEST_WALL_GRACE_S if target.kind == "pytest" else 0.0)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def require_pytest_timeout(python: str) -> None:
    """pytest targets depend on pytest-timeout; say how to get it instead of failing obscurely."""
    if python == sys.executable:
        ok = find_spec("pytest_timeout") is not None
    else:
        ok = subprocess.run([python, "-c", "import pytest_timeout"], capture_output=True).returncode == 0
    if not ok:
        raise RuntimeError(
            f"pytest-timeout is not installed for {python}; install the test extra: "
            "pip install -c constraints.txt -e .[test] (nox's evidence_env does this)"
        )


@dataclass
class _Outcome:
    exit_code: int | None
    timed_out: bool
    record: dict | None


class _Tee(threading.Thread):
    """Copy the child's output line by line to the console and the log; remember TRAIN_RECORD."""

    def __init__(self, stream: IO[str], log: IO[str], console: IO[str] | None) -> None:
        super().__init__(daemon=True)
        self.stream, self.log, self.console = stream, log, console
        self.record_line: str | None = None

    def run(self) -> None:
        for line in self.stream:
            self.log.write(line)
            self.log.flush()
            if self.console is not None:
                self.console.write(line)
                self.console.flush()
            if line.startswith(RECORD_PREFIX):
                self.record_line = line[len(RECORD_PREFIX):]


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGTERM the child's process group, then SIGKILL whatever is left."""
    for sig, wait in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, KILL_GRACE_S)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        _reap_strays(proc)  # the leader is gone; no grandchild of the group may survive
        return


def _reap_strays(proc: subprocess.Popen) -> None:
    """Kill processes the target left behind in its group (they would hold the log pipe open)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _execute(argv: list[str], env: dict[str, str], cwd: Path, limit: float,
             log: IO[str], console: IO[str] | None) -> _Outcome:
    try:
        proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, text=True, errors="replace", bufsize=1, start_new_session=True,
        )
    except OSError as exc:
        message = f"could not start {argv[0]!r}: {exc}\n"
        log.write(message)
        if console is not None:
            console.write(message)
        return _Outcome(None, False, None)
    tee = _Tee(proc.stdout, log, console)
    tee.start()
    timed_out = False
    try:
        proc.wait(timeout=limit)
        _reap_strays(proc)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
        proc.wait()
    except BaseException:
        _kill_group(proc)
        raise
    tee.join(timeout=30)
    record = None
    if tee.record_line is not None:
        try:
            parsed = json.loads(tee.record_line)
            record = parsed if isinstance(parsed, dict) else None
        except json.JSONDecodeError:
            record = None
    return _Outcome(proc.returncode, timed_out, record)


def _frame(lines: list[str]) -> str:
    return "".join(f"# {line}\n" for line in lines)


def run_target(plan: EvidencePlan, name: str, hub: Hub, console: IO[str] | None = sys.stdout,
               python: str = sys.executable) -> dict[str, Any]:
    """Run `name` into `hub`; return (and write) its verdict record."""
    target = plan.target(name)
    root = hub.project_root
    log_path = hub.path / target.log
    partial = log_path.with_name(log_path.name + ".partial")
    verdict_path = hub.verdicts / f"{target.name}.json"
    for existing in (log_path, partial, verdict_path):
        if existing.exists():
            raise FileExistsError(f"{existing} exists: target {target.name!r} already ran in this hub; "
                                  "hubs are never overwritten, start a new one")
    if target.kind == "pytest":
        require_pytest_timeout(python)
        junit_path(hub, target).parent.mkdir(parents=True, exist_ok=True)
    env = child_env(plan)
    argv = build_argv(target, hub, python)
    provenance = Provenance(git_state(root), probe_runtime(python, env, root),
                            plan.environment.seed, plan.environment.threads)
    started = utc_now_iso()
    header = _frame([
        f"evidence log: target {target.name} ({target.kind}) of plan {plan.id}",
        f"command: CUDA_VISIBLE_DEVICES= PYTHONHASHSEED={env['PYTHONHASHSEED']} {shlex.join(argv)}",
        f"cwd: {root}",
        f"started_utc: {started}",
        f"time limit: {_num(wall_limit(target))} s",
        *provenance.header_lines(),
        "----- output -----",
    ])
    hub.path.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with partial.open("x", encoding="utf-8") as log:
        log.write(header)
        log.flush()
        if console is not None:
            console.write(header)
            console.flush()
        outcome = _execute(argv, env, root, wall_limit(target), log, console)
        duration = time.monotonic() - t0
        ended = utc_now_iso()
        record = _verdict_record(target, hub, argv, python, outcome, provenance, started, ended, duration)
        footer = _frame([
            "----- end of output -----",
            f"ended_utc: {ended}",
            f"duration_s: {duration:.2f}",
            f"exit_code: {outcome.exit_code}" + (" (killed at the time limit)" if outcome.timed_out else ""),
            f"verdict: {record['verdict']} - {record['reason']}",
        ])
        log.write(footer)
        if console is not None:
            console.write(footer)
            console.flush()
    os.replace(partial, log_path)
    atomic_write_json(verdict_path, record)
    return record


def _verdict_record(target: Target, hub: Hub, argv: list[str], python: str, outcome: _Outcome,
                    provenance: Provenance, started: str, ended: str, duration: float) -> dict[str, Any]:
    root = hub.project_root
    cuda = provenance.runtime.cuda_available
    counts = tests = junit_rel = None
    outputs: list[dict[str, Any]] = []
    if target.kind == "pytest":
        xml = junit_path(hub, target)
        junit = load_junit(xml, root)
        verdict, reason = pytest_verdict(junit, outcome.exit_code, outcome.timed_out, cuda)
        if junit is not None:
            counts = junit.counts
            tests = [t.as_record() for t in junit.tests]
        junit_rel = relative_to_root(xml, root) if xml.exists() else None
    else:
        values = placeholders(hub, python)
        found: list[tuple[str, int | None]] = []
        for pattern in target.expected_outputs:
            rel = expand(pattern, **values)
            path = Path(rel) if Path(rel).is_absolute() else root / rel
            size = path.stat().st_size if path.is_file() else None
            found.append((relative_to_root(path, root), size))
        outputs = [{"path": p, "bytes": size} for p, size in found]
        verdict, reason = command_verdict(outcome.exit_code, outcome.timed_out, found, cuda)
    return {
        "schema": VERDICT_SCHEMA,
        "target": target.name,
        "session": target.session,
        "kind": target.kind,
        "selector": target.selector,
        "argv": argv,
        "log": target.log,
        "verdict": verdict,
        "reason": reason,
        "exit_code": outcome.exit_code,
        "timed_out": outcome.timed_out,
        "started_utc": started,
        "ended_utc": ended,
        "duration_s": round(duration, 3),
        "counts": counts,
        "tests": tests,
        "junit_xml": junit_rel,
        "outputs": outputs,
        "record": outcome.record,
        "provenance": provenance.as_record(),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plan", type=Path, default=DEFAULT_PLAN, help=f"evidence plan TOML (default: {DEFAULT_PLAN})")
    parser.add_argument("--target", required=True, help="target name from the plan")
    parser.add_argument("--hub", type=Path, help="existing hub folder (default: create a fresh one)")
    parser.add_argument("--project-root", type=Path, default=Path.cwd(),
                        help="where targets run and relative paths start (default: the current folder)")


def main(args: argparse.Namespace) -> int:
    root = args.project_root.resolve()
    plan_path = args.plan if args.plan.is_absolute() else root / args.plan
    try:
        plan = load_plan(plan_path)
        plan.target(args.target)
        hub = open_hub(args.hub.resolve(), root) if args.hub else create_hub(plan, root)
        record = run_target(plan, args.target, hub)
    except (ValueError, KeyError, FileNotFoundError, FileExistsError, RuntimeError) as exc:
        print(f"run-target: {exc.args[0] if isinstance(exc, KeyError) else exc}", file=sys.stderr)
        return 2
    print(f"{record['target']}: {record['verdict']} - {record['reason']} (hub: {relative_to_root(hub.path, root)})")
    return 0 if record["verdict"] == GREEN else 1
