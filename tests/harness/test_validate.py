"""manifest.json lists what a run produced; `validate` catches any later change to it, wherever the hub is."""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

import pytest
from factory import cli
from dataclasses import replace

from factory import LOGS, PLAN_TOML, TIMESTAMP, collated, make_hub, recollate

from harness import validate as validate_mod
from harness.context import HOME, RunContext
from harness.collate import collate
from harness.hub import open_hub
from harness.schema import Counts, HubFiles, Manifest, Verdict, VerdictRecord
from harness.validate import validate

BUNDLE = f"artifacts/{TIMESTAMP}/smoke/wts.h5.zip"
NOT_PRESENT = "not present here"
#: The format-1 hubs committed to this repository (GREEN runs of the real plan).
COMMITTED_HUBS = [f"plans/active/ADR-003-BACKEND-API/reports/{stamp}/phase_c4d_at_parallel"
                  for stamp in ("2026-11-29T130123Z", "2026-11-29T124944Z")]
COMMITTED_PLAN = "plans/active/ADR-003-BACKEND-API/evidence/phase_c4d_b3.toml"


@pytest.fixture
def green_hub(ctx: RunContext) -> Path:
    hub = collated(ctx)
    assert Manifest.load(hub).overall_verdict == "GREEN", "the factory's default hub must collate GREEN"
    return hub


def run_validate(hub: Path, *extra: str) -> int:
    return cli("validate", hub, *extra)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_manifest(hub: Path, edit) -> None:
    """Edit manifest.json by hand, as a forger would (the one place a test writes hub JSON itself)."""
    data = json.loads((hub / HubFiles.MANIFEST).read_text())
    edit(data)
    (hub / HubFiles.MANIFEST).write_text(json.dumps(data))


# --------------------------------------------------------------------------- what the manifest lists

def test_manifest_is_format_2_and_names_its_plan(green_hub: Path, root: Path) -> None:
    m = Manifest.load(green_hub)
    assert json.loads((green_hub / HubFiles.MANIFEST).read_text())["schema"] == "evidence-manifest/2"
    assert (m.format, m.overall_verdict) == (2, "GREEN")
    assert m.hub == green_hub.relative_to(root).as_posix(), m.hub
    assert m.plan.sha256 == sha256(root / PLAN_TOML), "the manifest must pin the plan file's sha256"
    assert [t.name for t in m.targets] == ["unit", "integration", "smoke"]


def test_manifest_lists_every_hub_file_relative_to_the_hub(green_hub: Path) -> None:
    listed = {e.path for e in Manifest.load(green_hub).files}
    on_disk = {p.relative_to(green_hub).as_posix() for p in green_hub.rglob("*") if p.is_file()}
    assert listed == on_disk - {HubFiles.MANIFEST}, f"listed {sorted(listed)}, on disk {sorted(on_disk)}"
    assert HubFiles.JUNIT in listed and HubFiles.SUMMARY in listed and HubFiles.RUN in listed


def test_manifest_lists_bulky_outputs_apart_relative_to_the_project(green_hub: Path, root: Path) -> None:
    (entry,) = Manifest.load(green_hub).external
    assert (entry.path, entry.role, entry.target, entry.verdict) == (BUNDLE, "output", "smoke", "GREEN"), entry
    assert (entry.bytes, entry.sha256) == ((root / BUNDLE).stat().st_size, sha256(root / BUNDLE))


def test_manifest_sizes_and_hashes_match_the_files(green_hub: Path) -> None:
    for entry in Manifest.load(green_hub).files:
        path = green_hub / entry.path
        assert (entry.bytes, entry.sha256) == (path.stat().st_size, sha256(path)), entry.path


@pytest.mark.parametrize(("path", "role", "target", "verdict"), [
    (LOGS["unit"], "log", "unit", "GREEN"),
    (HubFiles.verdict("smoke"), "verdict-record", "smoke", "GREEN"),
    (HubFiles.SUMMARY, "summary", None, None),
    (HubFiles.JUNIT, "junit", None, None),
    (HubFiles.RUN, "run-record", None, None),
])
def test_manifest_gives_each_file_its_role_target_and_verdict(green_hub: Path, path: str, role: str,
                                                              target: str | None, verdict: str | None) -> None:
    entry = {e.path: e for e in Manifest.load(green_hub).files}[path]
    assert (entry.role, entry.target, entry.verdict) == (role, target, verdict), entry


