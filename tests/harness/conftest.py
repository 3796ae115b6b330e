"""Fixtures for harness tests: a tiny synthetic project in tmp_path, and plan files for it.

The runner is driven against throw-away pytest files and commands, never the real backend, so
these tests stay fast and independent of src/. Every hub they create lives under tmp_path.
"""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path
from typing import Callable, Iterator

import pytest
from factory import context, make_project, plan_text, table_for_command, table_for_pytest

from harness.context import RunContext

SLURM_LOCAL = Path(__file__).resolve().parents[2] / "scripts" / "slurm-local.sh"

# The pytest runs these tests start (in synthetic projects that never use hypothesis) skip hypothesis's pytest
# plugin: its terminal summary imports all of hypothesis, 0.7 s of CPU per run (hypothesis 6.170.15,
# _hypothesis_pytestplugin.py, pytest_terminal_summary). This suite's own pytest keeps the plugin.
os.environ["PYTEST_ADDOPTS"] = " ".join(filter(None, [os.environ.get("PYTEST_ADDOPTS"), "-p no:hypothesispytest"]))

SYNTHETIC_TESTS = '''
import os
import sys
import time

import pytest


def test_pass():
    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""
    assert os.environ["PYTHONHASHSEED"] == "0"


def test_fail():
    assert 1 == 2, "boom-failure-text"


def test_skip():
    pytest.skip("not on this machine")


@pytest.mark.xfail(reason="known bug")
def test_xfail():
    assert 0


@pytest.mark.xfail(reason="thought broken")
def test_xpass():
    assert 1


@pytest.fixture
def broken_fixture():
    raise RuntimeError("fixture-setup-failed")


def test_error(broken_fixture):
    pass


def test_hang():
    time.sleep(60)
'''


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project root with conftest-less test files: synthetic outcomes, an empty file, pass + skip."""
    root = tmp_path / "project"
    (root / "tests").mkdir(parents=True)
    (root / "tests" / "test_synthetic.py").write_text(textwrap.dedent(SYNTHETIC_TESTS))
    (root / "tests" / "test_empty.py").write_text("# no tests here\n")
    (root / "tests" / "test_mixed.py").write_text(
        "import pytest\n\ndef test_ok():\n    pass\n\ndef test_skipped():\n    pytest.skip('later')\n"
    )
    return root


@pytest.fixture
def write_plan(project: Path) -> Callable[..., Path]:
    """Write a plan for `project` and return its path."""

    def write(targets: list[dict], name: str = "plan.toml", **plan: object) -> Path:
        path = project / name
        path.write_text(plan_text(targets, **plan))
        return path

    return write


class TargetFactory:
    """Build [[targets]] tables: `targets.pytest(name, selector)` / `targets.command(name, code)`."""

    pytest = staticmethod(table_for_pytest)
    command = staticmethod(table_for_command)


@pytest.fixture
def targets() -> type[TargetFactory]:
    return TargetFactory


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A factory project (tests/harness/factory.py): a committed git repository with a three-target plan."""
    return make_project(tmp_path / "proj").resolve()


@pytest.fixture
def ctx(root: Path) -> RunContext:
    return context(root)


@pytest.fixture(scope="session")
def cluster() -> Iterator[Path]:
    """The real one-node Slurm cluster (scripts/slurm-local.sh start, idempotent and locked, so pytest-xdist
    workers share it), named in SLURM_CONF for the whole session; it fails, never skips, if it cannot start."""
    done = subprocess.run(["bash", str(SLURM_LOCAL), "start"], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=600)
    if done.returncode != 0:
        pytest.fail(f"scripts/slurm-local.sh start failed (exit {done.returncode}): {done.stderr.strip()}")
    conf = Path(os.environ.get("SLURM_LOCAL_DIR", "/tmp/slurm-local")) / "slurm.conf"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SLURM_CONF", str(conf))
        yield conf
