"""``python -m ptycho_torch.train``: train PtychoPINN on an NPZ file, write the bundle.

Outputs in ``--output_dir``: ``figures/loss_curve.png`` and ``figures/reconstruction.png``
(``ptycho_torch.figures``), the Lightning checkpoint ``checkpoints/last.ckpt``, with
``--logger csv`` ``lightning_logs/``, and last ``wts.h5.zip`` (see ``ptycho_torch.bundle``): the
bundle appears only when a run finishes, so an interrupted run never looks complete. The last
stdout line is ``TRAIN_RECORD {json}`` (keys fixed by docs/architecture.md; the harness parses it).

Every user mistake is reported before anything is computed or written: flags first, then the
output folder (a file, under a file, an earlier run without ``--overwrite``), then the data
(loaded, validated and grouped). Only then does ``--overwrite`` delete the earlier run's
bundle, checkpoints and figures, so a bad input never costs a good run: training never
resumes from, or mixes with, an old checkpoint.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ptycho_torch.cli.shared import (
    LOGGERS,
    add_execution_arguments,
    build_execution_config,
    check_output_dir,
    require_file,
    require_positive,
    resolve_accelerator,
    resolve_logger,
    run_cli,
)

if TYPE_CHECKING:
    import torch

    from ptycho_torch.data import PtychoDataContainerTorch

RECORD_PREFIX = "TRAIN_RECORD "
CHECKPOINT_DIR = "checkpoints"
#: What an earlier run left in an output folder (the names of ptycho_torch.bundle / .figures).
EARLIER_RUN = ("wts.h5.zip", CHECKPOINT_DIR, "figures")
ON_INTERRUPT = "training stopped and wrote no bundle (wts.h5.zip appears only when a run finishes); rerun the command"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ptycho_torch.train",
        description="Train the PtychoPINN PyTorch backend and write {output_dir}/wts.h5.zip.",
    )
    data = parser.add_argument_group("data")
    data.add_argument("--train_data_file", type=Path, required=True, help="training NPZ (DATA-001 keys)")
    data.add_argument("--test_data_file", type=Path, default=None, help="validation NPZ (optional)")
    data.add_argument("--output_dir", type=Path, required=True, help="where the bundle, checkpoint and figures go")
    data.add_argument("--overwrite", action="store_true",
                      help="replace an earlier run's bundle/checkpoints/figures in --output_dir instead of refusing")
    data.add_argument("--n_groups", type=int, default=None, help="number of groups to train on (default: all)")
    data.add_argument("--n_images", type=int, default=None, help="alias of --n_groups")
    model = parser.add_argument_group("model")
    model.add_argument("--gridsize", type=int, default=1, help="patches per group side; C = gridsize**2 (default: 1)")
    model.add_argument("--neighbor_count", type=int, default=4,
                       help="K: each group takes its C patches from a scan point's K nearest points; "
                            "must be >= C = gridsize**2 when gridsize > 1 (default: 4)")
    model.add_argument("--nphotons", type=float, default=1e9, help="photons per pattern; sets the Poisson intensity scale (default: 1e9)")
    training = parser.add_argument_group("training")
    training.add_argument("--batch_size", type=int, default=16, help="groups per optimiser step (default: 16)")
    training.add_argument("--max_epochs", type=int, default=10, help="epochs (default: 10)")
    training.add_argument("--learning-rate", "--learning_rate", dest="learning_rate", type=float, default=1e-3,
                          help="Adam learning rate (default: 1e-3)")
    training.add_argument("--seed", type=int, default=0, help="seed for grouping, shuffling and initial weights (default: 0)")
    training.add_argument("--logger", choices=LOGGERS, default=None, help="training log backend (default: csv)")
    training.add_argument("--disable_mlflow", action="store_true", help="deprecated: use --logger none")
    add_execution_arguments(parser)
    return parser


def check_flags(args: argparse.Namespace) -> None:
    """Reject impossible numbers by the flag that carries them, before anything is loaded."""
    require_positive(args.gridsize, "--gridsize", " (1, 2 or 3)")
    require_positive(args.neighbor_count, "--neighbor_count", " (default 4)")
    require_positive(args.batch_size, "--batch_size", " (default 16)")
    require_positive(args.max_epochs, "--max_epochs")
    if args.seed < 0:
        raise ValueError(f"--seed {args.seed} is invalid: use an integer >= 0")
    for flag, value in (("--learning-rate", args.learning_rate), ("--nphotons", args.nphotons)):
        if not value > 0 or value == float("inf"):
            raise ValueError(f"{flag} {value} is invalid: use a finite number > 0")
    C = args.gridsize**2
    if C > 1 and args.neighbor_count < C:
        raise ValueError(
            f"--gridsize {args.gridsize} needs C={C} patterns per group, drawn from each scan point's "
            f"--neighbor_count nearest points, but --neighbor_count is {args.neighbor_count}; "
            f"pass --neighbor_count {C} (or more) or lower --gridsize"
        )


def resolve_n_groups(n_groups: int | None, n_images: int | None) -> int | None:
    """``--n_images`` is the legacy name of ``--n_groups``; both given must agree."""
    if n_groups is not None and n_images is not None and n_groups != n_images:
        raise ValueError(f"--n_groups {n_groups} conflicts with its alias --n_images {n_images}; pass one of them")
    value = n_groups if n_groups is not None else n_images
    if value is not None and value < 1:
        raise ValueError(f"--n_groups must be >= 1, got {value}")
    return value


def earlier_run(output_dir: Path, overwrite: bool) -> list[Path]:
    """What an earlier run left in ``output_dir``; ValueError unless ``overwrite`` (nothing is deleted here)."""
    check_output_dir(output_dir)
    stale = [output_dir / name for name in EARLIER_RUN if (output_dir / name).exists()]
    if stale and not overwrite:
        raise ValueError(
            f"--output_dir {output_dir} already holds {', '.join(p.name for p in stale)} from an earlier run; "
            f"choose a new directory or pass --overwrite to replace them"
        )
    return stale


def prepare_output_dir(output_dir: Path, overwrite: bool) -> Path:
    """Create ``output_dir``; refuse (or, with ``overwrite``, delete) an earlier run's outputs."""
    for path in earlier_run(output_dir, overwrite):
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    output_dir.mkdir(parents=True, exist_ok=True)
    return output_dir


