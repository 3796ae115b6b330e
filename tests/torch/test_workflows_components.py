"""_train_with_lightning: gridsize reaches the network (BUG-TF-001), batches are channels-first,
the Lightning module is looked up at call time, logging/checkpointing follow ExecutionConfig."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch

from ptycho.config import ExecutionConfig, ModelConfig, TrainingConfig
from ptycho_torch import bundle
from ptycho_torch import model as model_module
from ptycho_torch.data import build_container
from ptycho_torch.workflows import components

CONTRACT_KWARGS = {"model_config", "data_config", "training_config", "inference_config"}


def _install_spy(monkeypatch) -> list[dict]:
    """Replace ``ptycho_torch.model.PtychoPINN_Lightning`` by a recording subclass; return its log."""
    records: list[dict] = []
    real = model_module.PtychoPINN_Lightning

    class Recording(real):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.record = {"kwargs": kwargs, "batches": []}
            records.append(self.record)

        def training_step(self, batch, batch_idx):
            self.record["batches"].append(
                {key: (tuple(value.shape), value.is_contiguous()) for key, value in batch.items()}
            )
            return super().training_step(batch, batch_idx)

    monkeypatch.setattr(model_module, "PtychoPINN_Lightning", Recording)
    return records


def _config(gridsize: int, output_dir: Path | None = None, **overrides) -> TrainingConfig:
    model = ModelConfig(gridsize=gridsize, neighbor_count=max(4, gridsize**2))
    settings = {"n_groups": 4, "batch_size": 2, "max_epochs": 1, "output_dir": output_dir, **overrides}
    return TrainingConfig(model=model, **settings)


def _check_gridsize_reached_model(result: dict, record: dict, gridsize: int, batch_size: int = 2) -> None:
    """Every place gridsize must reach: kwargs, first conv, batches (B, C, 1, 2), history."""
    C = gridsize**2
    assert set(record["kwargs"]) == CONTRACT_KWARGS, "PtychoPINN_Lightning must be built by the contract keywords"
    assert record["kwargs"]["model_config"].gridsize == gridsize
    assert record["kwargs"]["data_config"].C == C
    first_conv = result["lightning_module"].model.autoencoder.encoder[0]
    assert first_conv.in_channels == C, f"gridsize {gridsize}: first conv has in_channels {first_conv.in_channels}, expected C={C}"
    assert result["models"]["autoencoder"].encoder[0] is first_conv
    assert record["batches"], "no training step ran"
    for batch in record["batches"]:
        assert batch["diffraction"] == ((batch_size, C, 64, 64), True)
        assert batch["coords_relative"] == ((batch_size, C, 1, 2), True), "coords axis fix: (B, C, 1, 2), contiguous"
        assert batch["index"] == ((batch_size,), True)
    losses = result["history"]["train_loss"]
    assert len(losses) == 1 and all(math.isfinite(value) for value in losses)


class TestWorkflowsComponentsTraining:
    """Selector of the evidence plan (phase C4.D.B3): the class name is fixed by the seed."""

    def test_lightning_training_respects_gridsize(self, raw_fixture, tmp_path, monkeypatch):
        records = _install_spy(monkeypatch)
        for gridsize in (1, 2, 3):
            config = _config(gridsize, tmp_path / f"gs{gridsize}")
            container = build_container(raw_fixture, config)
            result = components._train_with_lightning(container, None, config, ExecutionConfig(logger="none"))
            assert len(records) == gridsize, "the module must be looked up at call time (monkeypatched spy unused)"
            _check_gridsize_reached_model(result, records[-1], gridsize)
            assert result["checkpoint_path"] == tmp_path / f"gs{gridsize}" / "checkpoints" / "last.ckpt"
            assert result["checkpoint_path"].is_file()


def test_gridsize_check_catches_a_network_that_ignores_gridsize(raw_fixture, monkeypatch):
    """BUG-TF-001 re-enacted: a module that solves each pattern alone must fail the check above."""
    records = _install_spy(monkeypatch)
    spy = model_module.PtychoPINN_Lightning

    class IgnoresGridsize(spy):
        def __init__(self, *, model_config, **kwargs):
            super().__init__(model_config=dataclasses.replace(model_config, object_big=False), **kwargs)
            self.record["kwargs"]["model_config"] = model_config

    monkeypatch.setattr(model_module, "PtychoPINN_Lightning", IgnoresGridsize)
    config = _config(2)
    result = components._train_with_lightning(build_container(raw_fixture, config), None, config, ExecutionConfig(logger="none"))
    with pytest.raises(AssertionError, match="in_channels 1, expected C=4"):
        _check_gridsize_reached_model(result, records[-1], 2)


def test_csv_logger_writes_per_epoch_metrics_under_output_dir(raw_fixture, tmp_path):
    config = _config(1, tmp_path, max_epochs=2)
    test = build_container(raw_fixture, config)
    result = components._train_with_lightning(build_container(raw_fixture, config), test, config, ExecutionConfig(logger="csv"))
    assert len(result["history"]["train_loss"]) == 2 and len(result["history"]["val_loss"]) == 2
    metrics = list(tmp_path.glob("lightning_logs/version_*/metrics.csv"))
    assert len(metrics) == 1 and "train_loss" in metrics[0].read_text().splitlines()[0]
    assert set(result["models"]) == {"autoencoder", "diffraction_to_obj"}
    assert all(isinstance(m, torch.nn.Module) for m in result["models"].values())


def test_without_output_dir_nothing_is_written_and_determinism_does_not_leak(raw_fixture, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = torch.are_deterministic_algorithms_enabled()
    config = _config(1)
    result = components._train_with_lightning(
        build_container(raw_fixture, config), None, config, ExecutionConfig(deterministic=not before)
    )
    assert result["checkpoint_path"] is None
    assert list(tmp_path.iterdir()) == [], "no lightning_logs/ or checkpoints in the working directory"
    assert torch.are_deterministic_algorithms_enabled() == before, "Trainer(deterministic=...) must not leak"


def test_mlflow_without_mlflow_is_a_clear_error(raw_fixture, tmp_path, monkeypatch):
    real_find_spec = components.importlib.util.find_spec
    monkeypatch.setattr(components.importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real_find_spec(name, *a))
    config = _config(1, tmp_path)
    with pytest.raises(ValueError, match="mlflow is not installed.*--logger csv"):
        components._train_with_lightning(build_container(raw_fixture, config), None, config, ExecutionConfig(logger="mlflow"))


def test_container_built_for_another_gridsize_is_rejected(raw_fixture):
    container = build_container(raw_fixture, _config(1))
    with pytest.raises(ValueError, match="needs C=4.*build_container"):
        components._train_with_lightning(container, None, _config(2))


def test_bundle_loader_is_re_exported():
    assert components.load_inference_bundle_torch is bundle.load_inference_bundle_torch
