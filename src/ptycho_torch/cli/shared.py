"""Helpers shared by the train and inference CLIs: paths, flags, accelerator, logger, errors.

Why a module of its own: both CLIs must reject bad input the same way (one ``error:`` line
on stderr, exit code 2, checked before any compute and before the output folder is touched)
and map the legacy flags (``--device``, ``--disable_mlflow``) onto the modern ones with a
visible DeprecationWarning. torch is imported only where the hardware is checked, so that
importing a CLI stays light and Ctrl-C is handled from its first moments (``interrupts``).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from ptycho.config import ACCELERATORS, LOGGERS, ExecutionConfig
from ptycho_torch.cli.interrupts import Interrupted, interrupts_raise

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


def check_output_dir(path: Path, flag: str = "--output_dir") -> None:
    """Refuse, before any work, an output folder that cannot be one: a file, under a file, or unwritable."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag} {path} is an existing file, not a folder; pass a folder path (it is created if missing)")
    parent = path
    while not parent.exists():  # the nearest part of the path that exists must be a writable folder
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(
            f"{flag} {path}: {parent} is a file, so no folder can be created under it; "
            f"pass a path whose parent folders are folders"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {path}: no permission to write in {parent}; choose a folder you can write to")


def require_positive(value: int | None, flag: str, example: str = "") -> None:
    """ValueError naming ``flag`` unless ``value`` is None or an integer >= 1."""
    if value is not None and value < 1:
        raise ValueError(f"{flag} {value} is invalid: use an integer >= 1{example}")


def resolve_accelerator(accelerator: str | None, device: str | None) -> str:
    """Combine ``--accelerator`` with the legacy ``--device``; check the hardware exists."""
    import torch  # here, not at the top: see the module docstring

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


def run_cli(
    main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None, *, on_interrupt: str = ""
) -> int:
    """Run ``main``; turn bad input into one ``error:`` line on stderr and exit code 2.

    SIGINT/SIGTERM while ``main`` runs become one ``interrupted:`` line (followed by
    ``on_interrupt``, what the CLI leaves behind) and exit code 130/143.
    """
    try:
        with interrupts_raise():
            return main(argv)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Interrupted as exc:
        print(f"interrupted: {exc}; {on_interrupt or 'stopped before finishing'}", file=sys.stderr, flush=True)
        return exc.exit_code


def _one_line(exc: BaseException) -> str:
    """The message on one line (a library error may carry newlines)."""
    return re.sub(r"\s*\n\s*", " ", str(exc)).strip()