def batch_shapes(
    models: dict[str, torch.nn.Module], container: PtychoDataContainerTorch, batch_size: int
) -> dict[str, list[int]]:
    """Shapes of one real batch through the inference graph (what the harness summary reports)."""
    from ptycho_torch.reconstruct import predict_patches

    count = min(batch_size, container.X.shape[0])
    diffraction = container.X[:count]
    coords = container.coords_relative[:count]
    predicted = predict_patches(models["diffraction_to_obj"], container, batch_size=count, limit=count)
    return {
        "diffraction": list(diffraction.shape),
        "coords_relative": list(coords.shape),
        "predicted_object": list(predicted.shape),
    }


def main(argv: Sequence[str] | None = None) -> int:
    started = time.perf_counter()
    args = build_parser().parse_args(argv)
    check_flags(args)
    n_groups = resolve_n_groups(args.n_groups, args.n_images)
    accelerator = resolve_accelerator(args.accelerator, args.device)
    logger = resolve_logger(args.logger, args.disable_mlflow)
    train_file = require_file(args.train_data_file, "--train_data_file")
    test_file = require_file(args.test_data_file, "--test_data_file") if args.test_data_file else None
    execution = build_execution_config(args, accelerator, logger)
    earlier_run(args.output_dir, args.overwrite)  # refuse now; delete only once the data are known good

    # Imported here, not at the top: bad flags and missing files are reported without
    # paying for the torch and Lightning imports.
    from ptycho import params as legacy
    from ptycho.checksums import sha256_file
    from ptycho.config import ModelConfig, TrainingConfig
    from ptycho.raw_data import RawData
    from ptycho_torch.bundle import params_snapshot, save_bundle
    from ptycho_torch.data import build_container
    from ptycho_torch.figures import write_training_figures
    from ptycho_torch.workflows.components import _train_with_lightning

    train_raw = RawData.from_file(train_file)
    test_raw = RawData.from_file(test_file) if test_file else None
    config = TrainingConfig(
        model=ModelConfig(N=train_raw.N, gridsize=args.gridsize, nphotons=args.nphotons,
                          neighbor_count=args.neighbor_count),
        train_data_file=train_file,
        test_data_file=test_file,
        output_dir=args.output_dir,
        batch_size=args.batch_size,
        max_epochs=args.max_epochs,
        learning_rate=args.learning_rate,
        n_groups=n_groups,
        seed=args.seed,
    )
    legacy.publish(config)  # the run's one write of params.cfg, before grouping (CONFIG-001)
    # Lightning logs "Received SIGTERM" itself; run_cli's "interrupted:" line is the one users need.
    logging.getLogger("lightning.pytorch.trainer.connectors.signal_connector").setLevel(logging.WARNING)
    train_container = build_container(train_raw, config)
    test_container = build_container(test_raw, config) if test_raw is not None else None
    output_dir = prepare_output_dir(args.output_dir, args.overwrite)

    result = _train_with_lightning(train_container, test_container, config, execution)
    models = result["models"]
    figures = write_training_figures(output_dir, result["history"], models["diffraction_to_obj"], train_container,
                                     loss=config.loss)
    bundle = save_bundle(output_dir, models, params_snapshot(config))  # last: its presence means "finished"
    history = [float(v) for v in result["history"]["train_loss"]]
    record = {
        "epochs": len(history),
        "final_train_loss": history[-1] if history else None,
        "train_loss_history": history,
        "wall_seconds": round(time.perf_counter() - started, 3),
        "gridsize": config.model.gridsize,
        "n_groups": int(train_container.X.shape[0]),
        "batch_size": config.batch_size,
        "train_data_file": str(train_file),
        "train_data_sha256": sha256_file(train_file),
        "n_patterns": train_raw.n_points,
        "shapes": batch_shapes(models, train_container, config.batch_size),
        "bundle": str(bundle),
        "checkpoint": str(result["checkpoint_path"]) if result.get("checkpoint_path") else None,
        "figures": [str(path) for path in figures],
    }
    print(RECORD_PREFIX + json.dumps(record), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main, on_interrupt=ON_INTERRUPT))
