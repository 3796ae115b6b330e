"""Projects and hubs for the harness tests, built through the harness's own classes.

A project is a tiny committed git repository in tmp_path: a src/ file, a fixture with its
sidecar, a three-target evidence plan, and the ledger documents as shipped (so the tests also
prove that the real plan.md and fix_plan.md work with the ledger code). A hub is created by the
harness's `create_hub`; the factory then writes what the runner would have (logs, outputs, and
verdict records built as `VerdictRecord`s), and `collated` runs the real collate on it. No test
writes a hub's JSON by hand, except the ones that test the readers on malformed or format-1 files.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable
from urllib.parse import unquote

from harness import logframe
from harness.collate import collate
from harness.context import HOME, RunContext
from harness.hub import Hub, create_hub, open_hub
from harness.plan import load_plan
from harness.schema import (Counts, GitState, HubFiles, Provenance, Runtime, Verdict, VerdictRecord)

# The ledger documents as shipped before any evidence run (B3 [P], last attempt #34): the real
# ones change with every `make phase-c4d-b3`, so tests start from this frozen copy.
LEDGER_BASELINE = Path(__file__).resolve().parent / "ledger_baseline"
PLAN_MD = "plans/active/ADR-003-BACKEND-API/reports/2025-10-20T083500Z/phase_c4d_blockers/plan.md"
FIX_PLAN = "docs/fix_plan.md"
PLAN_TOML = "plans/active/ADR-003-BACKEND-API/evidence/plan.toml"
FIXTURE = "tests/fixtures/data_v1.npz"
TIMESTAMP = "2026-11-29T101500Z"
SELECTORS = {"unit": "tests/test_unit.py::TestUnit::test_gridsize", "integration": "tests/test_integration.py::test_round_trip"}
LOGS = {"unit": "pytest_unit_green.log", "integration": "pytest_integration_green.log", "smoke": "cli_smoke.log"}
DATA_SHA = "5e" * 32

PLAN = f"""
[plan]
id = "TEST/C4.D.B3"
title = "collate test plan"
hub = "plans/active/ADR-003-BACKEND-API/reports/{{timestamp}}/phase_c4d_at_parallel"
artifacts = "artifacts/{{timestamp}}"

[ledger]
plan_file = "{PLAN_MD}"
row = "B3"
fix_plan = "{FIX_PLAN}"

[[targets]]
name = "unit"
session = "unit"
kind = "pytest"
selector = "{SELECTORS['unit']}"
log = "{LOGS['unit']}"
timeout = 300
description = "unit regression"

[[targets]]
name = "integration"
session = "integration"
kind = "pytest"
selector = "{SELECTORS['integration']}"
log = "{LOGS['integration']}"
timeout = 600
description = "integration"
after = ["unit"]

