"""The pictures a training run leaves in ``<output_dir>/figures``, and the per-step losses behind them."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import zipfile

import numpy as np
import pytest
from matplotlib.image import imread

from ptycho.config import ExecutionConfig, ModelConfig, TrainingConfig
from ptycho_torch.data import build_container
from ptycho_torch.figures import plot_loss_curve, plot_reconstruction
from ptycho_torch.train import main
from ptycho_torch.workflows import components

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, grid_arrays):
    """One brief CLI training (16 groups of 4, 2 epochs = 8 steps, no logger): (output_dir as typed, record)."""
    root = tmp_path_factory.mktemp("tiny_run")
    data = root / "scan.npz"
    np.savez(data, **grid_arrays())
    output_dir = f"{root}/run/"  # typed with a trailing slash: the record keeps the user's folder
    argv = ["--train_data_file", str(data), "--output_dir", output_dir, "--gridsize", "2", "--neighbor_count", "5",
            "--batch_size", "4", "--max_epochs", "2", "--logger", "none", "--accelerator", "cpu"]  # fmt: skip
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(argv) == 0
    last = stdout.getvalue().strip().splitlines()[-1]
    assert last.startswith("TRAIN_RECORD ")
    return root / "run", json.loads(last.removeprefix("TRAIN_RECORD "))


def test_training_writes_the_loss_curve_and_the_reconstruction_preview(tiny_run):
    output_dir, _ = tiny_run
    for name in ("loss_curve.png", "reconstruction.png"):
        path = output_dir / "figures" / name
        assert path.is_file(), f"{name} missing after training"
        assert path.read_bytes()[:8] == PNG_SIGNATURE, f"{name} is not a PNG"
        height, width, _ = imread(path).shape
        assert height > 200 and width > 400, f"{name} is only {width}x{height}"


def test_train_record_lists_the_figures(tiny_run):
    output_dir, record = tiny_run
    assert record["figures"] == [str(output_dir / "figures" / "loss_curve.png"), str(output_dir / "figures" / "reconstruction.png")]


def test_neighbor_count_reaches_the_bundle(tiny_run):
    output_dir, record = tiny_run
    with zipfile.ZipFile(output_dir / "wts.h5.zip") as archive:
        params = json.loads(archive.read("params.json"))
    assert (params["gridsize"], params["neighbor_count"]) == (2, 5)
    assert record["shapes"]["diffraction"] == [4, 4, 8, 8]


@pytest.mark.parametrize("logger", ["none", "csv"])
def test_every_step_loss_is_recorded_whatever_the_logger(logger, raw_fixture, tmp_path):
    config = TrainingConfig(model=ModelConfig(gridsize=1), n_groups=6, batch_size=2, max_epochs=2, output_dir=tmp_path)
    result = components._train_with_lightning(build_container(raw_fixture, config), None, config, ExecutionConfig(logger=logger))
    steps = result["history"]["train_loss_step"]
    assert len(steps) == 6 and all(np.isfinite(steps)), f"expected 3 steps x 2 epochs, got {steps}"
    assert np.allclose(np.mean(steps[:3]), result["history"]["train_loss"][0], rtol=1e-5), "steps and epoch mean disagree"
    if logger == "csv":
        (metrics,) = tmp_path.glob("lightning_logs/version_*/metrics.csv")
        logged = [float(row["train_loss_step"]) for row in csv.DictReader(metrics.open()) if row["train_loss_step"]]
        assert logged == pytest.approx(steps, rel=1e-6), "the CSV logger must write every step (log_every_n_steps=1)"


def _object(shape=(40, 40)):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return ((1 + xx / 80) * np.exp(0.5j * np.sin(yy / 5))).astype(np.complex64)


def test_same_inputs_give_the_same_pixels_and_bytes_without_a_version_stamp(tmp_path):
    truth = _object()
    covered = np.zeros(truth.shape, bool)
    covered[5:35, 5:35] = True
    for run in ("a", "b"):
        plot_loss_curve([3.0, 2.5, 2.0, 1.8], [2.75, 1.9], tmp_path / f"curve_{run}.png")
        plot_reconstruction(truth * np.exp(0.3j), covered, truth, tmp_path / f"recon_{run}.png", "title")
    for name in ("curve", "recon"):
        a, b = (tmp_path / f"{name}_{run}.png" for run in ("a", "b"))
        assert np.array_equal(imread(a), imread(b)) and a.read_bytes() == b.read_bytes()
        assert b"matplotlib" not in a.read_bytes().lower(), "PNG metadata must not carry the matplotlib version"


def test_preview_without_ground_truth_shows_the_reconstruction_alone(tmp_path):
    path = plot_reconstruction(_object(), np.ones((40, 40), bool), None, tmp_path / "r.png", "no objectGuess")
    with_truth = plot_reconstruction(_object(), np.ones((40, 40), bool), _object(), tmp_path / "t.png", "with truth")
    assert imread(path).shape[0] < imread(with_truth).shape[0], "one row of panels instead of two"
