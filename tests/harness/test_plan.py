"""The evidence plan: the real plan loads as the seed describes; every mistake names its line."""

from __future__ import annotations

import re

from pathlib import Path

import pytest

from harness.plan import DEFAULT_PLAN, PlanError, expand, load_plan

ROOT = Path(__file__).resolve().parents[2]


def test_real_plan_matches_the_seed():
    plan = load_plan(ROOT / DEFAULT_PLAN)
    assert plan.id == "ADR-003-BACKEND-API/C4.D.B3"
    assert plan.hub_template == "plans/active/ADR-003-BACKEND-API/reports/{timestamp}/phase_c4d_at_parallel"
    assert plan.hub_for("2025-10-20T111500Z") == Path(
        "plans/active/ADR-003-BACKEND-API/reports/2025-10-20T111500Z/phase_c4d_at_parallel")
    assert plan.artifacts_for("2025-10-20T111500Z") == Path("artifacts/2025-10-20T111500Z")
    assert plan.tags == ("evidence", "phase-c4d-b3")
    assert [(t.name, t.kind, t.log) for t in plan.targets] == [
        ("gridsize_regression", "pytest", "pytest_gridsize_green.log"),
        ("bundle_loader", "pytest", "pytest_bundle_loader_green.log"),
        ("integration", "pytest", "pytest_integration_green.log"),
        ("cli_smoke_gs2", "command", "manual_cli_smoke_gs2.log"),
    ]
    assert plan.target("gridsize_regression").selector == (
        "tests/torch/test_workflows_components.py::TestWorkflowsComponentsTraining::"
        "test_lightning_training_respects_gridsize")
    assert "gridsize_regression" in plan.target("integration").after
    smoke = plan.target("cli_smoke_gs2")
    assert smoke.argv[:3] == ("{python}", "-m", "ptycho_torch.train")
    assert "/tmp/cli_smoke" not in smoke.argv
    assert smoke.argv[smoke.argv.index("--output_dir") + 1] == "{artifacts}/cli_smoke_gs2"
    assert smoke.expected_outputs == ("{artifacts}/cli_smoke_gs2/wts.h5.zip",
                                      "{artifacts}/cli_smoke_gs2/checkpoints/last.ckpt")
    assert (plan.environment.seed, plan.environment.threads) == (0, 2)
    assert plan.ledger.row == "B3" and plan.ledger.fix_plan == "docs/fix_plan.md"
    assert plan.ledger.plan_file.endswith("phase_c4d_blockers/plan.md")
    assert (plan.compare.loss_rtol, plan.compare.duration_ratio_warn) == (1e-4, 3.0)
    assert len(plan.sha256) == 64


def test_plan_is_frozen_and_hash_tracks_content(tmp_path):
    src = (ROOT / DEFAULT_PLAN).read_text()
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text(src)
    b.write_text(src + "\n# edited\n")
    plan_a, plan_b = load_plan(a), load_plan(b)
    assert plan_a.sha256 != plan_b.sha256
    with pytest.raises(AttributeError):
        plan_a.targets[0].timeout = 1  # type: ignore[misc]


GOOD_TARGET = '''[[targets]]
name = "one"
session = "one"
kind = "pytest"
selector = "tests/test_x.py::test_y"
log = "one.log"
timeout = 10
description = "first"
'''
HEAD = '''[plan]
id = "P"
title = "t"
hub = "reports/{timestamp}/hub"
artifacts = "artifacts/{timestamp}"

'''


def _lines_with(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), start=1) if needle in line)


@pytest.mark.parametrize(
    ("second", "needle", "message"),
    [
        ('name = "two"\nsession = "two"\nkind = "pytest"\nselector = "a"\nlog = "two.log"\ntimeout = 1\n'
         'description = "d"\ncolour = "red"\n', "colour", "unknown key 'colour'"),
        ('name = "two"\nsession = "two"\nkind = "pytest"\nselector = "a"\ntimeout = 1\ndescription = "d"\n',
         "[[targets]]", "missing key 'log'"),
        ('name = "two"\nsession = "two"\nkind = "pytest"\nselector = "a"\nlog = "one.log"\ntimeout = 1\n'
         'description = "d"\n', 'log = "one.log"', "duplicate log 'one.log'"),
        ('name = "one"\nsession = "two"\nkind = "pytest"\nselector = "a"\nlog = "two.log"\ntimeout = 1\n'
         'description = "d"\n', 'name = "one"', "duplicate name 'one'"),
        ('name = "two"\nsession = "one"\nkind = "pytest"\nselector = "a"\nlog = "two.log"\ntimeout = 1\n'
         'description = "d"\n', 'session = "one"', "duplicate session 'one'"),
        ('name = "two"\nsession = "two"\nkind = "shell"\nselector = "a"\nlog = "two.log"\ntimeout = 1\n'
         'description = "d"\n', "kind =", "kind 'shell'"),
        ('name = "two"\nsession = "two"\nkind = "pytest"\nselector = "a"\nlog = "two.log"\ntimeout = "ten"\n'
         'description = "d"\n', "timeout =", "'timeout' must be a number"),
        ('name = "two"\nsession = "two"\nkind = "pytest"\nselector = "a"\nlog = "two.log"\ntimeout = 1\n'
         'description = "d"\nafter = ["ghost"]\n', "after =", "unknown"),
        ('name = "two"\nsession = "two"\nkind = "command"\nargv = ["{pyhton}"]\nlog = "two.log"\ntimeout = 1\n'
         'description = "d"\n', "argv =", "unknown placeholder {pyhton}"),
        ('name = "two"\nsession = "two"\nkind = "pytest"\nselector = "a"\nlog = "sub/two.log"\ntimeout = 1\n'
         'description = "d"\n', "log =", "plain file name"),
        ('name = "two"\nsession = "tests"\nkind = "pytest"\nselector = "a"\nlog = "two.log"\ntimeout = 1\n'
         'description = "d"\n', 'session = "tests"', "reserved"),
    ],
    ids=["unknown-key", "missing-field", "duplicate-log", "duplicate-name", "duplicate-session", "bad-kind",
         "wrong-type", "after-unknown", "bad-placeholder", "log-path", "reserved-session"],
)
def test_second_target_errors_name_file_and_line(tmp_path, second, needle, message):
    text = HEAD + GOOD_TARGET + "\n[[targets]]\n" + second
    path = tmp_path / "plan.toml"
    path.write_text(text)
    # the second [[targets]] header, or the offending key line inside it
    start = text.rindex("[[targets]]")
    line = text[:start].count("\n") + 1 + (0 if needle == "[[targets]]" else _lines_with(text[start:], needle) - 1)
    with pytest.raises(PlanError, match=message) as err:
        load_plan(path)
    assert str(err.value).startswith(f"{path}:{line}: "), str(err.value)


