"""The network: size, channel counts per gridsize, output types, shared weights, one training step."""

from __future__ import annotations

import math

import pytest
import torch

from ptycho.config import ModelConfig, TrainingConfig
from ptycho_torch.data import DataConfig
from ptycho.simulation import make_probe
from ptycho_torch.model import PtychoPINN, PtychoPINN_Lightning, probe_statistics


def _inputs(B: int, C: int, N: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(B, C, N, N, generator=generator)
    positions = 4 * torch.randn(B, C, 1, 2, generator=generator)
    return x, positions


def test_parameter_count_is_about_two_million():
    count = sum(p.numel() for p in PtychoPINN(ModelConfig()).parameters())
    assert 1.5e6 < count < 2.5e6, f"{count} parameters"


@pytest.mark.parametrize("gridsize, object_big, in_channels", [(1, True, 1), (2, True, 4), (3, True, 9), (2, False, 1)])
def test_first_conv_sees_c_channels_when_object_big(gridsize, object_big, in_channels):
    network = PtychoPINN(ModelConfig(gridsize=gridsize, object_big=object_big))
    first = network.autoencoder.encoder[0]
    assert isinstance(first, torch.nn.Conv2d) and first.in_channels == in_channels
    assert network.diffraction_to_obj.encoder is network.autoencoder.encoder


@pytest.mark.parametrize("gridsize, object_big", [(1, True), (2, True), (2, False)])
def test_graphs_have_the_contract_shapes_and_dtypes(gridsize, object_big):
    C = gridsize**2
    network = PtychoPINN(ModelConfig(N=16, gridsize=gridsize, object_big=object_big))
    x, positions = _inputs(2, C)
    amplitude = network.autoencoder(x, positions)
    assert amplitude.shape == (2, C, 16, 16) and amplitude.dtype == torch.float32
    assert bool((amplitude >= 0).all())
    obj = network.diffraction_to_obj(x, positions, network.autoencoder.probe, 1.0)
    assert obj.shape == (2, C, 16, 16) and obj.dtype == torch.complex64
    if C == 1:  # no overlap constraint: heads' ranges are visible directly
        assert bool(((obj.abs() > 0) & (obj.abs() < 1)).all())
    assert bool((obj.angle().abs() <= math.pi).all())


def test_autoencoder_is_the_far_field_of_diffraction_to_obj():
    network = PtychoPINN(ModelConfig(N=16, gridsize=2))
    x, positions = _inputs(2, 4)
    probe = network.autoencoder.probe
    obj = network.diffraction_to_obj(x, positions, probe)
    expected = torch.fft.fftshift(torch.fft.fft2(obj * probe, norm="ortho"), dim=(-2, -1)).abs()
    torch.testing.assert_close(network.autoencoder(x, positions), expected)


def test_probe_big_false_cuts_the_probe_to_a_central_disc():
    flat = torch.ones(16, 16, dtype=torch.complex64)
    network = PtychoPINN(ModelConfig(N=16, probe_big=False), probe=flat)
    yy, xx = torch.meshgrid(torch.arange(16) - 8, torch.arange(16) - 8, indexing="ij")
    inside = xx**2 + yy**2 <= 4**2
    probe = network.autoencoder.probe
    assert bool((probe[inside] == 1).all()) and bool((probe[~inside] == 0).all())
    x, positions = _inputs(1, 1)
    obj = network.diffraction_to_obj(x, positions)
    expected = torch.fft.fftshift(torch.fft.fft2(obj * probe, norm="ortho"), dim=(-2, -1)).abs()
    torch.testing.assert_close(network.autoencoder(x, positions), expected)


def test_probe_statistics_normalise_input_and_weight_the_overlap():
    flat = torch.ones(16, 16, dtype=torch.complex64)
    norm, weights = probe_statistics(flat)
    assert float(norm) == pytest.approx(1.0), "a flat unit probe: diffraction of a unit object already has unit RMS"
    torch.testing.assert_close(weights, torch.ones(16, 16))
    gaussian = torch.from_numpy(make_probe(16))
    norm, weights = probe_statistics(gaussian)
    assert float(norm) == pytest.approx(16 / float((gaussian.abs() ** 2).sum().sqrt()))
    assert float(weights.max()) == pytest.approx(1.0) and float(weights[0, 0]) < 1e-3, "dim borders weigh little"


def test_probe_travels_in_the_state_dict():
    probe = torch.polar(torch.rand(64, 64), torch.rand(64, 64))
    network = PtychoPINN(ModelConfig(), probe=probe)
    state = network.autoencoder.state_dict()
    torch.testing.assert_close(state["probe"], probe.to(torch.complex64))
    rebuilt = PtychoPINN(ModelConfig())
    rebuilt.autoencoder.load_state_dict(state, strict=True)
    torch.testing.assert_close(rebuilt.autoencoder.probe, probe.to(torch.complex64))


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_lightning_step_returns_a_finite_loss_with_gradients():
    model_config = ModelConfig(N=16, gridsize=2)
    module = PtychoPINN_Lightning(
        model_config=model_config,
        data_config=DataConfig(C=4),
        training_config=TrainingConfig(model=model_config),
        inference_config=None,
    )
    x, positions = _inputs(2, 4)
    loss = module.training_step({"diffraction": x, "coords_relative": positions, "index": torch.arange(2)}, 0)
    loss.backward()
    assert torch.isfinite(loss) and loss > 0
    assert module.model.autoencoder.encoder[0].weight.grad.abs().sum() > 0
    optimiser = module.configure_optimizers()
    assert isinstance(optimiser, torch.optim.Adam) and optimiser.param_groups[0]["lr"] == 1e-3


def test_lightning_module_refuses_mismatched_gridsizes():
    with pytest.raises(ValueError, match="C=1 patches per group but the model has gridsize=2"):
        PtychoPINN_Lightning(
            model_config=ModelConfig(gridsize=2),
            data_config=DataConfig(C=1),
            training_config=TrainingConfig(),
            inference_config=None,
        )
