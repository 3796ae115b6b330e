"""Stitch reconstructed patches into one object: translate-and-average on a canvas.

Why here and not in the model: stitching is post-processing; it needs only NumPy/SciPy and the
absolute patch positions. ``ptycho_torch.reconstruct.stitch_container`` applies it to a
container for the inference CLI and the benchmarks.

Convention (BRIEF §5, DATA-001): a patch centred at scan point (x, y) covers
``canvas[y - N/2 : y + N/2, x - N/2 : x + N/2]`` (x = column, y = row). Sub-pixel parts
are applied with bilinear interpolation (``scipy.ndimage.shift``, order 1) to the zero-padded
patch and to its mask alike; dividing the summed patches by the summed masks keeps the average
exact where patches agree.

An optional per-pixel ``weight`` (N, N), e.g. the probe intensity |P|^2 / max, turns the average
into sum(w * patch) / sum(w): pixels the probe barely lit (and so the data barely constrain)
count less. The weighted patch and the weight are translated by the same bilinear shift.
"""

from __future__ import annotations

import numpy as np

#: Named averages for ``stitch_weight``: "probe" weighs each pixel by |P|^2 / max, "uniform" plainly.
WEIGHTINGS = ("uniform", "probe")


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


def probe_intensity_weight(probe: np.ndarray) -> np.ndarray:
    """Stitching weight |probe|^2 / max |probe|^2 (N, N) float64, for ``stitch_patches(weight=...)``."""
    intensity = np.abs(np.asarray(probe)) ** 2
    peak = intensity.max() if intensity.size else 0.0
    if intensity.ndim != 2 or not np.isfinite(peak) or peak <= 0:
        raise ValueError(f"probe must be a finite, non-zero (N, N) array, got shape {intensity.shape}")
    return intensity / peak


def stitch_weight(probe: np.ndarray, weighting: str) -> np.ndarray | None:
    """The ``weight`` of ``stitch_patches`` that ``weighting`` (one of ``WEIGHTINGS``) names."""
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting={weighting!r} is unknown; use one of {WEIGHTINGS}")
    return probe_intensity_weight(probe) if weighting == "probe" else None


def _check_weight(weight: np.ndarray, patch_size: int) -> np.ndarray:
    weight = np.asarray(weight)
    if weight.shape != (patch_size, patch_size):
        raise ValueError(f"weight must have shape ({patch_size}, {patch_size}) like one patch, got {weight.shape}")
    if np.iscomplexobj(weight):
        raise ValueError("weight must be real (e.g. |probe|^2 / max), got a complex array")
    weight = weight.astype(np.float64)
    if not np.all(np.isfinite(weight)):
        raise ValueError("weight contains NaN or inf")
    if weight.min() < 0:
        raise ValueError(f"weight must be non-negative, got a minimum of {weight.min():.3g}")
    return weight


def stitch_patches(
    patches: np.ndarray,
    positions: np.ndarray,
    canvas_shape: tuple[int, int],
    *,
    inner_size: int | None = None,
    fill_value: complex = 0.0,
    return_weights: bool = False,
    weight: np.ndarray | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Average ``patches`` (M, N, N) complex placed at ``positions`` (M, 2) xy on a canvas.

    ``positions`` are absolute patch-centre coordinates in canvas pixels (the data's
    ``coords_nn``). ``inner_size`` keeps only the central ``inner_size`` x ``inner_size`` of
    each patch (reconstructed patch borders are the least reliable). ``weight`` (N, N) real,
    non-negative (default None: uniform) weighs each patch pixel: the canvas is
    sum(w * patch) / sum(w), so a patch pixel with w = 0 does not contribute. Canvas pixels that no
    patch covers (summed weight <= 1e-6) get ``fill_value``. Returns the complex64 canvas (H, W), plus the float64
    weight map when ``return_weights``.
    """
    from scipy import ndimage  # here: the inference CLI imports this module at start-up, which must stay light

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
    pixel_weight = None if weight is None else _check_weight(weight, n)[window, window]

    numerator = np.zeros((height, width), dtype=np.complex128)
    weights = np.zeros((height, width), dtype=np.float64)
    # One pixel of zero padding on each side lets the bilinear shift spill into its neighbours.
    mask = np.pad(np.ones((size, size)) if pixel_weight is None else pixel_weight, 1)
    for patch, (x, y) in zip(patches, positions):
        core = patch[window, window].astype(np.complex128)
        if pixel_weight is not None:
            core = core * pixel_weight
        core = np.pad(core, 1)
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