def test_after_pointing_to_a_later_target_is_refused(tmp_path):
    first = GOOD_TARGET.replace('description = "first"', 'description = "first"\nafter = ["two"]')
    second = GOOD_TARGET.replace('"one"', '"two"').replace('"one.log"', '"two.log"')
    path = tmp_path / "plan.toml"
    path.write_text(HEAD + first + "\n" + second)
    with pytest.raises(PlanError, match="later in the list") as err:
        load_plan(path)
    assert f"{path}:{(HEAD + first).splitlines().index('after = [' + chr(34) + 'two' + chr(34) + ']') + 1}:" in str(err.value)


def test_unknown_plan_key_names_its_line(tmp_path):
    path = tmp_path / "plan.toml"
    path.write_text(HEAD.replace('title = "t"', 'title = "t"\nowner = "me"') + GOOD_TARGET)
    with pytest.raises(PlanError, match=rf"{path}:4: unknown key 'owner' in \[plan\]"):
        load_plan(path)


def test_hub_template_needs_a_timestamp(tmp_path):
    path = tmp_path / "plan.toml"
    path.write_text(HEAD.replace("reports/{timestamp}/hub", "reports/hub") + GOOD_TARGET)
    with pytest.raises(PlanError, match=rf"{path}:4: 'hub' must contain {{timestamp}}"):
        load_plan(path)


def test_toml_syntax_error_names_the_file(tmp_path):
    path = tmp_path / "plan.toml"
    path.write_text(HEAD + "[[targets]\nname = 1\n")
    with pytest.raises(PlanError, match=rf"{path}: TOML syntax error: .*line 7"):
        load_plan(path)


def test_missing_plan_file_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="evidence plan not found"):
        load_plan(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("[compare]\nloss_rtol = 0.01\nshape_atol = 0\n", "unknown key 'shape_atol' in [compare]"),
        ("[compare]\nduration_ratio_warn = 0.5\n", "'duration_ratio_warn' must be > 1"),
        ("[compare]\nloss_rtol = -1\n", "tolerances must be >= 0"),
        ("", "'timeout' must be > 0, got -5"),
        ("[project]\ninstall = [\"torch==2.13.0\"]\n", "'install' must be a list of non-empty lists of strings"),
        ("[project]\ninstall = [[\"-r\", \"{nope}/r.txt\"]]\n", "unknown placeholder {nope}"),
        ("[project]\nproduction = [\"../outside\"]\n", "must be a relative path inside the project"),
    ],
)
def test_bad_optional_tables_name_their_line(tmp_path, table, message):
    path = tmp_path / "plan.toml"
    target = GOOD_TARGET if table else GOOD_TARGET.replace("timeout = 10", "timeout = -5")
    path.write_text(HEAD + table + "\n" + target)
    with pytest.raises(PlanError, match=re.escape(message)):
        load_plan(path)


def test_project_table_and_target_inputs(tmp_path):
    path = tmp_path / "plan.toml"
    path.write_text(HEAD + '[project]\ninstall = [["torch==2.13.0"], ["-r", "requirements-ci.txt"], '
                    '["-e", ".", "--no-deps"]]\nproduction = ["ptycho", "ptycho_torch"]\n\n'
                    + GOOD_TARGET.replace('timeout', 'inputs = ["datasets/Run1084.npz"]\nfigures = ["{artifacts}/a.png"]\ntimeout'))
    plan = load_plan(path)
    assert plan.project.install == (("torch==2.13.0",), ("-r", "requirements-ci.txt"), ("-e", ".", "--no-deps"))
    assert plan.project.production == ("ptycho", "ptycho_torch")
    assert plan.targets[0].inputs == ("datasets/Run1084.npz",) and plan.targets[0].figures == ("{artifacts}/a.png",)


def test_defaults_without_optional_tables(tmp_path):
    path = tmp_path / "plan.toml"
    path.write_text(HEAD + GOOD_TARGET)
    plan = load_plan(path)
    assert (plan.environment.seed, plan.environment.threads) == (0, 2)
    assert plan.ledger.row is None and plan.tags == ()


def test_expand_fills_placeholders():
    assert expand("{python} -o {artifacts}/x", python="py", artifacts="artifacts/T") == "py -o artifacts/T/x"
