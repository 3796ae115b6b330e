"""``python -m ptycho_torch.inference``: reconstruct an object with a trained bundle.

Loads ``{model_path}/wts.h5.zip``, groups the test data with the bundle's gridsize, runs
``diffraction_to_obj`` and stitches the patches into the full object (translate-and-average,
``ptycho_torch.reconstruct``; by default weighted by the probe intensity |P|^2 / max, so
pixels the probe barely lit count less; ``--weighting uniform`` for the plain average). Writes ``reconstructed_amplitude.png``,
``reconstructed_phase.png`` and ``reconstruction.npz`` (complex object + metadata) to
``--output_dir``; the last stdout line is ``INFERENCE_RECORD {json}``.

Earlier outputs are never replaced silently: a folder that already holds any of the three
files is refused unless ``--overwrite``, and that is checked, like every other mistake, before
anything is loaded or computed. The outputs are written to a hidden staging folder and renamed
into place together at the end, so an interrupted or failed run leaves the earlier ones intact.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ptycho_torch.cli.interrupts import deferred_interrupts
from ptycho_torch.cli.shared import (
    add_accelerator_arguments,
    check_output_dir,
    require_file,
    require_positive,
    resolve_accelerator,
    run_cli,
)
from ptycho_torch.stitching import WEIGHTINGS

if TYPE_CHECKING:
    import numpy as np

RECORD_PREFIX = "INFERENCE_RECORD "
AMPLITUDE_PNG = "reconstructed_amplitude.png"
PHASE_PNG = "reconstructed_phase.png"
RECONSTRUCTION_NPZ = "reconstruction.npz"
OUTPUTS = (AMPLITUDE_PNG, PHASE_PNG, RECONSTRUCTION_NPZ)
ON_INTERRUPT = "inference stopped before replacing any output in --output_dir; rerun it"


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
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the outputs of an earlier inference in --output_dir instead of refusing")
    add_accelerator_arguments(parser)
    return parser


def save_images(obj: np.ndarray, covered: np.ndarray, output_dir: Path) -> tuple[Path, Path]:
    """Amplitude and phase PNGs with colorbars; pixels no patch covered are left blank.

    Uses matplotlib's object API (``Figure``, Agg canvas), so no pyplot state or display is involved.
    """
    import numpy as np
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
        figure.savefig(path, metadata={"Software": None})  # no version string: same pixels, same bytes
        paths.append(path)
    return paths[0], paths[1]


def check_output_folder(output_dir: Path, overwrite: bool) -> None:
    """Refuse a folder that is a file or under one, or holds earlier outputs without ``overwrite``."""
    check_output_dir(output_dir)
    earlier = [name for name in OUTPUTS if (output_dir / name).exists()]
    if earlier and not overwrite:
        raise ValueError(
            f"--output_dir {output_dir} already holds {', '.join(earlier)} from an earlier inference; "
            f"choose a new folder or pass --overwrite to replace them"
        )


def commit_outputs(staging: Path, output_dir: Path, names: Sequence[str]) -> list[Path]:
    """Move ``names`` from ``staging`` into ``output_dir`` (replacing earlier ones), signals held back."""
    with deferred_interrupts():
        for name in names:
            os.replace(staging / name, output_dir / name)
    return [output_dir / name for name in names]


def main(argv: Sequence[str] | None = None) -> int:
    started = time.perf_counter()
    args = build_parser().parse_args(argv)
    require_positive(args.batch_size, "--batch_size", " (default 32)")
    require_positive(args.n_groups, "--n_groups")
    require_positive(args.inner_size, "--inner_size")
    accelerator = resolve_accelerator(args.accelerator, args.device)
    check_output_folder(args.output_dir, args.overwrite)
    test_file = require_file(args.test_data, "--test_data")

    # Imported here, not at the top: bad flags are reported without the heavy imports.
    import numpy as np

    from ptycho import params as legacy
    from ptycho.checksums import sha256_file
    from ptycho.config import InferenceConfig
    from ptycho.raw_data import RawData
    from ptycho_torch.bundle import load_bundle, model_config_from_params, resolve_bundle_path
    from ptycho_torch.data import build_container
    from ptycho_torch.reconstruct import patch_centres, predict_patches, stitch_container

    bundle = resolve_bundle_path(args.model_path)
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
    args.output_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".inference-", dir=args.output_dir))
    try:
        save_images(obj, weights > 1e-6, staging)
        np.savez_compressed(
            staging / RECONSTRUCTION_NPZ,
            object=obj,
            weights=weights.astype(np.float32),
            positions=positions,
            metadata=json.dumps(metadata),
            **{k: np.asarray(v) for k, v in metadata.items() if v is not None},
        )
        outputs = commit_outputs(staging, args.output_dir, OUTPUTS)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    record = {
        **metadata,
        "object_shape": list(obj.shape),
        "patches_shape": list(patches.shape),
        "outputs": [str(path) for path in outputs],
        "wall_seconds": round(time.perf_counter() - started, 3),
    }
    print(RECORD_PREFIX + json.dumps(record), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main, on_interrupt=ON_INTERRUPT))
