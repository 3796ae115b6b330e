"""The pictures a training run leaves in ``<output_dir>/figures/``: loss per step, reconstruction preview.

Why reproducible to the pixel: the evidence harness copies these PNGs into its hubs and compares
two hubs pixel by pixel, so under ``--deterministic`` two runs of one commit must draw the same
image. Hence matplotlib's object API on the Agg canvas (no pyplot state, no display), a fixed
figure size and dpi, matplotlib's default style (a user's matplotlibrc cannot change a picture),
no timestamp in the image, and PNG metadata without the matplotlib version.

``loss_curve.png``: the training loss of every optimiser step (recorded by
``workflows.components.LossHistory`` whatever ``--logger`` says), with the epoch means.
``reconstruction.png``: amplitude and phase of the training data stitched by
``ptycho_torch.reconstruct`` (the inference CLI's stitching), beside the data's ``objectGuess``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib import style
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ptycho_torch.data import PtychoDataContainerTorch

FIGURES_DIR = "figures"
LOSS_CURVE = "loss_curve.png"
RECONSTRUCTION = "reconstruction.png"
DPI = 80
#: No "Software" entry: PNGs from two matplotlib versions then differ only if their pixels do.
PNG_METADATA: dict[str, str | None] = {"Software": None}


def _save(figure: Figure, path: Path) -> Path:
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=DPI, metadata=PNG_METADATA)
    return path


def plot_loss_curve(step_losses: Sequence[float], epoch_losses: Sequence[float], path: Path, loss: str = "poisson") -> Path:
    """Loss against optimiser step (1-based), epoch means marked at each epoch's last step."""
    with style.context("default"):
        figure = Figure(figsize=(6.0, 3.6))
        axis = figure.subplots()
        steps = np.arange(1, len(step_losses) + 1)
        axis.plot(steps, step_losses, marker=".", linewidth=1, label="per step")
        if epoch_losses and len(step_losses) % len(epoch_losses) == 0:
            per_epoch = len(step_losses) // len(epoch_losses)
            ends = np.arange(1, len(epoch_losses) + 1) * per_epoch
            axis.plot(ends, epoch_losses, "o", color="C3", label="epoch mean")
        axis.set_xlabel("optimiser step")
        axis.set_ylabel(f"training loss ({loss})")
        axis.set_title(f"training loss, {len(step_losses)} steps, {len(epoch_losses)} epoch(s)")
        axis.grid(alpha=0.3)
        axis.legend()
        figure.tight_layout()
        return _save(figure, path)


def plot_reconstruction(obj: np.ndarray, covered: np.ndarray, truth: np.ndarray | None, path: Path, title: str) -> Path:
    """Amplitude and phase of ``obj`` (uncovered pixels blank) above those of ``truth`` (if known).

    The reconstruction's phase is shown after removing the one global offset that best matches
    the truth (diffraction data cannot fix it); the panel title says so.
    """
    shown = np.where(covered, obj, np.nan)
    rows = [("reconstruction", shown)]
    if truth is not None:
        overlap = covered & np.isfinite(obj)
        offset = np.angle(np.sum(obj[overlap] * np.conj(truth[overlap]))) if overlap.any() else 0.0
        rows = [("reconstruction", shown * np.exp(-1j * offset)), ("ground truth (objectGuess)", truth)]
    with style.context("default"):
        figure = Figure(figsize=(7.0, 3.2 * len(rows) + 0.4))
        axes = np.atleast_2d(figure.subplots(len(rows), 2))
        for (label, values), (amp_axis, phase_axis) in zip(rows, axes, strict=True):
            phase_note = ", offset removed" if truth is not None and label == "reconstruction" else ""
            for axis, data, name, cmap in ((amp_axis, np.abs(values), "amplitude", "gray"),
                                           (phase_axis, np.angle(values), f"phase (rad{phase_note})", "viridis")):
                image = axis.imshow(data, cmap=cmap)
                axis.set_title(f"{label}: {name}", fontsize=9)
                axis.tick_params(labelsize=7)
                figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04).ax.tick_params(labelsize=7)
        figure.suptitle(title, fontsize=10)
        figure.tight_layout()
        return _save(figure, path)


def write_training_figures(
    output_dir: Path,
    history: dict[str, list[float]],
    model: torch.nn.Module,
    container: PtychoDataContainerTorch,
    loss: str = "poisson",
) -> list[Path]:
    """Write ``loss_curve.png`` and ``reconstruction.png`` to ``output_dir/figures``; return their paths.

    ``history`` is ``_train_with_lightning``'s (``train_loss_step``, ``train_loss``); ``model`` the
    trained ``diffraction_to_obj``; ``container`` the training data it was fitted to.
    """
    from ptycho_torch.reconstruct import predict_patches, stitch_container

    folder = output_dir / FIGURES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    curve = plot_loss_curve(history.get("train_loss_step", []), history.get("train_loss", []), folder / LOSS_CURVE, loss)
    patches = predict_patches(model, container, batch_size=16)
    obj, weights = stitch_container(container, patches)
    truth = None if container.objectGuess is None else container.objectGuess.numpy()
    title = f"training data stitched ({len(container)} groups of C={container.C}) beside the truth"
    preview = plot_reconstruction(obj, weights > 1e-6, truth, folder / RECONSTRUCTION, title)
    return [curve, preview]
