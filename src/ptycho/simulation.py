"""Deterministic ptychography simulator: a known object and probe, a raster scan, Poisson counts.

Why our own: tests and benchmarks need data whose ground truth is known and whose bytes are
reproducible (the fixture's sha256 is checked). Everything is drawn from one seed; the NPZ is
written with fixed zip timestamps and no compression, so the same arguments give the same file.

Physics (BRIEF §5): patch at scan point (x, y) = ``obj[y-N/2 : y+N/2, x-N/2 : x+N/2]``
(sub-pixel parts by bilinear interpolation), exit wave ``psi = patch * probe``, far field
``A = |fftshift(fft2(psi, norm="ortho"))|``, counts ``~ Poisson((s*A)**2)`` with
``s = sqrt(nphotons) / (N/2)``, stored diffraction ``sqrt(counts) / s`` (float32, max < 10).
Diffraction and coordinates are computed from the same index set, in one pass.

The probe is chosen by name (``PROBES``): the smooth ``gaussian`` (the committed fixture's), or a
structured one, ``diffuser`` or ``zoneplate``. Why structured: with a smooth probe the pattern(s)
of one scan group do not determine the object patch (many patches fit them equally well), and a
PINN that reconstructs each group from its own data inherits that ambiguity; a probe with
structure at the pixel scale spreads the diffraction and makes each group's data decisive, as
diffusers do in real ptychography (docs/performance.md, "Science II").
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from ptycho.checksums import sha256_file
from ptycho.config import ModelConfig

FIXTURE_VERSION = "1"
GENERATOR = "scripts/make_fixture.py (ptycho.simulation.simulate_dataset)"
MIN_OBJECT_SIZE = 144
SCAN_MARGIN = 8
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


@dataclass
class SimulatedDataset:
    """Arrays in the DATA-001 layout plus the noiseless amplitudes and the generator settings."""

    arrays: dict[str, np.ndarray]
    noiseless_amplitude: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)


def make_probe(N: int = 64, sigma: float | None = None, defocus: float = 0.5) -> np.ndarray:
    """Gaussian illumination with a quadratic (defocus) phase, (N, N) complex64, max |P| = 1.

    ``sigma`` defaults to N/8 (FWHM about 0.3 N): nearly zero at the patch edge, so the
    probe is effectively band-limited and fits inside the patch.
    """
    sigma = N / 8 if sigma is None else sigma
    yy, xx = np.mgrid[:N, :N] - N / 2
    r2 = (xx**2 + yy**2) / sigma**2
    return (np.exp(-r2 / 2) * np.exp(1j * defocus * r2)).astype(np.complex64)


def _envelope(N: int, sigma: float) -> np.ndarray:
    """Real Gaussian amplitude ``exp(-r^2 / (2 sigma^2))`` on the (N, N) grid centred at N/2, max 1."""
    yy, xx = np.mgrid[:N, :N] - N / 2
    return np.exp(-(xx**2 + yy**2) / (2 * sigma**2))


def make_diffuser_probe(
    N: int = 64, sigma: float | None = None, phase_rms: float = 1.5, correlation_px: float = 2.0,
    seed: int | np.random.SeedSequence = 0,
) -> np.ndarray:
    """A beam through a diffuser: Gaussian envelope times a smooth random phase, (N, N) complex64, max |P| = 1.

    The phase is white noise filtered by a Gaussian of ``correlation_px`` pixels (periodic
    boundaries), mean removed and scaled to ``phase_rms`` radians standard deviation; the
    envelope has ``sigma`` = N/6 by default. Its speckle spreads each pattern over the detector.
    """
    sigma = N / 6 if sigma is None else sigma
    noise = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal((N, N)), correlation_px, mode="wrap")
    phase = phase_rms * (noise - noise.mean()) / noise.std()
    return (_envelope(N, sigma) * np.exp(1j * phase)).astype(np.complex64)


def make_zone_plate_probe(N: int = 64, sigma: float | None = None, first_zone_px: float = 8.0) -> np.ndarray:
    """Gaussian envelope times a binary Fresnel zone phase (0 or pi), (N, N) complex64, max |P| = 1.

    Zone n covers ``first_zone_px * sqrt(n) <= r < first_zone_px * sqrt(n + 1)``: rings that
    narrow outwards (1.5 px wide at r = 2 sigma for the defaults), like a zone-plate lens.
    Rotationally symmetric, so less diverse than the diffuser.
    """
    sigma = N / 6 if sigma is None else sigma
    yy, xx = np.mgrid[:N, :N] - N / 2
    zones = np.floor((xx**2 + yy**2) / first_zone_px**2).astype(np.int64) % 2
    return (_envelope(N, sigma) * np.exp(1j * np.pi * zones)).astype(np.complex64)


#: Probe names accepted by ``simulate_dataset`` and ``make_named_probe``.
PROBES = ("gaussian", "diffuser", "zoneplate")


def make_named_probe(name: str, N: int = 64, seed: int | np.random.SeedSequence = 0) -> tuple[np.ndarray, dict]:
    """The probe called ``name`` (one of ``PROBES``) with its defaults, and its metadata record.

    ``seed`` draws the diffuser's phase (the other probes are deterministic).
    """
    if name == "gaussian":
        return make_probe(N), {"name": name, "kind": "gaussian with quadratic phase", "sigma_px": N / 8,
                               "defocus": 0.5}
    if name == "diffuser":
        return make_diffuser_probe(N, seed=seed), {
            "name": name, "kind": "gaussian envelope times smooth random phase", "sigma_px": N / 6,
            "phase_rms_rad": 1.5, "phase_correlation_px": 2.0,
            "phase_seed": "4th child of SeedSequence(seed)"}
    if name == "zoneplate":
        return make_zone_plate_probe(N), {"name": name, "kind": "gaussian envelope times binary Fresnel zone phase",
                                          "sigma_px": N / 6, "first_zone_px": 8.0}
    raise ValueError(f"probe {name!r} is unknown; choose one of {PROBES}")


def make_object(size: int, seed: int | np.random.SeedSequence = 0) -> np.ndarray:
    """A (size, size) complex64 object with independent amplitude and phase structure.

    Amplitude within [0.35, 0.95] (inside the sigmoid head's range): smooth texture plus
    sharp discs. Phase within [-1.2, 1.2] rad: coarser texture plus rectangles.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]

    def texture(sigma: float) -> np.ndarray:
        smooth = ndimage.gaussian_filter(rng.standard_normal((size, size)), sigma)
        return (smooth - smooth.min()) / (np.ptp(smooth) + 1e-12)

    discs = np.zeros((size, size))
    for _ in range(max(4, size // 24)):
        cx, cy = rng.uniform(0, size, 2)
        radius = rng.uniform(4, 12)
        discs[(xx - cx) ** 2 + (yy - cy) ** 2 < radius**2] = rng.uniform(0.5, 1.0)
    amplitude = 0.35 + 0.6 * np.clip(0.6 * texture(2.0) + 0.4 * discs, 0, 1)

    rectangles = np.zeros((size, size))
    for _ in range(max(4, size // 24)):
        x0, y0 = rng.integers(0, size - 8, 2)
        w, h = rng.integers(6, 20, 2)
        rectangles[y0 : y0 + h, x0 : x0 + w] = rng.uniform(-1.0, 1.0)
    phase = 1.2 * np.clip(0.7 * (2 * texture(4.0) - 1) + 0.5 * rectangles, -1, 1)
    return (amplitude * np.exp(1j * phase)).astype(np.complex64)


def raster_positions(
    n_patterns: int, step: float, jitter: float, N: int, seed: int | np.random.SeedSequence = 0
) -> tuple[np.ndarray, np.ndarray, int]:
    """Jittered raster scan: (x, y) float64 of length ``n_patterns`` and the object size.

    Rows of ``ceil(sqrt(n))`` points spaced ``step`` pixels, each moved by a uniform
    sub-pixel jitter in [-jitter, jitter]; the scan is centred in a square object that
    keeps every patch ``SCAN_MARGIN`` pixels away from the edge.
    """
    side = math.ceil(math.sqrt(n_patterns))
    span = (side - 1) * step
    size = max(MIN_OBJECT_SIZE, math.ceil(span + N + 2 * (SCAN_MARGIN + jitter)))
    origin = (size - span) / 2
    grid_y, grid_x = np.divmod(np.arange(n_patterns), side)
    rng = np.random.default_rng(seed)
    shift = rng.uniform(-jitter, jitter, size=(2, n_patterns))
    x = origin + grid_x * step + shift[0]
    y = origin + grid_y * step + shift[1]
    return x.astype(np.float64), y.astype(np.float64), size


def extract_patches(obj: np.ndarray, x: np.ndarray, y: np.ndarray, N: int) -> np.ndarray:
    """Object patches (M, N, N) complex64 centred at (x, y); bilinear for sub-pixel positions.

    Pixel (i, j) of patch m is ``obj[y_m - N/2 + i, x_m - N/2 + j]`` (exact for integers).
    """
    offsets = np.arange(N) - N / 2
    rows = np.asarray(y)[:, None, None] + offsets[None, :, None] + np.zeros((1, 1, N))
    cols = np.asarray(x)[:, None, None] + offsets[None, None, :] + np.zeros((1, N, 1))
    sample = [rows, cols]
    real = ndimage.map_coordinates(obj.real.astype(np.float64), sample, order=1, mode="constant")
    imag = ndimage.map_coordinates(obj.imag.astype(np.float64), sample, order=1, mode="constant")
    return (real + 1j * imag).astype(np.complex64)


def far_field_amplitude(psi: np.ndarray) -> np.ndarray:
    """``|fftshift(fft2(psi, norm="ortho"))|`` over the last two axes (zero frequency centred)."""
    return np.abs(np.fft.fftshift(np.fft.fft2(psi, norm="ortho"), axes=(-2, -1)))


def simulate_dataset(
    n_patterns: int = 64,
    N: int = 64,
    nphotons: float = 1e9,
    seed: int = 0,
    step: float = 8.0,
    jitter: float = 0.5,
    probe: str = "gaussian",
) -> SimulatedDataset:
    """Simulate a scan of ``n_patterns`` diffraction patterns from a known object and the probe named ``probe``.

    The object, scan and noise draw from the first three children of ``SeedSequence(seed)``
    (so a Gaussian-probe dataset is byte-identical to one made before probes had names), the
    diffuser's phase from the fourth.
    """
    if n_patterns < 1:
        raise ValueError(f"n_patterns={n_patterns} is invalid; simulate at least one pattern")
    if probe not in PROBES:
        raise ValueError(f"probe {probe!r} is unknown; choose one of {PROBES}")
    scale = ModelConfig(N=N, nphotons=nphotons).intensity_scale
    object_seed, scan_seed, noise_seed, probe_seed = np.random.SeedSequence(seed).spawn(4)
    x, y, size = raster_positions(n_patterns, step, jitter, N, scan_seed)
    obj = make_object(size, object_seed)
    probe_name = probe
    probe, probe_record = make_named_probe(probe_name, N, probe_seed)
    amplitude = far_field_amplitude(extract_patches(obj, x, y, N) * probe)
    counts = np.random.default_rng(noise_seed).poisson((scale * amplitude) ** 2)
    diffraction = (np.sqrt(counts) / scale).astype(np.float32)
    if diffraction.max() >= 10:
        raise ValueError(
            f"simulated amplitude max {diffraction.max():.3g} >= 10 breaks DATA-001; use a weaker probe or larger N"
        )
    arrays = {
        "xcoords": x,
        "ycoords": y,
        "diffraction": diffraction,
        "probeGuess": probe,
        "objectGuess": obj,
        "scan_index": np.arange(n_patterns, dtype=np.int64),
    }
    metadata = {
        "version": FIXTURE_VERSION,
        "generator": GENERATOR,
        "seed": seed,
        "nphotons": nphotons,
        "n_patterns": n_patterns,
        "N": N,
        "intensity_scale": scale,
        "object": {
            "shape": [size, size],
            "amplitude_range": [round(float(np.abs(obj).min()), 4), round(float(np.abs(obj).max()), 4)],
            "phase_range_rad": [round(float(np.angle(obj).min()), 4), round(float(np.angle(obj).max()), 4)],
            "note": "objectGuess is the ground-truth object",
        },
        "probe": probe_record,
        "scan": {"kind": "jittered raster, row-major", "step_px": step, "jitter_px": jitter,
                 "columns": math.ceil(math.sqrt(n_patterns))},
        "transformations": [
            "patch = bilinear objectGuess[y-N/2:y+N/2, x-N/2:x+N/2] at each (xcoords, ycoords)",
            "psi = patch * probeGuess",
            "A = |fftshift(fft2(psi, norm='ortho'))|",
            "counts = Poisson((s*A)^2), s = sqrt(nphotons)/(N/2)",
            "diffraction = float32(sqrt(counts)/s)",
            "diffraction[i] and (xcoords[i], ycoords[i]) share index i (scan_index)",
        ],
    }
    return SimulatedDataset(arrays=arrays, noiseless_amplitude=amplitude.astype(np.float32), metadata=metadata)


def save_npz_deterministic(path: Path | str, arrays: dict[str, np.ndarray]) -> str:
    """Write ``arrays`` as an uncompressed .npz with fixed zip metadata; return its sha256."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for key in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            archive.writestr(info, buffer.getvalue())
    return sha256_file(path)


def write_dataset(dataset: SimulatedDataset, out: Path | str) -> tuple[Path, Path]:
    """Write the NPZ and its ``.json`` sidecar (metadata, shapes, dtypes, sha256)."""
    out = Path(out)
    digest = save_npz_deterministic(out, dataset.arrays)
    sidecar = out.with_suffix(".json")
    record = {
        **dataset.metadata,
        "file": out.name,
        "sha256": digest,
        "shapes": {key: list(value.shape) for key, value in sorted(dataset.arrays.items())},
        "dtypes": {key: str(value.dtype) for key, value in sorted(dataset.arrays.items())},
    }
    sidecar.write_text(json.dumps(record, indent=2) + "\n")
    return out, sidecar
