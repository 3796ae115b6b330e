"""The simulator's named probes: their properties, and a structured-probe scan that keeps DATA-001."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from ptycho.raw_data import RawData
from ptycho.simulation import (
    PROBES,
    far_field_amplitude,
    make_diffuser_probe,
    make_named_probe,
    make_probe,
    simulate_dataset,
    write_dataset,
)

N = 64


def _envelope(sigma: float) -> np.ndarray:
    yy, xx = np.mgrid[:N, :N] - N / 2
    return np.exp(-(xx**2 + yy**2) / (2 * sigma**2))


def _far_field_width(probe: np.ndarray) -> float:
    """RMS radius (pixels) of the probe's far-field intensity: how far it spreads on the detector."""
    intensity = far_field_amplitude(probe) ** 2
    yy, xx = np.mgrid[:N, :N] - N / 2
    return float(np.sqrt(np.sum(intensity * (xx**2 + yy**2)) / intensity.sum()))


@pytest.mark.parametrize("name", PROBES)
def test_every_named_probe_is_complex64_with_unit_peak_and_records_its_name(name):
    probe, record = make_named_probe(name, N)
    assert probe.shape == (N, N) and probe.dtype == np.complex64
    assert np.abs(probe).max() == pytest.approx(1.0, abs=1e-6)
    assert record["name"] == name


def test_gaussian_is_the_unchanged_smooth_probe():
    probe, record = make_named_probe("gaussian", N)
    np.testing.assert_array_equal(probe, make_probe(N))
    assert record == {"name": "gaussian", "kind": "gaussian with quadratic phase", "sigma_px": N / 8, "defocus": 0.5}


@pytest.mark.parametrize("name", ["diffuser", "zoneplate"])
def test_structured_probes_have_a_gaussian_envelope_of_sigma_n_over_6(name):
    probe, record = make_named_probe(name, N)
    np.testing.assert_allclose(np.abs(probe), _envelope(N / 6), atol=1e-6)
    assert record["sigma_px"] == N / 6


def test_diffuser_phase_has_the_requested_rms_and_correlation_length():
    # angle() wraps phases beyond +-pi, so read the field drawn with a small rms (same seed, same shape)
    noise = np.angle(make_diffuser_probe(N, seed=3, phase_rms=0.3)).astype(np.float64) / 0.3
    assert noise.std() == pytest.approx(1.0, rel=1e-3), "phase is scaled to phase_rms standard deviation"
    assert abs(noise.mean()) < 1e-3
    lag = lambda d: float(np.mean(noise * np.roll(noise, d, axis=1)))  # noqa: E731 (unit variance)
    assert lag(1) > 0.8, f"a 2 px Gaussian filter keeps neighbours correlated (got {lag(1):.2f})"
    assert abs(lag(8)) < 0.2, f"and decorrelates 8 px apart (got {lag(8):.2f})"
    wrapped = np.angle(make_diffuser_probe(N, seed=3)) / 1.5
    assert np.mean(np.abs(wrapped - noise) < 1e-3) > 0.9, "phase_rms scales the same field (wrapped beyond pi)"


def test_diffuser_is_seeded():
    np.testing.assert_array_equal(make_diffuser_probe(N, seed=1), make_diffuser_probe(N, seed=1))
    assert not np.allclose(make_diffuser_probe(N, seed=1), make_diffuser_probe(N, seed=2))


def test_structured_probes_spread_the_diffraction_far_wider_than_the_gaussian():
    gaussian = _far_field_width(make_named_probe("gaussian", N)[0])
    for name in ("diffuser", "zoneplate"):
        width = _far_field_width(make_named_probe(name, N)[0])
        assert width > 2 * gaussian, f"{name}: far-field RMS radius {width:.1f} px vs gaussian {gaussian:.1f} px"


def test_unknown_probe_names_the_choices():
    with pytest.raises(ValueError, match="probe 'speckle' is unknown; choose one of"):
        simulate_dataset(n_patterns=4, probe="speckle")


@pytest.fixture(scope="module")
def diffuser_scan():
    return simulate_dataset(n_patterns=16, nphotons=1e9, seed=0, probe="diffuser")


def test_a_diffuser_scan_meets_data_001(diffuser_scan, tmp_path):
    arrays = diffuser_scan.arrays
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no FORMAT-001 transpose, no coordinates off the object
        raw = RawData.from_arrays(arrays)
    assert raw.diffraction.shape == (16, N, N) and arrays["diffraction"].dtype == np.float32
    assert 0 <= raw.diffraction.min() and raw.diffraction.max() < 10
    assert arrays["xcoords"].dtype == np.float64 and arrays["probeGuess"].dtype == np.complex64
    assert arrays["objectGuess"].dtype == np.complex64
    np.testing.assert_array_equal(arrays["scan_index"], np.arange(16))
    npz, sidecar = write_dataset(diffuser_scan, tmp_path / "diffuser.npz")
    record = json.loads(sidecar.read_text())
    assert record["probe"]["name"] == "diffuser" and record["probe"]["phase_rms_rad"] == 1.5
    with np.load(npz) as data:
        np.testing.assert_array_equal(data["probeGuess"], arrays["probeGuess"])


def _bilinear_patch(obj: np.ndarray, x: float, y: float) -> np.ndarray:
    """Independent bilinear extraction: pixel (i, j) = obj[y - N/2 + i, x - N/2 + j]."""
    top, left = y - N / 2, x - N / 2
    r0, c0 = int(np.floor(top)), int(np.floor(left))
    fr, fc = top - r0, left - c0
    b = obj[r0 : r0 + N + 1, c0 : c0 + N + 1].astype(np.complex128)
    return ((1 - fr) * (1 - fc) * b[:-1, :-1] + (1 - fr) * fc * b[:-1, 1:]
            + fr * (1 - fc) * b[1:, :-1] + fr * fc * b[1:, 1:])


def test_a_diffuser_scan_is_the_forward_model_plus_poisson_noise(diffuser_scan):
    """Diffraction i against |fftshift(fft2(patch_i * probe))| / N recomputed here, then Poisson residuals."""
    arrays = diffuser_scan.arrays
    patches = np.stack([_bilinear_patch(arrays["objectGuess"], x, y)
                        for x, y in zip(arrays["xcoords"], arrays["ycoords"], strict=True)])
    far = np.abs(np.fft.fftshift(np.fft.fft2(patches * arrays["probeGuess"]), axes=(-2, -1))) / N
    np.testing.assert_allclose(diffuser_scan.noiseless_amplitude, far, rtol=1e-3, atol=1e-5)
    scale = np.sqrt(1e9) / (N / 2)
    expected = (scale * far) ** 2
    counts = (scale * arrays["diffraction"].astype(np.float64)) ** 2
    bright = expected > 100
    z = (counts[bright] - expected[bright]) / np.sqrt(expected[bright])
    assert z.size > 5_000 and abs(z.mean()) < 0.05 and 0.9 < z.std() < 1.1, f"residuals {z.mean():.3f} +- {z.std():.3f}"
