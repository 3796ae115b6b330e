"""PtychoPINN: a convolutional encoder/decoder trained only through the physics of ptychography.

Why this shape: the network maps C diffraction amplitudes to C complex object patches
(amplitude head: sigmoid, phase head: pi*tanh); the loss compares the far field of those
patches under the known probe with the measurements, so no ground-truth object is needed.
``autoencoder`` is the training graph (diffraction, positions) -> predicted amplitude;
``diffraction_to_obj`` is the inference graph with the same weights -> complex object.
"""

from __future__ import annotations

import math

import lightning.pytorch as L
import torch
from torch import nn

from ptycho.config import InferenceConfig, ModelConfig, TrainingConfig
from ptycho_torch import physics
from ptycho_torch.data import DataConfig


def _conv(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel_size=3, padding=1), nn.ReLU()]


def make_encoder(c_in: int, base: int) -> nn.Sequential:
    """(B, c_in, N, N) -> (B, 4*base, N/8, N/8); element 0 is the first conv (in_channels = c_in).

    Blocks of ``base``, ``2*base``, ``4*base`` channels (64 -> 128 -> 256 for
    n_filters_scale 2), each followed by max-pooling, then a bottleneck conv.
    """
    return nn.Sequential(
        *_conv(c_in, base), nn.MaxPool2d(2),
        *_conv(base, 2 * base), nn.MaxPool2d(2),
        *_conv(2 * base, 4 * base), nn.MaxPool2d(2),
        *_conv(4 * base, 4 * base),
    )


def _up(channels: int) -> list[nn.Module]:
    """Learned 2x upsampling (kernel 2, stride 2): cheap at full resolution, unlike a 3x3 conv."""
    return [nn.ConvTranspose2d(channels, channels, kernel_size=2, stride=2), nn.ReLU()]


