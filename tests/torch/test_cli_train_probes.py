"""The train CLI's user mistakes: one ``error:`` line naming the file or flag, exit 2, nothing written.

Every probe of docs/reliability.md ("Backend probes") on the training side has a test here.
They run ``run_cli(main, argv)`` in process (``python -m ptycho_torch.train`` is exactly
``sys.exit(run_cli(main))``) on tiny NPZ files built in ``tmp_path``; none reaches training.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ptycho.raw_data import RawData
from ptycho_torch.cli.shared import run_cli
from ptycho_torch.train import EARLIER_RUN, main


def _train(capsys, *argv: str) -> str:
    """Run the CLI; assert exit 2 and exactly one stderr line starting with ``error:``; return it."""
    code = run_cli(main, ["--accelerator", "cpu", "--logger", "none", *argv])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2, f"expected exit 2 for a user mistake, got {code}; stderr {lines}"
    assert len(lines) == 1 and lines[0].startswith("error: "), f"expected one 'error:' line, got {lines}"
    return lines[0]


def _with(arrays: dict[str, np.ndarray], changes: dict) -> dict[str, np.ndarray]:
    """``arrays`` with each key of ``changes`` dropped (None) or replaced by ``change(old value)``."""
    arrays = dict(arrays)
    for key, change in changes.items():
        if change is None:
            arrays.pop(key)
        else:
            arrays[key] = change(arrays[key])
    return arrays


def _poke(value: float):
    def change(diffraction: np.ndarray) -> np.ndarray:
        diffraction = diffraction.copy()
        diffraction[0, 0, 0] = value
        return diffraction

    return change


def _nan_x(x: np.ndarray) -> np.ndarray:
    x = x.copy()
    x[3] = np.nan
    return x


#: case -> (changes to a valid tiny scan, or the raw bytes of the file; what the error line says)
BAD_DATA = {
    "no probeGuess": ({"probeGuess": None}, "missing required key(s) ['probeGuess']"),
    "NaN diffraction": ({"diffraction": _poke(np.nan)}, "diffraction contains 1 NaN/inf value(s)"),
    "inf diffraction": ({"diffraction": _poke(np.inf)}, "diffraction contains 1 NaN/inf value(s)"),
    "complex diffraction": ({"diffraction": lambda d: d.astype(np.complex64)}, "diffraction has dtype complex"),
    "negative diffraction": ({"diffraction": _poke(-1.0)}, "diffraction has negative values (min -1)"),
    "shape mismatch": ({"diffraction": lambda d: d[:10]}, "diffraction has shape (10, 8, 8), which matches neither"),
    "NaN coordinates": ({"xcoords": _nan_x}, "xcoords contains 1 NaN/inf value(s)"),
    "empty file": (b"", "the file is empty (0 bytes)"),
    "not a zip": (b"hello, not a zip\n", "not an .npz archive"),
}


@pytest.mark.parametrize("case", list(BAD_DATA))
def test_bad_training_data_is_one_error_line_naming_the_file(case, grid_arrays, tmp_path, capsys):
    content, expected = BAD_DATA[case]
    data = tmp_path / "bad.npz"
    data.write_bytes(content) if isinstance(content, bytes) else np.savez(data, **_with(grid_arrays(), content))
    line = _train(capsys, "--train_data_file", str(data), "--output_dir", str(tmp_path / "out"))
    assert line.startswith(f"error: {data}: ") and expected in line, f"{case}: got {line!r}"
    assert "allow_pickle" not in line and "Traceback" not in line
    assert not (tmp_path / "out").exists(), "bad data must be rejected before the output folder is created"


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--gridsize", "0"], "error: --gridsize 0 is invalid: use an integer >= 1"),
        (["--gridsize", "-1"], "error: --gridsize -1 is invalid: use an integer >= 1"),
        (["--gridsize", "5"], "error: --gridsize 5 needs C=25 patterns per group, drawn from each scan point's "
                              "--neighbor_count nearest points, but --neighbor_count is 4; "
                              "pass --neighbor_count 25 (or more) or lower --gridsize"),
        (["--gridsize", "2", "--neighbor_count", "3"], "pass --neighbor_count 4 (or more)"),
        (["--neighbor_count", "0"], "error: --neighbor_count 0 is invalid: use an integer >= 1"),
        (["--batch_size", "0"], "error: --batch_size 0 is invalid: use an integer >= 1"),
        (["--max_epochs", "0"], "error: --max_epochs 0 is invalid: use an integer >= 1"),
        (["--learning-rate", "nan"], "error: --learning-rate nan is invalid: use a finite number > 0"),
    ],
    ids=["gridsize 0", "gridsize -1", "gridsize 5", "gridsize 2 K 3", "neighbor_count 0", "batch_size 0",
         "max_epochs 0", "learning-rate nan"],
)
def test_impossible_flags_are_named_before_the_data_is_read(flags, expected, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(RawData, "from_file", _must_not_run("the data were read before the flags were checked"))
    line = _train(capsys, "--train_data_file", str(tmp_path / "x.npz"), "--output_dir", str(tmp_path / "out"), *flags)
    assert expected in line, f"got {line!r}"


def test_too_many_groups_names_the_file_and_the_flag(tiny_scan, tmp_path, capsys):
    line = _train(capsys, "--train_data_file", str(tiny_scan), "--output_dir", str(tmp_path / "out"), "--n_images", "17")
    assert f"{tiny_scan}: 17 groups requested but the data has only 16 scan points" in line
    assert "lower n_groups/--n_images to <= 16" in line
    assert not (tmp_path / "out").exists()


def test_gridsize_5_trains_once_neighbor_count_allows_it(tiny_scan, tmp_path, capsys):
    """--neighbor_count reaches the grouping: the same run now fails only on the 16-point scan's size."""
    line = _train(capsys, "--train_data_file", str(tiny_scan), "--output_dir", str(tmp_path / "out"),
                  "--gridsize", "5", "--neighbor_count", "25")  # fmt: skip
    assert "gridsize=5 needs C=25 scan points per group but the data has only 16" in line


