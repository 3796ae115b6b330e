"""RawData.from_file: the fixture loads; every DATA-001/FORMAT-001 violation gets an actionable error."""

from __future__ import annotations

import numpy as np
import pytest

from ptycho.raw_data import FormatWarning, RawData


def test_fixture_loads_with_the_contract_dtypes(raw_fixture, fixture_npz):
    raw = raw_fixture
    assert raw.path == fixture_npz
    assert raw.xcoords.dtype == raw.ycoords.dtype == np.float64 and raw.xcoords.shape == (64,)
    assert raw.diffraction.dtype == np.float32 and raw.diffraction.shape == (64, 64, 64)
    assert raw.probeGuess.dtype == np.complex64 and raw.N == 64
    assert raw.objectGuess.dtype == np.complex64 and min(raw.objectGuess.shape) >= 128
    assert raw.scan_index.tolist() == list(range(64))


def test_diff3d_is_an_accepted_alias(write_npz):
    diffraction = np.random.default_rng(1).uniform(0, 1, (6, 8, 8)).astype(np.float32)
    raw = RawData.from_file(write_npz(diffraction=None, diff3d=diffraction))
    np.testing.assert_array_equal(raw.diffraction, diffraction)


def test_missing_file_is_file_not_found_with_a_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="make_fixture.py") as info:
        RawData.from_file(tmp_path / "nope.npz")
    assert "nope.npz" in str(info.value)


def test_not_an_npz_names_the_file(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_text("not a zip")
    with pytest.raises(ValueError, match="junk.npz: not an .npz archive") as info:
        RawData.from_file(path)
    assert "allow_pickle" not in str(info.value), "never suggest loading a pickle"


def test_object_arrays_are_never_unpickled(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, xcoords=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match=r"objects.npz: array\(s\) \['xcoords'\] hold Python objects, which are never unpickled"):
        RawData.from_file(path)


def _error(path) -> str:
    with pytest.raises(ValueError) as info:
        RawData.from_file(path)
    message = str(info.value)
    assert str(path) in message, f"the error must name the file: {message}"
    return message


def test_missing_key(write_npz):
    message = _error(write_npz(probeGuess=None))
    assert "probeGuess" in message and "DATA-001" in message


def test_integer_diffraction_is_rejected(write_npz):
    message = _error(write_npz(diffraction=np.ones((6, 8, 8), dtype=np.int32)))
    assert "dtype int32" in message and "float32" in message


def test_complex_diffraction_is_rejected(write_npz):
    message = _error(write_npz(diffraction=np.ones((6, 8, 8), dtype=np.complex64)))
    assert "complex" in message and "sqrt(counts)" in message


def test_real_probe_is_rejected(write_npz):
    message = _error(write_npz(probeGuess=np.ones((8, 8), dtype=np.float32)))
    assert "complex64" in message


def test_intensity_instead_of_amplitude_is_rejected(write_npz):
    counts = np.random.default_rng(2).poisson(5000, size=(6, 8, 8)).astype(np.float32)
    message = _error(write_npz(diffraction=counts))
    assert "intensity" in message and "sqrt(counts) / intensity_scale" in message


def test_nan_in_diffraction_is_rejected(write_npz):
    diffraction = np.ones((6, 8, 8), dtype=np.float32)
    diffraction[2, 3, 4] = np.nan
    message = _error(write_npz(diffraction=diffraction))
    assert "1 NaN/inf" in message


def test_nan_in_coordinates_is_rejected(write_npz):
    x = np.linspace(10, 25, 6)
    x[0] = np.nan
    assert "xcoords" in _error(write_npz(xcoords=x))


def test_negative_amplitude_is_rejected(write_npz):
    diffraction = np.ones((6, 8, 8), dtype=np.float32)
    diffraction[0, 0, 0] = -0.5
    assert "negative" in _error(write_npz(diffraction=diffraction))


def test_pattern_count_must_match_coordinates(write_npz):
    message = _error(write_npz(diffraction=np.ones((5, 8, 8), dtype=np.float32)))
    assert "matches neither" in message


def test_legacy_stack_is_transposed_with_a_warning(write_npz):
    canonical = np.random.default_rng(3).uniform(0, 1, (6, 8, 8)).astype(np.float32)
    with pytest.warns(FormatWarning, match="FORMAT-001"):
        raw = RawData.from_file(write_npz(diffraction=canonical.transpose(1, 2, 0)))
    np.testing.assert_array_equal(raw.diffraction, canonical)


def _centred_patterns(M: int, N: int) -> np.ndarray:
    """Far-field-like stack: every pattern peaks at the centre pixel."""
    yy, xx = np.mgrid[:N, :N] - N // 2
    peak = np.exp(-(xx**2 + yy**2) / 4.0)
    scale = np.random.default_rng(4).uniform(0.5, 1.5, M)
    return (scale[:, None, None] * peak).astype(np.float32)


def test_cube_stack_in_canonical_layout_is_kept(write_npz):
    cube = _centred_patterns(8, 8)
    path = write_npz(diffraction=cube, xcoords=np.linspace(10, 31, 8), ycoords=np.full(8, 10.0), scan_index=None)
    raw = RawData.from_file(path)
    np.testing.assert_array_equal(raw.diffraction, cube)


def test_cube_stack_in_legacy_layout_is_recognised(write_npz):
    cube = _centred_patterns(8, 8)
    path = write_npz(
        diffraction=cube.transpose(1, 2, 0), xcoords=np.linspace(10, 31, 8), ycoords=np.full(8, 10.0), scan_index=None
    )
    with pytest.warns(FormatWarning, match="ambiguous"):
        raw = RawData.from_file(path)
    np.testing.assert_array_equal(raw.diffraction, cube)


def test_coordinates_outside_the_object_warn(write_npz):
    with pytest.warns(UserWarning, match="edge of objectGuess"):
        RawData.from_file(write_npz(xcoords=np.linspace(0, 5, 6)))
