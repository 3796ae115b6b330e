"""Trust I: a hub is untrusted input, and a run is watched for the whole of its length.

One test (or a few) per finding of the issue "Trust I" (docs/reliability.md, section "Trust I"),
each failing on 29c64cb and passing now. Real commands where possible: `python -m harness ...`
(`cli`), real pipeline runs on a synthetic project, hubs from tests/harness/factory.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import plan_text, table_for_command
from factory import FIX_PLAN, PLAN_MD, cli, git, make_project, row_state

from harness.schema import HubFiles, Manifest

LEDGER = f'\n[ledger]\nplan_file = "{PLAN_MD}"\nrow = "B3"\nfix_plan = "{FIX_PLAN}"\n'


def real_project(tmp_path: Path, *targets: dict) -> tuple[Path, Path]:
    """A committed project (src/pkg/core.py, the ledger documents) whose plan holds `targets`, ledger on."""
    root = make_project(tmp_path / "proj", plan_text(list(targets)) + LEDGER)
    (root / ".gitignore").write_text("artifacts/\nreports/\n__pycache__/\n")
    git(root, "commit", "-qam", "ignore what runs leave")
    return root, root / "plans/active/ADR-003-BACKEND-API/evidence/plan.toml"


def pipeline(root: Path, plan: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, Path, Manifest]:
    code = cli("pipeline", "--plan", plan, "--project", root)
    out = capsys.readouterr().out
    hub = root / next(line for line in out.splitlines() if line.startswith("hub: ")).removeprefix("hub: ")
    return code, hub, Manifest.load(hub)


# --------------------------------------------------------------------------- 5. the guard watches the whole run

EDIT_AND_RESTORE = ("import pathlib; p = pathlib.Path('src/pkg/core.py'); b = p.read_bytes(); "
                    "p.write_bytes(b'GRIDSIZE = 1  # fixed for the evidence\\n'); p.write_bytes(b)")
PYCACHE = ("import pathlib; d = pathlib.Path('src/pkg/__pycache__'); d.mkdir(); "
           "(d / 'core.cpython-311.pyc').write_bytes(b'cache'); (d / 'core.cpython-311.pyc').unlink()")


@pytest.fixture(autouse=True)
def evidence_python(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVIDENCE_PYTHON", sys.executable)  # no venv is built for the synthetic projects


def test_a_target_that_edits_src_and_restores_it_makes_the_hub_red(tmp_path: Path, capsys) -> None:
    root, plan = real_project(tmp_path, table_for_command("sneak", EDIT_AND_RESTORE))
    code, hub, manifest = pipeline(root, plan, capsys)
    assert git(root, "status", "--porcelain", "src") == "", "the target restored src/ byte for byte"
    assert (code, manifest.overall_verdict) == (1, "RED"), manifest.overall_reason
    assert "src/pkg/core.py" in manifest.overall_reason and manifest.src_changes == \
        {"written during the run": ["src/pkg/core.py"]}, (manifest.overall_reason, manifest.src_changes)
    assert row_state(root) == "[P]" and "evidence: **BLOCKED**" in (root / FIX_PLAN).read_text(), "B3 is not marked"


def test_a_target_writing_pycache_under_src_stays_green(tmp_path: Path, capsys) -> None:
    root, plan = real_project(tmp_path, table_for_command("cache", PYCACHE))
    code, hub, manifest = pipeline(root, plan, capsys)
    assert (code, manifest.overall_verdict) == (0, "GREEN"), manifest.overall_reason
    assert row_state(root) == "[x]", "git ignores src/pkg/__pycache__/: the hub is GREEN and marks B3"
