"""Fast checks of the quality metrics (bench/metrics.py) and the rPIE baseline (bench/epie.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

# bench/ is a script folder at the repository root, not an installed package.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.epie import rpie
from bench.metrics import (
    Region,
    frc_curve,
    frc_resolution,
    register_subpixel,
    scanned_region,
    score,
    stitched_region,
)


def _object(shape: tuple[int, int] = (96, 96), seed: int = 0) -> np.ndarray:
    """A smooth complex test object with amplitude in ~[0.5, 1] and phase in ~[-1, 1] rad."""
    rng = np.random.default_rng(seed)
    amp = ndimage.gaussian_filter(rng.random(shape), 2.0)
    amp = 0.5 + 0.5 * (amp - amp.min()) / np.ptp(amp)
    phase = ndimage.gaussian_filter(rng.random(shape), 2.0)
    phase = 2.0 * (phase - phase.min()) / np.ptp(phase) - 1.0
    return (amp * np.exp(1j * phase)).astype(np.complex64)


REGION = Region(16, 80, 16, 80)


def test_score_ignores_global_phase_offset_and_amplitude_scale():
    truth = _object()
    recon = (1.7 * truth * np.exp(1j * 0.9)).astype(np.complex64)
    s = score(recon, truth, REGION)
    assert s.ssim_amp == pytest.approx(1.0, abs=1e-4)
    assert s.ssim_phase == pytest.approx(1.0, abs=1e-4)
    assert s.phase_offset_rad == pytest.approx(0.9, abs=1e-4)
    assert s.amp_scale == pytest.approx(1 / 1.7, rel=1e-4)


def test_score_recovers_a_subpixel_shift():
    truth = _object()
    shifted = np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(truth), (0.4, -1.3))).astype(np.complex64)
    registered = score(shifted, truth, REGION, register=True)
    unregistered = score(shifted, truth, REGION, register=False)
    assert registered.shift_px == pytest.approx((-0.4, 1.3), abs=0.06)
    assert registered.ssim_amp > 0.98, registered
    assert registered.ssim_amp > unregistered.ssim_amp + 0.02, (registered, unregistered)


def test_register_subpixel_refuses_a_large_shift():
    truth = _object()
    rolled = np.roll(truth, 9, axis=1)
    out, shift = register_subpixel(rolled, truth, max_shift=4.0)
    assert abs(shift[1]) == pytest.approx(9.0, abs=0.1)
    assert out is rolled, "a shift beyond max_shift is a coordinate bug and must not be hidden"


def test_score_decreases_with_noise():
    truth = _object()
    rng = np.random.default_rng(1)
    noise = rng.normal(size=truth.shape) + 1j * rng.normal(size=truth.shape)
    scores = [score((truth + sigma * noise).astype(np.complex64), truth, REGION, register=False)
              for sigma in (0.01, 0.05, 0.2)]
    ssim_amp = [s.ssim_amp for s in scores]
    psnr_phase = [s.psnr_phase for s in scores]
    assert ssim_amp[0] > ssim_amp[1] > ssim_amp[2], ssim_amp
    assert psnr_phase[0] > psnr_phase[1] > psnr_phase[2], psnr_phase
    assert ssim_amp[2] < 0.5, "sigma 0.2 noise on a 0.5-contrast object must score badly"


def test_score_rejects_mismatched_grids_and_nan():
    truth = _object()
    with pytest.raises(ValueError, match="ground-truth grid"):
        score(truth[:90], truth, REGION)
    bad = truth.copy()
    bad[40, 40] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        score(bad, truth, REGION)


def test_frc_is_one_for_identical_images_and_low_for_independent_noise():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(64, 64))
    assert np.allclose(frc_curve(a, a), 1.0)
    assert frc_resolution(frc_curve(a, a)) == 1.0
    b = rng.normal(size=(64, 64))
    assert frc_resolution(frc_curve(a, b)) < 0.2


def test_scanned_region_is_the_grown_and_clipped_bounding_box():
    region = scanned_region(np.array([40.0, 70.5]), np.array([33.0, 60.0]), (100, 80), margin=16)
    assert region == Region(17, 77, 24, 80)  # x1 clipped to the width


def test_stitched_region_keeps_n_over_4_minus_jitter_around_the_scan():
    region = stitched_region(np.array([40.0, 70.5]), np.array([33.0, 60.0]), (100, 100), N=64)
    assert region == Region(33 - 14, 60 + 14 + 1, 40 - 14, 71 + 14 + 1)


def test_region_too_small_for_ssim_is_an_error():
    with pytest.raises(ValueError, match="7x7 window"):
        Region(0, 5, 0, 50)


def _simulate(obj: np.ndarray, probe: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer-grid raster scan, amplitudes by direct NumPy slicing (independent of bench.epie)."""
    n = probe.shape[0]
    centres = np.arange(n // 2, obj.shape[0] - n // 2 + 1, step)
    xs, ys = (g.ravel().astype(np.float64) for g in np.meshgrid(centres, centres))
    amps = np.stack([
        np.abs(np.fft.fftshift(np.fft.fft2(obj[int(y) - n // 2:int(y) + n // 2,
                                               int(x) - n // 2:int(x) + n // 2] * probe, norm="ortho")))
        for x, y in zip(xs, ys)
    ]).astype(np.float32)
    return amps, xs, ys


def test_rpie_reconstructs_a_small_object_with_the_known_probe():
    truth = _object((64, 64), seed=3)
    n = 24
    yy, xx = np.mgrid[:n, :n] - n / 2
    probe = (np.exp(-(xx ** 2 + yy ** 2) / (2 * 5.0 ** 2)) * np.exp(0.05j * (xx ** 2 + yy ** 2))).astype(np.complex64)
    amps, xs, ys = _simulate(truth, probe, step=4)
    region = scanned_region(xs, ys, truth.shape, margin=n // 4)
    flat = np.ones_like(truth)
    initial = score(flat + 1e-3 * truth, truth, region)
    result = rpie(amps, probe, xs, ys, truth.shape, epochs=60, batch_size=16)
    final = score(result.obj, truth, region)
    assert result.fourier_error[-1] < 0.05 * result.fourier_error[0], result.fourier_error[::10]
    assert final.ssim_amp > 0.95, final
    assert final.ssim_phase > 0.95, final
    assert final.ssim_amp > initial.ssim_amp + 0.3


def test_rpie_callback_stops_early_and_positions_are_checked():
    truth = _object((48, 48), seed=4)
    probe = np.ones((16, 16), np.complex64)
    amps, xs, ys = _simulate(truth, probe, step=8)
    result = rpie(amps, probe, xs, ys, truth.shape, epochs=50, callback=lambda epoch, obj: epoch >= 3)
    assert result.epochs == 3
    with pytest.raises(ValueError, match="outside"):
        rpie(amps, probe, xs + 20, ys, truth.shape, epochs=1)
