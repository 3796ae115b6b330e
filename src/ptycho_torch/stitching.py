"""Stitch reconstructed patches into one object: translate-and-average on a canvas.

Why here and not in the model: stitching is post-processing shared by the inference CLI
and the benchmarks; it needs only NumPy/SciPy and the absolute patch positions.

Convention (BRIEF §5, DATA-001): a patch centred at scan point (x, y) covers
``canvas[y - N/2 : y + N/2, x - N/2 : x + N/2]`` (x = column, y = row). Sub-pixel parts
are applied with bilinear interpolation (``scipy.ndimage.shift``, order 1) to the zero-padded
patch and to its mask alike; dividing the summed patches by the summed masks keeps the average
exact where patches agree.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def canvas_shape_for(positions: np.ndarray, patch_size: int, margin: int = 0) -> tuple[int, int]:
    """Smallest (H, W) canvas that holds every patch centred at ``positions`` (M, 2) xy."""
    positions = np.asarray(positions, dtype=np.float64)
    if positions.ndim != 2 or positions.shape[1] != 2 or len(positions) == 0:
        raise ValueError(f"positions must have shape (M, 2) with M > 0, got {positions.shape}")
    if positions.min() < patch_size / 2:
        raise ValueError(
            "positions closer than N/2 to the origin do not fit a canvas starting at 0; "
            "pass an explicit canvas_shape and positions in its pixel frame"
        )
    extent = np.ceil(positions.max(axis=0) + patch_size / 2).astype(int) + 1 + margin
    return int(extent[1]), int(extent[0])


def _inner_window(patch_size: int, inner_size: int | None) -> slice:
    if inner_size is None:
        return slice(0, patch_size)
    if not 0 < inner_size <= patch_size:
        raise ValueError(f"inner_size must be in 1..{patch_size}, got {inner_size}")
    start = (patch_size - inner_size) // 2
    return slice(start, start + inner_size)


def stitch_patches(
    patches: np.ndarray,
    positions: np.ndarray,
    canvas_shape: tuple[int, int],
    *,
    inner_size: int | None = None,
    fill_value: complex = 0.0,
    return_weights: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Average ``patches`` (M, N, N) complex placed at ``positions`` (M, 2) xy on a canvas.

    ``positions`` are absolute patch-centre coordinates in canvas pixels (the data's
    ``coords_nn``). ``inner_size`` keeps only the central ``inner_size`` x ``inner_size`` of
    each patch (reconstructed patch borders are the least reliable). Canvas pixels that no
    patch covers get ``fill_value``. Returns the complex64 canvas (H, W), plus the float64
    weight map when ``return_weights``.
    """
    patches = np.asarray(patches)
    positions = np.asarray(positions, dtype=np.float64)
    if patches.ndim != 3 or patches.shape[1] != patches.shape[2]:
        raise ValueError(f"patches must have shape (M, N, N), got {patches.shape}")
    if positions.shape != (patches.shape[0], 2):
        raise ValueError(f"positions must have shape ({patches.shape[0]}, 2) (x, y), got {positions.shape}")
    if not np.all(np.isfinite(positions)):
        raise ValueError("positions contain NaN or inf")
    height, width = (int(s) for s in canvas_shape)
    n = patches.shape[1]
    window = _inner_window(n, inner_size)
    size = window.stop - window.start

    numerator = np.zeros((height, width), dtype=np.complex128)
    weights = np.zeros((height, width), dtype=np.float64)
    # One pixel of zero padding on each side lets the bilinear shift spill into its neighbours.
    mask = np.pad(np.ones((size, size)), 1)
    for patch, (x, y) in zip(patches, positions):
        core = np.pad(patch[window, window].astype(np.complex128), 1)
        top = y - n / 2 + window.start - 1  # canvas row of padded pixel [0, 0]
        left = x - n / 2 + window.start - 1
        row0, col0 = int(np.floor(top)), int(np.floor(left))
        frac = (top - row0, left - col0)
        if frac != (0.0, 0.0):
            core = ndimage.shift(core.real, frac, order=1) + 1j * ndimage.shift(core.imag, frac, order=1)
            weight = ndimage.shift(mask, frac, order=1)
        else:
            weight = mask
        rows = slice(max(row0, 0), min(row0 + size + 2, height))
        cols = slice(max(col0, 0), min(col0 + size + 2, width))
        if rows.start >= rows.stop or cols.start >= cols.stop:
            continue  # patch entirely outside the canvas
        src = (slice(rows.start - row0, rows.stop - row0), slice(cols.start - col0, cols.stop - col0))
        numerator[rows, cols] += core[src]  # zero padding already weights the edge
        weights[rows, cols] += weight[src]

    covered = weights > 1e-6
    canvas = np.full((height, width), fill_value, dtype=np.complex128)
    canvas[covered] = numerator[covered] / weights[covered]
    canvas = canvas.astype(np.complex64)
    return (canvas, weights) if return_weights else canvas
