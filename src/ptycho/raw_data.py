"""Load a ptychography NPZ and check it against the data contract (DATA-001, FORMAT-001).

Why so strict: a silently wrong file (intensities instead of amplitudes, a transposed stack,
NaNs) trains to garbage without an error. Every check raises a ValueError that names the file,
what is wrong and how to fix it. The contract (BRIEF §5): ``xcoords``/``ycoords`` (M,) pixel
coordinates in ``objectGuess`` (x = column, y = row); ``diffraction`` (M, N, N) float32
normalised amplitude (``diff3d`` accepted) with 0 <= values < 10; ``probeGuess`` (N, N)
complex; optional ``objectGuess`` (H, W) complex and ``scan_index`` (M,) int.
"""

from __future__ import annotations

import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ptycho.grouping import group_scan_points

#: Normalised amplitudes stay below this; larger values are intensities or raw counts.
MAX_AMPLITUDE = 10.0
FIXTURE_HINT = "regenerate it with scripts/make_fixture.py"


class FormatWarning(UserWarning):
    """A legacy layout was recognised and converted (FORMAT-001)."""


def _fail(path: Path, problem: str, fix: str) -> ValueError:
    return ValueError(f"{path}: {problem}; {fix}")


@dataclass
class RawData:
    """One scan: coordinates, diffraction amplitudes, probe (and the object, if known)."""

    xcoords: np.ndarray
    ycoords: np.ndarray
    diffraction: np.ndarray
    probeGuess: np.ndarray
    objectGuess: np.ndarray | None = None
    scan_index: np.ndarray | None = None
    path: Path | None = None

    @property
    def N(self) -> int:
        """Pattern size, taken from the probe (DATA-001)."""
        return int(self.probeGuess.shape[0])

    @property
    def n_points(self) -> int:
        return int(self.xcoords.shape[0])

    @classmethod
    def from_file(cls, path: Path | str) -> RawData:
        """Read and validate an NPZ; ``FileNotFoundError``/``ValueError`` say what to fix."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"data file not found: {path}; pass an existing .npz (e.g. "
                "tests/fixtures/pytorch_integration/minimal_dataset_v1.npz) or create one with "
                "python scripts/make_fixture.py --out <file>"
            )
        return cls.from_arrays(_read_npz(path), path=path)

    @classmethod
    def from_arrays(cls, arrays: dict[str, Any], path: Path | str | None = None) -> RawData:
        """Validate in-memory arrays exactly as ``from_file`` does (``path`` only labels errors)."""
        label = Path(path) if path is not None else Path("<arrays>")
        if "diffraction" not in arrays and "diff3d" in arrays:
            arrays = {**arrays, "diffraction": arrays["diff3d"]}
        missing = [key for key in ("xcoords", "ycoords", "diffraction", "probeGuess") if key not in arrays]
        if missing:
            raise _fail(
                label,
                f"missing required key(s) {missing} (found {sorted(arrays)})",
                "store xcoords, ycoords, diffraction (or diff3d) and probeGuess as in DATA-001",
            )
        xcoords = _coordinates(label, "xcoords", arrays["xcoords"])
        ycoords = _coordinates(label, "ycoords", arrays["ycoords"])
        if xcoords.shape != ycoords.shape:
            raise _fail(label, f"xcoords {xcoords.shape} and ycoords {ycoords.shape} differ in length",
                        "store one (x, y) pair per scan point")
        probe = _probe(label, arrays["probeGuess"])
        diffraction = _diffraction(label, arrays["diffraction"], n_points=xcoords.shape[0], N=probe.shape[0])
        object_guess = _object(label, arrays.get("objectGuess"))
        scan_index = _scan_index(label, arrays.get("scan_index"), xcoords.shape[0])
        if object_guess is not None:
            _check_inside(label, xcoords, ycoords, probe.shape[0], object_guess.shape)
        return cls(xcoords, ycoords, diffraction, probe, object_guess, scan_index, Path(path) if path else None)

    def generate_grouped_data(
        self, N: int, K: int = 4, nsamples: int | None = None, gridsize: int = 1, seed: int = 0
    ) -> dict[str, np.ndarray | None]:
        """Group scan points into samples of C = gridsize**2 neighbours (BRIEF §5 keys).

        Returns channels-last arrays: ``diffraction`` (B,N,N,C) float32, ``coords_nn``
        (B,1,2,C), ``coords_offsets`` (B,1,2,1), ``coords_relative`` (B,1,2,C) float64,
        ``nn_indices`` (B,C) int64 and ``objectGuess``. ``nsamples`` is the number of groups
        (None: one per scan point).
        """
        if N != self.N:
            raise _fail(self.path or Path("<arrays>"), f"requested N={N} but the probe is {self.N}x{self.N}",
                        f"set ModelConfig.N={self.N} to match the data")
        nn_indices = group_scan_points(
            self.xcoords, self.ycoords, gridsize=gridsize, K=K, n_groups=nsamples, seed=seed, source=self.path
        )
        coords = np.stack([self.xcoords, self.ycoords], axis=-1)  # (M, 2) xy
        coords_nn = coords[nn_indices].transpose(0, 2, 1)[:, None, :, :]  # (B, 1, 2, C)
        coords_offsets = coords_nn.mean(axis=3, keepdims=True)  # (B, 1, 2, 1)
        return {
            "diffraction": np.ascontiguousarray(self.diffraction[nn_indices].transpose(0, 2, 3, 1)),
            "coords_nn": coords_nn,
            "coords_offsets": coords_offsets,
            "coords_relative": -(coords_nn - coords_offsets),
            "nn_indices": nn_indices,
            "objectGuess": self.objectGuess,
        }


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an .npz, never unpickling anything; ValueError naming the file otherwise."""
    fix = "write it with numpy.savez or " + FIXTURE_HINT
    if path.stat().st_size == 0:
        raise _fail(path, "the file is empty (0 bytes)", fix)
    if not zipfile.is_zipfile(path):
        raise _fail(path, "not an .npz archive (no zip structure: truncated, or another format such as .npy or pickle)", fix)
    arrays: dict[str, np.ndarray] = {}
    try:
        with np.load(path, allow_pickle=False) as npz:
            for key in npz.files:
                try:
                    arrays[key] = npz[key]
                except ValueError as exc:  # object arrays: numpy would need to unpickle them
                    if "allow_pickle" not in str(exc):
                        raise
                    arrays[key] = None
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise _fail(path, f"not a readable .npz archive ({exc})", fix) from exc
    pickled = [key for key, value in arrays.items() if value is None]
    if pickled:
        raise _fail(path, f"array(s) {pickled} hold Python objects, which are never unpickled",
                    "store plain numeric arrays (float, complex, int)")
    return arrays


