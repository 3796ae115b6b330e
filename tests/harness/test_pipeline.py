"""`harness pipeline` (with a recording stand-in for nox) and the lazy `python -m harness` dispatch."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness import __main__ as cli
from harness import pipeline
from harness.plan import load_plan

# Stands in for nox: records how it was called and writes the manifest collate would write.
FAKE_NOX = '''#!{python}
import json, os, sys
from pathlib import Path
hub = Path(os.environ["EVIDENCE_HUB"])
Path(os.environ["FAKE_NOX_CALLS"]).write_text(json.dumps({{"argv": sys.argv[1:], "hub": str(hub),
    "plan": os.environ.get("EVIDENCE_PLAN"), "cwd": os.getcwd()}}))
if os.environ.get("FAKE_VERDICT"):
    (hub / "manifest.json").write_text(json.dumps({{"overall_verdict": os.environ["FAKE_VERDICT"]}}))
sys.exit(int(os.environ.get("FAKE_EXIT", "0")))
'''


@pytest.fixture
def fake_nox(tmp_path, monkeypatch):
    script = tmp_path / "bin" / "nox"
    script.parent.mkdir()
    script.write_text(FAKE_NOX.format(python=sys.executable))
    script.chmod(0o755)
    calls = tmp_path / "calls.json"
    monkeypatch.setattr(pipeline, "find_nox", lambda: str(script))
    monkeypatch.setenv("FAKE_NOX_CALLS", str(calls))
    return calls


@pytest.fixture
def plan_path(write_plan, targets):
    return write_plan([targets.pytest("unit", "tests/test_synthetic.py::test_pass"),
                       targets.command("smoke", "print(1)", after=["unit"])])


def run_pipeline(project: Path, plan: Path, *extra: str) -> int:
    parser = argparse.ArgumentParser()
    pipeline.add_arguments(parser)
    return pipeline.main(parser.parse_args(["--plan", str(plan), "--project-root", str(project), *extra]))


def test_green_run_prints_hub_and_verdict_last(project, plan_path, fake_nox, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_VERDICT", "GREEN")
    assert run_pipeline(project, plan_path) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == "verdict: GREEN"
    assert lines[-2].startswith("hub: reports/") and lines[-2].endswith("/hub")
    call = json.loads(fake_nox.read_text())
    assert call["argv"] == ["-f", str(project / "noxfile.py"), "-s", "unit", "smoke", "collate"]
    assert call["hub"] == str(project / lines[-2].removeprefix("hub: "))
    assert call["plan"] == str(plan_path) and call["cwd"] == str(project)
    assert (project / lines[-2].removeprefix("hub: ") / "run.json").is_file()


def test_red_or_missing_manifest_fails(project, plan_path, fake_nox, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_VERDICT", "RED")
    monkeypatch.setenv("FAKE_EXIT", "1")
    assert run_pipeline(project, plan_path) == 1
    assert capsys.readouterr().out.splitlines()[-1] == "verdict: RED"
    monkeypatch.delenv("FAKE_VERDICT")
    assert run_pipeline(project, plan_path) == 1
    assert capsys.readouterr().out.splitlines()[-1] == "verdict: INCOMPLETE"


def test_no_ledger_is_forwarded_to_collate(project, plan_path, fake_nox, monkeypatch):
    monkeypatch.setenv("FAKE_VERDICT", "GREEN")
    run_pipeline(project, plan_path, "--no-ledger")
    assert json.loads(fake_nox.read_text())["argv"][-2:] == ["--", "--no-ledger"]


def test_explicit_existing_hub_is_refused_before_nox_runs(project, plan_path, fake_nox, capsys):
    (project / "taken").mkdir()
    assert run_pipeline(project, plan_path, "--hub", str(project / "taken")) == 2
    assert "exists already" in capsys.readouterr().err
    assert not fake_nox.exists()


def test_nox_command_lists_sessions_in_plan_order(plan_path, project):
    plan = load_plan(plan_path)
    assert pipeline.nox_command("nox", plan, project, no_ledger=False)[3:] == ["-s", "unit", "smoke", "collate"]


def test_dispatch_reports_a_missing_command_module(monkeypatch, capsys):
    monkeypatch.setitem(cli.COMMANDS, "validate", ("harness.no_such_module", "x"))
    assert cli.main(["validate", "somewhere"]) == 2
    assert "command validate is not available" in capsys.readouterr().err


def test_dispatch_help_lists_commands_without_importing_them():
    out = subprocess.run([sys.executable, "-m", "harness", "-h"], capture_output=True, text=True)
    assert out.returncode == 0
    for name in cli.COMMANDS:
        assert name in out.stdout
    bad = subprocess.run([sys.executable, "-m", "harness", "frobnicate"], capture_output=True, text=True)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
