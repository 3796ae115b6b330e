"""Configs validate themselves; the params.cfg bridge mirrors them under legacy key names and
is written in one place, called once per run at its boundary (CONFIG-001)."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import pytest

from ptycho import params
from ptycho.config import ExecutionConfig, InferenceConfig, ModelConfig, TrainingConfig


def test_model_config_defaults_match_the_brief():
    config = ModelConfig()
    assert (config.N, config.gridsize, config.n_filters_scale, config.nphotons) == (64, 1, 2, 1e9)
    assert config.object_big and config.probe_big and config.neighbor_count == 4
    assert config.intensity_scale == pytest.approx(988.2, abs=0.05)


@pytest.mark.parametrize("gridsize, C", [(1, 1), (2, 4), (3, 9)])
def test_channel_count_is_gridsize_squared(gridsize, C):
    assert ModelConfig(gridsize=gridsize).C == C


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"N": 60}, "multiple of 8"),
        ({"gridsize": 0}, "gridsize"),
        ({"gridsize": 2.0}, "gridsize"),
        ({"nphotons": -1.0}, "positive"),
        ({"n_filters_scale": 0}, "n_filters_scale"),
        ({"neighbor_count": 0}, "neighbor_count"),
        ({"amp_activation": "tanh"}, "choose one of"),
        ({"object_big": "yes"}, "True or False"),
    ],
)
def test_model_config_rejects_bad_values_with_a_fix(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        ModelConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"max_epochs": 0}, "max_epochs"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"n_groups": 0}, "n_groups"),
        ({"loss": "mse"}, "choose one of"),
    ],
)
def test_training_config_rejects_bad_values(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        TrainingConfig(**kwargs)


def test_training_config_turns_strings_into_paths():
    config = TrainingConfig(train_data_file="a.npz", output_dir="out")
    assert config.train_data_file == Path("a.npz") and config.output_dir == Path("out")
    assert config.test_data_file is None


def test_inference_config_requires_paths():
    with pytest.raises(ValueError, match="model_path"):
        InferenceConfig(model=ModelConfig(), model_path=None, test_data_file="t.npz", output_dir="o")


@pytest.mark.parametrize(
    "kwargs", [{"accelerator": "tpu"}, {"logger": "wandb"}, {"num_workers": -1}, {"deterministic": 1}]
)
def test_execution_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError, match="ExecutionConfig"):
        ExecutionConfig(**kwargs)


def test_update_legacy_dict_uses_legacy_names():
    config = TrainingConfig(
        model=ModelConfig(gridsize=2, object_big=False), train_data_file="train.npz", output_dir="out", max_epochs=3
    )
    cfg: dict = {"stale": 1}
    params.update_legacy_dict(cfg, config)
    assert cfg["gridsize"] == 2 and cfg["C"] == 4 and cfg["N"] == 64
    assert cfg["object.big"] is False and cfg["probe.big"] is True
    assert cfg["nepochs"] == 3 and cfg["train_data_file_path"] == "train.npz" and cfg["output_prefix"] == "out"
    assert cfg["intensity_scale"] == pytest.approx(config.model.intensity_scale)
    assert cfg["stale"] == 1, "update, not replace"


def test_update_legacy_dict_rejects_other_objects():
    with pytest.raises(ValueError, match="ModelConfig, TrainingConfig or InferenceConfig"):
        params.update_legacy_dict({}, {"N": 64})


def test_publish_writes_the_global_cfg(monkeypatch):
    monkeypatch.setattr(params, "cfg", {"stale": 1})
    returned = params.publish(ModelConfig(gridsize=3))
    assert returned is params.cfg and params.cfg["C"] == 9 and params.cfg["stale"] == 1


REPO = Path(__file__).resolve().parents[2]
#: The boundaries where a run's config is settled, each publishing it once.
BOUNDARIES = {"src/ptycho_torch/train.py": 1, "src/ptycho_torch/inference.py": 1, "src/ptycho_torch/bundle.py": 1}


def _legacy_uses(path: Path) -> Counter:
    """How often a file names ``cfg`` as an attribute or import, or calls a params.cfg writer."""
    uses: Counter = Counter()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr in ("cfg", "publish", "update_legacy_dict"):
            uses[node.attr] += 1
        elif isinstance(node, ast.ImportFrom) and node.module == "ptycho.params":
            uses.update(alias.name for alias in node.names)
    return uses


def test_params_cfg_is_written_only_by_publish_at_the_boundaries():
    files = sorted((REPO / "src").rglob("*.py")) + sorted((REPO / "bench").rglob("*.py"))
    found = {str(p.relative_to(REPO)): _legacy_uses(p) for p in files if p != REPO / "src/ptycho/params.py"}
    touching = {name: uses for name, uses in found.items() if uses}
    assert {name: uses["publish"] for name, uses in touching.items()} == BOUNDARIES, (
        f"params.cfg must be written through params.publish, once per boundary {sorted(BOUNDARIES)}; found {touching}"
    )
    assert all(set(uses) == {"publish"} for uses in touching.values()), f"cfg touched directly: {touching}"
