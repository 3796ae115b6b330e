"""Benchmark: the harness against the seed's four commands typed by hand, and a cold start against a warm one.

Why: a reproduction slower than copy-pasting four commands is one people skip. Everything is
measured in one run, as ratios, because this 2-core machine is shared and noisy:

1. warm `make phase-c4d-b3 NO_LEDGER=1` against the seed's four commands run one after another
   in the same evidence venv (`| tee` into logs, as the seed's How-To Map does), alternating
   A B A B after a warm-up, median of `--pairs` pairs; and the harness's time beyond the
   critical path (its wall time minus the target durations along the longest `after` chain);
2. where the harness's own time goes: nox start, the venv check, the environment probes, collate;
3. a cold fresh clone (empty venv folders, package caches kept) against a warm run of that
   clone, and a plain `pip install -c constraints.txt -e ".[dev]"` into a new venv; the
   clone's torch must be the CPU build (`+cpu`);
4. with `--make-test-baseline REV`: `make test` at REV against `make test` now.

    make bench                               # or: .venv-tools/bin/python bench/harness_speed.py --pairs 3

Prints a table and writes artifacts/bench/<timestamp>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.context import make_context  # noqa: E402
from harness.envs import ensure_env  # noqa: E402
from harness.provenance import probe_cuda, probe_versions  # noqa: E402
from harness.runner import child_env  # noqa: E402
from harness.schema import VerdictRecord  # noqa: E402

FIXTURE = "tests/fixtures/pytorch_integration/minimal_dataset_v1.npz"


def timed(command: list[str] | str, cwd: Path, env: dict[str, str] | None = None) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of the children, exit code) of one command; its output is discarded."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    done = subprocess.run(command, cwd=cwd, env=env, shell=isinstance(command, str), stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), done.returncode


def by_hand_script(python: str, logs: Path) -> str:
    """The seed's How-To Map, verbatim in spirit: four commands, each `| tee` into its log."""
    plan = make_context().plan
    lines = [f"set -e; mkdir -p {logs}; rm -rf {logs}/cli_smoke"]
    for t in plan.targets:
        if t.kind == "pytest":
            lines.append(f'CUDA_VISIBLE_DEVICES="" {python} -m pytest {t.selector} -vv | tee {logs}/{t.log}')
    smoke = " ".join(a for a in plan.target("cli_smoke_gs2").argv[1:]).replace("{artifacts}/cli_smoke_gs2", f"{logs}/cli_smoke")
    lines.append(f'CUDA_VISIBLE_DEVICES="" {python} {smoke} | tee {logs}/manual_cli_smoke_gs2.log')
    return "\n".join(lines)


def critical_path(hub: Path) -> tuple[float, dict[str, float]]:
    """Target durations along the longest `after` chain of the plan, and every target's duration."""
    plan = make_context().plan
    durations = {t.name: VerdictRecord.load(hub / "verdicts" / f"{t.name}.json").duration_s or 0.0 for t in plan.targets}
    finish: dict[str, float] = {}
    for t in plan.targets:  # plan order lists every target after the ones it needs
        finish[t.name] = durations[t.name] + max((finish[d] for d in t.after), default=0.0)
    return max(finish.values()), durations


