"""Science benchmark: does the embedded PINN backend recover a known object, and how fast?

Simulates a scan with the project's deterministic simulator (known object and probe, Poisson
noise), trains PtychoPINN on CPU for a fixed number of epochs at gridsize 1 and 2, stitches the
predicted patches onto the object grid and scores them against the ground truth in the scanned
region (``bench.metrics``). The same data are reconstructed by rPIE with the known probe
(``bench.epie``), scored every epoch by the same code, to give ePIE's time to the PINN's quality.
Beside each PINN score stands its ceiling: free patches fitted to the same groups with no network
(``bench.free_fit``), stitched and scored alike, and the ratio PINN / ceiling.
The scan is lit by a structured probe (``--probe``, default ``diffuser``), which makes the data
of each group decisive; ``--probe gaussian`` gives the smooth probe of the committed fixture.

The PINN is self-supervised: it is trained on the diffraction of the very scan it reconstructs
(no ground truth enters training), as an iterative solver is; the ground truth is used only to score.

Usage::

    python bench/quality.py                      # full budget (about 35 min on 2 cores)
    QUALITY_BUDGET=quick python bench/quality.py # same keys in about 10 minutes

Writes ``artifacts/quality/<timestamp>.json``, ``<timestamp>.png`` and ``<timestamp>/`` (stitched
objects + trained weights, for re-scoring without retraining); prints a table and, as
the last stdout line, one JSON object with the headline numbers.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
from tabulate import tabulate

from bench.metrics import Region, Scores, align, stitched_region
from bench.free_fit import FreeFit
from bench.quality_runs import (BUDGETS, EpieRun, PinnRun, epie_and_score, free_fit_and_score, simulate,
                                train_and_score)
from ptycho.config import LR_SCHEDULES
from ptycho.simulation import PROBES
from ptycho_torch.stitching import WEIGHTINGS

ROOT = Path(__file__).resolve().parents[1]


def save_panel(path: Path, truth: np.ndarray, region: Region, runs: dict[str, np.ndarray]) -> None:
    """PNG: one row per (method, amplitude|phase): ground truth | reconstruction | error."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = []
    for label, obj in runs.items():
        aligned, crop, *_ = align(obj, truth, region)
        rows.append((f"{label} amplitude", np.abs(crop), np.abs(aligned), "gray"))
        rows.append((f"{label} phase", np.angle(crop), np.angle(aligned), "twilight"))
    fig, axes = plt.subplots(len(rows), 3, figsize=(9, 3 * len(rows)), squeeze=False)
    for (label, gt, rec, cmap), ax in zip(rows, axes):
        lo, hi = float(gt.min()), float(gt.max())
        err = rec - gt
        bound = float(np.abs(err).max()) or 1.0
        for a, image, title, kw in (
            (ax[0], gt, "ground truth", {"cmap": cmap, "vmin": lo, "vmax": hi}),
            (ax[1], rec, label, {"cmap": cmap, "vmin": lo, "vmax": hi}),
            (ax[2], err, f"error (max {bound:.2f})", {"cmap": "RdBu_r", "vmin": -bound, "vmax": bound}),
        ):
            shown = a.imshow(image, **kw)
            a.set_title(title, fontsize=9)
            a.axis("off")
            fig.colorbar(shown, ax=a, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _row(method: str, nphotons: float, gridsize: int | str, s: Scores, train: float | None,
         infer: float, ceiling: FreeFit | None = None) -> list:
    bound = ["", ""] if ceiling is None else [f"{ceiling.scores.ssim_amp:.3f}", f"{_ratio(s, ceiling):.2f}"]
    return [method, f"{nphotons:.0e}", gridsize, f"{s.ssim_amp:.3f}", *bound, f"{s.ssim_phase:.3f}",
            f"{s.psnr_amp:.1f}", f"{s.psnr_phase:.1f}", f"{s.frc_complex:.2f}",
            "" if train is None else f"{train:.0f}", f"{infer:.1f}"]


def _ratio(scores: Scores, ceiling: FreeFit) -> float:
    """PINN amplitude SSIM / its free-fit ceiling's."""
    return scores.ssim_amp / ceiling.scores.ssim_amp


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", choices=sorted(BUDGETS), default=os.environ.get("QUALITY_BUDGET", "full"),
                        help="cost preset (default: $QUALITY_BUDGET or 'full')")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "artifacts" / "quality",
                        help="where <timestamp>.json and .png go (default artifacts/quality)")
    parser.add_argument("--n-patterns", type=int, help="override the budget's number of scan points")
    parser.add_argument("--epochs-gs1", type=int, help="override the gridsize-1 training epochs")
    parser.add_argument("--epochs-gs2", type=int, help="override the gridsize-2 training epochs")
    parser.add_argument("--n-filters-scale", type=int, help="override ModelConfig.n_filters_scale")
    parser.add_argument("--batch-size", type=int, help="override the training batch size")
    parser.add_argument("--learning-rate", type=float, help="override the Adam learning rate")
    parser.add_argument("--lr-schedule", choices=LR_SCHEDULES, help="override the learning-rate schedule")
    parser.add_argument("--probe", choices=PROBES, help="override the simulated probe (default diffuser)")
    parser.add_argument("--free-fit-steps", type=int, help="override the free-fit ceiling's Adam steps (both gridsizes)")
    parser.add_argument("--epie-epochs", type=int, help="override the rPIE epochs")
    parser.add_argument("--stitch-weighting", choices=WEIGHTINGS,
                        help="stitching average: 'probe' (|P|^2 / max, the default) or 'uniform'")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("QUALITY_THREADS", "1")),
                        help="torch intra-op threads (default: $QUALITY_THREADS or 1; on a shared 2-core machine "
                             "2 threads oversubscribe and run up to 20x slower)")
    parser.add_argument("--no-low-dose", action="store_true", help="skip the low-dose PINN + rPIE pair")
    args = parser.parse_args(argv)
    if args.budget not in BUDGETS:
        parser.error(f"QUALITY_BUDGET={args.budget!r} is unknown; use one of {sorted(BUDGETS)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    overrides = {k: v for k, v in {"n_patterns": args.n_patterns, "epochs_gs1": args.epochs_gs1,
                                    "epochs_gs2": args.epochs_gs2, "n_filters_scale": args.n_filters_scale,
                                    "batch_size": args.batch_size, "learning_rate": args.learning_rate,
                                    "lr_schedule": args.lr_schedule, "probe": args.probe,
                                    "free_fit_steps_gs1": args.free_fit_steps, "free_fit_steps_gs2": args.free_fit_steps,
                                    "epie_epochs": args.epie_epochs,
                                    "stitch_weighting": args.stitch_weighting}.items() if v is not None}
    try:
        budget = replace(BUDGETS[args.budget], **overrides)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="lightning")
    torch.manual_seed(budget.seed)
    torch.set_num_threads(args.threads)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H%M%SZ")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()

    raw = simulate(budget, budget.nphotons)
    region = stitched_region(raw.xcoords, raw.ycoords, raw.objectGuess.shape, raw.N)
    print(f"[quality] budget={budget.name} probe={budget.probe} n_patterns={budget.n_patterns} "
          f"object={raw.objectGuess.shape} region={region}", file=sys.stderr, flush=True)
    pinn, ceiling = {}, {}
    for gridsize, epochs in ((1, budget.epochs_gs1), (2, budget.epochs_gs2)):
        pinn[gridsize] = train_and_score(raw, region, budget, gridsize, budget.nphotons, epochs)
        ceiling[gridsize] = free_fit_and_score(raw, region, budget, gridsize, budget.nphotons)
        print(f"[quality] PINN gs{gridsize}: {pinn[gridsize].scores}; free-fit ceiling "
              f"{ceiling[gridsize].scores.ssim_amp:.4f}", file=sys.stderr, flush=True)
    epie = epie_and_score(raw, region, budget.nphotons, budget.epie_epochs, budget.seed)
    print(f"[quality] rPIE: {epie.scores}", file=sys.stderr, flush=True)

    low = None
    if not args.no_low_dose:
        raw_low = simulate(budget, budget.low_nphotons)
        low = (train_and_score(raw_low, region, budget, 2, budget.low_nphotons, budget.low_dose_epochs_gs2),
               epie_and_score(raw_low, region, budget.low_nphotons, budget.epie_epochs, budget.seed),
               free_fit_and_score(raw_low, region, budget, 2, budget.low_nphotons))
        print(f"[quality] low dose PINN gs2: {low[0].scores}; rPIE: {low[1].scores}", file=sys.stderr, flush=True)

    rows = [_row("PINN", r.nphotons, r.gridsize, r.scores, r.train_seconds, r.infer_seconds, ceiling[g])
            for g, r in pinn.items()]
    rows.append(_row("rPIE", epie.nphotons, "-", epie.scores, None, epie.seconds))
    if low is not None:
        rows.append(_row("PINN", low[0].nphotons, 2, low[0].scores, low[0].train_seconds, low[0].infer_seconds,
                         low[2]))
        rows.append(_row("rPIE", low[1].nphotons, "-", low[1].scores, None, low[1].seconds))
    print(tabulate(rows, headers=["method", "nphotons", "gridsize", "SSIM amp", "free fit", "PINN/free",
                                  "SSIM phase", "PSNR amp", "PSNR phase", "FRC 1/7", "train s", "recon s"]))

    to_same = epie.seconds_to(pinn[2].scores.ssim_amp)
    headline = {
        "ssim_amp_gs1": pinn[1].scores.ssim_amp, "ssim_amp_gs2": pinn[2].scores.ssim_amp,
        "ssim_phase_gs1": pinn[1].scores.ssim_phase, "ssim_phase_gs2": pinn[2].scores.ssim_phase,
        "psnr_amp_gs1": pinn[1].scores.psnr_amp, "psnr_amp_gs2": pinn[2].scores.psnr_amp,
        "train_seconds_gs1": pinn[1].train_seconds, "train_seconds_gs2": pinn[2].train_seconds,
        "infer_seconds_gs1": pinn[1].infer_seconds, "infer_seconds_gs2": pinn[2].infer_seconds,
        "epie_ssim_amp": epie.scores.ssim_amp, "epie_ssim_phase": epie.scores.ssim_phase,
        "epie_seconds": epie.seconds,
        "epie_seconds_to_pinn_gs2_ssim": to_same,
        "infer_speedup_vs_epie": None if to_same is None else to_same / pinn[2].infer_seconds,
        "n_patterns": budget.n_patterns, "nphotons": budget.nphotons, "budget": budget.name,
        "stitch_weighting": budget.stitch_weighting, "probe": budget.probe,
        "free_fit_ssim_amp_gs2": ceiling[2].scores.ssim_amp, "free_fit_ssim_amp_gs1": ceiling[1].scores.ssim_amp,
        "pinn_over_free_fit_gs2": _ratio(pinn[2].scores, ceiling[2]),
        "pinn_over_free_fit_gs1": _ratio(pinn[1].scores, ceiling[1]),
    }
    if low is not None:
        headline.update({"low_nphotons": budget.low_nphotons, "ssim_amp_gs2_low": low[0].scores.ssim_amp,
                         "ssim_phase_gs2_low": low[0].scores.ssim_phase, "epie_ssim_amp_low": low[1].scores.ssim_amp,
                         "free_fit_ssim_amp_gs2_low": low[2].scores.ssim_amp})
    headline = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in headline.items()}

    def pinn_record(r: PinnRun) -> dict:
        kept = {k: getattr(r, k) for k in ("gridsize", "nphotons", "epochs", "n_groups", "train_seconds",
                                            "infer_seconds", "network_seconds", "final_train_loss", "loss_history")}
        return kept | {"scores": r.scores.as_dict()}

    def epie_record(r: EpieRun) -> dict:
        return {"nphotons": r.nphotons, "epochs": r.epochs, "seconds": r.seconds, "scores": r.scores.as_dict(),
                "trajectory": [[round(t, 3), round(s, 4)] for t, s in r.trajectory]}

    record = {
        "schema": "quality/1", "timestamp": stamp, "headline": headline, "budget": asdict(budget),
        "region": asdict(region), "object_shape": list(raw.objectGuess.shape),
        "pinn": [pinn_record(r) for r in pinn.values()] + ([pinn_record(low[0])] if low else []),
        "epie": [epie_record(epie)] + ([epie_record(low[1])] if low else []),
        "free_fit": [c.as_dict() | {"nphotons": budget.nphotons} for c in ceiling.values()]
        + ([low[2].as_dict() | {"nphotons": budget.low_nphotons}] if low else []),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__, "load_average": list(os.getloadavg())},
        "wall_seconds": time.perf_counter() - began,
    }
    json_path = args.out_dir / f"{stamp}.json"
    json_path.write_text(json.dumps(record, indent=2) + "\n")
    # Raw outputs for re-scoring without retraining: stitched objects and the trained weights.
    keep = args.out_dir / stamp
    keep.mkdir()
    objects = {"ground_truth": raw.objectGuess, "pinn_gs1": pinn[1].obj, "pinn_gs2": pinn[2].obj, "rpie": epie.obj}
    runs = list(pinn.values())
    if low is not None:
        objects |= {"pinn_gs2_low": low[0].obj, "rpie_low": low[1].obj}
        runs.append(low[0])
    np.savez(keep / "objects.npz", **objects)
    for r in runs:
        torch.save(r.weights, keep / f"diffraction_to_obj_gs{r.gridsize}_{r.nphotons:.0e}.pt")
    panel = {"PINN gs1": pinn[1].obj, "PINN gs2": pinn[2].obj, "rPIE": epie.obj}
    save_panel(args.out_dir / f"{stamp}.png", raw.objectGuess, region, panel)
    print(f"wrote {json_path.relative_to(ROOT) if json_path.is_relative_to(ROOT) else json_path} and .png")
    print(json.dumps(headline))
    return 0


if __name__ == "__main__":
    sys.exit(main())
