"""Hub files get the permissions of any file the user creates (0666 less the umask), not mkstemp's private 0600."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Iterator

import pytest
from factory import collated, context, make_project

from harness.fsio import atomic_write_text
from harness.schema import EnvironmentRecord, HubFiles, Runtime


@pytest.fixture(params=[0o022, 0o077], ids=["umask-022", "umask-077"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_hub_files_follow_the_umask(tmp_path: Path, umask: int) -> None:
    ctx = context(make_project(tmp_path / "p"))
    hub = collated(ctx)
    EnvironmentRecord(Runtime(python="3.11.7"), {"torch": "2.13.0+cpu"}).write(hub)
    expected = 0o666 & ~umask
    files = {p.relative_to(hub).as_posix(): oct(mode(p)) for p in hub.rglob("*") if p.is_file()}
    assert {HubFiles.MANIFEST, HubFiles.SUMMARY, HubFiles.RUN, HubFiles.JUNIT, HubFiles.ENVIRONMENT} <= set(files)
    assert set(files.values()) == {oct(expected)}, f"hub files must be {oct(expected)} under umask {umask:o}: {files}"
    assert os.umask(umask) == umask, "writing must not change the process's umask"


def test_a_replaced_file_keeps_its_permissions(tmp_path: Path, umask: int) -> None:
    target = tmp_path / "fix_plan.md"
    target.write_text("old\n")
    target.chmod(0o664)
    atomic_write_text(target, "new\n")
    assert (target.read_text(), mode(target)) == ("new\n", 0o664)
