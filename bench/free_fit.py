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
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

from bench.metrics import score, stitched_region
from ptycho.config import ModelConfig, TrainingConfig
from ptycho.raw_data import RawData
from ptycho.simulation import extract_patches, simulate_dataset
from ptycho_torch import physics
from ptycho_torch.data import PtychoDataContainerTorch, build_container
from ptycho_torch.model import probe_statistics
from ptycho_torch.reconstruct import stitch_container


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gridsize", type=int, default=1)
    parser.add_argument("--n-patterns", type=int, default=256, help="square number (complete raster)")
    parser.add_argument("--nphotons", type=float, default=1e9)
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


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    dataset = simulate_dataset(n_patterns=args.n_patterns, nphotons=args.nphotons, seed=args.seed)
    raw = RawData.from_arrays(dataset.arrays)
    region = stitched_region(raw.xcoords, raw.ycoords, raw.objectGuess.shape, raw.N)
    config = ModelConfig(N=raw.N, gridsize=args.gridsize, nphotons=args.nphotons, neighbor_count=args.neighbor_count)
    container = build_container(raw, TrainingConfig(model=config, seed=args.seed))

    # The loss the ground truth itself scores: the floor set by the Poisson noise.
    index = container.nn_indices.reshape(-1).numpy()
    true_patches = torch.from_numpy(extract_patches(raw.objectGuess, raw.xcoords[index], raw.ycoords[index], raw.N))
    true_patches = true_patches.reshape(container.X.shape).to(torch.complex64)
    truth_loss = float(physics.poisson_loss(forward(container, true_patches, config), container.X,
                                            config.intensity_scale))
    print(json.dumps({"gridsize": args.gridsize, "groups": len(container), "truth_loss": round(truth_loss, 3)}),
          flush=True)

    amplitude_logit = torch.zeros_like(container.X, requires_grad=True)
    phase_logit = torch.zeros_like(container.X, requires_grad=True)
    optimiser = torch.optim.Adam([amplitude_logit, phase_logit], lr=args.learning_rate)
    curve, seconds = [], 0.0
    for step in range(1, args.steps + 1):
        start = time.perf_counter()
        patches = torch.polar(torch.sigmoid(amplitude_logit), math.pi * torch.tanh(phase_logit))
        loss = physics.poisson_loss(forward(container, patches, config), container.X, config.intensity_scale)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        seconds += time.perf_counter() - start
        if step % args.every == 0 or step == args.steps:
            with torch.no_grad():
                patches = tie_groups(container, torch.polar(torch.sigmoid(amplitude_logit),
                                                            math.pi * torch.tanh(phase_logit)), config)
            s = score(stitch_container(container, patches, raw.objectGuess.shape)[0], raw.objectGuess, region)
            point = {"steps": step, "seconds": round(seconds, 1), "loss": round(float(loss.detach()), 3),
                     "ssim_amp": round(s.ssim_amp, 4), "ssim_phase": round(s.ssim_phase, 4)}
            print(json.dumps(point), flush=True)
            curve.append(point)
    print(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "truth_loss": round(truth_loss, 3),
                      "curve": curve, "final": curve[-1] if curve else None, "n_groups": len(container),
                      "ground_truth_scores": _truth_scores(container, true_patches, raw, region)}))
    return 0


def _truth_scores(container: PtychoDataContainerTorch, true_patches: torch.Tensor, raw: RawData,
                  region) -> dict:
    """The stitch of the ground-truth patches: checks the stitching and scoring path (should be ~1)."""
    s = score(stitch_container(container, true_patches, raw.objectGuess.shape)[0], raw.objectGuess, region)
    return {"ssim_amp": round(s.ssim_amp, 4), "ssim_phase": round(s.ssim_phase, 4)}


if __name__ == "__main__":
    sys.exit(main())
