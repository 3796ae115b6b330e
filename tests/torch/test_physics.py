"""Each physics operation against an independent NumPy computation on a small case."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ptycho_torch import physics

RNG = np.random.default_rng(7)


def _complex(*shape: int) -> np.ndarray:
    return (RNG.standard_normal(shape) + 1j * RNG.standard_normal(shape)).astype(np.complex64)


def test_far_field_amplitude_of_a_known_patch_and_probe():
    N = 16
    obj, probe = _complex(2, 3, N, N), _complex(N, N)
    psi = physics.illuminate(torch.from_numpy(obj), torch.from_numpy(probe))
    np.testing.assert_allclose(psi.numpy(), obj * probe, rtol=1e-6)
    expected = np.abs(np.fft.fftshift(np.fft.fft2(obj * probe), axes=(-2, -1))) / N
    got = physics.far_field_amplitude(psi)
    assert got.dtype == torch.float32 and got.shape == (2, 3, N, N)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4, atol=1e-5)


def test_far_field_puts_zero_frequency_at_the_centre():
    N = 8
    flat = torch.ones(1, 1, N, N, dtype=torch.complex64)
    amplitude = physics.far_field_amplitude(flat)[0, 0]
    assert amplitude[N // 2, N // 2] == pytest.approx(N)  # |sum| / N = N*N / N
    assert float(amplitude.sum()) == pytest.approx(N)


def test_intensity_scale():
    assert physics.intensity_scale(1e9, 64) == pytest.approx(988.2118, rel=1e-6)


def test_poisson_nll_squares_the_observation():
    scale = 50.0
    pred = RNG.uniform(0.1, 2, (2, 1, 4, 4)).astype(np.float32)
    obs = RNG.uniform(0.1, 2, (2, 1, 4, 4)).astype(np.float32)
    lam, counts = (scale * pred.astype(np.float64)) ** 2, (scale * obs.astype(np.float64)) ** 2
    expected = np.mean(lam - counts * np.log(lam + physics.EPS))
    got = physics.poisson_nll(torch.from_numpy(pred), torch.from_numpy(obs), scale)
    assert float(got) == pytest.approx(expected, rel=1e-5)


def test_poisson_loss_is_minimal_at_the_true_amplitude():
    scale = physics.intensity_scale(1e9, 64)
    obs = torch.from_numpy(RNG.uniform(0.01, 3, (4, 1, 8, 8)).astype(np.float32))
    factors = [0.8, 0.9, 0.99, 1.0, 1.01, 1.1, 1.2]
    losses = [float(physics.poisson_loss(obs * f, obs, scale)) for f in factors]
    assert int(np.argmin(losses)) == factors.index(1.0), f"losses {losses}"
    assert losses[factors.index(1.0)] == pytest.approx(0.0, abs=1e-3)
    assert min(losses[:3] + losses[4:]) > 0


def test_poisson_loss_has_the_gradient_of_the_nll():
    scale = 30.0
    obs = torch.rand(2, 1, 4, 4) + 0.1
    pred_a = (torch.rand(2, 1, 4, 4) + 0.1).requires_grad_()
    pred_b = pred_a.detach().clone().requires_grad_()
    physics.poisson_loss(pred_a, obs, scale).backward()
    physics.poisson_nll(pred_b, obs, scale).backward()
    torch.testing.assert_close(pred_a.grad, pred_b.grad)


def test_translate_by_whole_pixels_is_a_zero_filled_roll():
    image = _complex(12, 12)
    moved = physics.translate(torch.from_numpy(image)[None], torch.tensor([[2.0, -3.0]]))[0].numpy()
    expected = np.zeros_like(image)
    expected[0:9, 2:12] = image[3:12, 0:10]  # content moves right by 2 (x) and up by 3 (y)
    np.testing.assert_allclose(moved, expected, atol=1e-5)


def test_translate_by_half_a_pixel_interpolates():
    image = RNG.standard_normal((6, 6)).astype(np.float32)
    moved = physics.translate(torch.from_numpy(image)[None], torch.tensor([[0.5, 0.0]]))[0].numpy()
    np.testing.assert_allclose(moved[:, 1:], (image[:, :-1] + image[:, 1:]) / 2, atol=1e-5)


def _group_of_copies(N: int = 16, offsets=((-3, -2), (3, -2), (-3, 2), (3, 2))):
    """C patches cut from one object around a common centre; positions as coords_relative."""
    obj = _complex(64, 64)
    centre = 32
    patches = np.stack([obj[centre + dy - N // 2 : centre + dy + N // 2, centre + dx - N // 2 : centre + dx + N // 2]
                        for dx, dy in offsets])
    positions = -np.asarray(offsets, dtype=np.float32)[:, None, :]  # (C, 1, 2): patch sits at -positions
    return obj, centre, torch.from_numpy(patches)[None], torch.from_numpy(positions)[None]


@pytest.mark.parametrize("mask_size", [16, 8])
def test_merge_of_translated_copies_returns_the_object(mask_size):
    N = 16
    obj, centre, patches, positions = _group_of_copies(N)
    mask = physics.central_mask(N, mask_size)
    canvas, weight, pad = physics.merge_patches(patches, positions, mask)
    M = N + 2 * pad
    window = obj[centre - M // 2 : centre + M // 2, centre - M // 2 : centre + M // 2]
    covered = weight[0].numpy() > 0.999
    assert covered.sum() >= mask_size**2
    np.testing.assert_allclose(canvas[0].numpy()[covered], window[covered], atol=1e-5)


def test_unmasked_numerator_would_amplify_the_periphery():
    """Guard: the masked numerator is what keeps the merge exact (BRIEF §5)."""
    N = 16
    obj, centre, patches, positions = _group_of_copies(N)
    mask = physics.central_mask(N, 8)
    canvas, weight, pad = physics.merge_patches(patches, positions, mask)
    unmasked, _, _ = physics.merge_patches(patches, positions, torch.ones(N, N))
    unmasked_sum = unmasked * physics.merge_patches(patches, positions, torch.ones(N, N))[1]
    wrong = unmasked_sum / weight.clamp_min(physics.EPS)
    covered = weight[0] > 0.999
    assert not torch.allclose(wrong[0][covered], canvas[0][covered], atol=1e-3)


def test_extract_returns_each_patch_in_the_overlap_region():
    N = 16
    _, _, patches, positions = _group_of_copies(N)
    mask = physics.central_mask(N, 8)
    canvas, weight, pad = physics.merge_patches(patches, positions, mask)
    back = physics.extract_patches(canvas, positions, N, pad)
    coverage = physics.extract_patches(weight, positions, N, pad)
    covered = coverage > 0.999
    assert covered.sum() > 4 * 8 * 8 * 0.9
    np.testing.assert_allclose(back[covered].numpy(), patches[covered].numpy(), atol=1e-5)


def test_overlap_constraint_keeps_consistent_patches_and_pulls_inconsistent_ones_together():
    N = 16
    _, _, patches, positions = _group_of_copies(N)
    mask = physics.central_mask(N, 8)
    kept = physics.overlap_constraint(patches, positions, mask)
    torch.testing.assert_close(kept, patches, atol=1e-5, rtol=1e-5)

    noisy = patches.clone()
    noisy[0, 0] += torch.from_numpy(_complex(N, N))
    pulled = physics.overlap_constraint(noisy, positions, mask)
    before = (noisy[0, 0] - patches[0, 0]).abs().mean()
    after = (pulled[0, 0] - patches[0, 0]).abs().mean()
    assert after < 0.8 * before, "the other three patches must correct the noisy one where they overlap"
