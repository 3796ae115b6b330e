"""Shared fixtures for the backend tests: the committed dataset, and small NPZ writers."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
# OpenMP's default busy-waiting makes torch 15-90x slower on a shared, oversubscribed CPU
# (measured on the 2-core dev box: a 4-sample training step 0.1 s -> 2.5 s with 2 threads).
# Passive waiting changes no result, only how idle threads wait; it must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

FIXTURE_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "pytorch_integration"
FIXTURE_NPZ = FIXTURE_DIR / "minimal_dataset_v1.npz"


@pytest.fixture(scope="session")
def fixture_npz() -> Path:
    """Path of the committed 64-pattern dataset."""
    return FIXTURE_NPZ


@pytest.fixture(scope="session")
def raw_fixture(fixture_npz: Path):
    """The committed dataset, loaded and validated once per session."""
    from ptycho.raw_data import RawData

    return RawData.from_file(fixture_npz)


def valid_arrays(M: int = 6, N: int = 8) -> dict[str, np.ndarray]:
    """A tiny dataset obeying DATA-001: M points on a line, N x N patterns."""
    rng = np.random.default_rng(0)
    return {
        "xcoords": np.linspace(10.0, 10.0 + 3 * (M - 1), M),
        "ycoords": np.full(M, 10.0),
        "diffraction": rng.uniform(0, 2, size=(M, N, N)).astype(np.float32),
        "probeGuess": np.ones((N, N), dtype=np.complex64),
        "objectGuess": np.ones((40, 40), dtype=np.complex64),
        "scan_index": np.arange(M),
    }


@pytest.fixture
def write_npz(tmp_path: Path) -> Callable[..., Path]:
    """``write_npz(name="data.npz", **overrides)``: a valid tiny NPZ with keys replaced or dropped (None)."""

    def write(name: str = "data.npz", **overrides: np.ndarray | None) -> Path:
        arrays = valid_arrays()
        for key, value in overrides.items():
            if value is None:
                arrays.pop(key, None)
            else:
                arrays[key] = value
        path = tmp_path / name
        np.savez(path, **arrays)
        return path

    return write


def _grid_arrays(side: int = 4, N: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    """A tiny valid scan: side x side points 6 px apart inside a 40 x 40 object, N x N patterns."""
    rng = np.random.default_rng(seed)
    steps = 10.0 + 6.0 * np.arange(side)
    y, x = np.meshgrid(steps, steps, indexing="ij")
    yy, xx = np.mgrid[:40, :40]
    return {
        "xcoords": x.ravel(),
        "ycoords": y.ravel(),
        "diffraction": rng.uniform(0, 2, size=(side * side, N, N)).astype(np.float32),
        "probeGuess": np.ones((N, N), dtype=np.complex64),
        "objectGuess": ((1 + xx / 80) * np.exp(0.3j * np.sin(yy / 6))).astype(np.complex64),
    }


@pytest.fixture(scope="session")
def grid_arrays() -> Callable[..., dict[str, np.ndarray]]:
    """``grid_arrays(side=4, N=8)``: the arrays of a tiny valid scan, side x side points inside a 40 x 40 object."""
    return _grid_arrays


@pytest.fixture
def tiny_scan(tmp_path: Path) -> Path:
    """A 16-point N=8 scan (``grid_arrays``) written to ``tmp_path/scan.npz``: trains in about a second."""
    path = tmp_path / "scan.npz"
    np.savez(path, **_grid_arrays())
    return path


@pytest.fixture
def tiny_bundle() -> Callable[..., Path]:
    """``tiny_bundle(output_dir, gridsize=1)``: write a real bundle for N=8 data, return the zip's path."""
    return _write_tiny_bundle


def _write_tiny_bundle(output_dir: Path, gridsize: int = 1) -> Path:
    """A real PtychoPINN bundle for N=8 data (untrained weights): what the inference CLI loads."""
    import dataclasses

    import torch

    from ptycho.config import ModelConfig
    from ptycho_torch.bundle import save_bundle
    from ptycho_torch.model import PtychoPINN

    config = ModelConfig(N=8, gridsize=gridsize)
    torch.manual_seed(0)
    network = PtychoPINN(config, probe=torch.ones(8, 8, dtype=torch.complex64))
    params = {**dataclasses.asdict(config), "intensity_scale": config.intensity_scale, "C": config.C}
    return save_bundle(output_dir, {"autoencoder": network.autoencoder, "diffraction_to_obj": network.diffraction_to_obj}, params)
