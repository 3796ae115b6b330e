"""`python -m harness reproduce --from <hub>`: orchestration, with the venv build and the run faked.

reproduce calls `ensure_env`, the real `create_hub`, then `execute` (the pipeline, in-process).
The fakes below stand in for `ensure_env` and `execute` with their exact signatures (checked
first): the fake run writes what the runner would into the hub reproduce created and hands it
to the real collate, so these tests build no venv, train nothing and take milliseconds. The
real pipeline is exercised by `make reproduce` (docs/reproduce.md).
"""

from __future__ import annotations

import inspect
import os
import json
import shutil
import sys
from pathlib import Path
from typing import Any, Callable, TextIO

import pytest
from factory import cli

from factory import LOGS, PLAN_TOML, collated, context, fill_hub, make_project, with_record
from harness import envs, pipeline, reproduce
from harness.collate import collate
from harness.context import RunContext
from harness.envs import EnvBuildError
from harness.hub import Hub
from harness.hubview import hash_tree
from harness.pipeline import PipelineRun
from harness.schema import HubFiles, VerdictRecord

SMOKE = "smoke"
PYTHON = Path("/fake/evidence/bin/python")
PROGRESS = "[1/3] unit GREEN 12.2 s"  # a line the pipeline prints while it runs


class FakeEnv:
    """Stands in for `ensure_env`: builds nothing, logs one line as the real one does, returns a python."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.calls: list[RunContext] = []

    def __call__(self, ctx: RunContext, log: Callable[[str], None] = print) -> Path:
        self.calls.append(ctx)
        log("evidence env is current (fake): skipping install")
        if self.error is not None:
            raise self.error
        return PYTHON


class FakeRun:
    """Stands in for `execute`: the runner's logs and records, optional `damage`, then the real collate."""

    def __init__(self) -> None:
        self.change: dict[str, Callable[[VerdictRecord], VerdictRecord]] = {}
        self.damage: Callable[[Path], None] | None = None
        self.calls: list[dict[str, Any]] = []

    def __call__(self, ctx: RunContext, hub: Hub, *, nox: list[str], args: list[str], jobs: int | None, verbose: bool,
                 ledger: bool, output: TextIO | None = None) -> PipelineRun:
        self.calls.append({"ctx": ctx, "hub": hub, "python": hub.run.python, "jobs": jobs, "verbose": verbose,
                           "ledger": ledger, "args": args})
        print(PROGRESS, file=output or sys.stdout, flush=True)
        fill_hub(ctx, hub, change=self.change)
        if self.damage is not None:
            self.damage(hub.path)
        interrupted = (hub.path / f"{LOGS[SMOKE]}.partial").exists()
        return PipelineRun(collate(ctx, hub, ledger=ledger, interrupted=interrupted), interrupted, 0)


def _shape(parameters: inspect.Signature) -> list[tuple[str, Any, Any]]:
    return [(p.name, p.kind, p.default) for p in parameters.parameters.values()]


@pytest.mark.parametrize(("name", "fake", "real"), [("ensure_env", FakeEnv(), envs.ensure_env),
                                                    ("execute", FakeRun(), pipeline.execute)], ids=["env", "execute"])
def test_fakes_stand_in_for_what_reproduce_really_calls(name, fake, real):
    assert getattr(reproduce, name) is real, f"reproduce.{name} should be {real.__module__}.{real.__name__}"
    assert _shape(inspect.signature(fake)) == _shape(inspect.signature(real)), \
        f"the fake {name} must take the parameters of the real one: {inspect.signature(real)}"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The checkout that reruns the plan (the factory project: targets unit, integration, smoke)."""
    return make_project(tmp_path / "project").resolve()


@pytest.fixture
def teammate(root: Path, tmp_path: Path) -> Path:
    """The teammate's finished hub, made from the plan as it is now, then copied out of the project."""
    return Path(shutil.copytree(collated(context(root)), tmp_path / "from_teammate" / "phase_c4d_at_parallel"))


@pytest.fixture
def fake_env(monkeypatch) -> FakeEnv:
    env = FakeEnv()
    monkeypatch.setattr(reproduce, "ensure_env", env)
    return env


@pytest.fixture
def fake_run(monkeypatch) -> FakeRun:
    run = FakeRun()
    monkeypatch.setattr(reproduce, "execute", run)
    return run


def run(root: Path, *argv: str | Path) -> int:
    return cli("reproduce", "--project", root, *argv)


# --------------------------------------------------------------------------- a rerun that agrees, or not