def _coordinates(path: Path, key: str, value: Any) -> np.ndarray:
    array = np.asarray(value)
    if array.ndim != 1 or array.size == 0:
        raise _fail(path, f"{key} has shape {array.shape}, expected (M,) with M > 0", "store one coordinate per scan point")
    if not np.issubdtype(array.dtype, np.integer) and not np.issubdtype(array.dtype, np.floating):
        raise _fail(path, f"{key} has dtype {array.dtype}, expected float64 pixel coordinates",
                    f"store {key} as real numbers (np.float64)")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise _fail(path, f"{key} contains {int(np.sum(~np.isfinite(array)))} NaN/inf value(s)",
                    "remove or repair those scan points")
    return array


def _probe(path: Path, value: Any) -> np.ndarray:
    probe = np.asarray(value)
    if probe.ndim != 2 or probe.shape[0] != probe.shape[1]:
        raise _fail(path, f"probeGuess has shape {probe.shape}, expected square (N, N)", "store the probe as an N x N array")
    if not np.iscomplexobj(probe):
        raise _fail(path, f"probeGuess has dtype {probe.dtype}, expected complex64",
                    "store the complex probe (probe.astype(np.complex64))")
    if not np.all(np.isfinite(probe)):
        raise _fail(path, "probeGuess contains NaN/inf values", "store a finite probe")
    return probe.astype(np.complex64)


