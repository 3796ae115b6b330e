"""Hubs: timestamped, never overwritten, with run.json (selected targets, identity) written through the schema."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timezone

import pytest

from harness.context import HOME, RunContext
from harness.fsio import atomic_write_json, atomic_write_text, HubWriteError
from harness.hub import HubExistsError, create_hub, new_timestamp, open_hub
from harness.plan import load_plan
from harness.schema import HubFiles, RunRecord


@pytest.fixture
def ctx(project, write_plan, targets) -> RunContext:
    return RunContext(HOME, project, load_plan(write_plan([targets.pytest("ok", "tests/test_synthetic.py::test_pass")])))


def test_timestamp_is_the_seeds_form():
    assert new_timestamp(datetime(2025, 10, 20, 11, 15, tzinfo=timezone.utc)) == "2025-10-20T111500Z"


def test_same_second_gets_a_suffix_and_never_reuses_a_folder(ctx):
    first = create_hub(ctx, targets=("ok",), timestamp="2025-10-20T111500Z")
    second = create_hub(ctx, targets=("ok",), timestamp="2025-10-20T111500Z")
    assert first.timestamp == "2025-10-20T111500Z" and second.timestamp == "2025-10-20T111500Z-2"
    assert first.path != second.path and first.artifacts != second.artifacts


def test_explicit_existing_hub_is_refused_and_left_alone(ctx, project):
    existing = project / "my_hub"
    existing.mkdir()
    (existing / "keep.log").write_text("precious")
    with pytest.raises(HubExistsError, match="exists already; a hub is never overwritten"):
        create_hub(ctx, targets=("ok",), explicit=existing)
    assert (existing / "keep.log").read_text() == "precious" and not (existing / HubFiles.RUN).exists()


def test_explicit_new_hub_is_created(ctx, project):
    hub = create_hub(ctx, targets=("ok",), timestamp="2025-10-20T111500Z", explicit="elsewhere/hub")
    assert hub.path == project / "elsewhere/hub" and (hub.path / HubFiles.INCOMPLETE).is_file()
    assert hub.artifacts == project / "artifacts/2025-10-20T111500Z"


def test_run_json_outside_git_says_the_commit_is_unknown(ctx, project):
    hub = create_hub(ctx, timestamp="2025-10-20T111500Z", targets=("ok",))
    data = json.loads((hub.path / HubFiles.RUN).read_text())
    assert data["schema"] == "evidence-run/2"
    assert data["plan"] == {"path": str(project / "plan.toml"), "sha256": ctx.plan.sha256, "id": "SYN/1"}
    assert (data["hub"], data["artifacts"]) == ("reports/2025-10-20T111500Z/hub", "artifacts/2025-10-20T111500Z")
    assert data["git"]["sha"] == "unknown" and "not a git repository" in data["git"]["note"]
    assert (data["project_commit"], data["commit_source"], data["targets"]) == (None, "unknown", ["ok"])
    assert open_hub(hub.path, ctx) == hub


def test_project_commit_is_recorded_for_a_checkout_without_git(ctx):
    hub = create_hub(RunContext(ctx.home, ctx.project, ctx.plan, project_commit="712c23f3"), targets=("ok",))
    assert (hub.run.project_commit, hub.run.commit_source) == ("712c23f3", "--project-commit")


def test_run_json_records_dirty_tracked_files_and_production_changes(ctx, project):
    def git(*args):
        subprocess.run(["git", "-C", str(project), *args], check=True, capture_output=True)

    (project / "src").mkdir()
    (project / "src" / "mod.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    clean = create_hub(ctx, targets=("ok",)).run
    assert len(clean.git.sha) == 40 and clean.git.dirty is False and clean.commit_source == "git"
    (project / "src" / "mod.py").write_text("x = 2\n")
    (project / "src" / "new.py").write_text("")
    dirty = create_hub(ctx, targets=("ok",)).run.git
    assert dirty.dirty is True and dirty.dirty_files == ("src/mod.py",)
    assert dirty.production_changed == ("src/mod.py", "src/new.py")


def test_open_hub_refuses_a_plain_folder(ctx, project):
    with pytest.raises(FileNotFoundError, match="not a hub the harness created"):
        open_hub(project, ctx)


def test_a_target_that_already_ran_is_refused_without_touching_the_hub(ctx):
    from harness.runner import run_target

    hub = create_hub(ctx, targets=("ok",))
    (hub.path / "ok.log").write_text("ran\n")
    before = sorted(p.name for p in hub.path.iterdir())
    with pytest.raises(FileExistsError, match="already ran in this hub"):
        run_target(ctx, hub, ctx.plan.target("ok"), threads=1)
    assert sorted(p.name for p in hub.path.iterdir()) == before, "a refused target must leave the hub as it was"


def test_a_hub_whose_artifacts_leave_the_project_is_refused(ctx):
    hub = create_hub(ctx, targets=("ok",))
    data = json.loads((hub.path / HubFiles.RUN).read_text())
    atomic_write_json(hub.path / HubFiles.RUN, {**data, "artifacts": "../../elsewhere"})
    with pytest.raises(ValueError, match="lie outside the project"):
        open_hub(hub.path, ctx)


def test_atomic_writes_leave_no_temp_files(tmp_path):
    atomic_write_text(tmp_path / "a" / "x.txt", "hello")
    atomic_write_json(tmp_path / "a" / "y.json", {"k": [1, 2]})
    assert json.loads((tmp_path / "a" / "y.json").read_text()) == {"k": [1, 2]}
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["x.txt", "y.json"]


def test_a_failed_write_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    """A full disk, injected (CI runs as root, so a read-only folder would not fail)."""
    target = tmp_path / "summary.md"
    target.write_text("earlier")

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("harness.fsio.os.fsync", full)
    with pytest.raises(HubWriteError, match="cannot write .*summary.md: No space left on device"):
        atomic_write_text(target, "new")
    assert target.read_text() == "earlier" and [p.name for p in tmp_path.iterdir()] == ["summary.md"]


def test_run_record_round_trips_through_the_schema(ctx):
    hub = create_hub(ctx, targets=("ok",))
    assert RunRecord.load(hub.path) == hub.run
