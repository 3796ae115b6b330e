"""Grouping: BRIEF §5 keys and shapes, neighbours really are near, seeded, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from ptycho.grouping import group_scan_points


@pytest.mark.parametrize("gridsize", [1, 2, 3])
def test_grouped_dict_keys_and_shapes(raw_fixture, gridsize):
    C = gridsize**2
    grouped = raw_fixture.generate_grouped_data(N=64, K=max(4, C), nsamples=10, gridsize=gridsize, seed=0)
    assert set(grouped) == {"diffraction", "coords_nn", "coords_offsets", "coords_relative", "nn_indices", "objectGuess"}
    assert grouped["diffraction"].shape == (10, 64, 64, C) and grouped["diffraction"].dtype == np.float32
    assert grouped["coords_nn"].shape == (10, 1, 2, C)
    assert grouped["coords_offsets"].shape == (10, 1, 2, 1)
    assert grouped["coords_relative"].shape == (10, 1, 2, C)
    assert grouped["nn_indices"].shape == (10, C) and grouped["nn_indices"].dtype == np.int64
    assert grouped["objectGuess"] is raw_fixture.objectGuess


def test_grouped_arrays_come_from_the_same_scan_points(raw_fixture):
    grouped = raw_fixture.generate_grouped_data(N=64, K=4, gridsize=2, seed=1)
    nn = grouped["nn_indices"]
    np.testing.assert_array_equal(grouped["diffraction"], raw_fixture.diffraction[nn].transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(grouped["coords_nn"][:, 0, 0, :], raw_fixture.xcoords[nn])
    np.testing.assert_array_equal(grouped["coords_nn"][:, 0, 1, :], raw_fixture.ycoords[nn])
    offsets = grouped["coords_nn"].mean(axis=3, keepdims=True)
    np.testing.assert_allclose(grouped["coords_offsets"], offsets)
    np.testing.assert_allclose(grouped["coords_relative"], -(grouped["coords_nn"] - offsets))


def test_groups_are_a_seed_and_its_nearest_neighbours(raw_fixture):
    x, y = raw_fixture.xcoords, raw_fixture.ycoords
    nn = group_scan_points(x, y, gridsize=2, K=4, seed=0)
    assert nn.shape == (64, 4)
    np.testing.assert_array_equal(nn[:, 0], np.arange(64), "one group per scan point, the seed first")
    for row in nn:
        distances = np.hypot(x - x[row[0]], y - y[row[0]])
        fourth_nearest = np.sort(distances)[3]
        assert np.all(distances[row] <= fourth_nearest + 1e-9), "members must be among the K=4 nearest"
        assert len(set(row.tolist())) == 4, "no scan point twice in a group"


def test_grouping_is_seeded(raw_fixture):
    x, y = raw_fixture.xcoords, raw_fixture.ycoords
    first = group_scan_points(x, y, gridsize=2, K=8, n_groups=20, seed=3)
    again = group_scan_points(x, y, gridsize=2, K=8, n_groups=20, seed=3)
    other = group_scan_points(x, y, gridsize=2, K=8, n_groups=20, seed=4)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_gridsize_one_uses_each_point_once(raw_fixture):
    nn = group_scan_points(raw_fixture.xcoords, raw_fixture.ycoords, gridsize=1, n_groups=30, seed=0)
    assert nn.shape == (30, 1) and len(np.unique(nn)) == 30


def test_k_smaller_than_c_says_what_to_change(raw_fixture):
    with pytest.raises(ValueError, match=r"neighbor_count K=4.*set neighbor_count >= 9 or lower gridsize") as info:
        raw_fixture.generate_grouped_data(N=64, K=4, gridsize=3)
    assert "minimal_dataset_v1.npz" in str(info.value)


def test_more_groups_than_points_says_what_to_change(raw_fixture):
    with pytest.raises(ValueError, match=r"65 groups requested.*only 64 scan points.*<= 64") as info:
        raw_fixture.generate_grouped_data(N=64, K=4, nsamples=65, gridsize=2)
    assert "minimal_dataset_v1.npz" in str(info.value)


def test_wrong_n_is_rejected(raw_fixture):
    with pytest.raises(ValueError, match="set ModelConfig.N=64"):
        raw_fixture.generate_grouped_data(N=32)
