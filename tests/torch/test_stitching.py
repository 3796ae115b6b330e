"""Translate-and-average stitching against objects built in the test."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ptycho_torch.stitching import canvas_shape_for, stitch_patches

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


def test_ground_truth_patches_at_coords_nn_restitch_to_the_fixture_object():
    """Ties stitching to the data contract: the simulator's patches, placed at the container's
    absolute ``coords_nn`` (gridsize 2, as inference does it), rebuild ``objectGuess``."""
    from pathlib import Path

    from ptycho.config import ModelConfig, TrainingConfig
    from ptycho.raw_data import RawData
    from ptycho.simulation import extract_patches
    from ptycho_torch.data import build_container

    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "pytorch_integration" / "minimal_dataset_v1.npz"
    raw = RawData.from_file(fixture)
    container = build_container(raw, TrainingConfig(model=ModelConfig(N=raw.N, gridsize=2)))
    positions = container.coords_nn.reshape(-1, 2).numpy().astype(np.float64)  # (B*C, 2) xy
    patches = extract_patches(raw.objectGuess, positions[:, 0], positions[:, 1], raw.N)
    canvas, weights = stitch_patches(
        patches, positions, raw.objectGuess.shape, inner_size=raw.N // 2, return_weights=True
    )
    covered = weights >= 1.0
    assert covered.mean() > 0.3
    error = np.abs(canvas[covered] - raw.objectGuess[covered])
    assert np.median(error) < 0.02 and error.max() < 0.2, f"median {np.median(error):.3g}, max {error.max():.3g}"
    swapped = stitch_patches(patches, positions[:, ::-1], raw.objectGuess.shape, inner_size=raw.N // 2)
    assert np.median(np.abs(swapped[covered] - raw.objectGuess[covered])) > 5 * np.median(error)