[[targets]]
name = "smoke"
session = "smoke"
kind = "command"
argv = ["{{python}}", "-m", "ptycho_torch.train", "--output_dir", "{{artifacts}}/smoke", "--deterministic"]
expected_outputs = ["{{artifacts}}/smoke/wts.h5.zip"]
log = "{LOGS['smoke']}"
timeout = 600
description = "CLI smoke"
after = ["unit", "integration"]
"""
RUNTIME = Runtime(python="3.11.7", platform="Linux-6.1-x86_64-with-glibc2.36", executable="/opt/venv/bin/python",
                  torch="2.13.0+cpu", lightning="2.6.6", numpy="2.4.6", cuda_available=False,
                  cuda_visible_devices="", pythonhashseed="0")


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True).stdout


def make_project(root: Path, plan_text: str = PLAN) -> Path:
    """A committed git project with src/, a fixture + sidecar, the plan and the ledger documents."""
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "pkg" / "core.py").write_text("GRIDSIZE = 2\n")
    fixture = root / FIXTURE
    fixture.parent.mkdir(parents=True)
    fixture.write_bytes(bytes(range(256)) * 16)
    fixture.with_suffix(".json").write_text(json.dumps({"version": 1, "sha256": hashlib.sha256(fixture.read_bytes()).hexdigest()}))
    for rel, baseline in ((PLAN_MD, "plan.md"), (FIX_PLAN, "fix_plan.md")):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(LEDGER_BASELINE / baseline, root / rel)
    (root / PLAN_TOML).parent.mkdir(parents=True, exist_ok=True)
    (root / PLAN_TOML).write_text(plan_text)
    (root / ".gitignore").write_text("artifacts/\n")
    git(root, "init", "-q")
    git(root, "config", "user.email", "test@example.com")
    git(root, "config", "user.name", "test")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "project")
    return root


def context(root: Path, plan: str | Path = PLAN_TOML) -> RunContext:
    return RunContext(home=HOME, project=root.resolve(), plan=load_plan(root / plan))


def record(ctx: RunContext, hub: Hub, name: str, verdict: Verdict = Verdict.GREEN) -> VerdictRecord:
    """The verdict record the runner would write for target `name` of PLAN."""
    target = ctx.plan.target(name)
    passed = verdict == Verdict.GREEN
    sha = git(ctx.project, "rev-parse", "HEAD").strip()
    base = dict(target=name, kind=target.kind, log=target.log, verdict=verdict, session=name, exit_code=0 if passed else 1,
                started_utc="2026-11-29T10:15:01Z", ended_utc="2026-11-29T10:15:13Z", duration_s=12.25,
                provenance=Provenance(GitState(sha, False), RUNTIME, 0, 2))
    if target.kind == "pytest":
        return VerdictRecord(**base, selector=target.selector, argv=("/opt/venv/bin/python", "-m", "pytest", target.selector),
                             reason="1 of 1 selected test(s) passed" if passed else "1 failed: AssertionError: boom",
                             counts=Counts(tests=1, passed=int(passed), failed=int(not passed)),
                             tests=({"nodeid": target.selector, "outcome": "passed" if passed else "failed", "duration_s": 11.0},))
    artifacts = ctx.rel(hub.artifacts)
    bundle = f"{artifacts}/smoke/wts.h5.zip"
    train = {"epochs": 1, "final_train_loss": 0.0421875, "train_loss_history": [0.0421875], "wall_seconds": 18.5,
             "gridsize": 2, "n_groups": 64, "batch_size": 4, "train_data_file": FIXTURE, "train_data_sha256": DATA_SHA,
             "n_patterns": 64, "bundle": bundle, "checkpoint": None,
             "shapes": {"diffraction": [4, 4, 64, 64], "coords_relative": [4, 4, 1, 2], "predicted_object": [4, 4, 64, 64]}}
    return VerdictRecord(**{**base, "duration_s": 21.75}, argv=("/opt/venv/bin/python", "-m", "ptycho_torch.train",
                                                              "--output_dir", f"{artifacts}/smoke", "--deterministic"),
                         reason="exited 0 within its time limit" if passed else "the command exited with code 1",
                         outputs=({"path": bundle, "bytes": 5},) if passed else (), record=train if passed else None)


def log_text(ctx: RunContext, name: str, verdict: Verdict = Verdict.GREEN) -> str:
    """A log framed as the runner frames it (harness/logframe.py): header, output, footer."""
    what = ctx.plan.target(name).selector or "train"
    lines = ['CUDA_VISIBLE_DEVICES=""']
    lines += [f"{what} PASSED", "1 passed in 11.00s"] if verdict == Verdict.GREEN else \
        [f"{what} FAILED", "E   AssertionError: boom", "1 failed in 11.00s"]
    if name == "smoke":
        lines.insert(1, "train.py:40: DeprecationWarning: --device is deprecated; use --accelerator")
    header = logframe.frame([f"{logframe.FIRST} target {name}", f"command: pytest {what}", logframe.OUTPUT])
    footer = logframe.frame([logframe.END, "exit_code: 0", f"verdict: {verdict} - factory"])
    return header + "\n".join(lines) + "\n" + footer


def write_log(path: Path, text: str) -> Callable[[VerdictRecord], VerdictRecord]:
    """Write a log and return the change that seals its record with the log's bytes, as the runner does."""
    path.write_text(text)
    data = path.read_bytes()
    return lambda r: replace(r, log_sha256=hashlib.sha256(data).hexdigest(), log_bytes=len(data))


