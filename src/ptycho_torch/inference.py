"""``python -m ptycho_torch.inference``: reconstruct an object with a trained bundle.

Loads ``{model_path}/wts.h5.zip``, groups the test data with the bundle's gridsize, runs
``diffraction_to_obj`` and stitches the patches into the full object (translate-and-average,
``ptycho_torch.reconstruct``; by default weighted by the probe intensity |P|^2 / max, so
pixels the probe barely lit count less; ``--weighting uniform`` for the plain average). Writes ``reconstructed_amplitude.png``,
``reconstructed_phase.png`` and ``reconstruction.npz`` (complex object + metadata) to
``--output_dir``; the last stdout line is ``INFERENCE_RECORD {json}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ptycho_torch.bundle import load_bundle, model_config_from_params, resolve_bundle_path
from ptycho_torch.cli.shared import add_accelerator_arguments, require_file, resolve_accelerator, run_cli
from ptycho_torch.stitching import WEIGHTINGS

RECORD_PREFIX = "INFERENCE_RECORD "
AMPLITUDE_PNG = "reconstructed_amplitude.png"
PHASE_PNG = "reconstructed_phase.png"
RECONSTRUCTION_NPZ = "reconstruction.npz"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ptycho_torch.inference",
        description="Reconstruct an object from diffraction data with a trained wts.h5.zip bundle.",
    )
    parser.add_argument("--model_path", type=Path, required=True,
                        help="training --output_dir holding wts.h5.zip (or the zip itself)")
    parser.add_argument("--test_data", "--test_data_file", dest="test_data", type=Path, required=True,
                        help="NPZ with diffraction, xcoords, ycoords, probeGuess")
    parser.add_argument("--output_dir", type=Path, required=True, help="where the PNGs and NPZ go")
    parser.add_argument("--n_groups", "--n_images", dest="n_groups", type=int, default=None,
                        help="number of groups to reconstruct (default: all)")
    parser.add_argument("--batch_size", type=int, default=32, help="groups per forward pass (default: 32)")
    parser.add_argument("--inner_size", type=int, default=None,
                        help="stitch only the central inner_size x inner_size pixels of each patch "
                             "(default: N/2, the region the overlap constraint trusts; N for whole patches)")
    parser.add_argument("--weighting", choices=WEIGHTINGS, default="probe",
                        help="stitching average: 'probe' weighs each patch pixel by the probe intensity "
                             "|P|^2 / max (poorly lit pixels count less), 'uniform' averages plainly "
                             "(default: probe)")
    add_accelerator_arguments(parser)
    return parser


def save_images(obj: np.ndarray, covered: np.ndarray, output_dir: Path) -> tuple[Path, Path]:
    """Amplitude and phase PNGs with colorbars; pixels no patch covered are left blank.

    Uses matplotlib's object API (``Figure``, Agg canvas), so no pyplot state or display is involved.
    """
    from matplotlib.figure import Figure

    paths = []
    for name, values, title, cmap in (
        (AMPLITUDE_PNG, np.abs(obj), "reconstructed amplitude", "gray"),
        (PHASE_PNG, np.angle(obj), "reconstructed phase (rad)", "twilight"),
    ):
        figure = Figure(figsize=(5, 4.2), dpi=100)
        axis = figure.subplots()
        image = axis.imshow(np.where(covered, values, np.nan), cmap=cmap)
        axis.set_title(title)
        axis.set_xlabel("x (pixels)")
        axis.set_ylabel("y (pixels)")
        figure.colorbar(image, ax=axis)
        figure.tight_layout()
        path = output_dir / name
        figure.savefig(path)
        paths.append(path)
    return paths[0], paths[1]


def main(argv: Sequence[str] | None = None) -> int:
    started = time.perf_counter()
    args = build_parser().parse_args(argv)
    if args.batch_size < 1:
        raise ValueError(f"--batch_size must be >= 1, got {args.batch_size}")
    accelerator = resolve_accelerator(args.accelerator, args.device)
    bundle = resolve_bundle_path(args.model_path)
    test_file = require_file(args.test_data, "--test_data")

    # Imported here, not at the top: bad flags are reported without the heavy imports.
    from ptycho import params as legacy
    from ptycho.checksums import sha256_file
    from ptycho.config import InferenceConfig
    from ptycho.raw_data import RawData
    from ptycho_torch.data import build_container
    from ptycho_torch.reconstruct import patch_centres, predict_patches, stitch_container

    models, params = load_bundle(bundle)
    raw = RawData.from_file(test_file)
    n = raw.N
    if n != int(params["N"]):
        raise ValueError(
            f"{test_file} has {n}x{n} patterns but the bundle {bundle} was trained with N={params['N']}; "
            f"use data with N={params['N']} or a bundle trained on this data"
        )
    inner_size = n // 2 if args.inner_size is None else args.inner_size
    if not 1 <= inner_size <= n:
        raise ValueError(f"--inner_size must be between 1 and N={n}, got {inner_size}")
    config = InferenceConfig(
        model=model_config_from_params(params),
        model_path=args.model_path,
        test_data_file=test_file,
        output_dir=args.output_dir,
        n_groups=args.n_groups,
    )
    legacy.publish(config)  # the run's one write of params.cfg, before grouping (CONFIG-001)
    container = build_container(raw, config)
    device = "cuda" if accelerator == "gpu" else accelerator
    patches = predict_patches(models["diffraction_to_obj"], container, args.batch_size, device=device)
    n_groups = patches.shape[0]
    obj, weights = stitch_container(container, patches, inner_size=inner_size, weighting=args.weighting)
    positions = patch_centres(container)

    args.output_dir.mkdir(parents=True, exist_ok=True)
    amplitude_png, phase_png = save_images(obj, weights > 1e-6, args.output_dir)
    metadata: dict[str, Any] = {
        "bundle": str(bundle),
        "test_data_file": str(test_file),
        "test_data_sha256": sha256_file(test_file),
        "gridsize": int(params["gridsize"]),
        "n_groups": int(n_groups),
        "N": n,
        "inner_size": inner_size,
        "weighting": args.weighting,
        "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    npz_path = args.output_dir / RECONSTRUCTION_NPZ
    np.savez_compressed(
        npz_path,
        object=obj,
        weights=weights.astype(np.float32),
        positions=positions,
        metadata=json.dumps(metadata),
        **{k: np.asarray(v) for k, v in metadata.items() if v is not None},
    )
    record = {
        **metadata,
        "object_shape": list(obj.shape),
        "patches_shape": list(patches.shape),
        "outputs": [str(p) for p in (amplitude_png, phase_png, npz_path)],
        "wall_seconds": round(time.perf_counter() - started, 3),
    }
    print(RECORD_PREFIX + json.dumps(record), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
