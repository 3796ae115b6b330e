"""Diagnostic: the PINN's reconstruction quality against optimiser steps (and CPU seconds).

Why: ``bench/quality.py`` trains through Lightning for a fixed budget and only sees the end
point; to say *what* limits quality we need the trajectory. This script trains the same
network (``ptycho_torch.model.PtychoPINN``) with the same physics loss
(``ptycho_torch.physics.LOSSES``) and Adam, in a plain loop, and scores the stitched object
against the ground truth every ``--every`` epochs. Evaluation time is excluded from the
reported training seconds.

    python bench/learning_curve.py --gridsize 2 --n-patterns 256 --epochs 40

Prints one line per evaluation and, last, a JSON object with the whole curve.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from bench.metrics import score, stitched_region
from ptycho.config import ModelConfig, TrainingConfig
from ptycho.raw_data import RawData
from ptycho.config import LR_SCHEDULES
from ptycho.simulation import PROBES, simulate_dataset
from ptycho_torch import physics
from ptycho_torch.data import build_container
from ptycho_torch.model import PtychoPINN, learning_rate_factor
from ptycho_torch.reconstruct import predict_patches, stitch_container


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gridsize", type=int, default=2)
    parser.add_argument("--n-patterns", type=int, default=256, help="square number (complete raster)")
    parser.add_argument("--nphotons", type=float, default=1e9)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--every", type=int, default=1, help="evaluate every this many epochs")
    parser.add_argument("--n-filters-scale", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--lr-schedule", choices=LR_SCHEDULES, default="constant",
                        help="over the whole --epochs run, as TrainingConfig.lr_schedule")
    parser.add_argument("--probe", choices=PROBES, default="diffuser", help="simulated illumination (default diffuser)")
    parser.add_argument("--loss", choices=sorted(physics.LOSSES), default="poisson")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", type=Path, help="write the trained diffraction_to_obj state dict here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    raw = RawData.from_arrays(simulate_dataset(n_patterns=args.n_patterns, nphotons=args.nphotons, seed=args.seed,
                                                    probe=args.probe).arrays)
    region = stitched_region(raw.xcoords, raw.ycoords, raw.objectGuess.shape, raw.N)
    model_config = ModelConfig(N=raw.N, gridsize=args.gridsize, n_filters_scale=args.n_filters_scale,
                               nphotons=args.nphotons)
    container = build_container(raw, TrainingConfig(model=model_config, seed=args.seed))
    model = PtychoPINN(model_config, probe=container.probe)
    optimiser = torch.optim.Adam(model.parameters(), lr=args.learning_rate)
    total_steps = args.epochs * -(-len(container) // args.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: learning_rate_factor(args.lr_schedule, step, total_steps))
    loss_fn = physics.LOSSES[args.loss]
    generator = torch.Generator().manual_seed(args.seed)

    def evaluate(epoch: int, steps: int, seconds: float, loss: float | None) -> dict:
        patches = predict_patches(model.diffraction_to_obj, container, batch_size=64)
        s = score(stitch_container(container, patches, raw.objectGuess.shape)[0], raw.objectGuess, region)
        model.train()
        point = {"epoch": epoch, "steps": steps, "train_seconds": round(seconds, 1), "loss": loss,
                 "ssim_amp": round(s.ssim_amp, 4), "ssim_phase": round(s.ssim_phase, 4),
                 "psnr_amp": round(s.psnr_amp, 2), "shift_px": list(s.shift_px)}
        print(json.dumps(point), flush=True)
        return point

    curve = [evaluate(0, 0, 0.0, None)]
    steps, seconds = 0, 0.0
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        total = 0.0
        for batch in torch.randperm(len(container), generator=generator).split(args.batch_size):
            loss = loss_fn(model(container.X[batch], container.coords_relative[batch]), container.X[batch],
                           model_config.intensity_scale)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            scheduler.step()
            total += loss.item() * len(batch)
            steps += 1
        seconds += time.perf_counter() - start
        if epoch % args.every == 0 or epoch == args.epochs:
            curve.append(evaluate(epoch, steps, seconds, round(total / len(container), 3)))
    if args.save is not None:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.diffraction_to_obj.state_dict(), args.save)
    print(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "n_groups": len(container), "curve": curve}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
