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
