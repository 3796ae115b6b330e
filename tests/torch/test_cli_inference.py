"""``python -m ptycho_torch.inference``: flags and user-facing errors.

The full train -> infer run is in ``test_integration_workflow_torch.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ptycho_torch.cli.shared import run_cli
from ptycho_torch.inference import build_parser, main, save_images

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "pytorch_integration" / "minimal_dataset_v1.npz"


def _run_cli(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(
        [sys.executable, "-m", "ptycho_torch.inference", *argv], capture_output=True, text=True, env=env, timeout=120
    )


def test_parser_accepts_the_documented_flags(tmp_path):
    args = build_parser().parse_args(
        ["--model_path", "run", "--test_data", "d.npz", "--output_dir", str(tmp_path), "--n_images", "8"]
    )
    assert (args.model_path, args.test_data, args.output_dir, args.n_groups) == (
        Path("run"), Path("d.npz"), tmp_path, 8
    )


def test_missing_bundle_exits_2_naming_the_path(tmp_path):
    result = _run_cli("--model_path", str(tmp_path), "--test_data", str(FIXTURE), "--output_dir", str(tmp_path / "o"))
    assert result.returncode == 2
    assert f"error: model bundle not found: {tmp_path / 'wts.h5.zip'}" in result.stderr
    assert "Traceback" not in result.stderr


def test_tensorflow_bundle_exits_2_naming_the_backend(tmp_path, capsys):
    manifest = {"backend": "tensorflow", "version": "1", "models": ["autoencoder", "diffraction_to_obj"]}
    with zipfile.ZipFile(tmp_path / "wts.h5.zip", "w") as archive:
        archive.writestr("manifest.json", json.dumps(manifest))
    data = tmp_path / "data.npz"
    data.touch()  # the archive is rejected before the data is read
    argv = ["--model_path", str(tmp_path), "--test_data", str(data), "--output_dir", str(tmp_path / "o")]
    assert run_cli(main, argv) == 2
    assert "written by the 'tensorflow' backend" in capsys.readouterr().err


def test_missing_test_data_is_a_file_not_found_error(tmp_path):
    (tmp_path / "wts.h5.zip").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        main(["--model_path", str(tmp_path), "--test_data", str(tmp_path / "nope.npz"), "--output_dir", str(tmp_path)])


def test_bad_batch_size_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="--batch_size 0 is invalid: use an integer >= 1"):
        main(["--model_path", "x", "--test_data", "y", "--output_dir", str(tmp_path), "--batch_size", "0"])


def test_images_have_colorbars_and_blank_uncovered_pixels(tmp_path):
    yy, xx = np.mgrid[:40, :50]
    obj = (1 + xx / 50) * np.exp(1j * yy / 40)
    covered = np.ones(obj.shape, bool)
    covered[:5] = False
    amplitude, phase = save_images(obj, covered, tmp_path)
    assert amplitude.name == "reconstructed_amplitude.png" and phase.name == "reconstructed_phase.png"
    for path in (amplitude, phase):
        assert path.stat().st_size > 1000
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