def harness_run(home: Path, hub: Path) -> tuple[float, float, float, dict[str, float]]:
    """(wall, CPU, time beyond the critical path, target durations) of one warm `make phase-c4d-b3`."""
    wall, cpu, code = timed(["make", "phase-c4d-b3", "NO_LEDGER=1", f"HUB={hub}"], home)
    if not (hub / "manifest.json").is_file():  # make exits 2 for a RED run too: the hub tells
        raise SystemExit(f"make phase-c4d-b3 made no collated hub (exit {code}); run it by hand to see why")
    path, durations = critical_path(hub)
    return wall, cpu, wall - path, durations


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def overhead_parts(home: Path, python: str, hub: Path) -> dict[str, float]:
    """Median seconds of each fixed cost the harness pays per run."""
    ctx = make_context()
    env = child_env(ctx, ctx.plan.environment.threads)
    nox = [str(home / ".venv-tools/bin/nox"), "-f", str(home / "noxfile.py"), "-l"]
    parts: dict[str, list[float]] = {"nox start (nox -l)": [], "venv check (warm)": [], "version probe": [],
                                     "GPU probe (beside the first target; none for a +cpu torch)": [], "collate": []}
    for _ in range(3):
        parts["nox start (nox -l)"].append(timed(nox, home)[0])
        t0 = time.monotonic()
        ensure_env(ctx, log=lambda _: None)
        parts["venv check (warm)"].append(time.monotonic() - t0)
        t0 = time.monotonic()
        versions = probe_versions(python, env, home)
        parts["version probe"].append(time.monotonic() - t0)
        t0 = time.monotonic()
        probe_cuda(python, env, home, versions)
        parts["GPU probe (beside the first target; none for a +cpu torch)"].append(time.monotonic() - t0)
        copy = Path(tempfile.mkdtemp()) / "hub"
        shutil.copytree(hub, copy)
        (copy / "manifest.json").unlink()
        (copy / "INCOMPLETE").write_text("bench\n")
        collate = [str(home / ".venv-tools/bin/python"), "-m", "harness", "collate", str(copy), "--no-ledger",
                   "--project", str(home)]
        parts["collate"].append(timed(collate, home, dict(os.environ, PYTHONPATH=str(home)))[0])
        shutil.rmtree(copy.parent)
    return {k: median(v) for k, v in parts.items()}


def cold_start(home: Path) -> dict[str, object]:
    """A fresh clone: cold `make phase-c4d-b3`, then a warm one, and a plain pip install for scale."""
    work = Path(tempfile.mkdtemp(prefix="bench-cold-"))
    clone = work / "clone"
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(home), str(clone)], check=True)
    cold = timed(["make", "phase-c4d-b3", "NO_LEDGER=1", f"HUB={work}/cold-hub"], clone)[0]
    warm = timed(["make", "phase-c4d-b3", "NO_LEDGER=1", f"HUB={work}/warm-hub"], clone)[0]
    venv = work / "pip-venv"
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "--quiet", "-c", "constraints.txt", "-e", ".[dev]"],
                   cwd=clone, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pip = time.monotonic() - t0
    python = subprocess.run([str(clone / ".venv-tools/bin/python"), "-m", "harness", "env"], cwd=clone, text=True,
                            capture_output=True, env=dict(os.environ, PYTHONPATH=str(clone))).stdout.split()[-1]
    torch = subprocess.run([python, "-c", "from importlib.metadata import version; print(version('torch'))"],
                           capture_output=True, text=True).stdout.strip()
    shutil.rmtree(work, ignore_errors=True)
    return {"cold_s": cold, "warm_s": warm, "pip_install_s": pip, "cold_minus_warm_over_pip": (cold - warm) / pip,
            "torch_in_clone": torch, "torch_is_cpu_build": torch.endswith("+cpu")}


