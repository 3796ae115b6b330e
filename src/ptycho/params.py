"""The legacy global ``params.cfg`` dict and ``publish``, the one function that writes it (CONFIG-001).

Why it still exists: upstream code and saved bundles read settings from this dict. New code
receives configs as arguments and never reads ``cfg``. A run publishes its config once, at the
boundary where that config is settled (the train and inference CLIs, and
``load_inference_bundle_torch`` restoring a bundle's snapshot), before grouping data, so the
dict never disagrees with the config that is actually used (the upstream bug CONFIG-001).
``update_legacy_dict`` is the mapping itself, onto any dict, so it can be tested without the global.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ptycho.config import InferenceConfig, ModelConfig, TrainingConfig

cfg: dict[str, Any] = {}

#: config field -> legacy key, where the legacy name differs (dots are not identifiers).
LEGACY_KEYS: dict[str, str] = {
    "object_big": "object.big",
    "probe_big": "probe.big",
    "max_epochs": "nepochs",
    "train_data_file": "train_data_file_path",
    "test_data_file": "test_data_file_path",
    "output_dir": "output_prefix",
}


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value


def legacy_view(config: ModelConfig | TrainingConfig | InferenceConfig) -> dict[str, Any]:
    """The legacy key/value pairs a config stands for (model fields flattened, paths as str)."""
    if not isinstance(config, (ModelConfig, TrainingConfig, InferenceConfig)):
        raise ValueError(
            f"update_legacy_dict needs a ModelConfig, TrainingConfig or InferenceConfig, got {type(config).__name__}"
        )
    model = config if isinstance(config, ModelConfig) else config.model
    values: dict[str, Any] = {f.name: getattr(model, f.name) for f in dataclasses.fields(model)}
    values["C"] = model.C
    values["intensity_scale"] = model.intensity_scale
    if not isinstance(config, ModelConfig):
        values.update({f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name != "model"})
    return {LEGACY_KEYS.get(name, name): _plain(value) for name, value in values.items()}


def update_legacy_dict(target: dict[str, Any], config: ModelConfig | TrainingConfig | InferenceConfig) -> dict[str, Any]:
    """Write ``config``'s legacy view into ``target`` and return it (``publish`` passes ``cfg``)."""
    target.update(legacy_view(config))
    return target


def publish(config: ModelConfig | TrainingConfig | InferenceConfig) -> dict[str, Any]:
    """Write ``config`` into the global ``cfg``, the only place that does; return ``cfg``."""
    return update_legacy_dict(cfg, config)
