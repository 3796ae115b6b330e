"""`python -m harness compare A B`: every kind of disagreement is found, drift only warns, bad hubs exit 2.

Hubs come from the factory (tests/harness/factory.py): created by `create_hub`, filled as the
runner would, collated by the real collate; a test changes one record with `edit` to create the
one difference it wants found. Only the reader tests write hub JSON by hand.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Callable

import pytest
from factory import cli, write_log

from factory import (DATA_SHA, FIXTURE, PLAN, PLAN_TOML, collated, context, edit, make_project, recollate, with_record,
                     with_runtime)
from harness import comparereport as compare
from harness.context import HOME
from harness.hubview import hash_tree
from harness.schema import Counts, GitState, HubFiles, Verdict, VerdictRecord
from harness.validate import validate

SMOKE = "smoke"
LOSS = 0.0421875  # the factory's final_train_loss
LATER = "2026-11-29T111500Z"
FORMAT_1_HUB = HOME / "plans/active/ADR-003-BACKEND-API/reports/2026-11-29T130123Z/phase_c4d_at_parallel"
Change = Callable[[VerdictRecord], VerdictRecord]


def run_compare(*argv: str | Path) -> int:
    return cli("compare", *argv)


@pytest.fixture
def ctx(tmp_path: Path):
    """The factory project (targets unit, integration, smoke) and its run context."""
    return context(make_project(tmp_path / "project"))


@pytest.fixture
def hubs(ctx) -> tuple[Path, Path]:
    """Two GREEN hubs of the same plan and commit (A = teammate, B = rerun); tests edit B."""
    return collated(ctx), collated(ctx, timestamp=LATER)


def section(out: str, title: str) -> str:
    """The text of one output section (DISAGREEMENTS / AGREEMENTS / WARNINGS)."""
    start = out.index(f"\n{title} (")
    ends = [out.find(f"\n{t} (", start + 1) for t in ("AGREEMENTS", "WARNINGS")] + [out.find("\nresult:", start)]
    return out[start:min(e for e in ends if e > start)]


def row(out: str, title: str, target: str, check: str) -> list[str]:
    """The cells (target, check, A, B, detail) of one table row of a section; fails naming what is missing."""
    for line in section(out, title).splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if cells[:2] == [target, check]:
            return cells
    raise AssertionError(f"expected a {title} row for {target} / {check}:\n{out}")


# --------------------------------------------------------------------------- changes to one record

def _red(r: VerdictRecord) -> VerdictRecord:
    return replace(r, verdict=Verdict.RED, reason="1 test failed", exit_code=1, counts=Counts(tests=1, failed=1),
                   tests=tuple({**t, "outcome": "failed"} for t in r.tests))


def _skipped(r: VerdictRecord) -> VerdictRecord:
    return replace(r, verdict=Verdict.SKIPPED, reason="a selected test was skipped", counts=Counts(tests=1, skipped=1),
                   tests=tuple({**t, "outcome": "skipped"} for t in r.tests))


def _test_missing(r: VerdictRecord) -> VerdictRecord:
    return replace(r, tests=(), counts=Counts())


def _shape(r: VerdictRecord) -> VerdictRecord:
    return with_record(shapes={**r.record["shapes"], "diffraction": [4, 1, 64, 64]})(r)


def _without_data_hash(r: VerdictRecord) -> VerdictRecord:
    return replace(r, record={k: v for k, v in r.record.items() if k != "train_data_sha256"})


def _not_deterministic(r: VerdictRecord) -> VerdictRecord:
    return replace(r, argv=tuple(a for a in r.argv if a != "--deterministic"))


def _drift(r: VerdictRecord) -> VerdictRecord:
    """Another commit on another machine, with a tracked file edited."""
    git = GitState(sha="f" * 40, dirty=True, dirty_files=("src/pkg/core.py",))
    return replace(r, provenance=replace(r.provenance, git=git,
                                         runtime=replace(r.provenance.runtime, platform="Darwin-24.1-arm64")))


def _duration(seconds: float) -> Change:
    return lambda r: replace(r, duration_s=seconds)


# --------------------------------------------------------------------------- agreement and disagreements

def test_identical_hubs_agree_on_every_check(hubs, capsys):
    assert run_compare(*hubs) == 0, "two GREEN hubs of the same plan and commit must agree (exit 0)"
    out = capsys.readouterr().out
    assert "DISAGREEMENTS (0)" in out and "result: AGREE (0 disagreement(s), 0 warning(s)); exit 0" in out
    for target in ("unit", "integration", SMOKE):
        row(out, "AGREEMENTS", target, "verdict")
    for target, check in [("unit", "test node ids"), ("integration", "counts"), (SMOKE, "shapes"), (SMOKE, "epochs"),
                          (SMOKE, "final_train_loss"), (SMOKE, "data sha256"), (SMOKE, "smoke config"),
                          ("(environment)", "torch"), ("(plan)", "plan sha256"), ("(hub)", "overall verdict")]:
        row(out, "AGREEMENTS", target, check)


@pytest.mark.parametrize(
    ("target", "change", "check", "expected_detail"),
    [
        ("unit", _red, "verdict", "1 test failed"),
        ("unit", _skipped, "counts", "passed -> skipped"),
        ("integration", _test_missing, "test node ids", "missing from B: tests/test_integration.py::test_round_trip"),
        (SMOKE, _shape, "shapes", "differ: diffraction"),
        (SMOKE, with_record(train_data_sha256="00" * 32), "data sha256", "the training data differ"),
        (SMOKE, with_record(final_train_loss=LOSS * 1.01), "final_train_loss", "deterministic on same versions"),
        (SMOKE, with_record(epochs=2), "epochs", ""),
        (SMOKE, with_record(gridsize=1), "smoke config", "differ: gridsize"),
        (SMOKE, lambda r: replace(r, record=None), "TRAIN_RECORD", "no TRAIN_RECORD in hub B"),
    ],
    ids=["red", "skipped", "test-missing", "shape", "data-hash", "loss", "epochs", "smoke-config", "no-train-record"],
)
def test_each_disagreement_is_found_and_listed_first(ctx, hubs, capsys, target, change, check, expected_detail):
    """A RED hub fails `validate`, yet compare reports it as a disagreement (exit 1), not unreadable (2)."""
    edit(ctx, hubs[1], target, change)
    assert run_compare(*hubs) == 1, f"a changed {check} of {target} must make compare exit 1"
    out = capsys.readouterr().out
    assert out.index("\nDISAGREEMENTS (") < out.index("\nAGREEMENTS (") < out.index("\nWARNINGS ("), \
        f"disagreements must come first:\n{out}"
    detail = row(out, "DISAGREEMENTS", target, check)[4]
    assert expected_detail in detail, f"expected {expected_detail!r} in the {check} row's detail, got {detail!r}"
    assert "result: DISAGREE" in out


def test_a_red_target_disagrees_on_verdict_counts_and_the_hub_verdict(ctx, capsys):
    green, red = collated(ctx), collated(ctx, {"integration": Verdict.RED}, timestamp=LATER)
    assert run_compare(green, red) == 1
    out = capsys.readouterr().out
    assert row(out, "DISAGREEMENTS", "integration", "verdict")[2:4] == ["GREEN", "RED"]
    counts = row(out, "DISAGREEMENTS", "integration", "counts")
    assert counts[4] == "tests/test_integration.py::test_round_trip: passed -> failed", counts
    assert row(out, "DISAGREEMENTS", "(hub)", "overall verdict")[2:4] == ["GREEN", "RED"]


def test_target_missing_from_one_hub(ctx, capsys):
    full, partial = collated(ctx), collated(ctx, timestamp=LATER, targets=("unit", "integration"))
    assert run_compare(full, partial) == 1
    assert row(capsys.readouterr().out, "DISAGREEMENTS", SMOKE, "target")[4] == "target not run in hub B"


def test_overall_verdict_difference_is_a_disagreement(ctx, capsys):
    """Every target GREEN in both, but collate judged B RED: production code changed during its run."""
    a = collated(ctx)
    (ctx.project / "src" / "pkg" / "core.py").write_text("GRIDSIZE = 1\n")
    b = collated(ctx, timestamp=LATER)
    assert run_compare(a, b, "--format", "json") == 1
    found = {(d["target"], d["check"]): d for d in json.loads(capsys.readouterr().out)["disagreements"]}
    assert set(found) == {("(hub)", "overall verdict")}, f"only the hub verdict differs, found {sorted(found)}"
    overall = found["(hub)", "overall verdict"]
    assert (overall["a"], overall["b"]) == ("GREEN", "RED")
    assert "B: production code (src) written during the run or differing from HEAD (src/pkg/core.py)" in overall["detail"]


def test_agreeing_on_red_is_agreement_with_a_note(ctx, capsys):
    a, b = (collated(ctx, {"unit": Verdict.RED}, timestamp=t) for t in ("2026-11-29T101500Z", LATER))
    assert run_compare(a, b) == 0, "both hubs say RED for the same reason: they agree"
    out = capsys.readouterr().out
    assert row(out, "AGREEMENTS", "unit", "verdict")[4] == "not GREEN in either: 1 failed: AssertionError: boom"
    assert "note: not GREEN in either hub: targets unit; the hubs agree, but neither is GREEN evidence" in out


# --------------------------------------------------------------------------- tolerances and warnings

def test_loss_within_tolerance_agrees(ctx, hubs, capsys):
    edit(ctx, hubs[1], SMOKE, with_record(final_train_loss=LOSS * (1 + 5e-5)))
    assert run_compare(*hubs) == 0
    assert row(capsys.readouterr().out, "AGREEMENTS", SMOKE, "final_train_loss")[4] == "rel diff 5.00e-05 (rtol 0.0001)"


@pytest.mark.parametrize(
    ("change", "why"),
    [(with_runtime(torch="2.12.0+cpu"), "not enforced: torch differs"),
     (_not_deterministic, "not enforced: not both --deterministic")],
    ids=["other-torch", "not-deterministic"],
)
def test_loss_outside_tolerance_only_warns_when_runs_are_not_comparable(ctx, hubs, capsys, change, why):
    edit(ctx, hubs[1], SMOKE, lambda r: change(with_record(final_train_loss=LOSS * 1.5)(r)))
    assert run_compare(*hubs) == 0, "a 50% loss difference between runs that need not match only warns"
    assert why in row(capsys.readouterr().out, "WARNINGS", SMOKE, "final_train_loss")[4]


def test_environment_drift_alone_exits_0_with_warnings(ctx, capsys):
    a = collated(ctx)
    b = collated(ctx, timestamp=LATER, change={name: _drift for name in ("unit", "integration", SMOKE)})
    assert run_compare(a, b) == 0
    out = capsys.readouterr().out
    for check in ("git_sha", "platform", "git_dirty"):
        row(out, "WARNINGS", "(environment)", check)
    dirty = row(out, "WARNINGS", "(environment)", "git_dirty")
    assert dirty[4] == "tracked files differed from HEAD (B: src/pkg/core.py)", dirty
    assert "DISAGREEMENTS (0)" in out and "result: AGREE (0 disagreement(s), 3 warning(s))" in out


def test_slow_target_warns_with_ratio(ctx, hubs, capsys):
    edit(ctx, hubs[1], "integration", _duration(12.25 * 4))
    assert run_compare(*hubs) == 0
    assert row(capsys.readouterr().out, "WARNINGS", "integration", "duration_s")[4] == "B/A = 4.00 (outside x3)"


def test_short_targets_do_not_warn_about_their_ratio(ctx, hubs, capsys):
    """0.3 s vs 1.2 s is scheduler noise: below duration_floor_s (5 s) a ratio is shown, not warned."""
    edit(ctx, hubs[0], "integration", _duration(0.3))
    edit(ctx, hubs[1], "integration", _duration(1.2))
    assert run_compare(*hubs) == 0
    out = capsys.readouterr().out
    assert "WARNINGS (0)" in out and row(out, "AGREEMENTS", "integration", "duration_s")[4] == "B/A = 4.00"


def test_missing_data_hash_is_a_warning_when_the_file_names_match(ctx, hubs, capsys):
    edit(ctx, hubs[1], SMOKE, _without_data_hash)
    assert run_compare(*hubs) == 0
    detail = row(capsys.readouterr().out, "WARNINGS", SMOKE, "data sha256")[4]
    assert detail == f"B has no train_data_sha256: same file name {FIXTURE}, content unconfirmed"


def test_missing_data_hash_and_another_file_is_a_disagreement(ctx, hubs, capsys):
    edit(ctx, hubs[1], SMOKE, lambda r: with_record(train_data_file="tests/fixtures/other.npz")(_without_data_hash(r)))
    assert run_compare(*hubs) == 1
    assert "different training files" in row(capsys.readouterr().out, "DISAGREEMENTS", SMOKE, "data file")[4]


def test_json_format_lists_disagreements(ctx, hubs, capsys):
    edit(ctx, hubs[1], SMOKE, _shape)
    assert run_compare(*hubs, "--format", "json") == 1
    payload = json.loads(capsys.readouterr().out)
    assert payload["result"] == "DISAGREE" and payload["exit_code"] == 1
    assert [(d["target"], d["check"]) for d in payload["disagreements"]] == [(SMOKE, "shapes")]
    assert payload["disagreements"][0]["b"]["diffraction"] == [4, 1, 64, 64]
    assert payload["tolerance"] == {"loss_rtol": 1e-4, "duration_ratio_warn": 3.0, "duration_floor_s": 5.0}


# --------------------------------------------------------------------------- where tolerances come from

def test_plan_option_sets_the_tolerance(ctx, hubs, tmp_path, capsys):
    edit(ctx, hubs[1], SMOKE, with_record(final_train_loss=LOSS * 1.01))  # 1% off: disagrees at the default 1e-4
    plan = tmp_path / "tolerant.toml"
    plan.write_text(PLAN + "\n[compare]\nloss_rtol = 0.05\nduration_ratio_warn = 2.0\nduration_floor_s = 0\n")
    assert run_compare(*hubs, "--plan", plan) == 0, "loss_rtol = 0.05 from --plan admits a 1% difference"
    assert f"loss_rtol=0.05, duration_ratio_warn=2, duration_floor_s=0 ({plan} [compare])" in capsys.readouterr().out


def test_tolerance_comes_from_the_plan_hub_a_records(tmp_path, capsys):
    root = make_project(tmp_path / "project", PLAN + "\n[compare]\nloss_rtol = 0.05\n")
    ctx = context(root)
    a, b = collated(ctx), collated(ctx, timestamp=LATER, change={SMOKE: with_record(final_train_loss=LOSS * 1.01)})
    assert run_compare(a, b) == 0, "hub A's plan sets loss_rtol = 0.05"
    assert f"loss_rtol=0.05, duration_ratio_warn=3, duration_floor_s=5 ({root / PLAN_TOML} [compare])" \
        in capsys.readouterr().out


def test_tolerance_source_says_when_hub_a_plan_changed_since(ctx, hubs, capsys):
    plan = ctx.project / PLAN_TOML
    plan.write_text(plan.read_text() + "\n[compare]\nloss_rtol = 0.05\n")
    assert run_compare(*hubs) == 0
    assert f"loss_rtol=0.05, duration_ratio_warn=3, duration_floor_s=5 ({plan} [compare], file changed since hub A " \
           "was made)" in capsys.readouterr().out


def test_broken_recorded_plan_falls_back_to_defaults_and_says_so(ctx, hubs, capsys):
    plan = ctx.project / PLAN_TOML
    plan.write_text("[plan]\nid = 1\n")
    assert run_compare(*hubs) == 0
    assert f"loss_rtol=0.0001, duration_ratio_warn=3, duration_floor_s=5 (defaults ({plan} does not load:" \
        in capsys.readouterr().out


def test_bad_tolerance_is_a_clear_error(hubs, tmp_path, capsys):
    plan = tmp_path / "bad.toml"
    plan.write_text(PLAN + "\n[compare]\nduration_ratio_warn = 0.5\n")
    assert run_compare(*hubs, "--plan", plan) == 2
    err = capsys.readouterr().err
    assert "'duration_ratio_warn' must be > 1" in err and "Traceback" not in err, err


# --------------------------------------------------------------------------- hubs that travel, and old ones

def test_a_hub_and_its_copy_elsewhere_agree(hubs, tmp_path, capsys):
    """Hubs travel: a copy in another folder (a teammate's clone, a mail attachment) reads the same."""
    copy = shutil.copytree(hubs[0], tmp_path / "elsewhere" / "hub")
    assert run_compare(hubs[0], copy) == 0, capsys.readouterr()
    assert "result: AGREE (0 disagreement(s), 0 warning(s))" in capsys.readouterr().out


def test_a_copied_hub_reads_without_its_project(ctx, hubs, tmp_path, capsys):
    copy = shutil.copytree(hubs[0], tmp_path / "elsewhere" / "hub")
    shutil.rmtree(ctx.project)
    assert run_compare(copy, copy) == 0, capsys.readouterr()
    assert f"(defaults ({ctx.project / PLAN_TOML} not found here))" in capsys.readouterr().out


def test_a_format_1_hub_compared_with_itself_agrees(tmp_path, capsys):
    """A hub the harness wrote before format 2 (committed under plans/) is upgraded on reading."""
    hub = shutil.copytree(FORMAT_1_HUB, tmp_path / FORMAT_1_HUB.name)
    assert run_compare(hub, hub) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert "result: AGREE (0 disagreement(s)" in out
    assert row(out, "AGREEMENTS", "cli_smoke_gs2", "shapes")[2].startswith("diffraction 4x4x64x64")
    assert row(out, "AGREEMENTS", "gridsize_regression", "test node ids")[4] == "same node ids"


# --------------------------------------------------------------------------- unreadable hubs

def _write(rel: str, text: str) -> Callable[[Path], None]:
    return lambda hub: (hub / rel).write_text(text)


def _logs_only(hub: Path) -> None:
    """No manifest, run.json or records, and none of the logs the default plan names: not a hub at all."""
    shutil.rmtree(hub / HubFiles.VERDICTS)
    for name in (HubFiles.MANIFEST, HubFiles.RUN, "pytest_integration_green.log"):  # the real plan names the last
        (hub / name).unlink()


def _file_not_folder(hub: Path) -> None:
    shutil.rmtree(hub)
    hub.write_text("not a hub\n")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda hub: (hub / HubFiles.MANIFEST).unlink(), "manifest.json: missing — the hub was not collated"),
        (_logs_only, "is neither a harness hub (no manifest.json, no run.json) nor a hand-made one"),
        (_write(HubFiles.MANIFEST, '{"files": ["pytest_unit_green.log"]}'),
         "manifest.json: schema None, expected 'evidence-manifest/2'"),
        (_write(HubFiles.MANIFEST, '{"schema": "evidence-manifest/3"}'),
         "schema 'evidence-manifest/3', expected 'evidence-manifest/2' (written by another harness version)"),
        (_write(HubFiles.verdict("unit"), '{"target": "unit", "status": "passed"}'),
         "unit.json: schema None, expected 'evidence-verdict/2'"),
        (_write(HubFiles.verdict(SMOKE), '{"schema": "evidence-verdict/2", '), f"{SMOKE}.json: not readable JSON"),
        (_write(HubFiles.INCOMPLETE, ""), "INCOMPLETE: the run was interrupted or never collated"),
        (shutil.rmtree, "does not exist"),
        (_file_not_folder, "is a file, expected a hub folder"),
    ],
    ids=["no-manifest", "logs-only", "old-manifest", "foreign-manifest", "old-verdict", "corrupt-verdict",
         "incomplete", "missing", "file"],
)
@pytest.mark.parametrize("fmt", ["table", "json"])
def test_unreadable_hub_exits_2_with_a_message(hubs, capsys, damage, message, fmt):
    damage(hubs[0])
    assert run_compare(*hubs, "--format", fmt) == 2
    captured = capsys.readouterr()
    assert message in captured.err, f"expected {message!r} on stderr:\n{captured.err}"
    assert str(hubs[0]) in captured.err and "Traceback" not in captured.err
    if fmt == "json":
        payload = json.loads(captured.out)
        assert payload["result"] == "UNREADABLE" and payload["errors"][0]["hub"] == str(hubs[0])