def make_test_ratio(home: Path, rev: str, pairs: int) -> dict[str, object]:
    """`make test` at `rev` against `make test` now, alternating after one warm-up run of each."""
    base = Path(tempfile.mkdtemp(prefix="bench-old-")) / "old"
    subprocess.run(["git", "-C", str(home), "worktree", "add", "-q", "--detach", str(base), rev], check=True)
    try:
        for tree in (base, home):
            timed(["make", "test"], tree)
        old, new, codes = [], [], []
        for _ in range(pairs):
            for tree, times in ((base, old), (home, new)):
                wall, _, code = timed(["make", "test"], tree)
                times.append(wall)
                codes.append(code)
    finally:
        subprocess.run(["git", "-C", str(home), "worktree", "remove", "--force", str(base)], check=False)
    return {"baseline_rev": rev, "old_s": old, "new_s": new, "new_over_old": median(new) / median(old),
            "exit_codes_old_new": codes}  # a failing suite is no timing: every code must be 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3, help="A/B pairs after the warm-up (default 3; 0 skips them)")
    parser.add_argument("--skip-cold", action="store_true", help="skip the fresh-clone measurement")
    parser.add_argument("--make-test-baseline", metavar="REV", help="also time `make test` at REV against now")
    args = parser.parse_args(argv)
    from tabulate import tabulate

    home = ROOT
    subprocess.run(["make", "tools"], cwd=home, check=True, stdout=subprocess.DEVNULL)
    python = str(ensure_env(make_context(), log=lambda _: None))
    scratch = Path(tempfile.mkdtemp(prefix="bench-"))
    hand = by_hand_script(python, scratch / "hand")
    runs: dict[str, list] = {"harness_wall": [], "harness_cpu": [], "beyond_critical": [], "hand_wall": [], "hand_cpu": []}
    durations: list[dict[str, float]] = []
    for i in range(args.pairs + 1 if args.pairs else 0):  # pair 0 is the warm-up
        wall, cpu, beyond, per_target = harness_run(home, scratch / f"hub-{i}")
        hand_wall, hand_cpu, code = timed(["bash", "-c", hand], home)
        if code:
            raise SystemExit("the by-hand loop failed; run bench/harness_speed.py's by_hand_script to see why")
        if i:
            for key, value in zip(runs, (wall, cpu, beyond, hand_wall, hand_cpu)):
                runs[key].append(value)
            durations.append(per_target)
        print(f"pair {i}{' (warm-up)' if not i else ''}: harness {wall:.1f} s, by hand {hand_wall:.1f} s", flush=True)
    medians = {k: median(v) for k, v in runs.items()}
    result: dict[str, object] = {"timestamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H%M%SZ"), "pairs": args.pairs}
    if args.pairs:
        result.update(runs=runs, medians=medians, harness_over_hand=medians["harness_wall"] / medians["hand_wall"],
                      target_seconds={t: median([d[t] for d in durations]) for t in durations[0]},
                      overhead_parts_s=overhead_parts(home, python, scratch / f"hub-{args.pairs}"))
    if not args.skip_cold:
        result["cold"] = cold_start(home)
    if args.make_test_baseline:
        result["make_test"] = make_test_ratio(home, args.make_test_baseline, max(2, args.pairs - 1))
    shutil.rmtree(scratch, ignore_errors=True)
    rows = []
    if args.pairs:
        rows += [["warm harness / by hand (wall, median)", f"{result['harness_over_hand']:.2f}", "≤ 0.90"],
                 ["harness wall / CPU (median, s)", f"{medians['harness_wall']:.1f} / {medians['harness_cpu']:.1f}", ""],
                 ["by hand wall / CPU (median, s)", f"{medians['hand_wall']:.1f} / {medians['hand_cpu']:.1f}", ""],
                 ["harness time beyond the critical path (s)", f"{medians['beyond_critical']:.1f}", "≤ 2"]]
        rows += [[f"  target {k} (s)", f"{v:.1f}", ""] for k, v in result["target_seconds"].items()]
        rows += [[f"  overhead: {k} (s)", f"{v:.2f}", ""] for k, v in result["overhead_parts_s"].items()]
    if "cold" in result:
        c = result["cold"]
        rows += [["cold clone / warm clone / plain pip (s)", f"{c['cold_s']:.1f} / {c['warm_s']:.1f} / {c['pip_install_s']:.1f}", ""],
                 ["(cold - warm) / plain pip install", f"{c['cold_minus_warm_over_pip']:.2f}", "≤ 0.6"],
                 ["torch in the fresh clone's venv", c["torch_in_clone"], "+cpu"]]
    if "make_test" in result:
        m = result["make_test"]
        rows.append([f"make test now / at {m['baseline_rev']}", f"{m['new_over_old']:.2f}", "≤ 1.0"])
        rows.append(["make test exit codes (old, new, ...)", " ".join(map(str, m["exit_codes_old_new"])), "all 0"])
    print(tabulate(rows, headers=["measure", "value", "target"], tablefmt="github"))
    out = home / "artifacts" / "bench" / f"{result['timestamp']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out.relative_to(home)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