def make_hub(ctx: RunContext, verdicts: dict[str, Verdict] | None = None, *, timestamp: str = TIMESTAMP,
             no_record: tuple[str, ...] = (), no_log: tuple[str, ...] = (), partial: tuple[str, ...] = (),
             change: dict[str, Callable[[VerdictRecord], VerdictRecord]] | None = None,
             targets: tuple[str, ...] | None = None) -> Path:
    """Create a hub with create_hub, then write each target's log, outputs and record as the runner would."""
    names = targets or tuple(t.name for t in ctx.plan.targets)
    hub = create_hub(ctx, timestamp=timestamp, targets=names)
    for name in names:
        verdict = (verdicts or {}).get(name, Verdict.GREEN)
        text, log = log_text(ctx, name, verdict), ctx.plan.target(name).log
        if name in partial:
            (hub.path / f"{log}.partial").write_text(text[: len(text) // 2])
            continue
        seal = write_log(hub.path / log, text) if name not in no_log else (lambda r: r)
        rec = (change or {}).get(name, lambda r: r)(seal(record(ctx, hub, name, verdict)))
        for out in rec.outputs:
            ctx.path(out["path"]).parent.mkdir(parents=True, exist_ok=True)
            ctx.path(out["path"]).write_bytes(b"PK\x05\x06zip")
        if name not in no_record:
            rec.write(hub.verdict_path(name))
    return hub.path


def cli(*argv: str | Path) -> int:
    """`python -m harness ...` in this process (the one command-line layer, harness/__main__.py)."""
    from harness.__main__ import main

    return main([str(a) for a in argv])


def collated(ctx: RunContext, *args: Any, **kwargs: Any) -> Path:
    """A hub as collate leaves it (ledger untouched)."""
    hub = make_hub(ctx, *args, **kwargs)
    collate(ctx, open_hub(hub, ctx), ledger=False)
    return hub


def edit(ctx: RunContext, hub: Path, name: str, change: Callable[[VerdictRecord], VerdictRecord]) -> None:
    """Change one verdict record of a collated hub and collate it again (as if the run had said so)."""
    path = hub / HubFiles.verdict(name)
    old = VerdictRecord.load(path)
    new = change(old)
    if new.verdict != old.verdict:  # the runner would have written that verdict into the log's footer too
        new = write_log(hub / new.log, log_text(ctx, name, new.verdict))(new)
    new.write(path)
    recollate(ctx, hub)


def recollate(ctx: RunContext, hub: Path) -> None:
    (hub / HubFiles.MANIFEST).unlink()
    (hub / HubFiles.INCOMPLETE).write_text("factory: collate again\n")
    collate(ctx, open_hub(hub, ctx), ledger=False)


def with_record(**changes: Any) -> Callable[[VerdictRecord], VerdictRecord]:
    """A change that updates fields of a record's TRAIN_RECORD (`record`)."""
    return lambda r: replace(r, record={**(r.record or {}), **changes})


def with_runtime(**changes: Any) -> Callable[[VerdictRecord], VerdictRecord]:
    return lambda r: replace(r, provenance=replace(r.provenance, runtime=replace(r.provenance.runtime, **changes)))


def attempts(root: Path) -> list[str]:
    """The attempt lines of the project's fix plan."""
    return [line for line in (root / FIX_PLAN).read_text().splitlines() if "Attempt #" in line and line.startswith("- [")]


def row_state(root: Path, row: str = "B3") -> str:
    for line in (root / PLAN_MD).read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells and cells[0] == row:
            return cells[2]
    raise AssertionError(f"row {row} not found in {PLAN_MD}")


def with_git(**changes: Any) -> Callable[[VerdictRecord], VerdictRecord]:
    """A change that updates fields of a record's git state (`provenance.git`)."""
    return lambda r: replace(r, provenance=replace(r.provenance, git=replace(r.provenance.git, **changes)))


def section(markdown: str, title: str) -> str:
    """The body of `## title` in a Markdown text, up to the next `## ` heading."""
    assert f"## {title}" in markdown, f"expected a '## {title}' section in:\n{markdown}"
    return markdown.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def table_rows(markdown: str) -> list[list[str]]:
    """The body rows of the first Markdown table in `markdown`, cells stripped (escaped pipes kept)."""
    lines: list[str] = []
    for line in markdown.splitlines():
        if line.startswith("|"):
            lines.append(line)
        elif lines:
            break
    return [[c.strip() for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])] for line in lines[2:]]


