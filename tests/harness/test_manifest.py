"""manifest.json lists what a run produced; `validate` catches any later change to it."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import pytest
from collatehub import LOGS, make_hub, make_project

from harness import manifest as manifest_mod
from harness.collate import collate


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "proj")


@pytest.fixture
def green_hub(project: Path) -> Path:
    hub = make_hub(project)
    assert collate(hub, ledger=False).exit_code == 0
    return hub


def run_validate(hub: Path, *extra: str) -> int:
    parser = argparse.ArgumentParser()
    manifest_mod.add_arguments(parser)
    return manifest_mod.main(parser.parse_args([str(hub), *extra]))


def rel(hub: Path, name: str) -> str:
    project = hub.parents[5]
    return (hub / name).relative_to(project).as_posix()


def test_manifest_lists_every_hub_file_and_referenced_artifact(green_hub: Path) -> None:
    project = green_hub.parents[5]
    data = json.loads((green_hub / "manifest.json").read_text())
    assert data["schema"] == "evidence-manifest/1"
    assert data["overall_verdict"] == "GREEN"
    assert data["plan"]["path"] == "plans/active/ADR-003-BACKEND-API/evidence/plan.toml"
    assert data["plan"]["sha256"] == hashlib.sha256((project / data["plan"]["path"]).read_bytes()).hexdigest()
    assert [t["name"] for t in data["targets"]] == ["unit", "integration", "smoke"]

    listed = {a["path"]: a for a in data["artifacts"]}
    hub_files = {p.relative_to(project).as_posix() for p in green_hub.rglob("*") if p.is_file()}
    assert set(listed) >= hub_files - {rel(green_hub, "manifest.json")}
    assert rel(green_hub, "manifest.json") not in listed, "the manifest cannot list itself"
    assert rel(green_hub, "INCOMPLETE") not in listed
    external = {p for p, a in listed.items() if a["location"] == "external"}
    assert external == {"artifacts/2026-11-29T101500Z/junit/unit.xml", "artifacts/2026-11-29T101500Z/junit/integration.xml",
                        "artifacts/2026-11-29T101500Z/smoke/wts.h5.zip"}
    for path, entry in listed.items():
        blob = (project / path).read_bytes()
        assert entry["bytes"] == len(blob) and entry["sha256"] == hashlib.sha256(blob).hexdigest(), path
    assert listed[rel(green_hub, LOGS["unit"])]["verdict"] == "GREEN"
    assert listed[rel(green_hub, LOGS["unit"])]["target"] == "unit"
    assert listed[rel(green_hub, "summary.md")]["verdict"] is None


def test_fresh_green_hub_validates(green_hub: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_validate(green_hub) == 0
    assert "valid (" in capsys.readouterr().out


def test_tampered_log_is_caught(green_hub: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = green_hub / LOGS["integration"]
    log.write_text(log.read_text().replace("PASSED", "PASSED!"))  # one byte longer
    assert run_validate(green_hub) == 1
    out = capsys.readouterr().out
    assert f"problem: {rel(green_hub, LOGS['integration'])}: size changed" in out


def test_same_size_edit_is_caught_by_hash(green_hub: Path) -> None:
    log = green_hub / LOGS["unit"]
    log.write_text(log.read_text().replace("1 passed", "9 passed"))
    problems = manifest_mod.validate(green_hub).problems
    assert problems == [f"{rel(green_hub, LOGS['unit'])}: content changed (sha256 differs from manifest.json)"]


def test_deleted_log_is_caught(green_hub: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (green_hub / LOGS["smoke"]).unlink()
    assert run_validate(green_hub) == 1
    assert f"problem: {rel(green_hub, LOGS['smoke'])}: missing" in capsys.readouterr().out


def test_hand_edited_manifest_verdict_is_caught(project: Path) -> None:
    hub = make_hub(project, {"integration": "RED"})
    collate(hub, ledger=False)
    data = json.loads((hub / "manifest.json").read_text())
    for target in data["targets"]:
        target["verdict"] = "GREEN"
    for entry in data["artifacts"]:
        entry["verdict"] = "GREEN" if entry["target"] else None
    data["overall_verdict"] = "GREEN"
    (hub / "manifest.json").write_text(json.dumps(data))

    problems = manifest_mod.validate(hub).problems

    record = rel(hub, "verdicts/integration.json")
    assert any(p.startswith("manifest.json: target 'integration' is GREEN") and record in p and "says RED" in p
               for p in problems), problems


def test_manifest_edited_to_drop_a_target_is_caught(green_hub: Path) -> None:
    data = json.loads((green_hub / "manifest.json").read_text())
    data["targets"] = [t for t in data["targets"] if t["name"] != "smoke"]
    (green_hub / "manifest.json").write_text(json.dumps(data))
    problems = manifest_mod.validate(green_hub).problems
    assert "manifest.json: plan target 'smoke' is not listed (manifest edited by hand?)" in problems


def test_file_added_after_collate_is_caught(green_hub: Path) -> None:
    (green_hub / "notes.txt").write_text("added later\n")
    assert manifest_mod.validate(green_hub).problems == [
        f"{rel(green_hub, 'notes.txt')}: in the hub but not listed in manifest.json (added after collate?)"
    ]


def test_red_hub_is_not_valid_evidence(project: Path) -> None:
    hub = make_hub(project, {"unit": "RED"})
    collate(hub, ledger=False)
    problems = manifest_mod.validate(hub).problems
    assert "manifest.json: target 'unit' is RED, not GREEN" in problems
    assert "manifest.json: overall verdict is RED, not GREEN" in problems


def test_missing_external_artifact_fails_unless_hub_only(green_hub: Path) -> None:
    project = green_hub.parents[5]
    (project / "artifacts/2026-11-29T101500Z/smoke/wts.h5.zip").unlink()
    assert manifest_mod.validate(green_hub).problems == [
        "artifacts/2026-11-29T101500Z/smoke/wts.h5.zip: missing (listed in manifest.json with 7 bytes)"
    ]
    relaxed = manifest_mod.validate(green_hub, hub_only=True)
    assert relaxed.ok and any("wts.h5.zip" in w for w in relaxed.warnings)


def test_hub_without_manifest_gets_a_clear_message(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hub = make_hub(project)  # never collated
    assert run_validate(hub) == 2
    out = capsys.readouterr().out
    assert "manifest.json: missing" in out and "python -m harness collate" in out
    assert "INCOMPLETE: the run was interrupted or never collated" in out


def test_older_manifest_format_gets_a_clear_message(green_hub: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (green_hub / "manifest.json").write_text(json.dumps({"files": ["a.log"]}))
    assert run_validate(green_hub) == 2
    assert "schema None, expected 'evidence-manifest/1'" in capsys.readouterr().out


def test_unparseable_manifest_gets_a_clear_message(green_hub: Path) -> None:
    (green_hub / "manifest.json").write_text("{not json")
    result = manifest_mod.validate(green_hub)
    assert result.unreadable and "not readable JSON" in result.problems[0]


def test_validate_finds_hub_after_the_project_moves(green_hub: Path, tmp_path: Path) -> None:
    project = green_hub.parents[5]
    moved = project.rename(tmp_path / "clone")
    hub = moved / green_hub.relative_to(project)
    assert manifest_mod.validate(hub).ok


def test_red_hub_has_verdict_problems_but_no_integrity_problems(project: Path) -> None:
    hub = make_hub(project, {"unit": "RED"})
    collate(hub, ledger=False)
    result = manifest_mod.validate(hub)
    assert result.verdict_problems and result.integrity_problems == []
    (hub / LOGS["unit"]).write_text("edited\n")
    (problem,) = manifest_mod.validate(hub).integrity_problems
    assert problem.startswith(f"{rel(hub, LOGS['unit'])}: size changed (") and problem.endswith(", 7 now)")


def test_missing_target_files_are_a_verdict_problem_not_damage(project: Path) -> None:
    hub = make_hub(project, no_record=("smoke",), no_log=("smoke",))
    collate(hub, ledger=False)
    result = manifest_mod.validate(hub)
    assert result.integrity_problems == []
    assert f"{rel(hub, LOGS['smoke'])}: expected artifact missing (its target is recorded as not finished)" \
        in result.verdict_problems
