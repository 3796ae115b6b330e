"""Hubs: seed-style UTC timestamps, never overwritten, run.json with the git state at start."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import datetime, timezone

import pytest

from harness.hub import (HubExistsError, atomic_write_json, atomic_write_text, create_hub, new_timestamp,
                         open_hub)
from harness.plan import load_plan


@pytest.fixture
def plan(write_plan, targets):
    return load_plan(write_plan([targets.pytest("ok", "tests/test_synthetic.py::test_pass")]))


def test_timestamp_is_utc_in_the_seed_form():
    assert new_timestamp(datetime(2025, 10, 20, 11, 15, 0, tzinfo=timezone.utc)) == "2025-10-20T111500Z"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{6}Z", new_timestamp())


def test_two_hubs_in_the_same_second_get_two_folders(plan, project):
    first = create_hub(plan, project, timestamp="2025-10-20T111500Z")
    second = create_hub(plan, project, timestamp="2025-10-20T111500Z")
    assert first.path != second.path
    assert first.path == project / "reports/2025-10-20T111500Z/hub"
    assert second.path == project / "reports/2025-10-20T111500Z-2/hub"
    assert first.artifacts != second.artifacts and second.artifacts.is_dir()
    assert second.timestamp == "2025-10-20T111500Z-2"


def test_explicit_existing_hub_is_refused(plan, project):
    existing = project / "my_hub"
    existing.mkdir()
    (existing / "keep.log").write_text("precious")
    with pytest.raises(HubExistsError, match="exists already; a hub is never overwritten"):
        create_hub(plan, project, explicit=existing)
    assert (existing / "keep.log").read_text() == "precious"
    assert not (existing / "run.json").exists()


def test_explicit_new_hub_is_created(plan, project):
    hub = create_hub(plan, project, timestamp="2025-10-20T111500Z", explicit="elsewhere/hub")
    assert hub.path == project / "elsewhere/hub" and (hub.path / "INCOMPLETE").is_file()
    assert hub.artifacts == project / "artifacts/2025-10-20T111500Z"


def test_run_json_outside_git(plan, project):
    hub = create_hub(plan, project, timestamp="2025-10-20T111500Z")
    run = json.loads((hub.path / "run.json").read_text())
    assert run["plan"] == {"path": "plan.toml", "sha256": plan.sha256, "id": "SYN/1"}
    assert run["timestamp"] == "2025-10-20T111500Z"
    assert run["artifacts"] == "artifacts/2025-10-20T111500Z"
    assert run["hub"] == "reports/2025-10-20T111500Z/hub"
    assert run["project_root"] == str(project)
    assert run["git"]["sha"] == "unknown" and "not a git repository" in run["git"]["note"]
    assert (hub.path / "INCOMPLETE").is_file() and (hub.path / "verdicts").is_dir()
    assert open_hub(hub.path, project) == hub


def test_run_json_records_dirty_tracked_files_and_src_changes(plan, project):
    def git(*args):
        subprocess.run(["git", "-C", str(project), *args], check=True, capture_output=True)

    (project / "src").mkdir()
    (project / "src" / "mod.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    clean = json.loads((create_hub(plan, project).path / "run.json").read_text())["git"]
    assert len(clean["sha"]) == 40 and clean["dirty"] is False and clean["src_changed"] == []

    (project / "src" / "mod.py").write_text("x = 2\n")
    (project / "src" / "new.py").write_text("")
    dirty = json.loads((create_hub(plan, project).path / "run.json").read_text())["git"]
    assert dirty["dirty"] is True and dirty["dirty_files"] == ["src/mod.py"]
    assert dirty["src_changed"] == ["src/mod.py", "src/new.py"]


def test_open_hub_refuses_a_plain_folder(project):
    with pytest.raises(FileNotFoundError, match="not a hub created by the harness"):
        open_hub(project, project)


def test_atomic_writes_leave_no_temp_files(tmp_path):
    atomic_write_text(tmp_path / "a" / "x.txt", "hello")
    atomic_write_json(tmp_path / "a" / "y.json", {"k": [1, 2]})
    assert (tmp_path / "a" / "x.txt").read_text() == "hello"
    assert json.loads((tmp_path / "a" / "y.json").read_text()) == {"k": [1, 2]}
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["x.txt", "y.json"]
