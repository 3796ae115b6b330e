"""Score a complex reconstruction against a known ground-truth object.

Ptychography determines an object only up to trivial ambiguities, so before scoring we remove
them explicitly (and report what was removed):

* a global phase offset (exp(i c) multiplies every solution),
* a global amplitude scale (the normalised diffraction amplitudes carry an arbitrary factor),
* a sub-pixel translation (registration via ``skimage.registration.phase_cross_correlation``).

SSIM and PSNR come from ``skimage.metrics``; the data range is the ground truth's dynamic range
in the scored region (stricter than upstream PtychoPINN, which scores phase over the full 2*pi).
FRC uses half-pixel-wide rings and the 1/7 threshold.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from skimage.registration import phase_cross_correlation


@dataclass(frozen=True)
class Region:
    """A rectangular region ``[y0:y1, x0:x1]`` of the object (the scanned area)."""

    y0: int
    y1: int
    x0: int
    x1: int

    def __post_init__(self) -> None:
        if self.y1 - self.y0 < 8 or self.x1 - self.x0 < 8:
            raise ValueError(
                f"scored region {self} is smaller than 8x8 pixels; SSIM needs a 7x7 window. "
                "Scan a larger area or shrink the margin."
            )

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)


def scanned_region(xcoords: np.ndarray, ycoords: np.ndarray, shape: tuple[int, int],
                   margin: int) -> Region:
    """Bounding box of the scan centres, grown by ``margin`` pixels and clipped to ``shape``.

    With ``margin = N // 4`` this is the area every pixel of which sat in the bright centre of
    at least one probe position, i.e. what a reconstruction can be held responsible for.
    """
    h, w = shape
    y0 = max(int(np.floor(np.min(ycoords))) - margin, 0)
    y1 = min(int(np.ceil(np.max(ycoords))) + margin + 1, h)
    x0 = max(int(np.floor(np.min(xcoords))) - margin, 0)
    x1 = min(int(np.ceil(np.max(xcoords))) + margin + 1, w)
    return Region(y0, y1, x0, x1)


def stitched_region(xcoords: np.ndarray, ycoords: np.ndarray, shape: tuple[int, int], N: int) -> Region:
    """The region a stitched reconstruction of N x N patches is scored on.

    Stitching keeps each patch's central N/2 square, so every pixel within N/4 of the scan's
    bounding box is covered; 2 px less absorbs the +-0.5 px jitter of the edge rows.
    """
    return scanned_region(xcoords, ycoords, shape, margin=N // 4 - 2)


def global_phase_offset(recon: np.ndarray, truth: np.ndarray) -> float:
    """The constant c minimising ||recon * exp(-i c) - truth||² (amplitude-weighted phase offset)."""
    return float(np.angle(np.vdot(truth, recon)))


def amplitude_scale(recon_amp: np.ndarray, truth_amp: np.ndarray) -> float:
    """Least-squares scalar a minimising ||a * recon_amp - truth_amp||²."""
    denom = float(np.sum(recon_amp.astype(np.float64) ** 2))
    if denom == 0.0:
        return 1.0
    return float(np.sum(recon_amp * truth_amp) / denom)


def register_subpixel(recon: np.ndarray, truth: np.ndarray, upsample: int = 20,
                      max_shift: float = 4.0) -> tuple[np.ndarray, tuple[float, float]]:
    """Shift ``recon`` onto ``truth`` by the sub-pixel translation that best aligns them.

    Both are complex (H, W) crops of the same grid. Shifts larger than ``max_shift`` pixels are
    not a trivial ambiguity but a coordinate bug: they are reported, and not applied.
    """
    # Remove the mean and taper the edges: a crop is not periodic, and its DC term or border
    # jump would otherwise pin the correlation peak at zero shift.
    taper = np.outer(np.hanning(truth.shape[0]), np.hanning(truth.shape[1]))
    shift, _, _ = phase_cross_correlation((truth - truth.mean()) * taper, (recon - recon.mean()) * taper,
                                          upsample_factor=upsample, normalization=None)
    dy, dx = float(shift[0]), float(shift[1])
    if max(abs(dy), abs(dx)) > max_shift:
        return recon, (dy, dx)
    shifted = np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(recon), (dy, dx)))
    return shifted.astype(recon.dtype, copy=False), (dy, dx)


def frc_curve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Fourier ring correlation of two real or complex (H, W) images, one value per ring.

    Rings are one frequency pixel wide, up to the Nyquist radius of the smaller axis.
    """
    fa = np.fft.fftshift(np.fft.fft2(a))
    fb = np.fft.fftshift(np.fft.fft2(b))
    h, w = a.shape
    ky = (np.arange(h) - h // 2) / h
    kx = (np.arange(w) - w // 2) / w
    radius = np.hypot(*np.meshgrid(ky, kx, indexing="ij"))
    n_rings = min(h, w) // 2
    ring = np.minimum((radius * min(h, w)).astype(int), n_rings)
    cross = np.bincount(ring.ravel(), (fa * np.conj(fb)).real.ravel(), n_rings + 1)
    pa = np.bincount(ring.ravel(), (np.abs(fa) ** 2).ravel(), n_rings + 1)
    pb = np.bincount(ring.ravel(), (np.abs(fb) ** 2).ravel(), n_rings + 1)
    return (cross / np.sqrt(pa * pb + 1e-30))[:n_rings]


def frc_resolution(curve: np.ndarray, threshold: float = 1.0 / 7.0) -> float:
    """Spatial frequency (fraction of Nyquist) where the FRC first drops below ``threshold``.

    Returns 1.0 when the curve never drops below it (resolution limited by sampling only).
    """
    below = np.nonzero(curve[1:] < threshold)[0]
    if below.size == 0:
        return 1.0
    return float((below[0] + 1) / len(curve))


@dataclass(frozen=True)
class Scores:
    """Quality of one reconstruction on one region; every removed ambiguity is recorded."""

    ssim_amp: float
    ssim_phase: float
    psnr_amp: float
    psnr_phase: float
    frc_amp: float
    frc_complex: float
    phase_offset_rad: float
    amp_scale: float
    shift_px: tuple[float, float]

    def as_dict(self) -> dict:
        d = asdict(self)
        d["shift_px"] = list(self.shift_px)
        return d


def align(recon: np.ndarray, truth: np.ndarray, region: Region, register: bool = True,
          ) -> tuple[np.ndarray, np.ndarray, float, float, tuple[float, float]]:
    """Crop both to ``region`` and remove the trivial ambiguities from ``recon``.

    Order: sub-pixel registration, then the global phase offset, then the amplitude scale.
    Returns ``(aligned recon crop, truth crop, phase offset, amplitude scale, shift)``; the
    aligned crop is what ``score`` measures and what a figure should show.
    """
    if recon.shape != truth.shape:
        raise ValueError(
            f"reconstruction shape {recon.shape} != ground truth shape {truth.shape}; "
            "stitch onto the ground-truth grid (same origin and size) before scoring."
        )
    if not np.all(np.isfinite(recon[region.slices])):
        raise ValueError("reconstruction contains NaN/inf in the scored region; training diverged.")
    t = truth[region.slices].astype(np.complex128)
    r = recon[region.slices].astype(np.complex128)
    shift = (0.0, 0.0)
    if register:
        r, shift = register_subpixel(r, t)
    offset = global_phase_offset(r, t)
    r = r * np.exp(-1j * offset)
    scale = amplitude_scale(np.abs(r), np.abs(t))
    return r * scale, t, offset, scale, shift


def score(recon: np.ndarray, truth: np.ndarray, region: Region, register: bool = True) -> Scores:
    """Compare complex ``recon`` with complex ``truth`` (same (H, W) grid) inside ``region``.

    SSIM and PSNR of amplitude and of phase after ``align``; phases are compared as
    ``angle`` values, which is safe for objects whose phase stays within (-pi, pi] once the
    global offset is removed (the simulator's stays within +-1.2 rad).
    """
    r, t, offset, scale, shift = align(recon, truth, region, register)
    t_amp, r_amp = np.abs(t), np.abs(r)
    t_phase, r_phase = np.angle(t), np.angle(r)
    amp_range = float(np.ptp(t_amp)) or 1.0
    phase_range = float(np.ptp(t_phase)) or 1.0
    return Scores(
        ssim_amp=float(structural_similarity(t_amp, r_amp, data_range=amp_range)),
        ssim_phase=float(structural_similarity(t_phase, r_phase, data_range=phase_range)),
        psnr_amp=float(peak_signal_noise_ratio(t_amp, r_amp, data_range=amp_range)),
        psnr_phase=float(peak_signal_noise_ratio(t_phase, r_phase, data_range=phase_range)),
        frc_amp=frc_resolution(frc_curve(t_amp, r_amp)),
        frc_complex=frc_resolution(frc_curve(t, r)),
        phase_offset_rad=offset,
        amp_scale=scale,
        shift_px=shift,
    )