# --------------------------------------------------------------------------- a collated hub, checked later

def test_fresh_green_hub_validates(green_hub: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_validate(green_hub) == 0
    out = capsys.readouterr().out
    assert "valid (" in out and "overall GREEN" in out, out


def test_tampered_log_is_caught(green_hub: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = green_hub / LOGS["integration"]
    log.write_text(log.read_text().replace("PASSED", "PASSED!"))  # one byte longer
    assert run_validate(green_hub) == 1
    assert f"problem: {LOGS['integration']}: size changed" in capsys.readouterr().out


def test_same_size_edit_is_caught_by_hash(green_hub: Path) -> None:
    log = green_hub / LOGS["unit"]
    log.write_text(log.read_text().replace("1 passed", "9 passed"))
    changed, sealed = validate(green_hub).problems
    assert changed == f"{LOGS['unit']}: content changed (sha256 differs from manifest.json)"
    assert sealed.startswith(f"{LOGS['unit']}: its bytes differ from what the harness wrote (sealed sha256 "), sealed


def test_deleted_log_is_caught(green_hub: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (green_hub / LOGS["smoke"]).unlink()
    assert run_validate(green_hub) == 1
    assert f"problem: {LOGS['smoke']}: missing" in capsys.readouterr().out


def test_file_added_after_collate_is_caught(green_hub: Path) -> None:
    (green_hub / "notes.txt").write_text("added later\n")
    assert validate(green_hub).problems == ["notes.txt: in the hub but not listed in manifest.json (added after collate?)"]


def test_hand_edited_manifest_verdict_is_caught(ctx: RunContext) -> None:
    hub = collated(ctx, {"integration": Verdict.RED})

    def launder(data: dict) -> None:
        for target in data["targets"]:
            target["verdict"] = "GREEN"
        for entry in data["files"] + data["external"]:
            entry["verdict"] = "GREEN" if entry["target"] else None
        data["overall_verdict"] = "GREEN"

    write_manifest(hub, launder)
    problems = validate(hub).problems
    expected = ("manifest.json: target 'integration' is GREEN but verdicts/integration.json says RED "
                "(manifest edited by hand?)")
    assert expected in problems, problems


def test_manifest_edited_to_drop_a_target_is_caught(green_hub: Path) -> None:
    write_manifest(green_hub, lambda data: data.update(targets=[t for t in data["targets"] if t["name"] != "smoke"]))
    problems = validate(green_hub).problems
    assert "manifest.json: plan target 'smoke' is not listed (manifest edited by hand?)" in problems, problems


def test_red_hub_is_not_valid_evidence(ctx: RunContext) -> None:
    problems = validate(collated(ctx, {"unit": Verdict.RED})).problems
    assert "manifest.json: target 'unit' is RED, not GREEN" in problems, problems
    assert "manifest.json: overall verdict is RED, not GREEN" in problems, problems


def test_red_hub_has_verdict_problems_but_no_integrity_problems(ctx: RunContext) -> None:
    result = validate(collated(ctx, {"unit": Verdict.RED}))
    assert result.verdict_problems and result.integrity_problems == [], result.problems


def test_edited_log_of_a_red_hub_is_an_integrity_problem(ctx: RunContext) -> None:
    hub = collated(ctx, {"unit": Verdict.RED})
    (hub / LOGS["unit"]).write_text("edited\n")
    problem, sealed = validate(hub).integrity_problems
    assert problem.startswith(f"{LOGS['unit']}: size changed (") and problem.endswith(", 7 now)"), problem
    assert "differ from what the harness wrote" in sealed, sealed


def test_missing_target_files_are_a_verdict_problem_not_damage(ctx: RunContext) -> None:
    result = validate(collated(ctx, no_record=("smoke",), no_log=("smoke",)))
    assert result.integrity_problems == [], result.integrity_problems
    assert f"{LOGS['smoke']}: expected file missing (its target is recorded as MISSING)" in result.verdict_problems


def test_validate_finds_the_hub_after_the_project_moves(green_hub: Path, root: Path, tmp_path: Path) -> None:
    moved = root.rename(tmp_path / "clone")
    result = validate(moved / green_hub.relative_to(root))
    assert result.ok, f"a moved project's hub must validate: {result.problems}"
    assert not any(NOT_PRESENT in w for w in result.warnings), f"its artifacts moved with it: {result.warnings}"


# --------------------------------------------------------------------------- external (bulky) files

@pytest.mark.parametrize(("mode", "problem", "warning"), [
    ("default", False, True),
    ("require", True, False),
    ("hub-only", False, False),
])
def test_absent_external_file_is_a_warning_unless_required(green_hub: Path, root: Path, mode: str, problem: bool,
                                                           warning: bool) -> None:
    (root / BUNDLE).unlink()
    result = validate(green_hub, mode=mode)
    assert any(NOT_PRESENT in p and BUNDLE in p for p in result.problems) == problem, result.problems
    assert any(NOT_PRESENT in w and BUNDLE in w for w in result.warnings) == warning, result.warnings
    assert result.ok != problem


@pytest.mark.parametrize("mode", ["default", "require"])
def test_changed_external_file_is_a_problem(green_hub: Path, root: Path, mode: str) -> None:
    (root / BUNDLE).write_bytes(b"PK\x05\x06zap")
    assert validate(green_hub, mode=mode).problems == [f"{BUNDLE}: content changed (sha256 differs from manifest.json)"]


# --------------------------------------------------------------------------- a copied hub (format 2 is relocatable)

@pytest.fixture(params=["elsewhere", "clone-layout"])
def copy(request: pytest.FixtureRequest, green_hub: Path, root: Path, tmp_path: Path) -> Path:
    """The GREEN hub copied out of its project: to a bare folder, or to its own path in a checkout without artifacts."""
    if request.param == "elsewhere":
        dest = tmp_path / "elsewhere" / "hub"
    else:
        dest = tmp_path / "clone" / green_hub.relative_to(root)
    shutil.copytree(green_hub, dest)
    return dest


def test_copied_hub_validates_with_absent_artifacts_as_a_warning(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_validate(copy) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert f"warning: 1 file(s) outside the hub, 7 B, {NOT_PRESENT} (e.g. {BUNDLE})" in out, out
    assert "problem:" not in out, out


def test_copied_hub_needs_its_artifacts_with_require_artifacts(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_validate(copy, "--require-artifacts") == 1
    out = capsys.readouterr().out
    assert f"problem: 1 file(s) outside the hub, 7 B, {NOT_PRESENT} (e.g. {BUNDLE}); --require-artifacts needs them" \
        in out, out


def test_changed_byte_in_the_copy_is_named_and_the_original_still_validates(copy: Path, green_hub: Path) -> None:
    log = copy / LOGS["unit"]
    log.write_bytes(log.read_bytes().replace(b"1 passed", b"9 passed"))
    assert validate(copy).problems[0] == f"{LOGS['unit']}: content changed (sha256 differs from manifest.json)"
    assert validate(green_hub).ok, f"the original must be unaffected: {validate(green_hub).problems}"


def test_editing_the_original_does_not_affect_the_copy(copy: Path, green_hub: Path) -> None:
    (green_hub / LOGS["smoke"]).write_text("rewritten\n")
    assert not validate(green_hub).ok, "the edited original must fail"
    copied = validate(copy)
    assert copied.ok, f"the copy must still validate: {copied.problems}"


def test_file_added_to_the_copy_is_named(copy: Path) -> None:
    (copy / "figures").mkdir()
    (copy / "figures" / "extra.png").write_bytes(b"\x89PNG")
    assert validate(copy).problems == \
        ["figures/extra.png: in the hub but not listed in manifest.json (added after collate?)"]


# --------------------------------------------------------------------------- the committed format-1 hubs

@pytest.fixture(params=COMMITTED_HUBS, ids=lambda hub: hub.split("/")[-2])
def committed_hub(request: pytest.FixtureRequest) -> Path:
    hub = HOME / request.param
    assert (hub / HubFiles.MANIFEST).is_file(), f"{request.param}: the committed hub is gone from the repository"
    return hub


@pytest.mark.parametrize("layout", ["bare", "fresh-clone"])
def test_committed_format_1_hub_validates_in_a_copy(committed_hub: Path, tmp_path: Path, layout: str) -> None:
    """A committed hub copied without its git-ignored artifacts (as a fresh clone has it) is valid, with a warning."""
    if layout == "bare":
        dest, home = tmp_path / "hub", HOME
    else:  # the clone's own plan file and hub path, no artifacts/
        home = tmp_path / "clone"
        dest = home / committed_hub.relative_to(HOME)
        (home / COMMITTED_PLAN).parent.mkdir(parents=True)
        shutil.copy(HOME / COMMITTED_PLAN, home / COMMITTED_PLAN)
    shutil.copytree(committed_hub, dest)

    result = validate(dest, home=home)

    assert result.problems == [], f"a committed GREEN hub must validate anywhere: {result.problems}"
    assert result.manifest is not None and result.manifest.format == 1, "the committed hubs are format 1"
    assert any(NOT_PRESENT in w for w in result.warnings), f"absent artifacts must be a warning: {result.warnings}"


def test_committed_format_1_hub_copy_catches_a_changed_byte(committed_hub: Path, tmp_path: Path) -> None:
    dest = tmp_path / "hub"
    shutil.copytree(committed_hub, dest)
    log = next(p for p in sorted(dest.glob("*.log")))
    data = bytearray(log.read_bytes())
    data[0] ^= 1
    log.write_bytes(bytes(data))
    assert validate(dest).problems == [f"{log.name}: content changed (sha256 differs from manifest.json)"]


# --------------------------------------------------------------------------- hubs validate cannot read

def test_hub_without_manifest_gets_a_clear_message(ctx: RunContext, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_validate(make_hub(ctx)) == 2  # never collated
    out = capsys.readouterr().out
    assert "manifest.json: missing" in out and "python -m harness collate" in out, out
    assert "INCOMPLETE: the run was interrupted or never collated" in out, out


def test_manifest_of_another_format_gets_a_clear_message(green_hub: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (green_hub / HubFiles.MANIFEST).write_text(json.dumps({"files": ["a.log"]}))
    assert run_validate(green_hub) == 2
    assert "schema None, expected 'evidence-manifest/2'" in capsys.readouterr().out


def test_unparseable_manifest_gets_a_clear_message(green_hub: Path) -> None:
    (green_hub / HubFiles.MANIFEST).write_text("{not json")
    result = validate(green_hub)
    assert result.unreadable and "not readable JSON" in result.problems[0], result.problems


def test_manifest_entry_without_a_path_gets_a_clear_message(green_hub: Path) -> None:
    write_manifest(green_hub, lambda data: data["files"].append({"bytes": 1}))
    result = validate(green_hub)
    assert result.unreadable and "files entry without a path" in result.problems[0], result.problems


def test_validate_of_a_file_or_a_missing_path_is_unreadable(green_hub: Path) -> None:
    result = validate(green_hub / HubFiles.SUMMARY)
    assert result.unreadable and "is a file, not a hub folder" in result.problems[0], result.problems
    result = validate(green_hub / "nope")
    assert result.unreadable and "does not exist" in result.problems[0], result.problems


def test_a_record_made_green_by_hand_contradicts_its_log(root: Path, ctx) -> None:
    """Doctored: the RED record and the manifest set to GREEN and re-hashed; the log's footer still says RED."""
    hub = make_hub(ctx, {"unit": Verdict.RED})
    collate(ctx, open_hub(hub, ctx), ledger=False)
    record = hub / HubFiles.verdict("unit")
    doctored = replace(VerdictRecord.load(record), verdict=Verdict.GREEN, counts=Counts(tests=1, passed=1), exit_code=0)
    doctored.write(record)
    recollate(ctx, hub)  # a forger recomputes the manifest too
    problems = validate(hub).problems
    assert any("says GREEN but pytest_unit_green.log ends with verdict RED" in p for p in problems), problems


def test_validate_json_output_has_problems_and_warnings(green_hub: Path, root: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    (root / BUNDLE).unlink()
    assert run_validate(green_hub, "--format", "json") == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["command"], data["valid"], data["problems"], data["exit_code"]) == ("validate", True, [], 0), data
    assert len(data["warnings"]) == 2 and NOT_PRESENT in data["warnings"][0], data["warnings"]
    assert data["warnings"][1].startswith("unsigned") and data["signer"] == "unsigned", data
