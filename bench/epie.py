"""Iterative baseline: mini-batch rPIE with the known probe, in torch.

The same data the PINN sees (diffraction amplitudes + scan centres) are reconstructed by the
classical projection algorithm, so that quality and time can be compared on equal terms. The
probe is fixed (known), matching the PINN, which is also given the probe.

Conventions follow BRIEF §5: the patch at centre (x, y) is ``obj[y-N/2 : y+N/2, x-N/2 : x+N/2]``
and its diffraction amplitude is ``|fftshift(fft2(patch * probe, norm="ortho"))|``. A sub-pixel
centre is handled by shifting the probe by the fractional part instead of the object: a shift of
the exit wave only changes the far-field phase, never its modulus.

Update (Maiden et al., Optica 2017, "rPIE", here averaged over a mini-batch of positions)::

    O += sum_j conj(P_j) (psi'_j - psi_j) / ((1 - alpha) sum_j |P_j|^2 + alpha max sum_j |P_j|^2)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class EpieResult:
    """Reconstructed object (H, W) complex64 and the compute time spent (callbacks excluded).

    ``elapsed[k]`` is the cumulative compute time at the end of epoch k+1 and
    ``fourier_error[k]`` the relative squared modulus mismatch during that epoch.
    """

    obj: np.ndarray
    seconds: float
    epochs: int
    fourier_error: list[float] = field(default_factory=list)
    elapsed: list[float] = field(default_factory=list)


def _patch_indices(xcoords: np.ndarray, ycoords: np.ndarray, n: int,
                   shape: tuple[int, int]) -> tuple[torch.Tensor, np.ndarray]:
    """Flat object indices (M, N*N) of every integer patch, and the fractional shifts (M, 2)."""
    h, w = shape
    top = np.stack([ycoords, xcoords], axis=1) - n / 2.0
    base = np.floor(top).astype(np.int64)
    frac = top - base
    if base.min() < 0 or base[:, 0].max() + n > h or base[:, 1].max() + n > w:
        raise ValueError(
            f"scan positions reach outside the {shape} object canvas (patch size {n}); "
            "pass a larger obj_shape or drop the edge positions."
        )
    rows = base[:, 0, None, None] + np.arange(n)[None, :, None]
    cols = base[:, 1, None, None] + np.arange(n)[None, None, :]
    flat = (rows * w + cols).reshape(len(base), n * n)
    return torch.from_numpy(flat), frac


def _shifted_probes(probe: np.ndarray, frac: np.ndarray) -> torch.Tensor:
    """probe(r - f) for every fractional shift f (M, 2) -> (M, N, N) complex64 (Fourier shift)."""
    n = probe.shape[0]
    k = torch.fft.fftfreq(n, dtype=torch.float64)
    f = torch.from_numpy(frac)
    ramp = torch.exp(-2j * torch.pi * (f[:, 0, None, None] * k[None, :, None]
                                       + f[:, 1, None, None] * k[None, None, :]))
    spec = torch.fft.fft2(torch.from_numpy(probe.astype(np.complex128)))
    return torch.fft.ifft2(spec[None] * ramp).to(torch.complex64)


def rpie(diffraction: np.ndarray, probe: np.ndarray, xcoords: np.ndarray, ycoords: np.ndarray,
         obj_shape: tuple[int, int], epochs: int, batch_size: int = 32, alpha: float = 0.1,
         seed: int = 0, callback: Callable[[int, np.ndarray], bool | None] | None = None,
         ) -> EpieResult:
    """Reconstruct the object from amplitudes (M, N, N) with a known probe (N, N).

    ``callback(epoch, obj)`` runs after each epoch outside the timed region; returning True
    stops early (used to measure time-to-target-quality).
    """
    m, n, _ = diffraction.shape
    if probe.shape != (n, n):
        raise ValueError(f"probe shape {probe.shape} does not match diffraction patterns {(n, n)}")
    if len(xcoords) != m or len(ycoords) != m:
        raise ValueError(f"{m} diffraction patterns but {len(xcoords)} x / {len(ycoords)} y coordinates")
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    idx, frac = _patch_indices(np.asarray(xcoords, np.float64), np.asarray(ycoords, np.float64),
                               n, obj_shape)
    probes = _shifted_probes(np.asarray(probe), frac)
    measured = torch.fft.ifftshift(torch.from_numpy(np.asarray(diffraction, np.float32)), dim=(-2, -1))
    obj = torch.ones(obj_shape[0] * obj_shape[1], dtype=torch.complex64)
    compute = time.perf_counter() - start
    errors: list[float] = []
    elapsed: list[float] = []
    epoch = 0
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        err = 0.0
        for batch in torch.randperm(m, generator=gen).split(batch_size):
            flat = idx[batch]
            p = probes[batch]
            psi = obj[flat].view(-1, n, n) * p
            far = torch.fft.fft2(psi, norm="ortho")
            mod = far.abs()
            err += float(((mod - measured[batch]) ** 2).sum())
            corrected = torch.fft.ifft2(measured[batch] * far / (mod + 1e-12), norm="ortho")
            num = torch.zeros_like(obj).index_add_(0, flat.reshape(-1), (p.conj() * (corrected - psi)).reshape(-1))
            den = torch.zeros(obj.shape, dtype=torch.float32).index_add_(0, flat.reshape(-1), (p.abs() ** 2).reshape(-1))
            obj += num / ((1.0 - alpha) * den + alpha * den.max())
        compute += time.perf_counter() - t0
        elapsed.append(compute)
        errors.append(err / float((measured ** 2).sum()))
        if callback is not None and callback(epoch, obj.view(obj_shape).numpy().copy()):
            break
    return EpieResult(obj=obj.view(obj_shape).numpy().copy(), seconds=compute, epochs=epoch,
                      fourier_error=errors, elapsed=elapsed)
