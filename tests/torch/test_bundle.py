"""The wts.h5.zip bundle: format, atomic write, strict loading, descriptive errors.

A small stand-in network keeps these tests fast; the real ``PtychoPINN`` round trip lives in
``test_integration_workflow_torch.py``.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from ptycho import params as legacy_params
from ptycho_torch.bundle import (
    BUNDLE_NAME,
    load_inference_bundle_torch,
    read_bundle,
    save_bundle,
)

PARAMS = {"N": 8, "gridsize": 2, "nphotons": 1e9, "intensity_scale": 988.2, "object_big": True}


class _Encoder(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 4, 3, padding=1)
        self.register_buffer("scale", torch.tensor(2.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * self.scale


class _ToObject(nn.Module):
    """Shares the encoder with the 'autoencoder', as the real inference graph does."""

    def __init__(self, encoder: _Encoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.polar(torch.sigmoid(self.encoder(x)), torch.tanh(self.encoder(x)))


def _factory(params) -> dict[str, nn.Module]:
    encoder = _Encoder(params["gridsize"] ** 2)
    return {"autoencoder": encoder, "diffraction_to_obj": _ToObject(encoder)}


@pytest.fixture
def trained(tmp_path: Path) -> tuple[Path, dict[str, nn.Module]]:
    torch.manual_seed(0)
    models = _factory(PARAMS)
    return save_bundle(tmp_path, models, PARAMS), models


def _rewrite(bundle: Path, **replace: bytes) -> None:
    """Copy the archive with some members replaced (to forge foreign or broken bundles)."""
    with zipfile.ZipFile(bundle) as src:
        members = {name: src.read(name) for name in src.namelist()}
    members.update(replace)
    with zipfile.ZipFile(bundle, "w") as dst:
        for name, data in members.items():
            dst.writestr(name, data)


def test_bundle_layout_and_manifest(trained):
    bundle, _ = trained
    assert bundle.name == BUNDLE_NAME
    with zipfile.ZipFile(bundle) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read("manifest.json"))
        params = json.loads(archive.read("params.json"))
    assert names == {
        "manifest.json",
        "params.json",
        "autoencoder/state_dict.pt",
        "diffraction_to_obj/state_dict.pt",
    }
    assert manifest["backend"] == "pytorch"
    assert manifest["models"] == ["autoencoder", "diffraction_to_obj"]
    assert manifest["version"] and manifest["torch"] == torch.__version__
    assert manifest["created_utc"].endswith("Z")
    assert params == PARAMS
    assert not list(bundle.parent.glob(".wts.h5.zip.*")), "the temporary file must be renamed away"


def test_round_trip_is_bit_for_bit(trained):
    bundle, models = trained
    loaded, params = load_inference_bundle_torch(bundle.parent, model_factory=_factory)
    x = torch.randn(3, 4, 8, 8)
    models["diffraction_to_obj"].eval()
    with torch.no_grad():
        assert torch.equal(loaded["diffraction_to_obj"](x), models["diffraction_to_obj"](x))
    assert params == PARAMS
    assert all(isinstance(m, nn.Module) and not m.training for m in loaded.values())


def test_loader_accepts_the_zip_path_and_restores_params_cfg(trained, monkeypatch):
    bundle, _ = trained
    monkeypatch.setattr(legacy_params, "cfg", {"gridsize": 1, "N": 64})
    load_inference_bundle_torch(bundle, model_factory=_factory)
    assert legacy_params.cfg["gridsize"] == 2 and legacy_params.cfg["N"] == 8


def test_state_dicts_are_plain_tensors(trained):
    _, _, state_dicts = read_bundle(trained[0])
    assert set(state_dicts) == {"autoencoder", "diffraction_to_obj"}
    for state in state_dicts.values():
        assert all(isinstance(v, torch.Tensor) for v in state.values())


def test_save_overwrites_atomically(trained):
    bundle, models = trained
    first = bundle.read_bytes()
    with torch.no_grad():
        models["autoencoder"].conv.weight.add_(1.0)
    save_bundle(bundle.parent, models, PARAMS)
    assert bundle.read_bytes() != first
    _, _, state_dicts = read_bundle(bundle)
    assert torch.equal(state_dicts["autoencoder"]["conv.weight"], models["autoencoder"].conv.weight)


def test_missing_bundle_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / BUNDLE_NAME)):
        load_inference_bundle_torch(tmp_path, model_factory=_factory)


def test_corrupt_zip_is_a_value_error(tmp_path):
    (tmp_path / BUNDLE_NAME).write_bytes(b"this is not a zip archive")
    with pytest.raises(ValueError, match="not a readable zip archive"):
        load_inference_bundle_torch(tmp_path, model_factory=_factory)


def test_tensorflow_bundle_names_the_archived_backend(trained):
    bundle, _ = trained
    manifest = {"backend": "tensorflow", "version": "1", "models": ["autoencoder", "diffraction_to_obj"]}
    _rewrite(bundle, **{"manifest.json": json.dumps(manifest).encode()})
    with pytest.raises(ValueError, match="'tensorflow' backend"):
        load_inference_bundle_torch(bundle, model_factory=_factory)


def test_manifest_without_backend_is_rejected(trained):
    bundle, _ = trained
    _rewrite(bundle, **{"manifest.json": json.dumps({"models": ["autoencoder"]}).encode()})
    with pytest.raises(ValueError, match="does not name a backend"):
        load_inference_bundle_torch(bundle, model_factory=_factory)


def test_tampered_weights_fail_the_checksum(trained):
    bundle, _ = trained
    _rewrite(bundle, **{"autoencoder/state_dict.pt": b"garbage"})
    with pytest.raises(ValueError, match="sha256"):
        load_inference_bundle_torch(bundle, model_factory=_factory)


def test_weights_of_another_shape_fail_strict_loading(trained):
    bundle, _ = trained

    def gridsize_one(params):
        return _factory({**params, "gridsize": 1})

    with pytest.raises(ValueError, match="does not fit the network that params.json describes"):
        load_inference_bundle_torch(bundle, model_factory=gridsize_one)


def test_unknown_model_name_is_rejected(trained):
    with pytest.raises(ValueError, match="'decoder' is not in bundle"):
        load_inference_bundle_torch(trained[0], model_name="decoder", model_factory=_factory)


def test_save_requires_both_models(tmp_path):
    with pytest.raises(ValueError, match="missing \\['diffraction_to_obj'\\]"):
        save_bundle(tmp_path, {"autoencoder": nn.Linear(2, 2)}, PARAMS)