def make_decoder(c_out: int, base: int, head: nn.Module) -> nn.Sequential:
    """(B, 4*base, N/8, N/8) -> (B, c_out, N, N) through ``head`` (the output activation).

    The 3x3 convs work at N/8..N/2 resolution; transposed convs do the upsampling, so the
    full-resolution cost is one small output conv.
    """
    return nn.Sequential(
        *_conv(4 * base, 2 * base), *_up(2 * base),
        *_conv(2 * base, base), *_up(base),
        *_conv(base, base // 2), *_up(base // 2),
        nn.Conv2d(base // 2, c_out, kernel_size=3, padding=1), head,
    )


class ScaledTanh(nn.Module):
    """Phase head: ``pi * tanh(x)``, a phase in (-pi, pi)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return math.pi * torch.tanh(x)


def probe_statistics(probe: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """What the network takes from the probe: the input normalisation and the overlap weights.

    ``input_norm = N / ||P||`` gives a unit-transmission object's diffraction unit RMS (by
    Parseval, sum |FFT_ortho(O P)|^2 = ||O P||^2). ``overlap_weights = |P|^2 / max|P|^2``
    weights each patch by its illumination when the C patches are averaged, so poorly lit
    borders do not overrule well lit centres.
    """
    intensity = probe.abs() ** 2
    N = probe.shape[-1]
    return torch.tensor(N / float(intensity.sum().sqrt())), intensity / intensity.max()


def effective_probe(probe: torch.Tensor, probe_big: bool) -> torch.Tensor:
    """The probe as the forward model uses it: cut to a central disc of radius N/4 unless ``probe_big``."""
    if probe_big:
        return probe
    N = probe.shape[-1]
    yy, xx = torch.meshgrid(torch.arange(N) - N / 2, torch.arange(N) - N / 2, indexing="ij")
    return probe * (xx**2 + yy**2 <= (N / 4) ** 2)


class DiffractionToObject(nn.Module):
    """Inference graph: diffraction amplitudes -> complex object patches.

    With ``object_big`` the encoder sees all C patterns (``in_channels == C``) and the
    patches are tied by the overlap constraint; otherwise each pattern is solved alone
    (``in_channels == 1``). Buffers ``input_norm`` and ``overlap_weights`` come from the
    training probe (``probe_statistics``) and travel with the weights.
    """

    def __init__(self, config: ModelConfig, probe: torch.Tensor) -> None:
        super().__init__()
        self.config = config
        self.c_in = config.C if config.object_big else 1
        base = 32 * config.n_filters_scale
        amp_head = nn.Sigmoid() if config.amp_activation == "sigmoid" else nn.Softplus()
        self.encoder = make_encoder(self.c_in, base)
        self.amplitude_decoder = make_decoder(self.c_in, base, amp_head)
        self.phase_decoder = make_decoder(self.c_in, base, ScaledTanh())
        input_norm, overlap_weights = probe_statistics(probe)
        self.register_buffer("input_norm", input_norm.float())
        self.register_buffer("overlap_weights", overlap_weights.float())

    def forward(
        self,
        x: torch.Tensor,
        positions: torch.Tensor,
        probe: torch.Tensor | None = None,
        input_scale_factor: float | torch.Tensor = 1.0,
    ) -> torch.Tensor:
        """x: (B,C,N,N) float32; positions: (B,C,1,2) ``coords_relative`` -> (B,C,N,N) complex64.

        ``input_scale_factor`` multiplies the input (a scalar or (B,) tensor) on top of the
        built-in ``input_norm``. ``probe`` is accepted for the upstream signature and only
        shape-checked: the probe that matters was fixed at training time (the buffers).
        """
        B, C, N, _ = x.shape
        if probe is not None and tuple(probe.shape[-2:]) != (N, N):
            raise ValueError(f"probe has shape {tuple(probe.shape)}, expected ({N}, {N}) to match the patterns")
        scale = torch.as_tensor(input_scale_factor, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1)
        inputs = (x * scale * self.input_norm).reshape(B * C // self.c_in, self.c_in, N, N)
        features = self.encoder(inputs)
        amplitude = self.amplitude_decoder(features).reshape(B, C, N, N)
        phase = self.phase_decoder(features).reshape(B, C, N, N)
        obj = torch.polar(amplitude, phase)
        if self.config.object_big and C > 1:
            obj = physics.overlap_constraint(obj, positions, self.overlap_weights)
        return obj


class Autoencoder(nn.Module):
    """Training graph: (diffraction (B,C,N,N), positions (B,C,1,2)) -> predicted amplitude (B,C,N,N).

    Holds the probe as a buffer (already cut to a disc unless ``probe_big``), so bundles
    and checkpoints carry it with the weights.
    """

    def __init__(self, diffraction_to_obj: DiffractionToObject, probe: torch.Tensor) -> None:
        super().__init__()
        self.diffraction_to_obj = diffraction_to_obj
        self.register_buffer("probe", probe.to(torch.complex64).clone())

    @property
    def encoder(self) -> nn.Sequential:
        """The shared encoder; ``encoder[0]`` is the first conv (``in_channels`` = C or 1)."""
        return self.diffraction_to_obj.encoder

    def forward(self, x: torch.Tensor, positions: torch.Tensor, input_scale_factor: float = 1.0) -> torch.Tensor:
        obj = self.diffraction_to_obj(x, positions, self.probe, input_scale_factor)
        return physics.far_field_amplitude(physics.illuminate(obj, self.probe))


def learning_rate_factor(schedule: str, step: int, total_steps: int, final: float = 0.01) -> float:
    """Multiplier of the base learning rate at optimiser ``step`` (0-based) of ``total_steps``.

    ``constant``: 1. ``cosine``: a half cosine from 1 to ``final`` at the last step (then ``final``).
    ``cosine-tail``: 1 for the first three quarters, then that half cosine over the last quarter
    (full speed while learning, then settle instead of ending on a noisy step).
    """
    if schedule not in ("constant", "cosine", "cosine-tail"):
        raise ValueError(f"learning-rate schedule {schedule!r} is unknown; use 'constant', 'cosine' or 'cosine-tail'")
    start = 0 if schedule == "cosine" else (3 * total_steps) // 4
    if schedule == "constant" or step < start:
        return 1.0
    progress = min((step - start) / max(total_steps - 1 - start, 1), 1.0)
    return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * progress))


def default_probe(N: int) -> torch.Tensor:
    """The simulator's Gaussian probe: a stand-in until trained weights (with their probe) are loaded."""
    from ptycho.simulation import make_probe

    return torch.from_numpy(make_probe(N))


class PtychoPINN(nn.Module):
    """The network: ``.autoencoder`` (training graph) and ``.diffraction_to_obj`` (inference graph)."""

    def __init__(self, model_config: ModelConfig, probe: torch.Tensor | None = None) -> None:
        super().__init__()
        self.config = model_config
        probe = default_probe(model_config.N) if probe is None else torch.as_tensor(probe)
        N = model_config.N
        if tuple(probe.shape) != (N, N):
            raise ValueError(f"probe has shape {tuple(probe.shape)} but ModelConfig.N={N}; set N to the probe size")
        probe = effective_probe(probe.to(torch.complex64), model_config.probe_big)
        self.autoencoder = Autoencoder(DiffractionToObject(model_config, probe), probe)

    @property
    def diffraction_to_obj(self) -> DiffractionToObject:
        return self.autoencoder.diffraction_to_obj

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self.autoencoder(x, positions)


class PtychoPINN_Lightning(L.LightningModule):
    """Trains ``PtychoPINN`` by the physics loss; logs ``train_loss`` (and ``val_loss``) per epoch and
    ``train_loss_step`` per optimiser step."""

    def __init__(
        self,
        model_config: ModelConfig,
        data_config: DataConfig,
        training_config: TrainingConfig,
        inference_config: InferenceConfig | None = None,
    ) -> None:
        super().__init__()
        if data_config.C != model_config.C:
            raise ValueError(
                f"data hold C={data_config.C} patches per group but the model has gridsize={model_config.gridsize} "
                f"(C={model_config.C}); build the container and the model from the same TrainingConfig"
            )
        self.model_config = model_config
        self.data_config = data_config
        self.training_config = training_config
        self.inference_config = inference_config
        self.model = PtychoPINN(model_config, probe=data_config.probe)
        self.intensity_scale = model_config.intensity_scale
        self.loss_fn = physics.LOSSES[training_config.loss]

    def forward(self, diffraction: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self.model.autoencoder(diffraction, positions)

    def _loss(self, batch: dict[str, torch.Tensor], name: str) -> torch.Tensor:
        observed = batch["diffraction"]
        predicted = self(observed, batch["coords_relative"])
        loss = self.loss_fn(predicted, observed, self.intensity_scale)
        self.log(name, loss, on_step=False, on_epoch=True, batch_size=observed.shape[0])
        return loss

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch, "train_loss")
        # every step too, for the loss curve (a CSV logger writes one row per step: log_every_n_steps=1)
        self.log("train_loss_step", loss, on_step=True, on_epoch=False, batch_size=batch["diffraction"].shape[0])
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._loss(batch, "val_loss")

    def configure_optimizers(self) -> torch.optim.Optimizer | dict:
        """Adam at ``learning_rate``; with a schedule other than ``constant``, stepped every optimiser step."""
        optimiser = torch.optim.Adam(self.parameters(), lr=self.training_config.learning_rate)
        schedule = self.training_config.lr_schedule
        if schedule == "constant":
            return optimiser
        total = int(self.trainer.estimated_stepping_batches)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimiser, lambda step: learning_rate_factor(schedule, step, total))
        return {"optimizer": optimiser, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
