"""The network learns from the physics alone: 10 epochs on the fixture lower the training loss.

The loss is the excess Poisson NLL (0 at a perfect fit), so the ratio last/first epoch is
meaningful. The default run uses 16 groups in batches of 4 (40 optimiser steps, seconds on
one CPU thread); the ``slow`` variant trains on all 64 groups with the default batch of 16.
Measured ratios (seed 0): 16 groups gs1 0.59, gs2 0.70; 64 groups gs1 0.60, gs2 0.71.
"""

from __future__ import annotations

import pytest

from ptycho.config import ExecutionConfig, ModelConfig, TrainingConfig
from ptycho_torch.data import build_container
from ptycho_torch.workflows import components

MAX_RATIO = 0.8


def _train_and_ratio(raw, gridsize: int, n_groups: int | None, batch_size: int) -> tuple[float, list[float]]:
    config = TrainingConfig(
        model=ModelConfig(gridsize=gridsize), n_groups=n_groups, batch_size=batch_size, max_epochs=10, seed=0
    )
    result = components._train_with_lightning(build_container(raw, config), None, config, ExecutionConfig(logger="none"))
    losses = result["history"]["train_loss"]
    assert len(losses) == 10
    return losses[-1] / losses[0], losses


@pytest.mark.parametrize("gridsize", [1, 2])
def test_ten_epochs_lower_the_loss(raw_fixture, gridsize):
    ratio, losses = _train_and_ratio(raw_fixture, gridsize, n_groups=16, batch_size=4)
    assert ratio < MAX_RATIO, f"gridsize {gridsize}: last/first epoch loss {ratio:.3f} >= {MAX_RATIO}; losses {losses}"


@pytest.mark.slow
@pytest.mark.parametrize("gridsize", [1, 2])
def test_ten_epochs_on_the_whole_fixture_lower_the_loss(raw_fixture, gridsize):
    ratio, losses = _train_and_ratio(raw_fixture, gridsize, n_groups=None, batch_size=16)
    assert ratio < MAX_RATIO, f"gridsize {gridsize}: last/first epoch loss {ratio:.3f} >= {MAX_RATIO}; losses {losses}"
