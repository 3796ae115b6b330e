"""Translate-and-average stitching against objects built in the test."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ptycho_torch.stitching import WEIGHTINGS, canvas_shape_for, probe_intensity_weight, stitch_patches, stitch_weight

N = 16


def _smooth_object(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    amp = ndimage.gaussian_filter(rng.random(shape), 3) + 0.5
    phase = ndimage.gaussian_filter(rng.standard_normal(shape), 3)
    return (amp * np.exp(1j * phase)).astype(np.complex64)


def _wave(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """A smooth analytic object: bilinear interpolation is nearly exact, half a pixel is not."""
    return (1 + 0.3 * np.sin(2 * np.pi * cols / 24)) * np.exp(2j * np.pi * (cols / 20 + rows / 30))


def test_integer_positions_reproduce_the_object_where_covered():
    obj = _smooth_object((48, 48))
    centres = [(x, y) for y in range(8, 41, 4) for x in range(8, 41, 4)]
    patches = np.stack([obj[y - N // 2 : y + N // 2, x - N // 2 : x + N // 2] for x, y in centres])
    canvas, weights = stitch_patches(patches, np.array(centres, float), obj.shape, return_weights=True)
    assert canvas.dtype == np.complex64 and canvas.shape == obj.shape
    np.testing.assert_allclose(canvas, obj, rtol=1e-5, atol=1e-6)
    assert weights.min() >= 1.0, "every pixel of this scan is covered at least once"


def test_subpixel_positions_match_the_object_in_the_interior():
    rows, cols = np.mgrid[:64, :64]
    obj = _wave(rows, cols)
    rng = np.random.default_rng(2)
    centres = np.array([(x, y) for y in range(12, 53, 5) for x in range(12, 53, 5)], float)
    centres += rng.uniform(-0.5, 0.5, centres.shape)
    offsets = np.arange(N) - N / 2
    patches = np.stack([_wave(*np.meshgrid(offsets + y, offsets + x, indexing="ij")) for x, y in centres])
    interior = (slice(10, 54), slice(10, 54))
    error = np.abs(stitch_patches(patches, centres, obj.shape)[interior] - obj[interior]).max()
    rounded = np.abs(stitch_patches(patches, np.round(centres), obj.shape)[interior] - obj[interior]).max()
    assert error < 0.07, f"sub-pixel stitch error {error:.3g} too large"
    assert rounded > 2 * error, "the test object must be sensitive to sub-pixel placement"


def test_overlaps_are_averaged_not_summed():
    patches = np.stack([np.full((N, N), 1.0 + 0j), np.full((N, N), 3.0 + 0j)])
    positions = np.array([[12.0, 12.0], [16.0, 12.0]])  # second patch shifted 4 px right
    canvas, weights = stitch_patches(patches, positions, (24, 28), return_weights=True)
    assert canvas[12, 5] == 1.0  # only the first patch
    assert canvas[12, 14] == 2.0  # both patches: mean of 1 and 3
    assert canvas[12, 22] == 3.0  # only the second
    assert weights[12, 14] == 2.0
    assert canvas[0, 27] == 0.0  # outside every patch: fill value


def test_inner_size_keeps_only_the_patch_centre():
    patches = np.ones((1, N, N), complex)
    canvas, weights = stitch_patches(
        patches, np.array([[10.0, 10.0]]), (20, 20), inner_size=8, return_weights=True
    )
    assert weights.sum() == 64
    assert weights[6:14, 6:14].min() == 1.0
    assert canvas[5, 10] == 0.0


def test_patches_partly_outside_the_canvas_are_clipped():
    patches = np.ones((1, N, N), complex)
    canvas, weights = stitch_patches(patches, np.array([[2.0, 2.0]]), (10, 10), return_weights=True)
    assert weights.sum() == 10 * 10  # rows/cols -6..9 clipped to 0..9
    assert np.all(canvas == 1.0)


def test_canvas_shape_for_holds_every_patch():
    positions = np.array([[8.0, 8.0], [40.5, 20.0]])
    height, width = canvas_shape_for(positions, N)
    assert width >= 40.5 + N / 2 and height >= 20 + N / 2


@pytest.mark.parametrize(
    ("patches", "positions", "message"),
    [
        (np.ones((2, N, N)), np.zeros((3, 2)), "positions must have shape"),
        (np.ones((2, N, 8)), np.zeros((2, 2)), "patches must have shape"),
        (np.ones((1, N, N)), np.array([[np.nan, 1.0]]), "NaN"),
    ],
)
def test_bad_inputs_raise_value_error(patches, positions, message):
    with pytest.raises(ValueError, match=message):
        stitch_patches(patches, positions, (32, 32))


def _gaussian_weight(sigma: float = N / 8) -> np.ndarray:
    offsets = np.arange(N) - N / 2
    probe = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * sigma**2))
    return probe_intensity_weight(probe.astype(np.complex64))


def _jittered_scan(seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.array([(x, y) for y in range(10, 39, 4) for x in range(10, 39, 4)], float)
    return centres + rng.uniform(-0.5, 0.5, centres.shape)


def test_weight_none_is_the_uniform_average_bit_for_bit():
    rng = np.random.default_rng(4)
    patches = (rng.standard_normal((64, N, N)) + 1j * rng.standard_normal((64, N, N))).astype(np.complex64)
    centres = _jittered_scan()
    default, w_default = stitch_patches(patches, centres, (48, 48), inner_size=12, return_weights=True)
    explicit, w_explicit = stitch_patches(patches, centres, (48, 48), inner_size=12, return_weights=True, weight=None)
    ones, w_ones = stitch_patches(patches, centres, (48, 48), inner_size=12, return_weights=True,
                                  weight=np.ones((N, N)))
    for canvas, weights in ((explicit, w_explicit), (ones, w_ones)):
        assert np.array_equal(canvas, default) and np.array_equal(weights, w_default)


@pytest.mark.parametrize("inner_size", [None, N // 2])
def test_weighted_copies_of_one_patch_return_the_patch(inner_size):
    patch = _smooth_object((N, N), seed=5)
    centres = np.array([[20.0, 20.0], [20.0, 20.0], [20.0, 20.0]])
    weight = _gaussian_weight()
    canvas, weights = stitch_patches(np.stack([patch] * 3), centres, (40, 40), inner_size=inner_size,
                                     return_weights=True, weight=weight)
    start = (N - (inner_size or N)) // 2
    window = slice(12 + start, 28 - start)
    covered = weights > 1e-6  # the Gaussian's far corners (|P|^2 < 1e-6) count as uncovered
    assert covered[16:24, 16:24].all() and not covered[:12].any() and not covered[:, 28:].any()
    expected = np.zeros((40, 40), complex)
    expected[window, window] = patch[start:N - start, start:N - start]
    np.testing.assert_allclose(canvas[covered], expected[covered], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(weights[window, window], 3 * weight[start:N - start, start:N - start])


def test_weight_ignores_corruption_where_the_probe_is_dark():
    """A patch that is wrong only where its weight is ~0 leaves the weighted stitch intact."""
    obj = _smooth_object((48, 48), seed=6)
    centres = np.array([(x, y) for y in range(12, 37, 4) for x in range(12, 37, 4)], float)
    patches = np.stack([obj[y - N // 2 : y + N // 2, x - N // 2 : x + N // 2] for x, y in centres.astype(int)])
    weight = np.zeros((N, N))
    weight[4:12, 4:12] = 1.0  # "probe" lights the central 8x8 only
    corrupted = patches.copy()
    dark = weight == 0
    corrupted[:, dark] = 5.0 * np.exp(2j)  # garbage wherever the weight is zero
    interior = (slice(8, 40), slice(8, 40))  # lit by some patch's centre
    weighted = stitch_patches(corrupted, centres, obj.shape, weight=weight)
    uniform = stitch_patches(corrupted, centres, obj.shape)
    np.testing.assert_allclose(weighted[interior], obj[interior], rtol=1e-5, atol=1e-6)
    assert np.abs(uniform[interior] - obj[interior]).max() > 1.0, "uniform averaging must see the corruption"


@pytest.mark.parametrize(
    ("weight", "message"),
    [
        (np.ones((N, N - 1)), "weight must have shape"),
        (np.ones((2, N, N)), "weight must have shape"),
        (-np.ones((N, N)), "non-negative"),
        (np.ones((N, N), complex), "real"),
        (np.full((N, N), np.nan), "NaN"),
    ],
)
def test_bad_weight_raises_value_error(weight, message):
    with pytest.raises(ValueError, match=message):
        stitch_patches(np.ones((1, N, N)), np.array([[16.0, 16.0]]), (32, 32), weight=weight)


def test_probe_intensity_weight_is_normalised_intensity():
    weight = _gaussian_weight()
    assert weight.shape == (N, N) and weight.max() == 1.0 and weight.min() > 0
    with pytest.raises(ValueError, match="non-zero"):
        probe_intensity_weight(np.zeros((N, N)))


@pytest.mark.parametrize("weighting", WEIGHTINGS)
def test_stitch_weight_names_the_probe_weight_or_none(weighting):
    probe = np.sqrt(_gaussian_weight()).astype(np.complex64)
    weight = stitch_weight(probe, weighting)
    if weighting == "uniform":
        assert weight is None
    else:
        np.testing.assert_allclose(weight, np.abs(probe) ** 2 / (np.abs(probe) ** 2).max())


def test_stitch_weight_refuses_an_unknown_name():
    with pytest.raises(ValueError, match="use one of"):
        stitch_weight(np.ones((N, N)), "gaussian")
