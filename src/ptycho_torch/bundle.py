"""The ``wts.h5.zip`` model bundle: save a trained backend, reload it safely.

Why a custom format: a teammate must be able to load an archive without executing code
from it. The archive therefore holds only JSON (manifest, params snapshot) and tensor-only
state dicts, read back with ``torch.load(..., weights_only=True)``; the network classes come
from this package, never from the archive.

Layout of ``{output_dir}/wts.h5.zip`` (the name is inherited from the upstream TensorFlow
backend; the content is a plain zip, not HDF5)::

    manifest.json                  backend, version, models, created_utc, torch, sha256 per member
    params.json                    params snapshot (N, gridsize, nphotons, intensity_scale, ...)
    <model>/state_dict.pt          one per model in manifest["models"]
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ptycho import params as legacy
from ptycho.config import ModelConfig, TrainingConfig

BUNDLE_NAME = "wts.h5.zip"
BACKEND = "pytorch"
BUNDLE_VERSION = "1"
MODEL_NAMES = ("autoencoder", "diffraction_to_obj")
MANIFEST = "manifest.json"
PARAMS = "params.json"

ModelFactory = Callable[[Mapping[str, Any]], Mapping[str, nn.Module]]


def _member(model_name: str) -> str:
    return f"{model_name}/state_dict.pt"


def _jsonable(value: Any) -> Any:
    """Convert a params value to plain JSON (paths to str, numpy scalars to Python)."""
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _jsonable(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(
        f"params value {value!r} of type {type(value).__name__} cannot be stored in "
        f"{PARAMS}; pass plain numbers, strings, bools, lists or paths"
    )


def _state_dict_bytes(module: nn.Module) -> bytes:
    buffer = io.BytesIO()
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    torch.save(state, buffer)
    return buffer.getvalue()


def save_bundle(output_dir: Path | str, models: Mapping[str, nn.Module], params: Mapping[str, Any]) -> Path:
    """Write ``{output_dir}/wts.h5.zip`` atomically (temp file + rename) and return its path.

    ``models`` must contain every name of ``MODEL_NAMES``; ``params`` is the snapshot the
    loader needs to rebuild the network (at least ``N`` and ``gridsize``).
    """
    missing = [name for name in MODEL_NAMES if name not in models]
    if missing:
        raise ValueError(f"save_bundle needs models {list(MODEL_NAMES)}; missing {missing}")
    for key in ("N", "gridsize"):
        if key not in params:
            raise ValueError(f"save_bundle params snapshot lacks {key!r}; include the ModelConfig fields")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    members: dict[str, bytes] = {PARAMS: json.dumps(_jsonable(dict(params)), indent=2, sort_keys=True).encode()}
    for name in models:
        members[_member(name)] = _state_dict_bytes(models[name])
    manifest = {
        "backend": BACKEND,
        "version": BUNDLE_VERSION,
        "models": list(models),
        "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "torch": torch.__version__,
        "sha256": {name: hashlib.sha256(data).hexdigest() for name, data in members.items()},
    }
    members = {MANIFEST: json.dumps(manifest, indent=2).encode(), **members}

    target = output_dir / BUNDLE_NAME
    fd, tmp_name = tempfile.mkstemp(prefix=f".{BUNDLE_NAME}.", suffix=".tmp", dir=output_dir)
    try:
        with os.fdopen(fd, "wb") as handle, zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED) as archive:
            for name, data in members.items():
                archive.writestr(name, data)
        os.chmod(tmp_name, 0o644)  # mkstemp creates 0600; a bundle is meant to be shared
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target


def resolve_bundle_path(bundle: Path | str) -> Path:
    """Accept a directory holding ``wts.h5.zip`` or the zip itself; FileNotFoundError otherwise."""
    path = Path(bundle)
    if path.is_dir():
        path = path / BUNDLE_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"model bundle not found: {path}; pass the training --output_dir (holding {BUNDLE_NAME}) "
            f"or the {BUNDLE_NAME} file itself"
        )
    return path


def read_bundle(bundle: Path | str) -> tuple[dict[str, Any], dict[str, Any], dict[str, dict[str, torch.Tensor]]]:
    """Read and verify an archive: ``(manifest, params, state_dicts)``; no network is built.

    Raises ValueError naming the archive (and the member) for: a truncated or corrupt zip, a
    manifest without ``backend``, another backend (e.g. ``tensorflow``), a missing member, a
    member failing its CRC or sha256 check, a ``params.json`` that is not a valid params object,
    and a state dict that is not tensors only (which is refused, never executed).
    """
    path = resolve_bundle_path(bundle)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise ValueError(
            f"{path} is not a readable zip archive ({exc}): it is truncated or not a bundle; "
            f"copy it again in full or re-run training to write a new one"
        ) from exc
    with archive:
        names = set(archive.namelist())
        if MANIFEST not in names:
            raise ValueError(f"{path} has no {MANIFEST}; it is not a model bundle written by ptycho_torch")
        try:
            manifest = json.loads(archive.read(MANIFEST))
        except (ValueError, zipfile.BadZipFile, EOFError, OSError) as exc:
            raise ValueError(f"{path}: {MANIFEST} is unreadable ({exc}); the archive is corrupt") from exc
        if not isinstance(manifest, dict) or "backend" not in manifest:
            raise ValueError(
                f"{path}: {MANIFEST} does not name a backend; the archive was not written by "
                f"ptycho_torch.bundle (expected backend {BACKEND!r}) — retrain with the PyTorch backend"
            )
        backend = manifest["backend"]
        if backend != BACKEND:
            raise ValueError(
                f"{path} was written by the {backend!r} backend, but this loader reads {BACKEND!r} "
                f"bundles; load it with the {backend} backend or retrain with python -m ptycho_torch.train"
            )
        models = manifest.get("models")
        if not isinstance(models, list) or not models or not all(isinstance(m, str) for m in models):
            raise ValueError(f"{path}: {MANIFEST} lists no models; the archive is incomplete")
        checksums = manifest.get("sha256", {})
        data: dict[str, bytes] = {}
        for name in [PARAMS, *(_member(m) for m in models)]:
            if name not in names:
                raise ValueError(f"{path} lacks member {name!r} listed by its manifest; the archive is incomplete")
            try:
                data[name] = archive.read(name)
            except (zipfile.BadZipFile, EOFError, OSError) as exc:
                raise ValueError(f"{path}: member {name!r} is corrupt ({exc}); copy the bundle again or retrain") from exc
            expected = checksums.get(name) if isinstance(checksums, dict) else None
            if expected is not None and hashlib.sha256(data[name]).hexdigest() != expected:
                raise ValueError(
                    f"{path}: member {name!r} fails its sha256 check: the archive is corrupt or was edited; "
                    f"copy the original again or retrain"
                )
    params = _parse_params(path, data[PARAMS])
    state_dicts = {m: _load_state_dict(path, _member(m), data[_member(m)]) for m in models}
    return manifest, params, state_dicts


def _parse_params(path: Path, raw: bytes) -> dict[str, Any]:
    """``params.json`` as a dict that rebuilds a valid ModelConfig; ValueError naming the member otherwise."""
    where = f"{path}: member {PARAMS!r}"
    try:
        params = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise ValueError(f"{where} is not valid JSON ({exc}); the bundle is damaged or was edited by hand: "
                         f"restore the original or retrain") from None
    if not isinstance(params, dict):
        raise ValueError(f"{where} holds a JSON {type(params).__name__}, not an object of settings; "
                         f"restore the original or retrain")
    missing = [key for key in ("N", "gridsize") if key not in params]
    if missing:
        raise ValueError(f"{where} lacks {missing}; without them the network cannot be rebuilt: restore the original or retrain")
    try:
        model_config_from_params(params)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}; the bundle's settings are damaged: restore the original or retrain") from None
    return params


def _load_state_dict(path: Path, member: str, raw: bytes) -> dict[str, torch.Tensor]:
    """Unpickle one member with ``weights_only=True`` (tensors and plain containers only).

    Anything else is refused without running it. The refusal deliberately does not pass on
    torch's advice to retry with ``weights_only=False``: that would execute the archive's code.
    """
    refused = (
        f"{path}: member {member!r} is not a tensor-only state dict; refused (loading it could run code "
        f"stored in the archive). Use a bundle written by python -m ptycho_torch.train, or retrain"
    )
    try:
        with warnings.catch_warnings():  # torch warns about odd pickle protocols: noise beside the refusal
            warnings.simplefilter("ignore")
            state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception:  # UnpicklingError, RuntimeError, EOFError, ...: all mean "not a safe state dict"
        raise ValueError(refused) from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ValueError(refused)
    return state


def params_snapshot(config: TrainingConfig) -> dict[str, Any]:
    """The ``params.json`` a training run stores: ModelConfig fields and derived scales (what
    ``model_config_from_params`` rebuilds the network from), plus the settings of the run."""
    snapshot = dataclasses.asdict(config.model)
    snapshot["intensity_scale"] = config.model.intensity_scale
    snapshot["C"] = config.model.C
    snapshot["n_groups"] = config.n_groups
    snapshot["batch_size"] = config.batch_size
    snapshot["max_epochs"] = config.max_epochs
    snapshot["learning_rate"] = config.learning_rate
    snapshot["lr_schedule"] = config.lr_schedule
    snapshot["seed"] = config.seed
    snapshot["train_data_file"] = str(config.train_data_file)
    return snapshot


def model_config_from_params(params: Mapping[str, Any]) -> ModelConfig:
    """The ``ModelConfig`` a params snapshot describes (keys that are not its fields are ignored)."""
    field_names = {f.name for f in dataclasses.fields(ModelConfig)}
    return ModelConfig(**{k: v for k, v in params.items() if k in field_names})


def build_models_from_params(params: Mapping[str, Any]) -> dict[str, nn.Module]:
    """Default factory: rebuild ``PtychoPINN`` from the params snapshot, return its two graphs."""
    from ptycho_torch.model import PtychoPINN

    network = PtychoPINN(model_config_from_params(params))
    return {"autoencoder": network.autoencoder, "diffraction_to_obj": network.diffraction_to_obj}


def load_bundle(
    bundle_dir: Path | str,
    model_name: str = "diffraction_to_obj",
    *,
    model_factory: ModelFactory | None = None,
) -> tuple[dict[str, nn.Module], dict[str, Any]]:
    """Load a bundle: ``(models_dict, params_dict)`` with real ``nn.Module``s in eval mode.

    ``bundle_dir`` is the training output directory or the ``wts.h5.zip`` itself.
    ``model_name`` must be one of the archived models (ValueError otherwise); every archived
    model is returned. Weights load strictly. ``params.cfg`` is left alone: a caller that
    settles a fuller config (the inference CLI) publishes that one instead.
    ``model_factory`` (params -> {name: module}) defaults to rebuilding ``PtychoPINN``.
    """
    manifest, params, state_dicts = read_bundle(bundle_dir)
    if model_name not in manifest["models"]:
        raise ValueError(
            f"model {model_name!r} is not in bundle {resolve_bundle_path(bundle_dir)}; "
            f"it holds {manifest['models']}"
        )
    factory = model_factory or build_models_from_params
    modules = factory(params)
    path = resolve_bundle_path(bundle_dir)
    models: dict[str, nn.Module] = {}
    for name, state in state_dicts.items():
        if name not in modules:
            raise ValueError(f"bundle model {name!r} has no matching network (factory built {sorted(modules)})")
        module = modules[name]
        _check_weights_fit(path, name, module, state, params)
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as exc:  # same names and shapes, yet refused (e.g. a dtype torch cannot copy)
            raise ValueError(f"{path}: member {_member(name)!r} cannot be loaded into the network ({exc}); retrain") from exc
        module.eval()
        models[name] = module
    return models, params


def _check_weights_fit(path: Path, name: str, module: nn.Module, state: Mapping[str, torch.Tensor],
                       params: Mapping[str, Any]) -> None:
    """One-line ValueError when the archived weights do not fit the network its ``params.json`` describes."""
    expected = {key: tuple(value.shape) for key, value in module.state_dict().items()}
    archived = {key: tuple(value.shape) for key, value in state.items()}
    if expected == archived:
        return
    missing, unexpected = sorted(expected.keys() - archived), sorted(archived.keys() - expected)
    shapes = [k for k in expected if k in archived and expected[k] != archived[k]]
    if shapes:
        detail = f"{shapes[0]} is {archived[shapes[0]]} in the archive but {expected[shapes[0]]} for these params"
        if len(shapes) > 1:
            detail += f" ({len(shapes) - 1} more differ)"
    else:
        detail = f"missing {missing[:3]}, unexpected {unexpected[:3]}"
    raise ValueError(
        f"{path}: member {_member(name)!r} does not fit the network that {PARAMS} describes "
        f"(N={params.get('N')}, gridsize={params.get('gridsize')}): {detail}; {PARAMS} and the weights "
        f"disagree (edited by hand, or mixed from two runs): restore the original bundle or retrain"
    )


def load_inference_bundle_torch(
    bundle_dir: Path | str,
    model_name: str = "diffraction_to_obj",
    *,
    model_factory: ModelFactory | None = None,
) -> tuple[dict[str, nn.Module], dict[str, Any]]:
    """``load_bundle``, then publish the snapshot's ModelConfig to ``params.cfg`` (CONFIG-001).

    The entry point for code that only loads a bundle: the loaded model is the config it settles.
    """
    models, params = load_bundle(bundle_dir, model_name, model_factory=model_factory)
    legacy.publish(model_config_from_params(params))
    return models, params
