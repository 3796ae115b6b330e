"""`python -m harness reproduce --from <hub>`: orchestration with the pipeline replaced by a fake.

The fake builds a hand-made hub in the project root, so these tests take milliseconds; the
real pipeline is exercised by `make reproduce` (docs/reproduce.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

from harness import reproduce
from harness.hubread import hash_tree
from harness.plan import load_plan
from hubfactory import PLAN_PATH, build_hub, edit_verdict, write_plan

SMOKE = "cli_smoke_gs2"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A project root holding the evidence plan."""
    write_plan(tmp_path / "root" / PLAN_PATH, "[compare]\nloss_rtol = 1e-4\nduration_ratio_warn = 3.0")
    return tmp_path / "root"


@pytest.fixture
def teammate(root: Path, tmp_path: Path) -> Path:
    """The teammate's finished hub, made from the plan as it is now."""
    return build_hub(tmp_path / "from_teammate" / "2026-11-20T090000Z", plan_sha=load_plan(root / PLAN_PATH).sha256)


class FakePipeline:
    """Stands in for `harness pipeline`: builds a GREEN hub in the project root, then `change`s it."""

    def __init__(self, change: Callable[[Path], None] | None = None) -> None:
        self.change = change
        self.calls: list[dict[str, Any]] = []

    def __call__(self, plan: Path, project_root: Path, **kwargs: Any) -> Path:
        self.calls.append({"plan": plan, "project_root": project_root, **kwargs})
        hub = build_hub(project_root / "plans/active/ADR-003-BACKEND-API/reports/2026-11-29T120000Z/phase_c4d_at_parallel",
                        plan_sha=load_plan(plan).sha256, root=project_root)
        if self.change:
            self.change(hub)
        return hub


def run(monkeypatch, fake: FakePipeline | None, root: Path, *argv: str | Path) -> int:
    if fake is not None:
        monkeypatch.setattr(reproduce, "run_pipeline", fake)
    parser = argparse.ArgumentParser()
    reproduce.add_arguments(parser)
    return reproduce.main(parser.parse_args(["--project-root", str(root), *map(str, argv)]))


def test_agreeing_rerun_exits_0_and_leaves_the_teammate_hub_untouched(monkeypatch, root, teammate, capsys):
    before = hash_tree(teammate)
    fake = FakePipeline()
    assert run(monkeypatch, fake, root, "--from", teammate, "--no-ledger") == 0
    assert hash_tree(teammate) == before
    assert fake.calls == [{"plan": root / PLAN_PATH, "project_root": root, "hub": None, "no_ledger": True,
                           "echo": sys.stdout}]
    out = capsys.readouterr().out
    assert f"A: {teammate}\nB: {root}/plans/" in out and "result: AGREE" in out


def test_disagreeing_rerun_exits_1_with_the_disagreement_first(monkeypatch, root, teammate, capsys):
    fake = FakePipeline(lambda hub: edit_verdict(hub, SMOKE, lambda r: r["record"]["shapes"].update(diffraction=[4, 1, 64, 64])))
    before = hash_tree(teammate)
    assert run(monkeypatch, fake, root, "--from", teammate) == 1
    assert hash_tree(teammate) == before
    out = capsys.readouterr().out
    disagreements = out[out.index("DISAGREEMENTS"):out.index("\nAGREEMENTS")]
    assert "| cli_smoke_gs2 | shapes" in disagreements


def test_changed_plan_is_refused_before_running(monkeypatch, root, teammate, capsys):
    write_plan(root / PLAN_PATH, "[compare]\nloss_rtol = 0.5")
    fake = FakePipeline()
    assert run(monkeypatch, fake, root, "--from", teammate) == 2
    assert fake.calls == []
    err = capsys.readouterr().err
    assert f"plan {root / PLAN_PATH} has changed since {teammate} was made" in err
    assert "--allow-plan-change" in err


