"""The differentiable forward model, one small named operation per physical step (Tike-style).

Why separate from the network: these operations are the physics the network is trained
against; each is tested against an independent NumPy computation. Conventions (BRIEF §5):
orthonormal FFT with the zero frequency centred; positions are (x, y) pixel offsets, x along
columns (last axis), y along rows.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

EPS = 1e-6


def illuminate(obj: torch.Tensor, probe: torch.Tensor) -> torch.Tensor:
    """Exit wave ``psi = obj * probe``.

    obj: (B, C, N, N) complex64; probe: (N, N) complex64 -> (B, C, N, N) complex64.
    """
    return obj * probe


def far_field_amplitude(psi: torch.Tensor) -> torch.Tensor:
    """Far-field amplitude ``|fftshift(fft2(psi, norm="ortho"))|`` = ``|FFT|/N`` for N x N.

    psi: (..., N, N) complex64 -> (..., N, N) float32, zero frequency at (N/2, N/2).
    """
    return torch.fft.fftshift(torch.fft.fft2(psi, norm="ortho"), dim=(-2, -1)).abs()


def intensity_scale(nphotons: float, N: int) -> float:
    """Amplitude-to-sqrt(counts) factor ``s = sqrt(nphotons) / (N/2)`` (988.2 for 1e9, N=64)."""
    return math.sqrt(nphotons) / (N / 2)


def poisson_nll(pred_amp: torch.Tensor, obs_amp: torch.Tensor, scale: float, eps: float = EPS) -> torch.Tensor:
    """Poisson negative log-likelihood of the counts, up to the data-only term.

    ``lam = (scale*pred_amp)**2``, ``y = (scale*obs_amp)**2`` (the observation is squared:
    stored amplitudes are sqrt(counts)/scale), ``mean(lam - y*log(lam + eps))``.
    pred_amp, obs_amp: (B, C, N, N) float32 -> scalar.
    """
    lam = (scale * pred_amp) ** 2
    counts = (scale * obs_amp) ** 2
    return (lam - counts * torch.log(lam + eps)).mean()


def poisson_loss(pred_amp: torch.Tensor, obs_amp: torch.Tensor, scale: float, eps: float = EPS) -> torch.Tensor:
    """``poisson_nll`` minus its value at ``pred_amp == obs_amp``: same gradient, >= 0, 0 at a perfect fit.

    Why: the raw NLL is large and negative, so ratios of it mean nothing; this excess
    (half the Poisson deviance per pixel) falls towards 0 as the model learns.
    """
    return poisson_nll(pred_amp, obs_amp, scale, eps) - poisson_nll(obs_amp, obs_amp, scale, eps).detach()


def gaussian_loss(pred_amp: torch.Tensor, obs_amp: torch.Tensor, scale: float) -> torch.Tensor:
    """Amplitude least squares in sqrt(count) units: ``mean((scale*(pred - obs))**2)``."""
    return ((scale * (pred_amp - obs_amp)) ** 2).mean()


LOSSES = {"poisson": poisson_loss, "gaussian": gaussian_loss}


def translate(images: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Move image content by ``shifts`` pixels (bilinear, zeros outside).

    images: (B, H, W) complex64 or float32; shifts: (B, 2) (dx, dy) -> (B, H, W), with
    ``out[y, x] = images[y - dy, x - dx]``.
    """
    is_complex = images.is_complex()
    planes = torch.view_as_real(images).permute(0, 3, 1, 2) if is_complex else images[:, None]
    B, _, H, W = planes.shape
    theta = torch.zeros(B, 2, 3, dtype=planes.dtype, device=planes.device)
    theta[:, 0, 0] = 1
    theta[:, 1, 1] = 1
    theta[:, 0, 2] = -2 * shifts[:, 0].to(planes.dtype) / W
    theta[:, 1, 2] = -2 * shifts[:, 1].to(planes.dtype) / H
    grid = F.affine_grid(theta, [B, planes.shape[1], H, W], align_corners=False)
    moved = F.grid_sample(planes, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if is_complex:
        return torch.view_as_complex(moved.permute(0, 2, 3, 1).contiguous())
    return moved[:, 0]


def central_mask(N: int, size: int, device: torch.device | None = None) -> torch.Tensor:
    """(N, N) float32 with ones on the central ``size`` x ``size`` square, zeros elsewhere."""
    mask = torch.zeros(N, N, device=device)
    start = (N - size) // 2
    mask[start : start + size, start : start + size] = 1
    return mask


def _canvas_pad(positions: torch.Tensor) -> int:
    """Border that keeps every translated patch on the canvas: the largest offset, rounded up, + 1."""
    return int(math.ceil(float(positions.detach().abs().max()))) + 1 if positions.numel() else 1


def merge_patches(
    patches: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Average C patches of one group on a shared canvas centred on the group.

    patches: (B, C, N, N) complex64; positions: (B, C, 1, 2) ``coords_relative`` (x, y),
    so patch c sits at ``-positions[:, c]`` from the group centre; mask: (N, N) float32
    weights (e.g. ``central_mask``). Each patch is padded, *masked*, translated and summed;
    the sum is divided by the summed translated masks (masking the numerator keeps the
    periphery from being amplified). Returns ``(canvas (B, M, M) complex64, weight (B, M, M)
    float32, pad)`` with ``M = N + 2*pad``.
    """
    B, C, N, _ = patches.shape
    pad = _canvas_pad(positions)
    shifts = -positions.reshape(B * C, 2)
    moved = translate(F.pad((patches * mask).reshape(B * C, N, N), [pad] * 4), shifts)
    weights = translate(F.pad(mask.expand(B * C, N, N), [pad] * 4), shifts)
    M = N + 2 * pad
    numerator = moved.reshape(B, C, M, M).sum(dim=1)
    weight = weights.reshape(B, C, M, M).sum(dim=1)
    return numerator / weight.clamp_min(EPS), weight, pad


def extract_patches(canvas: torch.Tensor, positions: torch.Tensor, N: int, pad: int) -> torch.Tensor:
    """Cut the C patches back out of a group canvas (inverse placement of ``merge_patches``).

    canvas: (B, M, M) complex64 or float32 with ``M = N + 2*pad``; positions: (B, C, 1, 2)
    -> (B, C, N, N).
    """
    B, C = positions.shape[:2]
    M = canvas.shape[-1]
    stacked = canvas[:, None].expand(B, C, M, M).reshape(B * C, M, M)
    moved = translate(stacked, positions.reshape(B * C, 2))
    return moved[:, pad : pad + N, pad : pad + N].reshape(B, C, N, N)


def overlap_constraint(patches: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Make the C patches of each group agree where they overlap (``object_big``).

    Merge (masked average), cut back out; pixels the masks do not cover keep the patch's own
    value (blended by the coverage, 0..1), so the illuminated periphery is not zeroed.
    patches: (B, C, N, N) complex64; positions: (B, C, 1, 2); mask (N, N) -> (B, C, N, N).
    """
    N = patches.shape[-1]
    canvas, weight, pad = merge_patches(patches, positions, mask)
    merged = extract_patches(canvas, positions, N, pad)
    coverage = extract_patches(weight, positions, N, pad).clamp(0, 1)
    return coverage * merged + (1 - coverage) * patches
