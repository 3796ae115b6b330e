"""The committed fixture: checksum, data contract, reproducible generator, physics consistency."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from ptycho.raw_data import RawData
from ptycho.checksums import sha256_file

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "make_fixture.py"


@pytest.fixture(scope="module")
def sidecar(fixture_npz) -> dict:
    return json.loads(fixture_npz.with_suffix(".json").read_text())


def test_sidecar_checksum_matches_the_file(fixture_npz, sidecar):
    assert sha256_file(fixture_npz) == sidecar["sha256"], "fixture changed without regenerating its sidecar"


def test_sidecar_describes_the_generation(sidecar):
    for key in ("version", "generator", "seed", "nphotons", "transformations", "shapes", "dtypes"):
        assert key in sidecar, f"sidecar lacks {key!r}"
    assert sidecar["n_patterns"] == 64 and sidecar["N"] == 64
    assert sidecar["shapes"]["diffraction"] == [64, 64, 64]


def test_fixture_meets_the_data_contract(fixture_npz, sidecar):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no FORMAT-001 transpose, no coordinates off the object
        raw = RawData.from_file(fixture_npz)
    with np.load(fixture_npz) as npz:
        assert {key: list(npz[key].shape) for key in npz.files} == sidecar["shapes"]
        assert {key: str(npz[key].dtype) for key in npz.files} == sidecar["dtypes"]
    assert 0 <= raw.diffraction.min() and raw.diffraction.max() < 10
    assert min(raw.objectGuess.shape) >= 128
    amplitude, phase = np.abs(raw.objectGuess), np.angle(raw.objectGuess)
    assert amplitude.std() > 0.05 and phase.std() > 0.1, "the object needs amplitude AND phase structure"


def test_fixture_supports_64_groups_of_gridsize_2(raw_fixture):
    grouped = raw_fixture.generate_grouped_data(N=64, K=4, nsamples=64, gridsize=2)
    assert grouped["diffraction"].shape == (64, 64, 64, 4)


def test_generator_reproduces_the_committed_bytes(tmp_path, fixture_npz, sidecar):
    out = tmp_path / "again.npz"
    subprocess.run(
        [sys.executable, str(SCRIPT), "--n-patterns", "64", "--seed", str(sidecar["seed"]),
         "--nphotons", str(sidecar["nphotons"]), "--out", str(out)],
        check=True, capture_output=True, text=True,
    )
    assert sha256_file(out) == sha256_file(fixture_npz)
    assert json.loads(out.with_suffix(".json").read_text())["sha256"] == sidecar["sha256"]


def _bilinear_patches(obj: np.ndarray, x: np.ndarray, y: np.ndarray, N: int) -> np.ndarray:
    """Independent bilinear patch extraction: pixel (i, j) = obj[y - N/2 + i, x - N/2 + j]."""
    patches = np.empty((len(x), N, N), dtype=np.complex128)
    for m, (xm, ym) in enumerate(zip(x, y, strict=True)):
        top, left = ym - N / 2, xm - N / 2
        r0, c0 = int(np.floor(top)), int(np.floor(left))
        fr, fc = top - r0, left - c0
        block = obj[r0 : r0 + N + 1, c0 : c0 + N + 1].astype(np.complex128)
        patches[m] = (
            (1 - fr) * (1 - fc) * block[:-1, :-1] + (1 - fr) * fc * block[:-1, 1:]
            + fr * (1 - fc) * block[1:, :-1] + fr * fc * block[1:, 1:]
        )
    return patches


def _normalised_residuals(raw: RawData, nphotons: float, order: np.ndarray) -> np.ndarray:
    N = raw.N
    scale = np.sqrt(nphotons) / (N / 2)
    patches = _bilinear_patches(raw.objectGuess, raw.xcoords[order], raw.ycoords[order], N)
    far_field = np.fft.fftshift(np.fft.fft2(patches * raw.probeGuess), axes=(-2, -1)) / N
    expected = (scale * np.abs(far_field)) ** 2
    counts = (scale * raw.diffraction.astype(np.float64)) ** 2
    bright = expected > 100
    return (counts[bright] - expected[bright]) / np.sqrt(expected[bright])


def test_stored_diffraction_is_the_forward_model_plus_poisson_noise(raw_fixture, sidecar):
    z = _normalised_residuals(raw_fixture, sidecar["nphotons"], np.arange(64))
    assert z.size > 10_000
    assert abs(z.mean()) < 0.05 and 0.9 < z.std() < 1.1, f"Poisson residuals: mean {z.mean():.3f}, std {z.std():.3f}"


def test_consistency_check_detects_an_index_mismatch(raw_fixture, sidecar):
    shifted = np.roll(np.arange(64), 1)  # coordinates of point i-1 paired with pattern i
    z = _normalised_residuals(raw_fixture, sidecar["nphotons"], shifted)
    assert z.std() > 10, "pairing each pattern with its neighbour's coordinates must break the consistency test"
