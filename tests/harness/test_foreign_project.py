"""A foreign project judged end to end through `--project`: its own pyproject.toml and tests, a plan kept elsewhere.

This is the shape of a user's PtychoPINN checkout: the harness home holds the plan, the checkout
holds the code, the hub and (here, absent) the ledger files.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from factory import cli

from harness import pipeline
from harness.schema import HubFiles, Manifest

FOREIGN_TESTS = '''
import pytest


@pytest.fixture
def dataset():
    raise FileNotFoundError("datasets/Run1084.npz")


def test_passes():
    assert 1 + 1 == 2


def test_skips():
    pytest.skip("CUDA GPU required")


def test_errors(dataset):
    pass
'''


@pytest.fixture
def foreign(tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    """(checkout, plan): a git checkout with pyproject.toml and tests; the plan outside it."""
    checkout = tmp_path / "foreign"
    (checkout / "foreign").mkdir(parents=True)
    (checkout / "foreign" / "__init__.py").write_text("VALUE = 2\n")
    (checkout / "tests").mkdir()
    (checkout / "tests" / "test_it.py").write_text(textwrap.dedent(FOREIGN_TESTS))
    (checkout / "pyproject.toml").write_text('[project]\nname = "foreign"\nversion = "0.1"\n')
    (checkout / ".gitignore").write_text("reports/\nartifacts/\n")
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "i"]):
        subprocess.run(["git", "-C", str(checkout), *args], check=True, capture_output=True)
    plan = tmp_path / "home" / "foreign.toml"
    plan.parent.mkdir()
    target = 'session = "{0}"\nlog = "{0}.log"\ntimeout = 30\ndescription = "{0}"\n'
    plan.write_text("\n".join([
        '[plan]\nid = "FOREIGN/1"\ntitle = "a foreign checkout"\nhub = "reports/{timestamp}/hub"\nartifacts = "artifacts/{timestamp}"\n',
        '[project]\ninstall = [["-e", "."]]\nproduction = ["foreign"]\n',
        '[ledger]\nplan_file = "plans/plan.md"\nrow = "B3"\nfix_plan = "docs/fix_plan.md"\n',
        *(f'[[targets]]\nname = "{n}"\nkind = "pytest"\nselector = "tests/test_it.py::test_{n}"\n' + target.format(n)
          for n in ("passes", "skips", "errors")),
        '[[targets]]\nname = "command"\nkind = "command"\nargv = ["{python}", "-c", "import foreign; print(foreign.VALUE)"]\n'
        + target.format("command"),
        '[[targets]]\nname = "needs_input"\nkind = "command"\nargv = ["{python}", "-c", "print(1)"]\n'
        'inputs = ["datasets/Run1084.npz"]\n' + target.format("needs_input"),
    ]))
    monkeypatch.setenv("EVIDENCE_PYTHON", sys.executable)  # no venv is built for it (docs/environments.md)
    monkeypatch.setenv("PYTHONPATH", str(checkout))  # what `pip install -e .` would give the foreign package
    return checkout, plan


def test_a_foreign_checkout_is_judged_target_by_target(foreign, capsys):
    checkout, plan = foreign
    before = plan.read_bytes()
    code = cli("pipeline", "--project", checkout, "--plan", plan)
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 2 and out[-1] == "verdict: RED", out
    hub = checkout / out[-2].removeprefix("hub: ")
    verdicts = {t.name: (t.verdict, t.reason) for t in Manifest.load(hub).targets}
    assert {n: v for n, (v, _) in verdicts.items()} == {"passes": "GREEN", "skips": "SKIPPED", "errors": "RED",
                                                        "command": "GREEN", "needs_input": "BLOCKED"}
    assert "FileNotFoundError: datasets/Run1084.npz" in verdicts["errors"][1]
    assert verdicts["needs_input"][1] == "missing input(s): datasets/Run1084.npz"
    assert "ledger NOT updated: plan file plans/plan.md not found and fix plan docs/fix_plan.md not found in " \
        f"{checkout}; create them or pass --no-ledger" in out, out
    assert not (checkout / "plans").exists() and not (checkout / "docs").exists(), "the ledger files were never created"
    assert plan.read_bytes() == before and (hub / HubFiles.SUMMARY).is_file()
    assert subprocess.run(["git", "-C", str(checkout), "status", "--porcelain"], capture_output=True,
                          text=True).stdout == "", "the checkout is left as it was (hub and artifacts are git-ignored)"