def test_tampered_hub_fails_validate_and_exits_2(hubs, capsys):
    (hubs[1] / "pytest_unit_green.log").write_text("edited after collate\n")
    assert run_compare(*hubs) == 2
    err = capsys.readouterr().err
    assert "pytest_unit_green.log: size changed" in err, err


def test_a_red_hub_is_sound_so_compare_reads_it(ctx, hubs):
    """compare gates on validate's integrity problems only: a RED verdict is a finding, not damage."""
    edit(ctx, hubs[1], "unit", _red)
    assert validate(hubs[0], mode="hub-only").problems == []
    red = validate(hubs[1], mode="hub-only")
    assert red.problems, "a RED hub must not validate as GREEN evidence"
    assert red.integrity_problems == [], f"a RED hub is not damaged: {red.integrity_problems}"


# --------------------------------------------------------------------------- what compare looks at, and touches

def test_log_bytes_do_not_matter(ctx, hubs):
    log = hubs[1] / "pytest_unit_green.log"
    seal = write_log(log, log.read_text().replace("1 passed in 11.00s", "1 passed in 9.37s (another run)"))
    edit(ctx, hubs[1], "unit", seal)  # a rerun's log: other bytes, sealed by its own run
    assert run_compare(*hubs) == 0, "compare judges records, never log bytes"


def test_compare_never_writes_into_either_hub(ctx, hubs):
    edit(ctx, hubs[1], SMOKE, with_record(train_data_sha256="00" * 32))
    before = [hash_tree(h) for h in hubs]
    assert run_compare(*hubs, "--format", "json") == 1
    assert [hash_tree(h) for h in hubs] == before, "compare wrote into a hub"
    assert VerdictRecord.load(hubs[0] / HubFiles.verdict(SMOKE)).record["train_data_sha256"] == DATA_SHA


def test_cli_entry_point_exit_codes(hubs, tmp_path):
    """`python -m harness compare` end to end: 0 for agreeing hubs, 2 and no traceback for a missing one."""
    def cli(*args: Path) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "harness", "compare", *map(str, args)], capture_output=True,
                              text=True, cwd=HOME)

    ok = cli(*hubs)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.rstrip().endswith("result: AGREE (0 disagreement(s), 0 warning(s)); exit 0")
    bad = cli(tmp_path / "nope", hubs[1])
    assert bad.returncode == 2 and "does not exist" in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
