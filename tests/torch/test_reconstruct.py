"""ptycho_torch.reconstruct: batched prediction over a container, and stitching at its coords_nn."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ptycho.config import ModelConfig, TrainingConfig
from ptycho.simulation import extract_patches
from ptycho_torch.data import DataConfig, build_container
from ptycho_torch.model import PtychoPINN
from ptycho_torch.reconstruct import patch_centres, predict_patches, stitch_container
from ptycho_torch.stitching import canvas_shape_for, probe_intensity_weight, stitch_patches


@pytest.fixture(scope="module")
def container(raw_fixture):
    return build_container(raw_fixture, TrainingConfig(model=ModelConfig(N=raw_fixture.N, gridsize=2)))


def _true_patches(container, raw) -> torch.Tensor:
    centres = patch_centres(container)
    patches = extract_patches(raw.objectGuess, centres[:, 0], centres[:, 1], raw.N)
    return torch.from_numpy(patches).reshape(container.X.shape)


def test_predict_patches_in_batches_equals_one_forward_pass(container):
    torch.manual_seed(0)
    model = PtychoPINN(ModelConfig(gridsize=2, n_filters_scale=1), probe=container.probe).diffraction_to_obj
    model.train()
    batched = predict_patches(model, container, batch_size=4, limit=5)
    assert not model.training, "prediction runs the network in eval mode"
    with torch.no_grad():
        whole = model(container.X[:5], container.coords_relative[:5], container.probe)
    assert batched.shape == (5, 4, 64, 64) and batched.dtype == torch.complex64
    torch.testing.assert_close(batched, whole)


def test_patch_centres_are_coords_nn_group_by_group(container):
    centres = patch_centres(container)
    assert centres.shape == (len(container) * 4, 2) and centres.dtype == np.float64
    np.testing.assert_array_equal(centres[4:8], container.coords_nn[1, :, 0, :].numpy())


def test_true_patches_restitch_to_the_object(container, raw_fixture):
    """Ties stitching to the data contract: the simulator's patches, placed at the container's
    absolute ``coords_nn`` (x a column, y a row), rebuild ``objectGuess``; swapped axes do not."""
    patches = _true_patches(container, raw_fixture)
    obj, weights = stitch_container(container, patches, weighting="uniform")
    covered = weights >= 1.0
    assert obj.shape == raw_fixture.objectGuess.shape, "the canvas defaults to the objectGuess frame"
    assert covered.mean() > 0.3
    error = np.abs(obj[covered] - raw_fixture.objectGuess[covered])
    assert np.median(error) < 0.02 and error.max() < 0.2, f"median {np.median(error):.3g}, max {error.max():.3g}"
    swapped = stitch_patches(patches.numpy().reshape(-1, 64, 64), patch_centres(container)[:, ::-1], obj.shape,
                             inner_size=32)
    assert np.median(np.abs(swapped[covered] - raw_fixture.objectGuess[covered])) > 5 * np.median(error)


def test_defaults_are_the_centre_half_weighted_by_the_probe(container, raw_fixture):
    patches = _true_patches(container, raw_fixture)
    obj, weights = stitch_container(container, patches)
    expected, expected_weights = stitch_patches(
        patches.numpy().reshape(-1, 64, 64), patch_centres(container), raw_fixture.objectGuess.shape,
        inner_size=32, return_weights=True, weight=probe_intensity_weight(raw_fixture.probeGuess),
    )  # fmt: skip
    np.testing.assert_array_equal(obj, expected)
    np.testing.assert_array_equal(weights, expected_weights)


def test_without_an_object_the_canvas_just_holds_the_patches(container, raw_fixture):
    bare = type(container)(**{**vars(container), "objectGuess": None})
    obj, _ = stitch_container(bare, _true_patches(container, raw_fixture), weighting="uniform", inner_size=64)
    assert obj.shape == canvas_shape_for(patch_centres(container), 64)


def test_an_unknown_weighting_is_refused(container, raw_fixture):
    with pytest.raises(ValueError, match="weighting='gaussian' is unknown"):
        stitch_container(container, _true_patches(container, raw_fixture), weighting="gaussian")


def test_data_config_is_read_off_the_container(container):
    data = DataConfig.of(container)
    assert data.C == 4 and data.probe is container.probe