def _diffraction(path: Path, value: Any, n_points: int, N: int) -> np.ndarray:
    stack = np.asarray(value)
    if stack.ndim != 3:
        raise _fail(path, f"diffraction has shape {stack.shape}, expected (M, N, N)", "store one N x N pattern per scan point")
    if not np.issubdtype(stack.dtype, np.floating):
        kind = "complex" if np.iscomplexobj(stack) else str(stack.dtype)
        raise _fail(
            path,
            f"diffraction has dtype {kind}, expected float32 amplitude",
            "store the normalised amplitude sqrt(counts)/intensity_scale as np.float32 (not counts, not complex fields)",
        )
    stack = _canonical_layout(path, stack, n_points, N)
    finite = np.isfinite(stack)
    if not finite.all():
        raise _fail(path, f"diffraction contains {int((~finite).sum())} NaN/inf value(s)",
                    "repair or drop the affected patterns before training")
    low, high = float(stack.min()), float(stack.max())
    if low < 0:
        raise _fail(path, f"diffraction has negative values (min {low:.3g}); amplitudes are >= 0",
                    "store sqrt(counts)/intensity_scale, not background-subtracted data")
    if high >= MAX_AMPLITUDE:
        raise _fail(
            path,
            f"diffraction max is {high:.4g} >= {MAX_AMPLITUDE:g}: this looks like intensity or raw counts, "
            "not normalised amplitude",
            "store sqrt(counts) / intensity_scale with intensity_scale = sqrt(nphotons)/(N/2), so that max < 10",
        )
    return np.ascontiguousarray(stack, dtype=np.float32)


def _canonical_layout(path: Path, stack: np.ndarray, n_points: int, N: int) -> np.ndarray:
    """Return (M, N, N); a legacy (N, N, M) stack is transposed with a warning (FORMAT-001)."""
    canonical = stack.shape == (n_points, N, N)
    legacy = stack.shape == (N, N, n_points)
    if canonical and legacy:  # a cube: shape cannot tell, the centred far field can
        if _peak_in_centre(stack.transpose(2, 0, 1)) > _peak_in_centre(stack):
            warnings.warn(
                f"{path}: diffraction {stack.shape} is ambiguous (M == N); its patterns are centred along "
                "axes (0, 1), so it was read as a legacy (N, N, M) stack and transposed (FORMAT-001); "
                "store (M, N, N) to avoid the guess",
                FormatWarning,
                stacklevel=4,
            )
            return stack.transpose(2, 0, 1)
        return stack
    if canonical:
        return stack
    if legacy:
        warnings.warn(
            f"{path}: diffraction stored as legacy (N, N, M) = {stack.shape}; transposed to (M, N, N) "
            "(FORMAT-001). Re-save it as (M, N, N) to silence this warning",
            FormatWarning,
            stacklevel=4,
        )
        return stack.transpose(2, 0, 1)
    raise _fail(
        path,
        f"diffraction has shape {stack.shape}, which matches neither (M, N, N) = {(n_points, N, N)} nor the "
        f"legacy (N, N, M) = {(N, N, n_points)} (M from xcoords, N from probeGuess)",
        "store one pattern per coordinate, each the size of the probe",
    )


def _peak_in_centre(stack: np.ndarray) -> float:
    """Mean pattern's value at the centre pixel, relative to its mean: high for true patterns."""
    mean_pattern = stack.astype(np.float64).mean(axis=0)
    n = mean_pattern.shape[0]
    return float(mean_pattern[n // 2, n // 2] / (mean_pattern.mean() + 1e-12))


def _object(path: Path, value: Any) -> np.ndarray | None:
    if value is None:
        return None
    obj = np.asarray(value)
    if obj.ndim != 2:
        raise _fail(path, f"objectGuess has shape {obj.shape}, expected (H, W)", "store the object as a 2-D complex array")
    if not np.iscomplexobj(obj):
        raise _fail(path, f"objectGuess has dtype {obj.dtype}, expected complex64", "store obj.astype(np.complex64)")
    return obj.astype(np.complex64)


def _scan_index(path: Path, value: Any, n_points: int) -> np.ndarray | None:
    if value is None:
        return None
    index = np.asarray(value)
    if index.shape != (n_points,) or not np.issubdtype(index.dtype, np.integer):
        raise _fail(path, f"scan_index has shape {index.shape} and dtype {index.dtype}, expected ({n_points},) int",
                    "store one integer scan index per coordinate, or omit scan_index")
    return index.astype(np.int64)


def _check_inside(path: Path, x: np.ndarray, y: np.ndarray, N: int, shape: tuple[int, ...]) -> None:
    """Warn when a patch would leave objectGuess: coordinates are probably in another frame."""
    half = N / 2
    outside = (x < half) | (y < half) | (x > shape[1] - half) | (y > shape[0] - half)
    if outside.any():
        warnings.warn(
            f"{path}: {int(outside.sum())} scan point(s) lie closer than N/2={half:g} to the edge of objectGuess "
            f"{shape}; coordinates must be pixel positions in objectGuess (x = column, y = row)",
            UserWarning,
            stacklevel=4,
        )
