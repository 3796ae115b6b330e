"""End to end on the committed fixture: bundle loader, and train -> save -> load -> infer.

Both are seed selectors (phase C4.D.B3): they must run, not skip, on CPU with
``CUDA_VISIBLE_DEVICES=""``. Training and inference run as subprocesses through the CLIs,
exactly as a user would call them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ptycho import params as legacy_params
from ptycho.config import ModelConfig, TrainingConfig
from ptycho.raw_data import RawData
from ptycho_torch.bundle import load_inference_bundle_torch, read_bundle, save_bundle
from ptycho_torch.data import build_container
from ptycho_torch.model import Autoencoder, DiffractionToObject, PtychoPINN
from ptycho_torch.workflows import components

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "pytorch_integration" / "minimal_dataset_v1.npz"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _cli(module: str, *argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(
        [sys.executable, "-m", module, *argv], capture_output=True, text=True, env=env, cwd=PROJECT_ROOT, timeout=540
    )
    assert result.returncode == 0, f"{module} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def _record(stdout: str, prefix: str) -> dict:
    last = stdout.strip().splitlines()[-1]
    assert last.startswith(prefix), f"last stdout line should start with {prefix!r}, got {last!r}"
    return json.loads(last[len(prefix) :])


def test_bundle_loader_returns_modules(tmp_path, monkeypatch):
    raw = RawData.from_file(FIXTURE)
    model_config = ModelConfig(N=raw.N, gridsize=2)
    torch.manual_seed(0)
    network = PtychoPINN(model_config, probe=torch.from_numpy(raw.probeGuess))
    with torch.no_grad():  # weights that no fresh network could have by chance
        for parameter in network.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    params = {**vars(model_config), "intensity_scale": model_config.intensity_scale}
    save_bundle(tmp_path, {"autoencoder": network.autoencoder, "diffraction_to_obj": network.diffraction_to_obj}, params)

    monkeypatch.setattr(legacy_params, "cfg", {"gridsize": 1})
    models, loaded_params = components.load_inference_bundle_torch(tmp_path)

    assert set(models) == {"autoencoder", "diffraction_to_obj"}
    assert isinstance(models["autoencoder"], Autoencoder)
    assert isinstance(models["diffraction_to_obj"], DiffractionToObject)
    assert all(isinstance(m, nn.Module) and not isinstance(m, dict) for m in models.values())
    assert models["autoencoder"].encoder[0].in_channels == 4, "gridsize 2 must reach the first conv (BUG-TF-001)"
    assert torch.equal(models["autoencoder"].probe, network.autoencoder.probe), "the trained probe travels with the weights"
    assert loaded_params["gridsize"] == 2 and loaded_params["N"] == 64
    assert legacy_params.cfg["gridsize"] == 2 and legacy_params.cfg["C"] == 4, "params.cfg restored (CONFIG-001)"

    container = build_container(raw, TrainingConfig(model=model_config, n_groups=4))
    network.eval()
    with torch.no_grad():
        expected = network.diffraction_to_obj(container.X, container.coords_relative, container.probe)
        actual = models["diffraction_to_obj"](container.X, container.coords_relative, container.probe)
    assert actual.dtype == torch.complex64 and actual.shape == (4, 4, 64, 64)
    assert torch.equal(actual, expected), "save -> load must reproduce diffraction_to_obj bit for bit"


def test_run_pytorch_train_save_load_infer(tmp_path):
    train_dir, infer_dir = tmp_path / "train", tmp_path / "infer"
    train = _cli(
        "ptycho_torch.train",
        "--train_data_file", str(FIXTURE), "--test_data_file", str(FIXTURE), "--output_dir", str(train_dir),
        "--n_groups", "8", "--gridsize", "2", "--batch_size", "4", "--max_epochs", "1",
        "--accelerator", "cpu", "--logger", "csv", "--num-workers", "0", "--deterministic",
    )  # fmt: skip
    record = _record(train.stdout, "TRAIN_RECORD ")
    assert record["epochs"] == 1 and np.isfinite(record["final_train_loss"])
    assert record["shapes"] == {
        "diffraction": [4, 4, 64, 64],
        "coords_relative": [4, 4, 1, 2],
        "predicted_object": [4, 4, 64, 64],
    }
    assert record["figures"] == [str(train_dir / "figures" / name) for name in ("loss_curve.png", "reconstruction.png")]
    assert all(Path(path).read_bytes()[:4] == b"\x89PNG" for path in record["figures"]), "figures must be PNG files"
    bundle = train_dir / "wts.h5.zip"
    assert bundle.stat().st_size > 100_000, f"bundle is only {bundle.stat().st_size} bytes"
    assert (train_dir / "checkpoints" / "last.ckpt").is_file()

    # The bundle holds exactly the weights Lightning checkpointed at the end of training.
    _, _, state_dicts = read_bundle(bundle)
    checkpoint = torch.load(train_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    trained = {k.removeprefix("model.autoencoder."): v for k, v in checkpoint["state_dict"].items()}
    assert state_dicts["autoencoder"].keys() == trained.keys()
    assert all(torch.equal(state_dicts["autoencoder"][k], trained[k]) for k in trained)

    models, params = load_inference_bundle_torch(train_dir)
    assert params["gridsize"] == 2 and isinstance(models["diffraction_to_obj"], nn.Module)

    infer = _cli(
        "ptycho_torch.inference",
        "--model_path", str(train_dir), "--test_data", str(FIXTURE), "--output_dir", str(infer_dir),
        "--n_groups", "16", "--accelerator", "cpu",
    )  # fmt: skip
    inference_record = _record(infer.stdout, "INFERENCE_RECORD ")
    for name in ("reconstructed_amplitude.png", "reconstructed_phase.png"):
        size = (infer_dir / name).stat().st_size
        assert size > 1000, f"{name} is only {size} bytes"
    with np.load(infer_dir / "reconstruction.npz", allow_pickle=False) as npz:
        obj, weights = npz["object"], npz["weights"]
        metadata = json.loads(str(npz["metadata"]))
    assert obj.dtype == np.complex64 and obj.shape == (144, 144), "canvas = the fixture's objectGuess frame"
    covered = weights > 0
    assert covered.mean() > 0.2 and np.all(np.isfinite(obj[covered])) and np.abs(obj[covered]).max() > 0
    assert metadata["gridsize"] == 2 and metadata["n_groups"] == 16
    assert metadata["test_data_sha256"] == record["train_data_sha256"]
    assert inference_record["patches_shape"] == [16, 4, 64, 64]