def _commonmark(markdown: str) -> Any:
    from markdown_it import MarkdownIt  # a test-only dependency: imported by the tests that read Markdown

    return MarkdownIt("commonmark").enable("table")


def md_html(markdown: str) -> str:
    """`markdown` rendered by a CommonMark parser (markdown-it-py, GFM tables on), as a browser would get it."""
    return _commonmark(markdown).render(markdown)


def md_links(markdown: str) -> list[tuple[str, str]]:
    """(text, target) of every link and picture the CommonMark parser finds, targets percent-decoded."""
    found: list[tuple[str, str]] = []
    label: str | None = None
    for block in _commonmark(markdown).parse(markdown):
        for token in block.children or []:
            if token.type == "image":
                found.append(("".join(c.content for c in token.children or []), unquote(token.attrs["src"])))
            elif token.type == "link_open":
                label, href = "", unquote(str(token.attrs["href"]))
            elif token.type == "link_close":
                found.append((label or "", href))
                label = None
            elif label is not None:
                label += token.content
    return found


# --------------------------------------------------------------------------- the real plan, and hubs filled in place

#: The real evidence plan: four targets named as the seed names their logs (what hand-made hubs hold).
REAL_PLAN = HOME / "plans/active/ADR-003-BACKEND-API/evidence/phase_c4d_b3.toml"


def make_real_project(root: Path) -> Path:
    """`make_project` with the real plan's text at PLAN_TOML (targets gridsize_regression ... cli_smoke_gs2)."""
    return make_project(root, REAL_PLAN.read_text(encoding="utf-8"))


def fill_hub(ctx: RunContext, hub: Hub, verdicts: dict[str, Verdict] | None = None,
             change: dict[str, Callable[[VerdictRecord], VerdictRecord]] | None = None) -> Path:
    """Write what the runner would (log, outputs, record) for each target of a hub that create_hub made."""
    for name in hub.run.targets or tuple(t.name for t in ctx.plan.targets):
        verdict = (verdicts or {}).get(name, Verdict.GREEN)
        seal = write_log(hub.path / ctx.plan.target(name).log, log_text(ctx, name, verdict))
        rec = (change or {}).get(name, lambda r: r)(seal(record(ctx, hub, name, verdict)))
        for out in rec.outputs:
            ctx.path(out["path"]).parent.mkdir(parents=True, exist_ok=True)
            ctx.path(out["path"]).write_bytes(b"PK\x05\x06zip")
        rec.write(hub.verdict_path(name))
    return hub.path


def _toml_value(value: object) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


def plan_text(targets: list[dict], threads: int = 1, **plan: object) -> str:
    """A plan TOML for the synthetic project (hub under reports/, artifacts under artifacts/)."""
    meta = {"id": "SYN/1", "title": "synthetic", "hub": "reports/{timestamp}/hub",
            "artifacts": "artifacts/{timestamp}", "tags": ["evidence"], **plan}
    lines = ["[plan]", *(f"{k} = {_toml_value(v)}" for k, v in meta.items()),
             "", "[environment]", "seed = 0", f"threads = {threads}", ""]
    for target in targets:
        lines.append("[[targets]]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in target.items()]
        lines.append("")
    return "\n".join(lines)


def table_for_pytest(name: str, selector: str, timeout: float = 20, **extra: object) -> dict:
    return {"name": name, "session": name, "kind": "pytest", "selector": selector,
            "log": f"{name}.log", "timeout": timeout, "description": f"synthetic {name}", **extra}


def table_for_command(name: str, code: str, timeout: float = 20, **extra: object) -> dict:
    return {"name": name, "session": name, "kind": "command", "argv": ["{python}", "-c", code],
            "log": f"{name}.log", "timeout": timeout, "description": f"synthetic {name}", **extra}
