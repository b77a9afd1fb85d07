"""The input pipeline's contract: the :class:`Batch` every loader yields, and :func:`make_loader`.

    loader = make_loader("shards/ucf101/split1", "train", "unlabeled", cfg.loader, rank=rank, world=world)
    for batch in loader.iterate(epoch):          # training streams never end: take loader.steps_per_epoch
        batch["primary", "weak"]                 # float (B, C, T, H, W), normalised
    loader.classes, loader.bad, loader.close()

Three streams: ``labeled`` (a weak view per model), ``unlabeled`` (a weak and a strong view per model, of the
same frames) and ``eval`` (K clips x 1 or 3 crops per model, one pass over this rank's videos). Which samples and
frames each rank reads is decided in Python (:mod:`actnet.data.sampling`); decoding and augmenting happen in
NVIDIA DALI (:mod:`actnet.data.dali`, imported only when a loader is made). The DALI-free loader the benchmarks
compare against (``actnet.bench.baseline``) yields the same :class:`Batch`.
"""

from __future__ import annotations

import logging

import torch

from actnet.config import ClipConfig, LoaderConfig
from actnet.data.batch import Batch, view_names
from actnet.data.codecs import CPU_DECODER_CODECS, NVDEC_MIN_SIZE
from actnet.data.sampling import SampleStream, ShardSet, steps_per_epoch
from actnet.errors import ActnetError
from actnet.runtime import local_rank

log = logging.getLogger("actnet.data")
KINDS = ("labeled", "unlabeled", "eval")
__all__ = ["Batch", "make_loader", "resolve_device", "sample_stream", "set_size", "steps_per_epoch", "view_names"]


def resolve_device(device: str, codec: str, where: str, devices: list[str] | None = None) -> str:
    """``cpu`` or ``gpu`` for ``--device auto|cpu|gpu`` and shards of ``codec`` (``where`` names them) that the
    ``devices`` their info.json lists can decode (``None``, sets made before it was recorded: by codec alone).

    ``auto`` takes the GPU when there is one and the set decodes there; a set of videos smaller than NVDEC
    decodes (``prepare --small-videos keep``) is decoded on the CPU then, with a warning."""
    has_gpu = torch.cuda.is_available()
    if devices is None:
        devices = ["cpu", "gpu"] if codec in CPU_DECODER_CODECS else ["gpu"]
    if device == "gpu" and not has_gpu:
        raise ActnetError("--device gpu: no CUDA GPU is visible to PyTorch")
    too_small = (
        f"{where}: holds videos smaller than NVDEC decodes ({codec} needs at least "
        f"{'x'.join(map(str, NVDEC_MIN_SIZE.get(codec, (0, 0))))})"
    )
    if device == "gpu" and "gpu" not in devices:
        raise ActnetError(f"{too_small}; use --device cpu, or re-run `actnet prepare` with --small-videos upscale")
    chosen = device if device != "auto" else ("gpu" if has_gpu and "gpu" in devices else "cpu")
    if device == "auto" and has_gpu and chosen == "cpu" and "cpu" in devices:
        log.warning("%s: decoding on the CPU (prepare with --small-videos upscale for the GPU)", too_small)
    if chosen == "cpu" and "cpu" not in devices:
        raise ActnetError(
            f"{where}: {codec} shards decode only on a GPU (DALI's CPU decoder reads VP8, VP9 and MJPEG); "
            f"use --device gpu on a GPU machine, or re-run `actnet prepare` with --codec vp9"
        )
    return chosen


def sample_stream(
    shards: ShardSet,
    kind: str,
    cfg: LoaderConfig,
    *,
    rank: int = 0,
    world: int = 1,
    clips: dict[str, ClipConfig] | None = None,
    fetch_threads: int | None = None,
) -> SampleStream:
    """The samples, frames and bytes of one stream over a shard set for this rank (no decoding)."""
    if kind not in KINDS:
        raise ValueError(f"unknown stream kind {kind!r}")
    batch = {"labeled": cfg.batch_size, "unlabeled": cfg.batch_size * cfg.mu, "eval": cfg.eval_batch_size}[kind]
    return SampleStream(
        shards,
        kind,
        clips or cfg.clips(),
        batch,
        rank=rank,
        world=world,
        seed=cfg.seed,
        eval_clips=cfg.eval_clips,
        eval_crops=cfg.eval_crops,
        fetch_threads=cfg.fetch_threads if fetch_threads is None else fetch_threads,
        lookahead=cfg.prefetch + 1,
        coalesce_kib=cfg.coalesce_kib,
    )


def make_loader(
    url: str,
    set_name: str,
    kind: str,
    cfg: LoaderConfig,
    *,
    rank: int = 0,
    world: int = 1,
    epoch: int = 0,
    clips: dict[str, ClipConfig] | None = None,
):
    """A DALI loader over ``<url>/<set_name>`` for one stream; ``clips`` defaults to the config's models.

    It yields :class:`Batch` objects and tells what :class:`~actnet.data.batch.Loader` says: ``classes``,
    ``encode``, ``num_samples``, ``steps_per_epoch``, ``bad`` (the samples left out, with their reasons),
    ``bad_ids`` / ``skip(ids)`` (for checkpoints) and ``close()``."""
    from actnet.data.dali import DaliLoader

    shards = ShardSet(url, set_name)
    where = shards.storage.url(f"{set_name}.info.json")
    device = resolve_device(cfg.device, shards.codec, where, shards.info.devices)
    stream = sample_stream(shards, kind, cfg, rank=rank, world=world, clips=clips)
    return DaliLoader(stream, cfg, device, epoch=epoch, device_id=local_rank())


def set_size(url: str, set_name: str) -> int:
    """How many samples ``<url>/<set_name>`` holds (its info.json and index files are read, no data)."""
    return len(ShardSet(url, set_name))
