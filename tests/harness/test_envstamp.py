"""The evidence-venv stamp: a warm run installs nothing, any input change reinstalls."""

from __future__ import annotations

import pytest

from harness import envstamp


@pytest.fixture
def root(tmp_path):
    (tmp_path / "constraints.txt").write_text("torch==2.13.0\n")
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    return tmp_path


def test_stamp_is_stable_and_tracks_every_input(root):
    base = envstamp.compute_stamp(root, "3.11.7", env={})
    assert base == envstamp.compute_stamp(root, "3.11.7", env={"UNRELATED": "1"})
    changed = {
        "python": envstamp.compute_stamp(root, "3.11.8", env={}),
        "index": envstamp.compute_stamp(root, "3.11.7", env={envstamp.TORCH_INDEX_ENV: "https://x/cpu"}),
        "links": envstamp.compute_stamp(root, "3.11.7", env={envstamp.TORCH_FIND_LINKS_ENV: "/wheels"}),
    }
    (root / "constraints.txt").write_text("torch==2.13.1\n")
    changed["lock"] = envstamp.compute_stamp(root, "3.11.7", env={})
    (root / "constraints.txt").write_text("torch==2.13.0\n")
    (root / "pyproject.toml").write_text("[project]\nname = 'y'\n")
    changed["pyproject"] = envstamp.compute_stamp(root, "3.11.7", env={})
    assert len({base, *changed.values()}) == 6, changed


def test_is_current_only_after_a_stamp_was_written(root, tmp_path):
    venv = tmp_path / "venv"
    venv.mkdir()
    stamp = envstamp.compute_stamp(root, env={})
    assert not envstamp.is_current(venv, stamp)
    envstamp.write_stamp(venv, stamp)
    assert envstamp.is_current(venv, stamp)
    assert not envstamp.is_current(venv, "0" * 64)


def test_install_args_use_the_lock_and_the_configured_torch_source():
    assert envstamp.install_args({}) == ["-c", "constraints.txt", "-e", ".[dev]"]
    args = envstamp.install_args({envstamp.TORCH_INDEX_ENV: "https://download.pytorch.org/whl/cpu",
                                  envstamp.TORCH_FIND_LINKS_ENV: "/opt/wheels"})
    assert args == ["-c", "constraints.txt", "--extra-index-url", "https://download.pytorch.org/whl/cpu",
                    "--find-links", "/opt/wheels", "-e", ".[dev]"]


def test_missing_lock_file_is_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="constraints.txt: needed to build the evidence venv"):
        envstamp.compute_stamp(tmp_path)
