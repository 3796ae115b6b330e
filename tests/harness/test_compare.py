"""`python -m harness compare A B`: every kind of disagreement is found, drift only warns, bad hubs exit 2."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest

from harness import compare
from hubfactory import DATA_SHA, PLAN_PATH, build_hub, edit_verdict, write_manifest, write_plan

SMOKE = "cli_smoke_gs2"


def run_compare(*argv: str | Path) -> int:
    parser = argparse.ArgumentParser()
    compare.add_arguments(parser)
    return compare.main(parser.parse_args([str(a) for a in argv]))


@pytest.fixture
def hubs(tmp_path: Path) -> tuple[Path, Path]:
    """Two identical GREEN hubs (A = teammate, B = rerun); tests edit B."""
    return build_hub(tmp_path / "2026-11-29T100000Z"), build_hub(tmp_path / "2026-11-29T110000Z")


def section(out: str, title: str) -> str:
    """The text of one output section (DISAGREEMENTS / AGREEMENTS / WARNINGS)."""
    start = out.index(f"\n{title} (")
    ends = [out.find(f"\n{t} (", start + 1) for t in ("AGREEMENTS", "WARNINGS")] + [out.find("\nresult:", start)]
    return out[start:min(e for e in ends if e > start)]


def test_identical_hubs_agree(hubs, capsys):
    assert run_compare(*hubs, "--project-root", hubs[0].parent) == 0
    out = capsys.readouterr().out
    assert "DISAGREEMENTS (0)" in out
    assert "result: AGREE" in out
    agreed = section(out, "AGREEMENTS")
    for target in ("gridsize_regression", "bundle_loader", "integration", SMOKE):
        assert f"| {target}" in agreed, f"{target} missing from the agreements:\n{agreed}"
    for check in ("verdict", "test node ids", "shapes", "epochs", "final_train_loss", "data sha256", "torch"):
        assert f"| {check}" in agreed, f"check {check!r} missing from the agreements:\n{agreed}"


def _red(r):
    r["verdict"], r["reason"] = "RED", "1 test failed"
    r["tests"][0]["outcome"] = "failed"
    r["counts"].update(passed=0, failed=1)


def _skipped(r):
    r["verdict"], r["reason"] = "RED", "a selected test was skipped"
    r["tests"][0]["outcome"] = "skipped"
    r["counts"].update(passed=0, skipped=1)


def _test_missing(r):
    r["tests"] = []
    r["counts"].update(tests=0, passed=0)


def _shape(r):
    r["record"]["shapes"]["diffraction"] = [4, 1, 64, 64]


def _fixture_hash(r):
    r["record"]["train_data_sha256"] = "00" * 32


def _loss(r):
    r["record"]["final_train_loss"] *= 1.01


def _epochs(r):
    r["record"]["epochs"] = 2


def _no_record(r):
    r["record"] = None


@pytest.mark.parametrize(
    ("target", "change", "check", "expected_detail"),
    [
        ("gridsize_regression", _red, "verdict", "1 test failed"),
        ("gridsize_regression", _skipped, "counts", "passed -> skipped"),
        ("integration", _test_missing, "test node ids", "missing from B: tests/torch/"),
        (SMOKE, _shape, "shapes", "differ: diffraction"),
        (SMOKE, _fixture_hash, "data sha256", "training data differ"),
        (SMOKE, _loss, "final_train_loss", "deterministic on same versions"),
        (SMOKE, _epochs, "epochs", ""),
        (SMOKE, _no_record, "TRAIN_RECORD", "no TRAIN_RECORD in hub B"),
    ],
    ids=["red", "skipped", "test-missing", "shape", "fixture-hash", "loss", "epochs", "no-record"],
)
def test_each_disagreement_is_found_and_listed_first(hubs, capsys, target, change, check, expected_detail):
    """A RED hub fails `validate`, yet compare reports it as a disagreement (exit 1), not unreadable (2)."""
    edit_verdict(hubs[1], target, change)
    assert run_compare(*hubs, "--project-root", hubs[0].parent) == 1
    out = capsys.readouterr().out
    assert out.index("\nDISAGREEMENTS (") < out.index("\nAGREEMENTS (") < out.index("\nWARNINGS (")
    disagreements = section(out, "DISAGREEMENTS")
    row = next((line for line in disagreements.splitlines() if f"| {target}" in line and f"| {check}" in line), None)
    assert row is not None, f"expected a {check!r} disagreement for {target}:\n{out}"
    assert expected_detail in row
    assert "result: DISAGREE" in out


def test_target_missing_from_one_hub(tmp_path, capsys):
    a = build_hub(tmp_path / "a")
    b = build_hub(tmp_path / "b", targets=("gridsize_regression", "bundle_loader", "integration"))
    assert run_compare(a, b) == 1
    assert "target not run in hub B" in section(capsys.readouterr().out, "DISAGREEMENTS")


def test_loss_within_tolerance_agrees(hubs, capsys):
    edit_verdict(hubs[1], SMOKE, lambda r: r["record"].update(final_train_loss=0.123456 * (1 + 5e-5)))
    assert run_compare(*hubs) == 0
    assert "rel diff 5.00e-05 (rtol 0.0001)" in section(capsys.readouterr().out, "AGREEMENTS")


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda r: r["provenance"].update(torch="2.12.0+cpu"), "not enforced: torch differs"),
        (lambda r: r["argv"].remove("--deterministic"), "not enforced: not both --deterministic"),
    ],
    ids=["other-torch", "not-deterministic"],
)
def test_loss_outside_tolerance_only_warns_when_runs_are_not_comparable(hubs, capsys, change, why):
    def edit(r):
        r["record"]["final_train_loss"] *= 1.5
        change(r)

    edit_verdict(hubs[1], SMOKE, edit)
    assert run_compare(*hubs) == 0
    warnings = section(capsys.readouterr().out, "WARNINGS")
    assert "final_train_loss" in warnings and why in warnings


def test_environment_drift_alone_exits_0_with_warnings(hubs, capsys):
    def drift(r):
        r["provenance"].update(git_sha="f" * 40, platform="Darwin-24.1-arm64", git_dirty=True,
                               dirty_files=["src/ptycho/config.py"])

    for name in ("gridsize_regression", "bundle_loader", "integration", SMOKE):
        edit_verdict(hubs[1], name, drift)
    assert run_compare(*hubs) == 0
    out = capsys.readouterr().out
    warnings = section(out, "WARNINGS")
    for check in ("git_sha", "platform", "git_dirty"):
        assert f"| {check}" in warnings, f"{check} drift not warned:\n{out}"
    assert "tracked files differed from HEAD (B: src/ptycho/config.py)" in warnings
    assert "DISAGREEMENTS (0)" in out and "result: AGREE (0 disagreement(s), 3 warning(s))" in out


def test_slow_target_warns_with_ratio(hubs, capsys):
    edit_verdict(hubs[1], "integration", lambda r: r.update(duration_s=45.0))
    assert run_compare(*hubs) == 0
    warnings = section(capsys.readouterr().out, "WARNINGS")
    assert "B/A = 4.50 (outside x3)" in warnings


def test_short_targets_do_not_warn_about_their_ratio(hubs, capsys):
    """0.3 s vs 1.2 s is scheduler noise: below duration_floor_s (5 s) a ratio is shown, not warned."""
    edit_verdict(hubs[0], "integration", lambda r: r.update(duration_s=0.3))
    edit_verdict(hubs[1], "integration", lambda r: r.update(duration_s=1.2))
    assert run_compare(*hubs) == 0
    out = capsys.readouterr().out
    assert "WARNINGS (0)" in out and "B/A = 4.00" in section(out, "AGREEMENTS")


def test_json_format_lists_disagreements(hubs, capsys):
    edit_verdict(hubs[1], SMOKE, _shape)
    assert run_compare(*hubs, "--format", "json") == 1
    payload = json.loads(capsys.readouterr().out)
    assert payload["result"] == "DISAGREE" and payload["exit_code"] == 1
    assert [(d["target"], d["check"]) for d in payload["disagreements"]] == [(SMOKE, "shapes")]
    assert payload["disagreements"][0]["b"]["diffraction"] == [4, 1, 64, 64]
    assert payload["tolerance"] == {"loss_rtol": 1e-4, "duration_ratio_warn": 3.0, "duration_floor_s": 5.0}


def test_plan_compare_table_sets_the_tolerance(hubs, tmp_path, capsys):
    edit_verdict(hubs[1], SMOKE, _loss)  # 1% off: disagrees at the default 1e-4
    plan = write_plan(tmp_path / "plan.toml", "[compare]\nloss_rtol = 0.05\nduration_ratio_warn = 2.0\nduration_floor_s = 0")
    assert run_compare(*hubs, "--plan", plan) == 0
    assert "loss_rtol=0.05, duration_ratio_warn=2, duration_floor_s=0" in capsys.readouterr().out


def test_plan_recorded_by_hub_a_is_used_when_present(hubs, tmp_path, capsys):
    edit_verdict(hubs[1], SMOKE, _loss)
    write_plan(tmp_path / "root" / PLAN_PATH, "[compare]\nloss_rtol = 0.05")
    assert run_compare(*hubs, "--project-root", tmp_path / "root") == 0
    # the factory hubs record a made-up plan sha256, so the source also says the file changed
    assert f"({PLAN_PATH} [compare], file changed since hub A was made)" in capsys.readouterr().out


def test_bad_tolerance_is_a_clear_error(hubs, tmp_path, capsys):
    plan = write_plan(tmp_path / "plan.toml", "[compare]\nduration_ratio_warn = 0.5")
    assert run_compare(*hubs, "--plan", plan) == 2
    assert "duration_ratio_warn must be a finite number > 1" in capsys.readouterr().err


def _no_manifest(hub: Path) -> None:
    (hub / "manifest.json").unlink()


def _handmade(hub: Path) -> None:  # logs only, like the seed's hand-made hubs
    shutil.rmtree(hub / "verdicts")
    (hub / "manifest.json").unlink()
    (hub / "run.json").unlink()


def _old_manifest(hub: Path) -> None:
    (hub / "manifest.json").write_text(json.dumps({"files": ["pytest_gridsize_green.log"]}))


def _old_verdict(hub: Path) -> None:
    path = hub / "verdicts" / "gridsize_regression.json"
    path.write_text(json.dumps({"target": "gridsize_regression", "status": "passed"}))
    write_manifest(hub)


def _corrupt_verdict(hub: Path) -> None:
    (hub / "verdicts" / f"{SMOKE}.json").write_text('{"schema": "evidence-verdict/1", ')
    write_manifest(hub)


def _incomplete(hub: Path) -> None:
    (hub / "INCOMPLETE").write_text("")


def _missing(hub: Path) -> None:
    shutil.rmtree(hub)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_no_manifest, "manifest.json: missing — the hub was not collated, or was made by hand or by an older harness"),
        (_handmade, "holds no verdict records"),
        (_old_manifest, "expected 'evidence-manifest/1'"),
        (_old_verdict, "gridsize_regression.json: schema None, expected 'evidence-verdict/1'"),
        (_corrupt_verdict, f"{SMOKE}.json: not readable JSON"),
        (_incomplete, "INCOMPLETE: the run was interrupted or never collated"),
        (_missing, "does not exist"),
    ],
    ids=["no-manifest", "hand-made", "old-manifest", "old-verdict", "corrupt-verdict", "incomplete", "missing"],
)
@pytest.mark.parametrize("fmt", ["table", "json"])
def test_unreadable_hub_exits_2_with_a_message(hubs, capsys, damage, message, fmt):
    damage(hubs[0])
    assert run_compare(*hubs, "--format", fmt) == 2
    captured = capsys.readouterr()
    assert message in captured.err, captured.err
    assert str(hubs[0]) in captured.err and "Traceback" not in captured.err
    if fmt == "json":
        payload = json.loads(captured.out)
        assert payload["result"] == "UNREADABLE" and payload["errors"][0]["hub"] == str(hubs[0])


def test_log_bytes_do_not_matter(hubs):
    (hubs[1] / "pytest_gridsize_green.log").write_text("different bytes, same meaning\n")
    write_manifest(hubs[1])
    assert run_compare(*hubs) == 0


def test_compare_never_writes_into_either_hub(hubs):
    from harness.hubread import hash_tree

    edit_verdict(hubs[1], SMOKE, _fixture_hash)
    before = [hash_tree(h) for h in hubs]
    assert run_compare(*hubs, "--format", "json") == 1
    assert [hash_tree(h) for h in hubs] == before
    assert DATA_SHA in (hubs[0] / "verdicts" / f"{SMOKE}.json").read_text()


def test_hand_built_hubs_pass_validate(hubs):
    """The factory's hubs are what collate writes: `harness validate` finds nothing wrong."""
    from harness.manifest import validate

    edit_verdict(hubs[1], "gridsize_regression", _red)
    assert validate(hubs[0], hub_only=True).problems == []
    red = validate(hubs[1], hub_only=True)
    assert red.problems and red.integrity_problems == []


