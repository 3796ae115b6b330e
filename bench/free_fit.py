"""Diagnostic: what the data alone determine, with no network (the PINN's ceiling per grouping).

Why: the PINN never sees the whole scan at once. At gridsize 1 each object patch must be
recovered from one diffraction pattern; at gridsize 2 from the C patterns of one group, tied
by the overlap constraint. If the data of one group do not determine its patch, no amount of
training fixes that, and only the network's prior can choose among the data-consistent
answers. This script measures that ceiling: it gives every group its own free complex patches
(the same sigmoid amplitude / pi*tanh phase parametrisation as the network heads), fits them
by the same Poisson loss through the same forward model and overlap constraint as the PINN
(``ptycho_torch.physics``), stitches them as inference and the benchmark do
(``ptycho_torch.reconstruct``) and scores them.

    python bench/free_fit.py --gridsize 1 --n-patterns 256 --steps 2000
    python bench/free_fit.py --gridsize 2 --n-patterns 64 --steps 600 --probe gaussian

``bench/quality.py`` reports this ceiling beside each PINN score (``fit_free``), on the same scan
and grouping.

Prints one line per evaluation and, last, a JSON object with the curve. A loss below the
ground truth's own loss (printed first) means the free patches fit the noise: the data are
matched, so whatever error remains is ambiguity, not under-fitting.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

from bench.metrics import Region, Scores, score, stitched_region
from ptycho.config import ModelConfig, TrainingConfig
from ptycho.raw_data import RawData
from ptycho.simulation import PROBES, extract_patches, simulate_dataset
from ptycho_torch import physics
from ptycho_torch.data import PtychoDataContainerTorch, build_container
from ptycho_torch.model import probe_statistics
from ptycho_torch.reconstruct import stitch_container


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gridsize", type=int, default=1)
    parser.add_argument("--n-patterns", type=int, default=256, help="square number (complete raster)")
    parser.add_argument("--nphotons", type=float, default=1e9)
    parser.add_argument("--probe", choices=PROBES, default="diffuser", help="simulated illumination (default diffuser)")
    parser.add_argument("--neighbor-count", type=int, default=4,
                        help="K nearest scan points each gs2 group is drawn from (larger K: more spread-out groups)")
    parser.add_argument("--steps", type=int, default=2000, help="Adam steps on all groups at once")
    parser.add_argument("--every", type=int, default=500, help="evaluate every this many steps")
    parser.add_argument("--learning-rate", type=float, default=0.02)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def tie_groups(container: PtychoDataContainerTorch, patches: torch.Tensor, config: ModelConfig) -> torch.Tensor:
    """Apply the network's overlap constraint (gridsize > 1), with the network's own merge weights."""
    if config.object_big and container.C > 1:
        return physics.overlap_constraint(patches, container.coords_relative, probe_statistics(container.probe)[1])
    return patches


def forward(container: PtychoDataContainerTorch, patches: torch.Tensor, config: ModelConfig) -> torch.Tensor:
    """Free patches -> predicted diffraction amplitude, through the PINN's own physics."""
    return physics.far_field_amplitude(physics.illuminate(tie_groups(container, patches, config), container.probe))


@dataclass
class FreeFit:
    """A network-free fit of one scan's groups: final scores, fit and noise-floor losses, the curve."""

    gridsize: int
    n_groups: int
    steps: int
    seconds: float
    truth_loss: float
    loss: float
    scores: Scores
    ground_truth_scores: Scores
    curve: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"gridsize": self.gridsize, "n_groups": self.n_groups, "steps": self.steps,
                "seconds": round(self.seconds, 1), "truth_loss": round(self.truth_loss, 3),
                "loss": round(self.loss, 3), "scores": self.scores.as_dict(),
                "ground_truth_scores": self.ground_truth_scores.as_dict(), "curve": self.curve}


def fit_free(raw: RawData, container: PtychoDataContainerTorch, config: ModelConfig, region: Region, steps: int,
             learning_rate: float = 0.02, every: int | None = None, weighting: str = "probe",
             report: Callable[[dict], None] | None = None) -> FreeFit:
    """Fit free patches to every group of ``container`` by Adam for ``steps``, stitch, score on ``region``.

    ``container`` must be built from ``raw`` with ``config`` (the grouping being judged);
    the curve gets a point every ``every`` steps (default: only the last), each passed to ``report``.
    """
    stitch = lambda patches: stitch_container(container, patches, raw.objectGuess.shape,  # noqa: E731
                                              weighting=weighting)[0]
    # The loss the ground truth itself scores: the floor set by the Poisson noise.
    index = container.nn_indices.reshape(-1).numpy()
    true_patches = torch.from_numpy(extract_patches(raw.objectGuess, raw.xcoords[index], raw.ycoords[index], raw.N))
    true_patches = true_patches.reshape(container.X.shape).to(torch.complex64)
    with torch.no_grad():
        truth_loss = float(physics.poisson_loss(forward(container, true_patches, config), container.X,
                                                config.intensity_scale))
    amplitude_logit = torch.zeros_like(container.X, requires_grad=True)
    phase_logit = torch.zeros_like(container.X, requires_grad=True)
    optimiser = torch.optim.Adam([amplitude_logit, phase_logit], lr=learning_rate)
    curve, seconds, loss, scores = [], 0.0, float("nan"), None
    for step in range(1, steps + 1):
        start = time.perf_counter()
        patches = torch.polar(torch.sigmoid(amplitude_logit), math.pi * torch.tanh(phase_logit))
        fit = physics.poisson_loss(forward(container, patches, config), container.X, config.intensity_scale)
        optimiser.zero_grad()
        fit.backward()
        optimiser.step()
        seconds += time.perf_counter() - start
        loss = float(fit.detach())
        if (every and step % every == 0) or step == steps:
            with torch.no_grad():
                patches = tie_groups(container, torch.polar(torch.sigmoid(amplitude_logit),
                                                            math.pi * torch.tanh(phase_logit)), config)
            scores = score(stitch(patches), raw.objectGuess, region)
            point = {"steps": step, "seconds": round(seconds, 1), "loss": round(loss, 3),
                     "ssim_amp": round(scores.ssim_amp, 4), "ssim_phase": round(scores.ssim_phase, 4)}
            curve.append(point)
            if report is not None:
                report(point)
    truth_scores = score(stitch(true_patches), raw.objectGuess, region)
    return FreeFit(config.gridsize, len(container), steps, seconds, truth_loss, loss, scores,
                   truth_scores, curve)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    dataset = simulate_dataset(n_patterns=args.n_patterns, nphotons=args.nphotons, seed=args.seed, probe=args.probe)
    raw = RawData.from_arrays(dataset.arrays)
    region = stitched_region(raw.xcoords, raw.ycoords, raw.objectGuess.shape, raw.N)
    config = ModelConfig(N=raw.N, gridsize=args.gridsize, nphotons=args.nphotons, neighbor_count=args.neighbor_count)
    container = build_container(raw, TrainingConfig(model=config, seed=args.seed))
    print(json.dumps({"gridsize": args.gridsize, "groups": len(container), "probe": args.probe}), flush=True)
    result = fit_free(raw, container, config, region, args.steps, args.learning_rate, args.every,
                      report=lambda point: print(json.dumps(point), flush=True))
    print(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "truth_loss": round(result.truth_loss, 3),
                      "curve": result.curve, "final": result.curve[-1], "n_groups": result.n_groups,
                      "ground_truth_scores": {"ssim_amp": round(result.ground_truth_scores.ssim_amp, 4),
                                              "ssim_phase": round(result.ground_truth_scores.ssim_phase, 4)}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
