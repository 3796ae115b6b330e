"""The learning-rate schedule: its factor curve, its validation, and how Lightning steps it."""

from __future__ import annotations

import pytest
import torch

from ptycho.config import ModelConfig, TrainingConfig
from ptycho_torch.model import PtychoPINN_Lightning, learning_rate_factor


def test_constant_keeps_the_learning_rate():
    assert [learning_rate_factor("constant", s, 10) for s in (0, 5, 9, 20)] == [1.0] * 4


def test_cosine_falls_from_one_to_one_percent_at_the_last_step():
    factors = [learning_rate_factor("cosine", s, 101) for s in range(101)]
    assert factors[0] == pytest.approx(1.0) and factors[50] == pytest.approx(0.505)
    assert factors[-1] == pytest.approx(0.01) and learning_rate_factor("cosine", 500, 101) == pytest.approx(0.01)
    assert all(a >= b for a, b in zip(factors, factors[1:])), "cosine decay must not rise"


def test_cosine_tail_holds_for_three_quarters_then_decays_like_cosine():
    factors = [learning_rate_factor("cosine-tail", s, 101) for s in range(101)]
    assert factors[:75] == [1.0] * 75
    assert factors[75] == pytest.approx(1.0) and factors[-1] == pytest.approx(0.01)
    assert all(a >= b for a, b in zip(factors, factors[1:]))


def test_unknown_schedules_are_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"lr_schedule='step' is unknown: choose one of \('constant', 'cosine'"):
        TrainingConfig(lr_schedule="step")
    with pytest.raises(ValueError, match="schedule 'step' is unknown"):
        learning_rate_factor("step", 0, 10)


def test_lightning_steps_the_cosine_schedule_every_optimiser_step(monkeypatch):
    from ptycho_torch.data import DataConfig

    config = TrainingConfig(model=ModelConfig(N=16), lr_schedule="cosine", learning_rate=2e-3)
    module = PtychoPINN_Lightning(model_config=config.model, data_config=DataConfig(C=1), training_config=config)
    monkeypatch.setattr(PtychoPINN_Lightning, "trainer", property(lambda self: type("T", (), {
        "estimated_stepping_batches": 11})()))
    setup = module.configure_optimizers()
    optimiser, scheduler = setup["optimizer"], setup["lr_scheduler"]["scheduler"]
    assert setup["lr_scheduler"]["interval"] == "step"
    rates = []
    for _ in range(11):
        rates.append(optimiser.param_groups[0]["lr"])
        optimiser.step()
        scheduler.step()
    assert rates[0] == pytest.approx(2e-3) and rates[-1] == pytest.approx(2e-5)
    assert isinstance(optimiser, torch.optim.Adam)
