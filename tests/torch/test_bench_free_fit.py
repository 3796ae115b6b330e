"""Fast checks of the network-free ceiling diagnostic (bench/free_fit.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

# bench/ is a script folder at the repository root, not an installed package.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench import free_fit  # noqa: E402


@pytest.mark.parametrize("gridsize", [1, 2])
def test_free_fit_reduces_the_loss_and_stitches_the_truth_exactly(gridsize, capsys):
    assert free_fit.main(["--gridsize", str(gridsize), "--n-patterns", "16", "--steps", "20", "--every", "10"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    header, first, last, summary = lines[0], lines[1], lines[2], lines[-1]
    assert header["gridsize"] == gridsize
    # The free patches are fitted: the loss falls between evaluations.
    assert last["loss"] < first["loss"]
    # Stitching and scoring the ground-truth patches recovers the object: the path is sound,
    # so a low free-fit score is the data's ambiguity, not a scoring artefact.
    assert summary["ground_truth_scores"]["ssim_amp"] > 0.95
    assert summary["ground_truth_scores"]["ssim_phase"] > 0.95
    # The ground truth fits its own noisy data well: its loss is the noise floor (about 0.3 at 1e9).
    assert 0 < summary["truth_loss"] < 1.0
