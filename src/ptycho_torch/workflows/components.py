"""Workflow building blocks shared by the CLIs and tests: train with Lightning, load a bundle.

Why ``_train_with_lightning`` derives every channel count from ``config.model.gridsize``:
the upstream bug BUG-TF-001 was a gridsize that never reached the network's first conv.
The Lightning module is looked up at call time (``model_module.PtychoPINN_Lightning``) so
tests can monkeypatch it.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, Logger

from ptycho.config import ExecutionConfig, InferenceConfig, TrainingConfig
from ptycho_torch import model as model_module
from ptycho_torch.bundle import load_inference_bundle_torch
from ptycho_torch.data import DataConfig, PtychoDataContainerTorch, PtychoDataModule

__all__ = ["_train_with_lightning", "load_inference_bundle_torch", "LossHistory"]


class LossHistory(Callback):
    """Collects the epoch-level ``train_loss`` (and ``val_loss``) that the module logs, and the
    loss of every optimiser step (``train_loss_step``) from the step's own output, so the
    per-step curve exists whichever logger (or none) is configured."""

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {"train_loss": [], "train_loss_step": []}

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None:
            self.history["train_loss_step"].append(float(loss))

    def _record(self, trainer: L.Trainer, key: str) -> None:
        value = trainer.callback_metrics.get(key)
        if value is not None:
            self.history.setdefault(key, []).append(float(value))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._record(trainer, "train_loss")

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._record(trainer, "val_loss")


def _make_logger(kind: str, output_dir: Path | None) -> Logger | bool:
    """``none`` -> False; ``csv`` -> CSVLogger under output_dir; ``mlflow`` only if installed."""
    if kind == "none" or output_dir is None:
        return False
    if kind == "csv":
        return CSVLogger(save_dir=str(output_dir), name="lightning_logs")
    if importlib.util.find_spec("mlflow") is None:
        raise ValueError(
            "logger 'mlflow' was requested but mlflow is not installed; pip install mlflow, "
            "or choose --logger csv (default) or --logger none"
        )
    from lightning.pytorch.loggers import MLFlowLogger

    return MLFlowLogger(experiment_name="ptychopinn", save_dir=str(output_dir / "mlruns"))


def _check_container(name: str, container: PtychoDataContainerTorch, config: TrainingConfig) -> None:
    model = config.model
    if container.C != model.C or container.N != model.N:
        raise ValueError(
            f"{name} container holds C={container.C} channels of {container.N}x{container.N}, but config.model "
            f"(gridsize={model.gridsize}, N={model.N}) needs C={model.C}; rebuild it with "
            "ptycho_torch.data.build_container(raw, config)"
        )


def _train_with_lightning(
    train_container: PtychoDataContainerTorch,
    test_container: PtychoDataContainerTorch | None,
    config: TrainingConfig,
    execution_config: ExecutionConfig | None = None,
) -> dict[str, Any]:
    """Train ``PtychoPINN_Lightning`` on ``train_container``; validate on ``test_container`` if given.

    Returns ``lightning_module``, ``trainer``, ``models`` (``autoencoder``,
    ``diffraction_to_obj``), ``history`` (per-epoch ``train_loss``, ``val_loss``; per-step
    ``train_loss_step``) and
    ``checkpoint_path`` (``{output_dir}/checkpoints/last.ckpt`` or None without output_dir).
    """
    execution = execution_config or ExecutionConfig()
    _check_container("train", train_container, config)
    if test_container is not None:
        _check_container("test", test_container, config)

    model_config = config.model
    inference_config = None
    if config.output_dir is not None and config.test_data_file is not None:
        inference_config = InferenceConfig(
            model=model_config,
            model_path=config.output_dir,
            test_data_file=config.test_data_file,
            output_dir=config.output_dir,
            n_groups=config.n_groups,
        )

    L.seed_everything(config.seed, workers=True, verbose=False)
    module = model_module.PtychoPINN_Lightning(
        model_config=model_config,
        data_config=DataConfig.of(train_container),
        training_config=config,
        inference_config=inference_config,
    )
    history = LossHistory()
    callbacks: list[Callback] = [history]
    checkpoint_path = None
    if config.output_dir is not None:
        checkpoint_dir = Path(config.output_dir) / "checkpoints"
        callbacks.append(ModelCheckpoint(dirpath=checkpoint_dir, save_last=True, save_top_k=0))
        checkpoint_path = checkpoint_dir / "last.ckpt"

    deterministic_before = torch.are_deterministic_algorithms_enabled()
    trainer = L.Trainer(
        max_epochs=config.max_epochs,
        accelerator=execution.accelerator,
        devices=1,
        deterministic=execution.deterministic,
        logger=_make_logger(execution.logger, config.output_dir),
        callbacks=callbacks,
        enable_checkpointing=config.output_dir is not None,
        enable_progress_bar=execution.enable_progress_bar,
        enable_model_summary=False,
        default_root_dir=str(config.output_dir) if config.output_dir is not None else None,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
    )
    datamodule = PtychoDataModule(
        train_container, test_container, batch_size=config.batch_size, num_workers=execution.num_workers, seed=config.seed
    )
    validation = datamodule.val_dataloader() if test_container is not None else None
    try:
        with warnings.catch_warnings():  # no test container means no validation: expected, not a problem
            warnings.filterwarnings("ignore", message=".*validation_step.*no `val_dataloader`")
            trainer.fit(module, train_dataloaders=datamodule.train_dataloader(), val_dataloaders=validation)
    finally:  # Trainer(deterministic=...) flips a process-wide switch; put it back
        torch.use_deterministic_algorithms(deterministic_before)

    return {
        "lightning_module": module,
        "trainer": trainer,
        "models": {
            "autoencoder": module.model.autoencoder,
            "diffraction_to_obj": module.model.diffraction_to_obj,
        },
        "history": history.history,
        "checkpoint_path": checkpoint_path if checkpoint_path is not None and checkpoint_path.exists() else None,
    }
