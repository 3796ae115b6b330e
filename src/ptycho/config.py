"""Typed configuration for the backend: what the model is, how it trains, how Lightning runs.

Why dataclasses: configs flow into functions as arguments (no hidden global state); the
legacy ``params.cfg`` dict is written from them once, at the boundary (``ptycho.params``).
Field names equal the legacy ``params.cfg`` keys for the same quantity, except where the
legacy key is not a Python identifier (``object.big`` -> ``object_big``; see ``ptycho.params``).
Every config validates itself in ``__post_init__`` and says how to fix a bad value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

AMP_ACTIVATIONS = ("sigmoid", "softplus")
LOSSES = ("poisson", "gaussian")
#: Learning-rate schedules over the whole run (``ptycho_torch.model.learning_rate_factor``).
LR_SCHEDULES = ("constant", "cosine", "cosine-tail")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
LOGGERS = ("none", "csv", "mlflow")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _optional_path(value: Path | str | None) -> Path | None:
    return None if value is None else Path(value)


@dataclass
class ModelConfig:
    """The network and its forward model.

    ``N``: diffraction pattern / object patch size in pixels (divisible by 8: three poolings).
    ``gridsize``: patches per group along one side; ``C = gridsize**2`` channels per sample.
    ``object_big``: the encoder sees all C patterns at once and the C object patches are
    tied together by the overlap constraint; otherwise each pattern is solved alone.
    ``probe_big``: the probe illuminates the whole N x N patch; otherwise it is cut to a
    central disc of radius N/4.
    ``nphotons``: sets the intensity scale ``sqrt(nphotons) / (N/2)`` of the Poisson model.
    ``neighbor_count``: K nearest scan points a group is drawn from (grouping needs K >= C).
    """

    N: int = 64
    gridsize: int = 1
    n_filters_scale: int = 2
    object_big: bool = True
    probe_big: bool = True
    nphotons: float = 1e9
    neighbor_count: int = 4
    amp_activation: str = "sigmoid"

    def __post_init__(self) -> None:
        if not _is_int(self.N) or self.N < 8 or self.N % 8:
            raise ValueError(
                f"ModelConfig.N={self.N!r} is invalid: the encoder pools three times, so N must be "
                "a positive multiple of 8 (e.g. 64, the probe size of the fixture)"
            )
        if not _is_int(self.gridsize) or self.gridsize < 1:
            raise ValueError(f"ModelConfig.gridsize={self.gridsize!r} is invalid: use an integer >= 1 (1, 2 or 3)")
        if not _is_int(self.n_filters_scale) or self.n_filters_scale < 1:
            raise ValueError(
                f"ModelConfig.n_filters_scale={self.n_filters_scale!r} is invalid: use an integer >= 1 (default 2)"
            )
        if not isinstance(self.nphotons, (int, float)) or not math.isfinite(self.nphotons) or self.nphotons <= 0:
            raise ValueError(f"ModelConfig.nphotons={self.nphotons!r} is invalid: use a positive number (e.g. 1e9)")
        self.nphotons = float(self.nphotons)
        if not _is_int(self.neighbor_count) or self.neighbor_count < 1:
            raise ValueError(
                f"ModelConfig.neighbor_count={self.neighbor_count!r} is invalid: use an integer >= 1 (default 4)"
            )
        if self.amp_activation not in AMP_ACTIVATIONS:
            raise ValueError(
                f"ModelConfig.amp_activation={self.amp_activation!r} is unknown: choose one of {AMP_ACTIVATIONS}"
            )
        for name in ("object_big", "probe_big"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"ModelConfig.{name}={getattr(self, name)!r} must be True or False")

    @property
    def C(self) -> int:
        """Channels per sample: the number of patches in a group."""
        return self.gridsize**2

    @property
    def intensity_scale(self) -> float:
        """Amplitude-to-sqrt(counts) factor ``sqrt(nphotons) / (N/2)`` (988.2 for N=64, 1e9)."""
        return math.sqrt(self.nphotons) / (self.N / 2)


@dataclass
class TrainingConfig:
    """What to learn from and how long: data files, batch size, epochs, optimiser.

    ``lr_schedule``: ``constant`` keeps ``learning_rate``; ``cosine`` decays it along a half cosine
    to 1 % of its value at the last optimiser step of ``max_epochs``; ``cosine-tail`` keeps it for
    three quarters of the steps and decays it so over the last quarter.
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    train_data_file: Path | None = None
    test_data_file: Path | None = None
    output_dir: Path | None = None
    batch_size: int = 16
    max_epochs: int = 10
    learning_rate: float = 1e-3
    n_groups: int | None = None
    seed: int = 0
    loss: str = "poisson"
    lr_schedule: str = "constant"

    def __post_init__(self) -> None:
        if not isinstance(self.model, ModelConfig):
            raise ValueError(f"TrainingConfig.model must be a ModelConfig, got {type(self.model).__name__}")
        self.train_data_file = _optional_path(self.train_data_file)
        self.test_data_file = _optional_path(self.test_data_file)
        self.output_dir = _optional_path(self.output_dir)
        if not _is_int(self.batch_size) or self.batch_size < 1:
            raise ValueError(f"TrainingConfig.batch_size={self.batch_size!r} is invalid: use an integer >= 1 (default 16)")
        if not _is_int(self.max_epochs) or self.max_epochs < 1:
            raise ValueError(f"TrainingConfig.max_epochs={self.max_epochs!r} is invalid: use an integer >= 1")
        if not isinstance(self.learning_rate, (int, float)) or not self.learning_rate > 0:
            raise ValueError(
                f"TrainingConfig.learning_rate={self.learning_rate!r} is invalid: use a positive number (default 1e-3)"
            )
        self.learning_rate = float(self.learning_rate)
        _check_n_groups("TrainingConfig", self.n_groups)
        if not _is_int(self.seed) or self.seed < 0:
            raise ValueError(f"TrainingConfig.seed={self.seed!r} is invalid: use an integer >= 0")
        if self.loss not in LOSSES:
            raise ValueError(f"TrainingConfig.loss={self.loss!r} is unknown: choose one of {LOSSES}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(
                f"TrainingConfig.lr_schedule={self.lr_schedule!r} is unknown: choose one of {LR_SCHEDULES}"
            )


