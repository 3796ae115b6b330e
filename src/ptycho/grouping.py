"""Choose which scan points form each training sample (a group of C = gridsize**2 neighbours).

Why a KD-tree: a group is only useful if its patches overlap, so each group is a seed point
plus C - 1 of its K nearest neighbours (``scipy.spatial.cKDTree``). The choice is drawn
from a seeded generator, so a run is reproducible.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree


def group_scan_points(
    xcoords: np.ndarray,
    ycoords: np.ndarray,
    gridsize: int = 1,
    K: int = 4,
    n_groups: int | None = None,
    seed: int = 0,
    source: Path | str | None = None,
) -> np.ndarray:
    """Return ``nn_indices`` (B, C) int64: the scan points of each group, the seed point first.

    ``n_groups`` None means one group per scan point (B = M); otherwise B = ``n_groups``
    distinct seed points drawn without replacement. K counts the seed itself, so K >= C is
    required. ``source`` names the data file in error messages.
    """
    where = f"{source}: " if source is not None else ""
    x = np.asarray(xcoords, dtype=np.float64)
    y = np.asarray(ycoords, dtype=np.float64)
    n_points = x.shape[0]
    C = gridsize * gridsize
    if gridsize < 1:
        raise ValueError(f"gridsize={gridsize} is invalid; use gridsize >= 1")
    if C > 1 and K < C:
        raise ValueError(
            f"{where}gridsize={gridsize} needs C={C} neighbours per group but neighbor_count K={K}; "
            f"set neighbor_count >= {C} or lower gridsize"
        )
    if C > n_points:
        raise ValueError(
            f"{where}gridsize={gridsize} needs C={C} scan points per group but the data has only {n_points}; "
            "lower gridsize or use a larger scan"
        )
    if n_groups is None:
        n_groups = n_points
    if n_groups < 1:
        raise ValueError(f"{where}n_groups={n_groups} is invalid; request at least one group")
    if n_groups > n_points:
        raise ValueError(
            f"{where}{n_groups} groups requested but the data has only {n_points} scan points "
            f"(one group per seed point, no oversampling); lower n_groups/--n_images to <= {n_points} "
            "or generate more patterns (scripts/make_fixture.py --n-patterns)"
        )

    rng = np.random.default_rng(seed)
    seeds = np.arange(n_points) if n_groups == n_points else np.sort(rng.choice(n_points, n_groups, replace=False))
    if C == 1:
        return seeds[:, None].astype(np.int64)

    tree = cKDTree(np.stack([x, y], axis=-1))
    k = min(K, n_points)
    _, neighbours = tree.query(np.stack([x[seeds], y[seeds]], axis=-1), k=k)
    groups = np.empty((n_groups, C), dtype=np.int64)
    for row, (seed_point, candidates) in enumerate(zip(seeds, neighbours, strict=True)):
        others = candidates[candidates != seed_point]
        groups[row, 0] = seed_point
        groups[row, 1:] = rng.choice(others, C - 1, replace=False)
    return groups
