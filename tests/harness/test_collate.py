"""collate turns a hand-built hub into a verdict, summary, manifest and (only when earned) a ledger entry."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest
from collatehub import FIX_PLAN, LOGS, PLAN_MD, attempts, git, make_hub, make_project, row_state

from harness import collate as collate_mod
from harness.manifest import validate


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "proj")


def run_main(hub: Path, *extra: str) -> int:
    parser = argparse.ArgumentParser()
    collate_mod.add_arguments(parser)
    return collate_mod.main(parser.parse_args([str(hub), *extra]))


def test_green_hub_marks_row_done_and_appends_one_attempt(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hub = make_hub(project)
    assert row_state(project) == "[P]"

    code = run_main(hub)

    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0, out
    assert out[-2] == f"hub: {hub.relative_to(project).as_posix()}"
    assert out[-1] == "overall verdict: GREEN"
    assert not (hub / "INCOMPLETE").exists(), "collate must remove INCOMPLETE once the run is finished"
    assert not (hub / "blocker.log").exists()
    assert (hub / "summary.md").is_file() and (hub / "manifest.json").is_file()
    assert row_state(project) == "[x]"
    new = [a for a in attempts(project) if "TEST/C4.D.B3" in a]
    assert len(new) == 1 and "Attempt #35" in new[0] and "**GREEN**" in new[0], new
    assert validate(hub).ok


def test_attempt_links_are_relative_to_fix_plan_and_point_at_real_files(project: Path) -> None:
    hub = make_hub(project)
    collate_mod.collate(hub)
    text = (project / FIX_PLAN).read_text()
    entry = text[text.index("Attempt #35"):]
    links = [part.split(")")[0] for part in entry.split("](")[1:]]
    assert len(links) == 4, links  # summary + three logs
    for link in links:
        assert not Path(link).is_absolute()
        assert ((project / FIX_PLAN).parent / link).resolve().is_file(), link
    plan_md = (project / PLAN_MD).read_text()
    b3 = next(line for line in plan_md.splitlines() if line.startswith("| B3 "))
    link = b3.split("](")[1].split(")")[0]
    assert ((project / PLAN_MD).parent / link).resolve() == (hub / "summary.md").resolve()


def test_red_target_writes_blocker_reverts_row_and_appends_blocker_attempt(project: Path) -> None:
    collate_mod.collate(make_hub(project, timestamp="2026-11-29T090000Z"))
    assert row_state(project) == "[x]"

    hub = make_hub(project, {"integration": "RED"})
    result = collate_mod.collate(hub)

    assert result.exit_code == 1
    assert result.collation.overall == "RED"
    blocker = (hub / "blocker.log").read_text()
    assert "tests/test_integration.py::test_round_trip" in blocker  # the failing selector
    assert "1 failed: AssertionError: boom" in blocker  # the reason
    assert "E   AssertionError: boom" in blocker  # the tail of its log
    assert "== integration: RED ==" in blocker and "== unit" not in blocker  # GREEN targets are not listed
    assert row_state(project) == "[P]"
    lines = attempts(project)
    assert "Attempt #36" in lines[-1] and "**BLOCKED**" in lines[-1]
    section = (project / FIX_PLAN).read_text().split("Attempt #36")[1]
    assert "blocker.log" in section
    manifest = json.loads((hub / "manifest.json").read_text())
    assert manifest["overall_verdict"] == "RED"
    assert "blocker.log" in {Path(a["path"]).name for a in manifest["artifacts"]}


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"no_record": ("unit",)}, "no verdict record"),
        ({"no_log": ("integration",)}, "log pytest_integration_green.log is missing"),
    ],
)
def test_target_without_record_or_log_is_missing_not_green(project: Path, kwargs: dict, reason: str) -> None:
    hub = make_hub(project, **kwargs)
    result = collate_mod.collate(hub)
    missing = [t for t in result.collation.targets if t.verdict == "MISSING"]
    assert len(missing) == 1 and reason in missing[0].reason
    assert result.collation.overall == "RED" and result.exit_code == 1
    assert (hub / "blocker.log").is_file()
    assert row_state(project) == "[P]"


def test_green_record_that_contradicts_its_counts_is_red(project: Path) -> None:
    hub = make_hub(project, edit={"unit": {"counts": {"tests": 0, "passed": 0}}})
    result = collate_mod.collate(hub, ledger=False)
    unit = result.collation.targets[0]
    assert unit.verdict == "RED" and "0/0 passed" in unit.reason


def test_interrupted_hub_stays_incomplete_and_leaves_ledger_alone(project: Path) -> None:
    before = {p: (project / p).read_bytes() for p in (PLAN_MD, FIX_PLAN)}
    hub = make_hub(project, partial=("smoke",))

    result = collate_mod.collate(hub)

    assert result.collation.overall == "INCOMPLETE" and result.exit_code == 1
    assert (hub / "INCOMPLETE").exists(), "an interrupted hub must stay visibly incomplete"
    assert {p: (project / p).read_bytes() for p in before} == before
    assert "interrupted" in result.ledger_note
    assert "smoke" in (hub / "blocker.log").read_text()
    assert "[cli_smoke.log.partial](cli_smoke.log.partial) (unfinished)" in (hub / "summary.md").read_text()


def test_collating_twice_adds_one_attempt(project: Path) -> None:
    hub = make_hub(project)
    collate_mod.collate(hub)
    fix_after_first = (project / FIX_PLAN).read_text()
    plan_after_first = (project / PLAN_MD).read_text()

    second = collate_mod.collate(hub)

    assert second.exit_code == 0
    assert second.ledger is not None and second.ledger.attempt is None
    assert (project / FIX_PLAN).read_text() == fix_after_first
    assert (project / PLAN_MD).read_text() == plan_after_first
    assert sum("Attempt #35" in a for a in attempts(project)) == 1
    assert validate(hub).ok


def test_no_ledger_writes_hub_files_only(project: Path) -> None:
    before = (project / FIX_PLAN).read_bytes(), (project / PLAN_MD).read_bytes()
    hub = make_hub(project)
    result = collate_mod.collate(hub, ledger=False)
    assert result.exit_code == 0 and (hub / "summary.md").is_file()
    assert ((project / FIX_PLAN).read_bytes(), (project / PLAN_MD).read_bytes()) == before


def test_src_change_during_run_is_not_green_and_named(project: Path) -> None:
    hub = make_hub(project)
    (project / "src" / "pkg" / "core.py").write_text("GRIDSIZE = 1  # 'fixed' during an evidence run\n")

    result = collate_mod.collate(hub)

    assert result.collation.overall == "RED" and result.exit_code == 1
    assert result.collation.src_changes == {"at collate": ("src/pkg/core.py",)}
    assert "| src/ differs from HEAD            | yes: src/pkg/core.py (seen at collate)" in (hub / "summary.md").read_text()
    assert "src/pkg/core.py" in (hub / "blocker.log").read_text()
    assert row_state(project) == "[P]"


def test_src_change_at_start_is_not_green(project: Path) -> None:
    (project / "src" / "pkg" / "new_module.py").write_text("x = 1\n")  # untracked production code
    hub = make_hub(project)
    (project / "src" / "pkg" / "new_module.py").unlink()  # gone again by collate: still not GREEN
    result = collate_mod.collate(hub, ledger=False)
    assert result.collation.overall == "RED"
    assert result.collation.src_changes == {"at run start": ("src/pkg/new_module.py",)}


def test_src_change_committed_during_run_is_not_green(project: Path) -> None:
    hub = make_hub(project)
    (project / "src" / "pkg" / "core.py").write_text("GRIDSIZE = 3\n")
    git(project, "commit", "-q", "-am", "sneak a fix in")
    result = collate_mod.collate(hub, ledger=False)
    assert result.collation.overall == "RED"
    (phase, files), = result.collation.src_changes.items()
    assert phase.startswith("committed during the run") and files == ("src/pkg/core.py",)


def test_dirty_tree_outside_src_is_a_warning_not_a_blocker(project: Path) -> None:
    (project / FIX_PLAN).write_text((project / FIX_PLAN).read_text() + "\n")
    hub = make_hub(project)
    result = collate_mod.collate(hub, ledger=False)
    assert result.collation.overall == "GREEN"
    summary = (hub / "summary.md").read_text()
    assert "Warning: The working tree was dirty" in summary and FIX_PLAN in summary


def test_hub_outside_a_git_repository_cannot_be_green(project: Path) -> None:
    hub = make_hub(project)
    shutil.rmtree(project / ".git")
    result = collate_mod.collate(hub, ledger=False)
    assert result.collation.overall == "RED"
    assert "git cannot check src/" in result.collation.overall_reason


def test_folder_without_run_json_gets_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "hub").mkdir()
    assert run_main(tmp_path / "hub") == 2
    err = capsys.readouterr().err
    assert "run.json" in err and "not created by the harness" in err


def test_collate_writes_every_plan_log_name(project: Path) -> None:
    hub = make_hub(project)
    result = collate_mod.collate(hub, ledger=False)
    assert [t.log for t in result.collation.targets] == list(LOGS.values())
    assert all(t.log_present for t in result.collation.targets)


def test_recollating_a_tampered_hub_is_refused(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hub = make_hub(project, {"unit": "RED"})
    collate_mod.collate(hub, ledger=False)
    record = hub / "verdicts" / "unit.json"
    data = json.loads(record.read_text())
    data.update(verdict="GREEN", counts={"tests": 1, "passed": 1}, exit_code=0)
    record.write_text(json.dumps(data))  # launder the RED verdict, then try to re-collate

    assert run_main(hub, "--no-ledger") == 2
    err = capsys.readouterr().err
    assert "refusing to re-collate" in err and "verdicts/unit.json: size changed" in err
    assert json.loads((hub / "manifest.json").read_text())["overall_verdict"] == "RED"