def test_tampered_hub_fails_validate_and_exits_2(hubs, capsys):
    (hubs[1] / "pytest_gridsize_green.log").write_text("edited after collate\n")
    assert run_compare(*hubs) == 2
    err = capsys.readouterr().err
    assert "pytest_gridsize_green.log: size changed" in err, err



def test_cli_entry_point_exit_codes(hubs, tmp_path):
    """`python -m harness compare` end to end: 0 for agreeing hubs, 2 and no traceback for a missing one."""
    import subprocess
    import sys

    ok = subprocess.run([sys.executable, "-m", "harness", "compare", *map(str, hubs)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.rstrip().endswith("result: AGREE (0 disagreement(s), 0 warning(s)); exit 0")
    bad = subprocess.run([sys.executable, "-m", "harness", "compare", str(tmp_path / "nope"), str(hubs[1])],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "does not exist" in bad.stderr and "Traceback" not in bad.stderr


def test_agreeing_on_red_is_agreement_with_a_note(hubs, capsys):
    for hub in hubs:
        edit_verdict(hub, "gridsize_regression", _red)
    assert run_compare(*hubs) == 0
    out = capsys.readouterr().out
    assert "not GREEN in either: 1 test failed" in section(out, "AGREEMENTS")
    assert "note: not GREEN in either hub: targets gridsize_regression; the hubs agree" in out


def test_broken_recorded_plan_falls_back_to_defaults_and_says_so(hubs, tmp_path, capsys):
    broken = tmp_path / "root" / PLAN_PATH
    broken.parent.mkdir(parents=True)
    broken.write_text("[plan]\nid = 1\n")
    assert run_compare(*hubs, "--project-root", tmp_path / "root") == 0
    out = capsys.readouterr().out
    assert f"loss_rtol=0.0001, duration_ratio_warn=3, duration_floor_s=5 (defaults ({PLAN_PATH} does not load:" in out


def test_missing_data_hash_is_a_warning_unless_the_files_differ(hubs, capsys):
    edit_verdict(hubs[1], SMOKE, lambda r: r["record"].pop("train_data_sha256"))
    assert run_compare(*hubs) == 0
    assert "TRAIN_RECORD of B has no train_data_sha256" in section(capsys.readouterr().out, "WARNINGS")
    edit_verdict(hubs[1], SMOKE, lambda r: r["record"].update(train_data_file="tests/fixtures/other.npz"))
    assert run_compare(*hubs) == 1
    assert "different training files" in section(capsys.readouterr().out, "DISAGREEMENTS")


def test_hubs_written_by_the_real_collate(tmp_path, capsys):
    """End to end on collate's own manifest.json (hubs from tests/harness/collatehub.py)."""
    from collatehub import make_hub, make_project

    from harness.collate import collate

    root = make_project(tmp_path / "project")
    data = {"smoke": {"record": {"epochs": 1, "final_train_loss": 0.0421875, "gridsize": 2, "n_groups": 64,
                                 "batch_size": 4, "n_patterns": 64, "train_data_file": "tests/fixtures/data_v1.npz",
                                 "train_data_sha256": DATA_SHA, "shapes": {"diffraction": [4, 4, 64, 64]}}}}
    first = make_hub(root, timestamp="2026-11-29T101500Z", edit=data)
    again = make_hub(root, timestamp="2026-11-29T111500Z", edit=data)
    red = make_hub(root, timestamp="2026-11-29T121500Z", edit=data, verdicts={"integration": "RED"})
    for hub in (first, again, red):
        collate(hub, ledger=False)
    assert run_compare(first, again, "--project-root", root) == 0, capsys.readouterr()
    assert "result: AGREE (0 disagreement(s), 0 warning(s))" in capsys.readouterr().out
    assert run_compare(first, red, "--project-root", root) == 1
    disagreements = section(capsys.readouterr().out, "DISAGREEMENTS")
    assert "| integration | verdict" in disagreements and "| integration | counts" in disagreements


def test_overall_verdict_difference_is_a_disagreement(hubs, capsys):
    """Every target GREEN in both, but collate judged B RED (src/ changed during the run)."""
    manifest = json.loads((hubs[1] / "manifest.json").read_text())
    manifest.update(overall_verdict="RED", overall_reason="src/ changed during the run: src/ptycho/config.py",
                    src_changes={"during integration": ["src/ptycho/config.py"]})
    (hubs[1] / "manifest.json").write_text(json.dumps(manifest))
    assert run_compare(*hubs) == 1
    row = section(capsys.readouterr().out, "DISAGREEMENTS")
    assert "| (hub)    | overall verdict | GREEN | RED" in row and "B: src/ changed during the run" in row
