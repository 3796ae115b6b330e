"""Grouped data as channels-first tensors, and the Dataset/DataModule that batch them.

Why a container: grouping (numpy, channels-last, BRIEF §5) happens once; the network wants
channels-first tensors. ``build_container`` is the one place that converts, including the
"coords axis fix": ``coords_relative`` (B,1,2,C) -> (B,C,1,2) by a contiguous permute.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ptycho.config import InferenceConfig, TrainingConfig
from ptycho.raw_data import RawData


@dataclass
class PtychoDataContainerTorch:
    """One dataset, grouped. B groups of C patches of N x N pixels.

    ``X`` (B,C,N,N) float32 amplitude; ``coords_relative`` (B,C,1,2) float32 (x, y) offsets
    used by the overlap constraint; ``coords_nn`` (B,C,1,2) float32 absolute patch centres;
    ``coords_offsets`` (B,1,1,2) float32 group centres; ``nn_indices`` (B,C) int64 scan
    points; ``probe`` (N,N) complex64; ``objectGuess`` (H,W) complex64 or None.
    """

    X: torch.Tensor
    coords_relative: torch.Tensor
    coords_nn: torch.Tensor
    coords_offsets: torch.Tensor
    nn_indices: torch.Tensor
    probe: torch.Tensor
    objectGuess: torch.Tensor | None = None
    source: Path | None = None

    def __len__(self) -> int:
        return int(self.X.shape[0])

    @property
    def C(self) -> int:
        return int(self.X.shape[1])

    @property
    def N(self) -> int:
        return int(self.X.shape[-1])


def _channels_first(array: np.ndarray) -> torch.Tensor:
    """(B,1,2,C) -> (B,C,1,2), contiguous float32 (the coords axis fix)."""
    return torch.from_numpy(np.asarray(array, dtype=np.float32)).permute(0, 3, 1, 2).contiguous()


def build_container(raw: RawData, config: TrainingConfig | InferenceConfig) -> PtychoDataContainerTorch:
    """Group ``raw`` as ``config`` asks and return channels-first tensors.

    Reads nothing from ``params.cfg`` and writes nothing to it: the caller's boundary publishes
    the config once (``ptycho.params.publish``, CONFIG-001).
    """
    model = config.model
    grouped = raw.generate_grouped_data(
        N=model.N,
        K=model.neighbor_count,
        nsamples=config.n_groups,
        gridsize=model.gridsize,
        seed=getattr(config, "seed", 0),
    )
    obj = grouped["objectGuess"]
    return PtychoDataContainerTorch(
        X=torch.from_numpy(grouped["diffraction"]).permute(0, 3, 1, 2).contiguous(),
        coords_relative=_channels_first(grouped["coords_relative"]),
        coords_nn=_channels_first(grouped["coords_nn"]),
        coords_offsets=_channels_first(grouped["coords_offsets"]),
        nn_indices=torch.from_numpy(grouped["nn_indices"]).long(),
        probe=torch.from_numpy(raw.probeGuess.astype(np.complex64)),
        objectGuess=None if obj is None else torch.from_numpy(obj.astype(np.complex64)),
        source=raw.path,
    )


@dataclass(frozen=True)
class DataConfig:
    """What grouped data look like to the network: C patches per group, and the probe they were measured with.

    Why read off a container (``DataConfig.of``) rather than copied from ``ModelConfig``: the
    Lightning module checks these facts about the data against the network's settings, and a
    copy of those settings would agree with them by construction.
    """

    C: int
    probe: torch.Tensor | None = None

    @classmethod
    def of(cls, container: PtychoDataContainerTorch) -> DataConfig:
        return cls(C=container.C, probe=container.probe)


class PtychoDataset(Dataset):
    """Items ``{"diffraction": (C,N,N), "coords_relative": (C,1,2), "index": int}``."""

    def __init__(self, container: PtychoDataContainerTorch) -> None:
        self.container = container

    def __len__(self) -> int:
        return len(self.container)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        return {
            "diffraction": self.container.X[index],
            "coords_relative": self.container.coords_relative[index],
            "index": index,
        }


class PtychoDataModule(L.LightningDataModule):
    """Batches ``{"diffraction": (B,C,N,N), "coords_relative": (B,C,1,2), "index": (B,)}``.

    Training batches are shuffled by a generator seeded from ``seed`` (reproducible runs).
    """

    def __init__(
        self,
        train: PtychoDataContainerTorch,
        test: PtychoDataContainerTorch | None = None,
        batch_size: int = 16,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.train, self.test = train, test
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed

    def _loader(self, container: PtychoDataContainerTorch, shuffle: bool) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed) if shuffle else None
        return DataLoader(
            PtychoDataset(container),
            batch_size=self.batch_size,
            shuffle=shuffle,
            generator=generator,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        if self.test is None:
            raise ValueError("no test container was given to PtychoDataModule; pass test= to validate")
        return self._loader(self.test, shuffle=False)
