"""Write a simulated ptychography dataset (NPZ + JSON sidecar) from a known object and probe.

Examples::

    python scripts/make_fixture.py --n-patterns 64 --out tests/fixtures/pytorch_integration/minimal_dataset_v1.npz
    python scripts/make_fixture.py --n-patterns 512 --out artifacts/sim_512.npz --nphotons 1e6
    python scripts/make_fixture.py --n-patterns 64 --probe diffuser --out artifacts/sim_diffuser_64.npz

Same arguments, same bytes: the sidecar's sha256 is reproducible (see ptycho.simulation).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ptycho.simulation import PROBES, simulate_dataset, write_dataset


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="output .npz path (the sidecar gets .json)")
    parser.add_argument("--n-patterns", type=int, default=64, help="number of scan points / patterns (default 64)")
    parser.add_argument("--N", type=int, default=64, help="pattern size in pixels (default 64)")
    parser.add_argument("--nphotons", type=float, default=1e9, help="photon budget setting the Poisson noise (default 1e9)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    parser.add_argument("--step", type=float, default=8.0, help="raster step in pixels (default 8)")
    parser.add_argument("--jitter", type=float, default=0.5, help="uniform position jitter in pixels (default 0.5)")
    parser.add_argument("--probe", choices=PROBES, default="gaussian",
                        help="illumination: the smooth 'gaussian' (default, the committed fixture's) or a structured "
                             "'diffuser' / 'zoneplate', which make each pattern's data more decisive")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.out.suffix != ".npz":
        print(f"error: --out {args.out} must end in .npz", file=sys.stderr)
        return 2
    try:
        dataset = simulate_dataset(
            n_patterns=args.n_patterns, N=args.N, nphotons=args.nphotons, seed=args.seed, step=args.step, jitter=args.jitter,
            probe=args.probe,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    npz, sidecar = write_dataset(dataset, args.out)
    shape = dataset.arrays["diffraction"].shape
    print(f"wrote {npz} (diffraction {shape}, object {dataset.arrays['objectGuess'].shape}) and {sidecar}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
