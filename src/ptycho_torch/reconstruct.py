"""From a grouped container to an object: run the inference graph, stitch its patches.

Why one module: training (the TRAIN_RECORD batch shapes), the inference CLI and the
benchmarks must predict and stitch in the same way, or the numbers they report describe
different reconstructions. The arithmetic of stitching lives in ``ptycho_torch.stitching``
(NumPy only); this module only knows where a container keeps the patch centres and the probe.
"""

from __future__ import annotations

import numpy as np
import torch

from ptycho_torch.data import PtychoDataContainerTorch
from ptycho_torch.stitching import canvas_shape_for, stitch_patches, stitch_weight


def predict_patches(
    model: torch.nn.Module,
    container: PtychoDataContainerTorch,
    batch_size: int = 32,
    limit: int | None = None,
    device: str = "cpu",
) -> torch.Tensor:
    """Run ``diffraction_to_obj`` over the first ``limit`` groups (default all): (B, C, N, N) complex64 on the CPU."""
    count = len(container) if limit is None else min(limit, len(container))
    probe = torch.as_tensor(container.probe).to(device)
    model = model.to(device).eval()
    outputs = []
    with torch.no_grad():
        for start in range(0, count, batch_size):
            stop = min(start + batch_size, count)
            x = torch.as_tensor(container.X[start:stop]).to(device)
            positions = torch.as_tensor(container.coords_relative[start:stop]).to(device)
            outputs.append(model(x, positions, probe).cpu())  # input scale 1, as in training
    return torch.cat(outputs)


def patch_centres(container: PtychoDataContainerTorch) -> np.ndarray:
    """Absolute centre (x, y) of every patch, group by group: (B*C, 2) float64 canvas pixels."""
    return container.coords_nn.reshape(-1, 2).numpy().astype(np.float64)


def stitch_container(
    container: PtychoDataContainerTorch,
    patches: torch.Tensor,
    canvas_shape: tuple[int, int] | None = None,
    *,
    inner_size: int | None = None,
    weighting: str = "probe",
) -> tuple[np.ndarray, np.ndarray]:
    """Stitch (B, C, N, N) patches at the container's ``coords_nn``: (object (H, W) complex64, weight map (H, W) float64).

    ``canvas_shape`` defaults to the ``objectGuess`` frame when the data carry one, else the
    smallest canvas holding every patch. ``inner_size`` defaults to N/2, the centre the overlap
    constraint trusts; ``weighting`` is one of ``stitching.WEIGHTINGS``.
    """
    n = container.N
    positions = patch_centres(container)
    if canvas_shape is None:
        known = container.objectGuess
        canvas_shape = tuple(known.shape) if known is not None else canvas_shape_for(positions, n)
    weight = stitch_weight(container.probe.numpy(), weighting)
    return stitch_patches(
        patches.detach().reshape(-1, n, n).numpy(),
        positions,
        canvas_shape,
        inner_size=n // 2 if inner_size is None else inner_size,
        return_weights=True,
        weight=weight,
    )
