"""``python -m ptycho_torch.train``: flags, legacy aliases, user-facing errors.

Training itself runs in ``test_integration_workflow_torch.py``; these tests stop before it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from ptycho_torch.cli import shared
from ptycho_torch.train import build_parser, main, prepare_output_dir, resolve_n_groups

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "pytorch_integration" / "minimal_dataset_v1.npz"
SEED_FLAGS = [
    "--n_images", "64", "--gridsize", "2", "--batch_size", "4", "--max_epochs", "1",
    "--disable_mlflow", "--device", "cpu", "--accelerator", "cpu", "--learning-rate", "1e-3",
    "--num-workers", "0", "--deterministic",
]  # fmt: skip


def _run_cli(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(
        [sys.executable, "-m", "ptycho_torch.train", *argv],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=120,
    )  # fmt: skip


def test_parser_accepts_the_seed_flags_verbatim(tmp_path):
    args = build_parser().parse_args(
        ["--train_data_file", "a.npz", "--test_data_file", "b.npz", "--output_dir", str(tmp_path), *SEED_FLAGS]
    )
    assert (args.n_images, args.gridsize, args.batch_size, args.max_epochs) == (64, 2, 4, 1)
    assert (args.device, args.accelerator, args.learning_rate, args.num_workers) == ("cpu", "cpu", 1e-3, 0)
    assert args.disable_mlflow and args.deterministic
    assert args.logger is None, "no --logger given: resolved later (csv, or none with --disable_mlflow)"


@pytest.mark.parametrize(
    ("n_groups", "n_images", "expected"), [(None, None, None), (8, None, 8), (None, 8, 8), (8, 8, 8)]
)
def test_n_images_is_an_alias_of_n_groups(n_groups, n_images, expected):
    assert resolve_n_groups(n_groups, n_images) == expected


def test_conflicting_n_groups_and_n_images_is_an_error():
    with pytest.raises(ValueError, match="--n_groups 8 conflicts with its alias --n_images 16"):
        resolve_n_groups(8, 16)


@pytest.mark.parametrize(
    ("logger", "disable_mlflow", "expected"),
    [(None, False, "csv"), (None, True, "none"), ("csv", True, "csv"), ("none", False, "none")],
)
def test_logger_resolution(logger, disable_mlflow, expected):
    with warnings.catch_warnings(record=True):
        assert shared.resolve_logger(logger, disable_mlflow) == expected


def test_disable_mlflow_warns_with_the_modern_flag():
    with pytest.warns(DeprecationWarning, match="--disable_mlflow is deprecated; use --logger none"):
        shared.resolve_logger(None, True)


def test_device_warns_with_the_modern_flag():
    with pytest.warns(DeprecationWarning, match="--device is deprecated; use --accelerator"):
        assert shared.resolve_accelerator("cpu", "cpu") == "cpu"


def test_device_alone_selects_the_accelerator():
    with pytest.warns(DeprecationWarning):
        assert shared.resolve_accelerator(None, "cpu") == "cpu"


def test_device_conflicting_with_accelerator_is_an_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="conflicts with --accelerator"):
        shared.resolve_accelerator("cpu", "cuda")


def test_gpu_without_cuda_is_an_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="use --accelerator cpu"):
        shared.resolve_accelerator("gpu", None)
    assert shared.resolve_accelerator("auto", None) == "cpu"


def test_mlflow_logger_without_mlflow_is_an_error(monkeypatch):
    monkeypatch.setattr(shared.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match="pip install mlflow"):
        shared.resolve_logger("mlflow", False)


def test_disable_mlflow_conflicts_with_logger_mlflow():
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="conflicts with --logger mlflow"):
        shared.resolve_logger("mlflow", True)


def test_output_dir_with_an_earlier_run_is_refused(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"old")
    (tmp_path / "wts.h5.zip").write_bytes(b"old")
    with pytest.raises(ValueError, match="--overwrite"):
        prepare_output_dir(tmp_path, overwrite=False)
    assert (tmp_path / "checkpoints" / "last.ckpt").exists(), "refusing must not delete anything"


def test_overwrite_deletes_the_earlier_run(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"old")
    (tmp_path / "wts.h5.zip").write_bytes(b"old")
    (tmp_path / "notes.txt").write_text("kept")
    prepare_output_dir(tmp_path, overwrite=True)
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "wts.h5.zip").exists()
    assert (tmp_path / "notes.txt").read_text() == "kept", "only the bundle and checkpoints are removed"


def test_missing_train_file_is_reported_without_traceback(tmp_path):
    missing = tmp_path / "nope.npz"
    result = _run_cli("--train_data_file", str(missing), "--output_dir", str(tmp_path / "out"), *SEED_FLAGS)
    assert result.returncode == 2, result.stderr
    assert f"error: --train_data_file: file not found: {missing}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists(), "nothing is written for bad input"


def test_legacy_flags_print_visible_deprecation_warnings(tmp_path):
    result = _run_cli("--train_data_file", str(tmp_path / "nope.npz"), "--output_dir", str(tmp_path), *SEED_FLAGS)
    assert "DeprecationWarning: --device is deprecated; use --accelerator" in result.stderr
    assert "DeprecationWarning: --disable_mlflow is deprecated; use --logger none" in result.stderr


def test_conflicting_aliases_exit_2(tmp_path):
    result = _run_cli(
        "--train_data_file", str(FIXTURE), "--output_dir", str(tmp_path), "--n_groups", "4", "--n_images", "8"
    )
    assert result.returncode == 2 and "error: --n_groups 4 conflicts" in result.stderr


def test_mlflow_missing_exits_2_with_a_clear_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(shared.importlib.util, "find_spec", lambda name: None)
    argv = ["--train_data_file", str(FIXTURE), "--output_dir", str(tmp_path), "--logger", "mlflow"]
    assert shared.run_cli(main, argv) == 2
    assert "error: --logger mlflow needs the optional package mlflow" in capsys.readouterr().err


def test_main_rejects_bad_input_in_process(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        main(["--train_data_file", str(tmp_path / "nope.npz"), "--output_dir", str(tmp_path)])
    assert shared.run_cli(main, ["--train_data_file", str(tmp_path / "nope.npz"), "--output_dir", "x"]) == 2


def test_too_few_patterns_for_the_groups_exits_2_with_the_fix(tmp_path, capsys):
    with np.load(FIXTURE) as npz:
        arrays = {key: npz[key] for key in npz.files}
    for key in ("xcoords", "ycoords", "diffraction", "scan_index"):
        arrays[key] = arrays[key][:10]
    small = tmp_path / "small.npz"
    np.savez(small, **arrays)
    argv = ["--train_data_file", str(small), "--output_dir", str(tmp_path / "out"),
            "--n_images", "64", "--gridsize", "2", "--accelerator", "cpu"]  # fmt: skip
    assert shared.run_cli(main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "64 groups requested" in err and "--n_images" in err
    assert not (tmp_path / "out").exists(), "bad data is rejected before the output directory is created"