def test_agreeing_rerun_exits_0_and_leaves_the_teammate_hub_untouched(root, teammate, fake_env, fake_run, capsys):
    before = hash_tree(teammate)
    assert run(root, "--from", teammate, "--no-ledger") == 0
    assert hash_tree(teammate) == before, "reproduce wrote into the teammate's hub"
    out = capsys.readouterr().out
    rerun = fake_run.calls[0]["hub"].path
    assert f"A: {teammate} (unsigned)\nB: {rerun} (unsigned)" in out and "result: AGREE" in out, out


def test_the_rerun_uses_the_recorded_plan_the_env_python_and_a_new_hub(root, teammate, fake_env, fake_run):
    assert run(root, "--from", teammate, "--no-ledger") == 0
    [ctx] = fake_env.calls
    assert (ctx.project, ctx.plan.path) == (root, root / PLAN_TOML), "the rerun must use the plan the hub records"
    [call] = fake_run.calls
    assert {k: call[k] for k in ("python", "jobs", "verbose", "ledger")} == \
        {"python": str(PYTHON), "jobs": os.cpu_count(), "verbose": False, "ledger": False}
    assert call["args"] == ["-s", "unit", "integration", SMOKE], "the rerun runs every target through nox"
    hub = call["hub"]
    assert hub.path.parent.parent == root / "plans/active/ADR-003-BACKEND-API/reports", f"not a fresh hub: {hub.path}"
    assert hub.run.targets == ("unit", "integration", SMOKE)


@pytest.mark.parametrize(("argv", "ledger"), [((), True), (("--no-ledger",), False)], ids=["ledger", "no-ledger"])
def test_the_ledger_is_updated_unless_no_ledger(root, teammate, fake_env, fake_run, argv, ledger):
    assert run(root, "--from", teammate, *argv) == 0
    assert fake_run.calls[0]["ledger"] is ledger


def test_disagreeing_rerun_exits_1_with_the_disagreement_first(root, teammate, fake_env, fake_run, capsys):
    fake_run.change = {SMOKE: lambda r: with_record(shapes={**r.record["shapes"], "diffraction": [4, 1, 64, 64]})(r)}
    before = hash_tree(teammate)
    assert run(root, "--from", teammate) == 1
    assert hash_tree(teammate) == before
    out = capsys.readouterr().out
    disagreements = out[out.index("DISAGREEMENTS"):out.index("\nAGREEMENTS")]
    assert f"| {SMOKE} " in disagreements and "| shapes " in disagreements, out


def test_a_hand_made_hub_is_read_and_rerun_with_the_plan_given(root, teammate, tmp_path, fake_env, fake_run, capsys):
    """The teammate ran the plan's commands by hand with `| tee`: logs only, mapped to targets by --plan."""
    handmade = tmp_path / "by_hand"
    handmade.mkdir()
    ctx = context(root)
    for target in ctx.plan.targets:
        rec = VerdictRecord.load(teammate / HubFiles.verdict(target.name))
        text = (f"{target.selector} PASSED [100%]\n======== 1 passed in 11.00s ========\n" if target.kind == "pytest"
                else f"TRAIN_RECORD {json.dumps(rec.record)}\n")
        (handmade / target.log).write_text(text)
    assert run(root, "--from", handmade, "--plan", root / PLAN_TOML, "--no-ledger") == 0, capsys.readouterr()
    assert fake_env.calls[0].plan.path == root / PLAN_TOML
    assert "A derived from a hand-made log" in capsys.readouterr().out


# --------------------------------------------------------------------------- refusals before anything runs

def test_changed_plan_is_refused_before_running(root, teammate, fake_env, fake_run, capsys):
    plan = root / PLAN_TOML
    plan.write_text(plan.read_text() + "\n[compare]\nloss_rtol = 0.5\n")
    assert run(root, "--from", teammate) == 2
    assert fake_env.calls == [] and fake_run.calls == [], "nothing may run for a changed plan"
    err = capsys.readouterr().err
    assert f"plan {plan} has changed since {teammate} was made" in err and "--allow-plan-change" in err, err


def test_allow_plan_change_reruns_and_compare_warns(root, teammate, fake_env, fake_run, capsys):
    plan = root / PLAN_TOML
    plan.write_text(plan.read_text() + "\n[compare]\nloss_rtol = 0.5\n")
    assert run(root, "--from", teammate, "--allow-plan-change") == 0
    captured = capsys.readouterr()
    assert f"warning: plan {plan} has changed" in captured.err
    warnings = captured.out[captured.out.index("\nWARNINGS"):]
    assert "| plan sha256 " in warnings and "loss_rtol=0.5" in captured.out, captured.out


