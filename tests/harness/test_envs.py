"""The evidence venv: one per project and recipe, rebuilt only when what decides its content changes."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest

from harness.context import HOME, RunContext, make_context
from harness.envs import (build_commands, compute_stamp, ensure_env, install_steps, pip_config_sources, recipe_files,
                          torch_source_args, venv_dir)
from harness.plan import ProjectSpec


@pytest.fixture
def ctx() -> RunContext:
    return make_context()  # the embedded project and its shipped plan


def test_default_recipe_installs_the_package_against_the_lock(ctx):
    assert install_steps(ctx) == [["-c", f"{HOME}/constraints.txt", "-e", ".[dev]"]]
    assert set(recipe_files(ctx)) == {HOME / "constraints.txt", HOME / "pyproject.toml"}


def test_stamp_changes_with_what_decides_the_venv(ctx, tmp_path):
    base = compute_stamp(ctx, [], "3.11.7")
    assert compute_stamp(ctx, [], "3.11.7") == base
    assert compute_stamp(ctx, [], "3.12.0") != base
    assert compute_stamp(ctx, ["--find-links", "/w"], "3.11.7") != base
    other = replace(ctx, plan=replace(ctx.plan, project=ProjectSpec(install=(("torch==2.13.0",),))))
    assert compute_stamp(other, [], "3.11.7") != base


def test_a_requirement_file_named_by_the_recipe_is_part_of_the_stamp(tmp_path):
    (tmp_path / "requirements-ci.txt").write_text("numpy==2.4.6\n")
    plan = replace(make_context().plan, project=ProjectSpec(install=(("-r", "requirements-ci.txt"),)))
    ctx = RunContext(HOME, tmp_path, plan)
    before = compute_stamp(ctx, [], "3.11.7")
    (tmp_path / "requirements-ci.txt").write_text("numpy==2.4.5\n")
    assert compute_stamp(ctx, [], "3.11.7") != before
    (tmp_path / "requirements-ci.txt").unlink()
    with pytest.raises(RuntimeError, match="requirements-ci.txt: named by the plan's \\[project\\] install steps"):
        compute_stamp(ctx, [], "3.11.7")


def test_one_venv_per_project_under_the_harness_home(ctx, tmp_path):
    assert venv_dir(ctx).parent == HOME / ".nox" / "evidence"
    elsewhere = RunContext(HOME, tmp_path / "PtychoPINN", ctx.plan)
    assert venv_dir(elsewhere) != venv_dir(ctx) and venv_dir(elsewhere).name.startswith("PtychoPINN-")


def test_pip_settings_are_carried_over_to_uv():
    config = ("global.find-links='/opt/wheels'\n:env:.find-links='/opt/wheels'\n"
              "global.extra-index-url='file:///a/simple file:///b/simple'\nglobal.cert='/x.pem'\n")
    assert pip_config_sources(config) == ["--find-links", "/opt/wheels", "--extra-index-url", "file:///a/simple",
                                          "--extra-index-url", "file:///b/simple"]
    assert torch_source_args({"EVIDENCE_TORCH_INDEX_URL": "https://x/cpu"}) == ["--extra-index-url", "https://x/cpu"]


def test_uv_and_pip_run_the_same_steps(tmp_path):
    steps = [["torch==2.13.0"], ["-e", ".", "--no-deps"]]
    uv = build_commands(tmp_path / "v", steps, ["--find-links", "/w"], "/bin/uv")
    pip = build_commands(tmp_path / "v", steps, ["--find-links", "/w"], None)
    assert uv[0][:2] == ["/bin/uv", "venv"] and pip[0][1:3] == ["-m", "venv"]
    assert [c[-len(s):] for c, s in zip(uv[1:], steps)] == steps == [c[-len(s):] for c, s in zip(pip[1:], steps)]
    assert all("unsafe-best-match" in c and "/w" in c for c in uv[1:]), "uv must search every index, as pip does"


def test_evidence_python_uses_a_given_interpreter_as_it_is(ctx, monkeypatch):
    monkeypatch.setenv("EVIDENCE_PYTHON", sys.executable)
    assert ensure_env(ctx, log=lambda _: None) == Path(sys.executable)
    monkeypatch.setenv("EVIDENCE_PYTHON", "/no/such/python")
    with pytest.raises(RuntimeError, match="no such interpreter"):
        ensure_env(ctx, log=lambda _: None)
