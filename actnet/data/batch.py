"""The contract every loader keeps: what one :class:`Batch` holds (the DALI loader and the benchmarks' DALI-free
loader both yield it; the training task and evaluation read nothing else), and what a :class:`Loader` tells its
callers about the set it reads."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from actnet.data.sampling import SampleStream


@dataclass
class Batch:
    """One batch: ``views[(model, view)]`` is float (B, C, T, H, W), or (B, V, C, T, H, W) for evaluation.

    Views are ``weak`` (labeled and unlabeled), ``strong`` (unlabeled) and ``eval`` (V = clips x crops).
    """

    views: dict[tuple[str, str], torch.Tensor]
    label: torch.Tensor  # long (B,)
    ids: torch.Tensor  # long (B,): positions in the shard set
    keys: list[str]
    strides: dict[str, list[int]] = field(default_factory=dict)  # model -> the stride each sample got
    frames: dict[str, list[list[int]]] = field(default_factory=dict)  # model -> each sample's frame indices

    def __getitem__(self, item: tuple[str, str]) -> torch.Tensor:
        return self.views[item]

    def __len__(self) -> int:
        return len(self.keys)


def view_names(kind: str, models: list[str]) -> list[tuple[str, str]]:
    """The ``(model, view)`` keys of a stream's batches, in order."""
    views = {"labeled": ["weak"], "unlabeled": ["weak", "strong"], "eval": ["eval"]}[kind]
    return [(m, v) for m in models for v in views]


class Loader:
    """What a loader of one stream tells its callers, from its :class:`SampleStream`; subclasses add ``iterate``.

    ``bad`` lists the samples left out ({"key", "shard", "error"}); ``bad_ids`` / :meth:`skip` carry them across a
    checkpoint."""

    def __init__(self, stream: SampleStream):
        self.stream = stream
        self.bad: list[dict] = []

    @property
    def kind(self) -> str:
        return self.stream.kind

    @property
    def steps_per_epoch(self) -> int:
        return self.stream.steps_per_epoch

    @property
    def batch_size(self) -> int:
        return self.stream.batch_size

    @property
    def num_samples(self) -> int:
        """Samples in the shard set (all ranks)."""
        return len(self.stream.shards)

    @property
    def classes(self) -> list[str]:
        return list(self.stream.shards.info.classes)

    @property
    def encode(self) -> dict:
        """How the set's videos were encoded (prepare's EncodeConfig, as plain data)."""
        return dict(self.stream.shards.info.encode)

    @property
    def bad_ids(self) -> list[int]:
        """Ids of the samples found bad so far (a checkpoint keeps them; see :meth:`skip`)."""
        return sorted(self.stream.bad)

    def skip(self, ids) -> None:
        """Leave these samples out from now on, as if they had been found bad (a resumed run's checkpoint)."""
        self.stream.bad.update(ids)

    def close(self) -> None:
        """Stop the threads reading samples ahead."""
        self.stream.close()