def test_missing_plan_file_is_a_clear_error(root, teammate, fake_env, fake_run, capsys):
    (root / PLAN_TOML).unlink()
    assert run(root, "--from", teammate) == 2
    assert fake_env.calls == [] and fake_run.calls == []
    err = capsys.readouterr().err
    assert f"was produced by plan {root / PLAN_TOML}" in err and "pass --plan" in err, err


def test_a_plan_option_that_does_not_exist_is_a_clear_error(root, teammate, tmp_path, fake_env, fake_run, capsys):
    assert run(root, "--from", teammate, "--plan", tmp_path / "nope.toml") == 2
    err = capsys.readouterr().err
    assert "nope.toml: evidence plan not found" in err and "Traceback" not in err, err


def test_unreadable_teammate_hub_exits_2_without_running(root, teammate, fake_env, fake_run, capsys):
    (teammate / HubFiles.MANIFEST).unlink()
    assert run(root, "--from", teammate) == 2
    assert fake_env.calls == [] and fake_run.calls == []
    assert "manifest.json: missing" in capsys.readouterr().err


def test_new_hub_inside_the_teammate_hub_is_refused(root, teammate, fake_env, fake_run, capsys):
    assert run(root, "--from", teammate, "--hub", teammate / "rerun") == 2
    assert fake_env.calls == [] and fake_run.calls == []
    assert "inside the teammate's hub" in capsys.readouterr().err
    assert not (teammate / "rerun").exists(), "nothing may be created inside the teammate's hub"


def test_an_existing_hub_folder_is_refused(root, teammate, tmp_path, fake_env, fake_run, capsys):
    taken = tmp_path / "taken"
    taken.mkdir()
    assert run(root, "--from", teammate, "--hub", taken) == 2
    assert fake_run.calls == []
    assert "exists already; a hub is never overwritten" in capsys.readouterr().err


def test_a_failed_venv_build_exits_2_without_running(root, teammate, monkeypatch, fake_run, capsys):
    monkeypatch.setattr(reproduce, "ensure_env", FakeEnv(EnvBuildError("building the evidence venv failed at `pip`")))
    assert run(root, "--from", teammate) == 2
    assert fake_run.calls == []
    assert "error: reproduce: building the evidence venv failed" in capsys.readouterr().err


# --------------------------------------------------------------------------- after the rerun

def _interrupt_smoke(hub: Path) -> None:
    """The smoke was stopped: its log is still .partial and it recorded no verdict."""
    (hub / LOGS[SMOKE]).rename(hub / f"{LOGS[SMOKE]}.partial")
    (hub / HubFiles.verdict(SMOKE)).unlink()


def test_rerun_hub_failing_validation_exits_2(root, teammate, fake_env, fake_run, capsys):
    fake_run.damage = _interrupt_smoke
    assert run(root, "--from", teammate) == 2
    err = capsys.readouterr().err
    assert "the rerun's hub fails validation" in err and "INCOMPLETE: the run was interrupted" in err, err


def test_a_write_into_the_teammate_hub_is_detected(root, teammate, fake_env, fake_run, capsys):
    """The before/after fingerprint is a real check: a run that touches the teammate's hub fails it."""
    fake_run.damage = lambda _hub: (teammate / LOGS["unit"]).write_text("overwritten\n")
    assert run(root, "--from", teammate) == 2
    assert f"{teammate} changed during the reproduction" in capsys.readouterr().err


def test_progress_goes_to_stdout_with_the_table(root, teammate, fake_env, fake_run, capsys):
    assert run(root, "--from", teammate) == 0
    out = capsys.readouterr().out
    assert "reproduce: evidence env is current (fake)" in out and PROGRESS in out
    assert out.index(PROGRESS) < out.index("\nreproduce: comparing A = the teammate's hub with B = the rerun (GREEN)")


def test_json_format_keeps_stdout_pure_json(root, teammate, fake_env, fake_run, capsys):
    assert run(root, "--from", teammate, "--format", "json") == 0
    captured = capsys.readouterr()
    payload = json.loads(captured.out)  # fails if any progress line reached stdout
    assert payload["command"] == "reproduce" and payload["result"] == "AGREE"
    assert "reproduce: evidence env is current (fake)" in captured.err and PROGRESS in captured.err
