"""Helpers shared by the train and inference CLIs: paths, accelerator, logger, errors.

Why a module of its own: both CLIs must reject bad input the same way (one ``error:`` line
on stderr, exit code 2) and map the legacy flags (``--device``, ``--disable_mlflow``) onto
the modern ones with a visible DeprecationWarning.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from ptycho.config import ACCELERATORS, LOGGERS, ExecutionConfig

EXIT_BAD_INPUT = 2


def warn_deprecated(old_flag: str, new_flag: str) -> None:
    """Emit a DeprecationWarning that users see (Python hides them outside ``__main__``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", DeprecationWarning)
        warnings.warn(f"{old_flag} is deprecated; use {new_flag} instead", DeprecationWarning, stacklevel=3)


def require_file(path: Path | str, flag: str) -> Path:
    """Return ``path`` as a Path if it is an existing file; FileNotFoundError naming it otherwise."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{flag}: file not found: {path}; pass the path of an existing NPZ file")
    return path


def resolve_accelerator(accelerator: str | None, device: str | None) -> str:
    """Combine ``--accelerator`` with the legacy ``--device``; check the hardware exists."""
    if device is not None:
        warn_deprecated("--device", "--accelerator")
        legacy = device.split(":")[0].lower()
        if legacy not in ACCELERATORS:
            raise ValueError(f"--device {device!r} is not one of {', '.join(ACCELERATORS)}; use --accelerator")
        if accelerator is not None and _canonical(accelerator) != _canonical(legacy):
            raise ValueError(
                f"--device {device} conflicts with --accelerator {accelerator}; drop the deprecated --device"
            )
        accelerator = accelerator or legacy
    accelerator = (accelerator or "auto").lower()
    if accelerator not in ACCELERATORS:
        raise ValueError(f"--accelerator {accelerator!r} is not one of {', '.join(ACCELERATORS)}")
    if accelerator == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"--accelerator {accelerator} requested but no CUDA device is visible "
            f"(CUDA_VISIBLE_DEVICES may hide it); use --accelerator cpu"
        )
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise ValueError("--accelerator mps requested but MPS is not available; use --accelerator cpu")
    return accelerator


def _canonical(accelerator: str) -> str:
    return "gpu" if accelerator.lower() == "cuda" else accelerator.lower()


def resolve_logger(logger: str | None, disable_mlflow: bool) -> str:
    """Combine ``--logger`` with the legacy ``--disable_mlflow``; MLflow must be installed to use it."""
    if disable_mlflow:
        warn_deprecated("--disable_mlflow", "--logger none")
        if logger == "mlflow":
            raise ValueError("--disable_mlflow conflicts with --logger mlflow; drop --disable_mlflow")
        logger = logger or "none"
    logger = logger or "csv"
    if logger not in LOGGERS:
        raise ValueError(f"--logger {logger!r} is not one of {', '.join(LOGGERS)}")
    if logger == "mlflow" and importlib.util.find_spec("mlflow") is None:
        raise ValueError(
            "--logger mlflow needs the optional package mlflow, which is not installed; "
            "run `pip install mlflow` or use --logger csv"
        )
    return logger


def add_accelerator_arguments(group: argparse._ActionsContainer) -> None:
    """``--accelerator`` and its deprecated alias ``--device`` (both CLIs)."""
    group.add_argument("--accelerator", choices=ACCELERATORS, default=None,
                       help="hardware to run on (default: auto = gpu if visible, else cpu)")
    group.add_argument("--device", default=None, help="deprecated alias of --accelerator")


def add_execution_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags that say how Lightning runs (not what it learns)."""
    group = parser.add_argument_group("execution")
    add_accelerator_arguments(group)
    group.add_argument("--num-workers", dest="num_workers", type=int, default=0,
                       help="DataLoader worker processes (default: 0)")
    group.add_argument("--deterministic", action=argparse.BooleanOptionalAction, default=True,
                       help="seeded, deterministic algorithms (default: on)")


def build_execution_config(args: argparse.Namespace, accelerator: str, logger: str = "none") -> ExecutionConfig:
    """ExecutionConfig from parsed CLI flags; ``accelerator`` comes from ``resolve_accelerator``."""
    if args.num_workers < 0:
        raise ValueError(f"--num-workers must be >= 0, got {args.num_workers}")
    return ExecutionConfig(
        accelerator=accelerator,
        deterministic=args.deterministic,
        num_workers=args.num_workers,
        logger=logger,
    )


def run_cli(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run ``main``; turn bad-input errors into one ``error:`` line on stderr and exit code 2."""
    try:
        return main(argv)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