def _must_not_run(why: str):
    def fail(*args, **kwargs):
        raise AssertionError(why)

    return fail


def test_output_dir_that_is_a_file_is_refused_before_any_compute(tiny_scan, tmp_path, capsys, monkeypatch):
    target = tmp_path / "results"
    target.write_text("a file the user keeps")
    monkeypatch.setattr(RawData, "from_file", _must_not_run("data loaded before the output folder was checked"))
    line = _train(capsys, "--train_data_file", str(tiny_scan), "--output_dir", str(target))
    assert line == f"error: --output_dir {target} is an existing file, not a folder; pass a folder path (it is created if missing)"
    assert target.read_text() == "a file the user keeps"


def test_output_dir_under_a_file_is_refused_before_any_compute(tiny_scan, tmp_path, capsys, monkeypatch):
    (tmp_path / "notes").write_text("x")
    target = tmp_path / "notes" / "run1"
    monkeypatch.setattr(RawData, "from_file", _must_not_run("data loaded before the output folder was checked"))
    line = _train(capsys, "--train_data_file", str(tiny_scan), "--output_dir", str(target))
    assert line.startswith(f"error: --output_dir {target}: {tmp_path / 'notes'} is a file, so no folder can be created")


def _earlier_run(folder: Path) -> dict[Path, bytes]:
    """A finished run's outputs (content does not matter, only that it survives)."""
    files = {folder / "wts.h5.zip": b"good bundle", folder / "checkpoints" / "last.ckpt": b"good checkpoint",
             folder / "figures" / "loss_curve.png": b"good picture"}  # fmt: skip
    for path, data in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def test_an_earlier_run_is_refused_without_overwrite_before_any_compute(tiny_scan, tmp_path, capsys, monkeypatch):
    files = _earlier_run(tmp_path / "run")
    monkeypatch.setattr(RawData, "from_file", _must_not_run("data loaded before the earlier run was noticed"))
    line = _train(capsys, "--train_data_file", str(tiny_scan), "--output_dir", str(tmp_path / "run"))
    assert "already holds wts.h5.zip, checkpoints, figures from an earlier run" in line and "--overwrite" in line
    assert all(path.read_bytes() == data for path, data in files.items())


def test_overwrite_with_bad_input_keeps_the_good_run(grid_arrays, tmp_path, capsys):
    files = _earlier_run(tmp_path / "run")
    bad = tmp_path / "bad.npz"
    np.savez(bad, **_with(grid_arrays(), {"diffraction": _poke(np.nan)}))
    line = _train(capsys, "--train_data_file", str(bad), "--output_dir", str(tmp_path / "run"), "--overwrite")
    assert "NaN/inf" in line
    survived = {path: path.read_bytes() == data for path, data in files.items() if path.exists()}
    assert survived == dict.fromkeys(files, True), "inputs must be validated before --overwrite deletes anything"


def test_earlier_run_names_match_the_modules_that_write_them():
    from ptycho_torch.bundle import BUNDLE_NAME
    from ptycho_torch.figures import FIGURES_DIR
    from ptycho_torch.train import CHECKPOINT_DIR

    assert EARLIER_RUN == (BUNDLE_NAME, CHECKPOINT_DIR, FIGURES_DIR)


def test_importing_the_clis_does_not_import_torch():
    """Ctrl-C is handled from run_cli on; a light import keeps the uncovered start-up window short."""
    code = "import sys, ptycho_torch.train, ptycho_torch.inference; print(sorted({'torch', 'lightning', 'scipy'} & set(sys.modules)))"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert result.stdout.strip() == "[]", f"heavy modules imported at CLI import: {result.stdout} {result.stderr}"
