"""The runs of the quality benchmark: cost budgets, a PINN trained and scored, rPIE run and scored.

Why apart from ``bench/quality.py``: that file is the command and its report (table, JSON,
panel); this one is what gets measured, which the slow test reuses without the report. Both
methods see the same simulated scan and are scored by the same code (``bench.metrics``) in the
same region; the PINN's patches are predicted and stitched by ``ptycho_torch.reconstruct``,
exactly as the inference CLI does.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from bench.epie import rpie
from bench.free_fit import FreeFit, fit_free
from bench.metrics import Region, Scores, score
from ptycho.config import LR_SCHEDULES, ExecutionConfig, ModelConfig, TrainingConfig
from ptycho.raw_data import RawData
from ptycho.simulation import PROBES, simulate_dataset
from ptycho_torch.data import PtychoDataContainerTorch, build_container
from ptycho_torch.reconstruct import predict_patches, stitch_container
from ptycho_torch.stitching import WEIGHTINGS
from ptycho_torch.workflows.components import _train_with_lightning


@dataclass(frozen=True)
class Budget:
    """Everything that sets the cost of a run; recorded in the JSON so numbers can be compared."""

    name: str
    n_patterns: int
    epochs_gs1: int
    epochs_gs2: int
    low_dose_epochs_gs2: int
    epie_epochs: int
    nphotons: float = 1e9
    low_nphotons: float = 1e6
    n_filters_scale: int = 2
    batch_size: int = 16
    learning_rate: float = 1e-3
    lr_schedule: str = "constant"
    seed: int = 0
    stitch_weighting: str = "probe"  # stitch_patches weight: "probe" (|P|^2 / max) or "uniform"
    probe: str = "diffuser"  # ptycho.simulation.PROBES
    free_fit_steps_gs1: int = 250  # network-free ceiling: full-batch Adam steps (converged, docs/performance.md)
    free_fit_steps_gs2: int = 200

    def __post_init__(self) -> None:
        side = math.isqrt(self.n_patterns)
        if side * side != self.n_patterns:
            raise ValueError(
                f"n_patterns={self.n_patterns} leaves the simulator's raster with an incomplete last row, so the "
                f"scanned bounding box would include unscanned object; use a square number such as {side * side} "
                f"or {(side + 1) ** 2}"
            )
        if self.stitch_weighting not in WEIGHTINGS:
            raise ValueError(f"stitch_weighting={self.stitch_weighting!r} is unknown; use one of {WEIGHTINGS}")
        if self.probe not in PROBES:
            raise ValueError(f"probe={self.probe!r} is unknown; use one of {PROBES}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule={self.lr_schedule!r} is unknown; use one of {LR_SCHEDULES}")

    def free_fit_steps(self, gridsize: int) -> int:
        return self.free_fit_steps_gs1 if gridsize == 1 else self.free_fit_steps_gs2


# n_filters_scale=1 (0.5 M parameters) and batch 4: on 2 CPU cores the default 2 M-parameter
# network costs about 4x more per step, and time is what the PINN lacks; half of the small one
# (base 16) is faster per epoch but learns less per second (docs/performance.md, Science II). The PINN's progress
# goes with passes over the scan, so the full budget uses the smallest scan allowed (256 patterns)
# and gives gs2, the slower learner, the whole 10 minutes; gs1 passes its target well within them.
# A constant learning rate: annealing while the score still rises costs more than it gains.
BUDGETS = {
    "full": Budget("full", n_patterns=256, epochs_gs1=150, epochs_gs2=125, low_dose_epochs_gs2=40, epie_epochs=150,
                   n_filters_scale=1, batch_size=4),
    # A small scan that is revisited often: gs2 passes 0.90 after about 250 epochs (5 minutes).
    "quick": Budget("quick", n_patterns=64, epochs_gs1=60, epochs_gs2=300, low_dose_epochs_gs2=30, epie_epochs=60,
                    n_filters_scale=1, batch_size=4),
}


@dataclass
class PinnRun:
    """One trained PINN: its stitched object, scores and timings."""

    gridsize: int
    nphotons: float
    epochs: int
    n_groups: int
    train_seconds: float
    infer_seconds: float
    network_seconds: float
    final_train_loss: float | None
    loss_history: list[float]
    scores: Scores
    obj: np.ndarray
    weights: dict[str, torch.Tensor]


@dataclass
class EpieRun:
    """rPIE on the same data: final scores, compute time and the SSIM-vs-time trajectory."""

    nphotons: float
    epochs: int
    seconds: float
    scores: Scores
    trajectory: list[tuple[float, float]]  # (compute seconds, amplitude SSIM) after each epoch
    obj: np.ndarray

    def seconds_to(self, ssim_amp: float) -> float | None:
        """Compute time until the amplitude SSIM first reached ``ssim_amp`` (None: never)."""
        for seconds, value in self.trajectory:
            if value >= ssim_amp:
                return seconds
        return None


def simulate(budget: Budget, nphotons: float) -> RawData:
    """The scan to reconstruct: ``n_patterns`` N=64 patterns at ``nphotons`` (same object/scan/probe for every dose)."""
    dataset = simulate_dataset(n_patterns=budget.n_patterns, N=64, nphotons=nphotons, seed=budget.seed,
                               probe=budget.probe)
    return RawData.from_arrays(dataset.arrays)


def reconstruct_pinn(container: PtychoDataContainerTorch, model: torch.nn.Module, canvas: tuple[int, int],
                     chunk: int = 64, weighting: str = "probe") -> tuple[np.ndarray, float, float, np.ndarray]:
    """Predict every group and stitch, timed (``ptycho_torch.reconstruct``, as the inference CLI does).

    Returns (object, total seconds, network-only seconds, stitch weight map (H, W)).
    """
    start = time.perf_counter()
    patches = predict_patches(model, container, batch_size=chunk)
    network = time.perf_counter() - start
    obj, weights = stitch_container(container, patches, canvas, weighting=weighting)
    return obj, time.perf_counter() - start, network, weights


def training_config(raw: RawData, budget: Budget, gridsize: int, nphotons: float, epochs: int) -> TrainingConfig:
    """The PINN's configuration; its grouping (gridsize, neighbour count, seed) is also the free fit's."""
    return TrainingConfig(
        model=ModelConfig(N=raw.N, gridsize=gridsize, n_filters_scale=budget.n_filters_scale, nphotons=nphotons),
        max_epochs=epochs, batch_size=budget.batch_size, learning_rate=budget.learning_rate,
        lr_schedule=budget.lr_schedule, seed=budget.seed,
    )


def free_fit_and_score(raw: RawData, region: Region, budget: Budget, gridsize: int, nphotons: float) -> FreeFit:
    """The network-free ceiling of the PINN run with the same arguments: same scan, same groups, same stitch."""
    config = training_config(raw, budget, gridsize, nphotons, 1)
    return fit_free(raw, build_container(raw, config), config.model, region, budget.free_fit_steps(gridsize),
                    weighting=budget.stitch_weighting)


def train_and_score(raw: RawData, region: Region, budget: Budget, gridsize: int, nphotons: float,
                    epochs: int) -> PinnRun:
    """Train a fresh PINN for ``epochs`` on ``raw`` and score its stitched reconstruction."""
    config = training_config(raw, budget, gridsize, nphotons, epochs)
    container = build_container(raw, config)
    start = time.perf_counter()
    result = _train_with_lightning(container, None, config, ExecutionConfig(logger="none"))
    train_seconds = time.perf_counter() - start
    obj, infer_seconds, network_seconds, weights = reconstruct_pinn(
        container, result["models"]["diffraction_to_obj"], raw.objectGuess.shape, weighting=budget.stitch_weighting)
    uncovered = int(np.count_nonzero(weights[region.slices] <= 1e-6))
    if uncovered:
        raise ValueError(f"{uncovered} pixels of the scored region {region} got no stitched patch; "
                         "shrink the region margin or check coords_nn")
    losses = result["history"].get("train_loss") or []
    return PinnRun(gridsize, nphotons, epochs, len(container), train_seconds, infer_seconds, network_seconds,
                   losses[-1] if losses else None, losses, score(obj, raw.objectGuess, region), obj,
                   result["models"]["diffraction_to_obj"].state_dict())


def epie_and_score(raw: RawData, region: Region, nphotons: float, epochs: int, seed: int) -> EpieRun:
    """rPIE for ``epochs`` from a flat object, scored after every epoch (outside the timed part)."""
    ssim_per_epoch: list[float] = []

    def record(epoch: int, obj: np.ndarray) -> bool:
        ssim_per_epoch.append(score(obj, raw.objectGuess, region).ssim_amp)
        return False

    result = rpie(raw.diffraction, raw.probeGuess, raw.xcoords, raw.ycoords, raw.objectGuess.shape,
                  epochs=epochs, seed=seed, callback=record)
    return EpieRun(nphotons, result.epochs, result.seconds, score(result.obj, raw.objectGuess, region),
                   list(zip(result.elapsed, ssim_per_epoch)), result.obj)