@dataclass
class InferenceConfig:
    """Which trained bundle to apply to which data, and where to write the reconstruction."""

    model: ModelConfig
    model_path: Path
    test_data_file: Path
    output_dir: Path
    n_groups: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.model, ModelConfig):
            raise ValueError(f"InferenceConfig.model must be a ModelConfig, got {type(self.model).__name__}")
        for name in ("model_path", "test_data_file", "output_dir"):
            value = getattr(self, name)
            if value is None:
                raise ValueError(f"InferenceConfig.{name} is required: pass a path")
            setattr(self, name, Path(value))
        _check_n_groups("InferenceConfig", self.n_groups)


@dataclass
class ExecutionConfig:
    """How Lightning runs (hardware, determinism, logging), not what it learns."""

    accelerator: str = "cpu"
    deterministic: bool = True
    num_workers: int = 0
    logger: str = "csv"
    enable_progress_bar: bool = False

    def __post_init__(self) -> None:
        if self.accelerator not in ACCELERATORS:
            raise ValueError(f"ExecutionConfig.accelerator={self.accelerator!r} is unknown: choose one of {ACCELERATORS}")
        if not isinstance(self.deterministic, bool):
            raise ValueError(f"ExecutionConfig.deterministic={self.deterministic!r} must be True or False")
        if not _is_int(self.num_workers) or self.num_workers < 0:
            raise ValueError(f"ExecutionConfig.num_workers={self.num_workers!r} is invalid: use an integer >= 0")
        if self.logger not in LOGGERS:
            raise ValueError(f"ExecutionConfig.logger={self.logger!r} is unknown: choose one of {LOGGERS}")
        if not isinstance(self.enable_progress_bar, bool):
            raise ValueError(f"ExecutionConfig.enable_progress_bar={self.enable_progress_bar!r} must be True or False")


def _check_n_groups(owner: str, n_groups: int | None) -> None:
    if n_groups is not None and (not _is_int(n_groups) or n_groups < 1):
        raise ValueError(
            f"{owner}.n_groups={n_groups!r} is invalid: use a positive integer (the number of groups, "
            "CLI --n_images) or None for one group per scan point"
        )