def test_allow_plan_change_reruns_and_compare_warns(monkeypatch, root, teammate, capsys):
    write_plan(root / PLAN_PATH, "[compare]\nloss_rtol = 0.5")
    fake = FakePipeline()
    assert run(monkeypatch, fake, root, "--from", teammate, "--allow-plan-change") == 0
    captured = capsys.readouterr()
    assert "warning: plan" in captured.err
    warnings = captured.out[captured.out.index("WARNINGS"):]
    assert "| plan sha256" in warnings and "loss_rtol=0.5" in captured.out


def test_missing_plan_file_is_a_clear_error(monkeypatch, root, teammate, capsys):
    (root / PLAN_PATH).unlink()
    fake = FakePipeline()
    assert run(monkeypatch, fake, root, "--from", teammate) == 2
    assert fake.calls == []
    assert f"was produced by plan {PLAN_PATH}, which does not exist under {root}" in capsys.readouterr().err


def test_unreadable_teammate_hub_exits_2_without_running(monkeypatch, root, teammate, capsys):
    (teammate / "manifest.json").unlink()
    fake = FakePipeline()
    assert run(monkeypatch, fake, root, "--from", teammate) == 2
    assert fake.calls == []
    assert "manifest.json: missing" in capsys.readouterr().err


def test_rerun_hub_failing_validation_exits_2(monkeypatch, root, teammate, capsys):
    fake = FakePipeline(lambda hub: (hub / "INCOMPLETE").write_text(""))
    assert run(monkeypatch, fake, root, "--from", teammate) == 2
    err = capsys.readouterr().err
    assert "the rerun's hub fails validation" in err and "INCOMPLETE: the run was interrupted" in err


def test_a_write_into_the_teammate_hub_is_detected(monkeypatch, root, teammate, capsys):
    """The before/after fingerprint is a real check: a pipeline that touches the hub fails it."""
    fake = FakePipeline(lambda _hub: (teammate / "pytest_gridsize_green.log").write_text("overwritten\n"))
    assert run(monkeypatch, fake, root, "--from", teammate) == 2
    assert f"{teammate} changed during the reproduction" in capsys.readouterr().err


def test_new_hub_inside_the_teammate_hub_is_refused(monkeypatch, root, teammate, capsys):
    fake = FakePipeline()
    assert run(monkeypatch, fake, root, "--from", teammate, "--hub", teammate / "rerun") == 2
    assert fake.calls == [] and "inside the teammate's hub" in capsys.readouterr().err


def test_json_format_keeps_stdout_pure_json(monkeypatch, root, teammate, capsys):
    fake = FakePipeline()
    assert run(monkeypatch, fake, root, "--from", teammate, "--format", "json") == 0
    assert json.loads(capsys.readouterr().out)["result"] == "AGREE"
    assert fake.calls[0]["echo"] is sys.stderr


def test_run_pipeline_streams_output_and_returns_the_printed_hub(monkeypatch, tmp_path, capsys):
    script = "print('collate: 4 targets'); print('hub: reports/X/hub'); print('verdict: RED'); raise SystemExit(1)"
    monkeypatch.setattr(reproduce, "pipeline_command", lambda *a: [sys.executable, "-c", script])
    hub = reproduce.run_pipeline(tmp_path / "plan.toml", tmp_path)
    assert hub == tmp_path / "reports/X/hub"
    assert "collate: 4 targets\nhub: reports/X/hub\nverdict: RED\n" in capsys.readouterr().out


def test_run_pipeline_without_a_hub_line_raises(monkeypatch, tmp_path):
    monkeypatch.setattr(reproduce, "pipeline_command", lambda *a: [sys.executable, "-c", "print('boom')"])
    with pytest.raises(reproduce.ReproduceError, match="without printing `hub: <path>`"):
        reproduce.run_pipeline(tmp_path / "plan.toml", tmp_path)


def test_pipeline_command_passes_plan_hub_and_ledger_flags(tmp_path):
    assert reproduce.pipeline_command(tmp_path / "p.toml", tmp_path / "h", True)[1:] == [
        "-m", "harness", "pipeline", "--plan", str(tmp_path / "p.toml"), "--hub", str(tmp_path / "h"), "--no-ledger"]
    assert "--no-ledger" not in reproduce.pipeline_command(tmp_path / "p.toml", None, False)
