"""The loader a user would write without DALI, for the benchmarks to compare against.

torchcodec (or PyAV, whose wheels bundle FFmpeg, where torchcodec cannot load the system's FFmpeg libraries, as
on a bare GPU machine) decodes in PyTorch DataLoader worker processes (torchvision's own video decoding was
removed in 0.28); torchvision.transforms.v2 augments. It reads the same shards through the same index, picks
the same samples and frames (``sampling.py``) and yields the same :class:`~actnet.data.loader.Batch` with the
same shapes, so the two loaders differ only in how they decode and augment. Its packages (torchcodec, av,
torchvision) are the ``bench`` extra.
"""

from __future__ import annotations

import functools
import io

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from actnet.config import AugmentConfig, ClipConfig, LoaderConfig
from actnet.data.batch import Batch, view_names
from actnet.data.sampling import SampleStream
from actnet.data.views import crop, eval_views, normalize, resize_short
from actnet.errors import ActnetError

DECODERS = {"torchcodec": "torchcodec", "pyav": "PyAV"}  # name -> how tables print it


def available_decoders(required: bool = True) -> list[str]:
    """The DALI-free decoders that load here (torchcodec needs the system's FFmpeg libraries; PyAV bundles them);
    none is an error when ``required``, else an empty list (a bare GPU machine: DALI's figures alone)."""
    found = []
    for name in DECODERS:
        try:
            __import__("torchcodec.decoders" if name == "torchcodec" else "av")
            found.append(name)
        except Exception:  # noqa: BLE001 - ImportError, or RuntimeError when FFmpeg's libraries are missing
            pass
    if not found and required:
        raise ActnetError("the baseline loader needs torchcodec or PyAV: pip install 'actnet[bench]'")
    return found


def pick_decoder(name: str = "auto") -> str:
    """``torchcodec`` where it loads, else ``pyav``; or the one named."""
    if name in DECODERS:
        return name
    if name != "auto":
        raise ActnetError(f"--baseline must be auto, torchcodec or pyav, not {name!r}")
    return available_decoders()[0]


def decode_at(video: bytes, indices: list[int], decoder: str) -> torch.Tensor:
    """Frames ``indices`` (any order, repeats allowed) of an encoded video as uint8 RGB (F, C, H, W)."""
    if decoder == "torchcodec":
        from torchcodec.decoders import VideoDecoder

        # exact: the frame count comes from a scan, not from the container's duration (WebM's leaves the last
        # frame out, so "approximate" refuses to decode it)
        return VideoDecoder(video, seek_mode="exact").get_frames_at(indices).data
    import av

    wanted = set(indices)
    found: dict[int, np.ndarray] = {}
    with av.open(io.BytesIO(video)) as container:
        stream = container.streams.video[0]
        fps, base = stream.average_rate, stream.time_base
        first, last = min(wanted), max(wanted)  # one seek to the keyframe before the first, then decode forward
        container.seek(int(first / fps / base), stream=stream, backward=True)
        for frame in container.decode(stream):
            i = round(float(frame.pts * base * fps))
            if i in wanted:
                found[i] = frame.to_ndarray(format="rgb24")
            if i >= last:
                break
    missing = wanted - found.keys()
    if missing:
        raise ValueError(f"PyAV did not decode frames {sorted(missing)[:5]}")
    return torch.from_numpy(np.stack([found[i] for i in indices])).permute(0, 3, 1, 2)


class BaselineClips(Dataset):
    """Item ``i`` is the ``i``-th planned sample of a :class:`SampleStream` epoch, decoded with torchcodec or PyAV."""

    def __init__(self, stream: SampleStream, cfg: LoaderConfig, decoder: str, epoch: int = 0):
        self.stream, self.cfg, self.decoder, self.epoch = stream, cfg, decoder, epoch
        self.items = stream.positions(epoch)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, position: int) -> dict:
        stream = self.stream
        job = stream.plan(self.items[position], self.epoch, position)  # the DALI loader's samples and frames
        union, orders = job.union()
        decoded = decode_at(job.video, union, self.decoder)  # (F, C, H, W) uint8
        gen = torch.Generator().manual_seed(stream.seed * 1_000_003 + self.epoch * 10_007 + position)
        out = {"label": job.label, "id": job.id, "key": job.key, "strides": job.strides, "frames": job.frames}
        for model, clip_cfg in stream.clips.items():
            clip = decoded[orders[model]]
            if stream.kind == "eval":
                out[f"{model}.eval"] = self._eval_views(clip, clip_cfg, job.crops)
                continue
            out[f"{model}.weak"] = self._weak(clip, clip_cfg, self.cfg.augment, gen)
            if stream.kind == "unlabeled":
                out[f"{model}.strong"] = self._strong(clip, clip_cfg, self.cfg.augment, gen)
        return out

    def _spatial(self, clip, clip_cfg: ClipConfig, aug: AugmentConfig, gen) -> torch.Tensor:
        lo, hi = aug.scale
        r = torch.rand(4, generator=gen).tolist()
        x = resize_short(clip, round((lo + (hi - lo) * r[0]) * clip_cfg.size))
        x = crop(x, clip_cfg.size, r[1], r[2])
        return x.flip(-1) if aug.flip and r[3] < 0.5 else x

    def _weak(self, clip, clip_cfg: ClipConfig, aug: AugmentConfig, gen) -> torch.Tensor:
        return normalize(self._spatial(clip, clip_cfg, aug, gen), self.cfg.mean, self.cfg.std)

    def _strong(self, clip, clip_cfg: ClipConfig, aug: AugmentConfig, gen) -> torch.Tensor:
        from torchvision.transforms import InterpolationMode, v2

        x = self._spatial(clip, clip_cfg, aug, gen).round().clamp(0, 255).to(torch.uint8)
        if aug.rand_augment_n:  # leading dims are a batch: one op draw for every frame of the clip
            interp = InterpolationMode.NEAREST if aug.rand_augment_interp == "nearest" else InterpolationMode.BILINEAR
            x = v2.RandAugment(num_ops=aug.rand_augment_n, magnitude=aug.rand_augment_m, interpolation=interp)(x)
        return normalize(x.float(), self.cfg.mean, self.cfg.std)

    def _eval_views(self, clip, clip_cfg: ClipConfig, crops) -> torch.Tensor:
        return eval_views(
            clip, self.stream.eval_clips, clip_cfg.size, crops, self.cfg.mean, self.cfg.std, clip_cfg.test_scale
        )


def collate(items: list[dict], kind: str, models: list[str]) -> Batch:
    """Samples of one batch (``BaselineClips`` items) as the loader contract's :class:`Batch`."""
    views = {(m, v): torch.stack([item[f"{m}.{v}"] for item in items]) for m, v in view_names(kind, models)}
    return Batch(
        views,
        torch.tensor([item["label"] for item in items], dtype=torch.long),
        torch.tensor([item["id"] for item in items], dtype=torch.long),
        [item["key"] for item in items],
        {m: [item["strides"][m] for item in items] for m in models},
        {m: [item["frames"][m] for item in items] for m in models},
    )


def baseline_loader(
    stream: SampleStream, cfg: LoaderConfig, workers: int, decoder: str = "auto", epoch: int = 0
) -> DataLoader:
    """A DataLoader of :class:`Batch` objects over one epoch of ``stream``, decoded with torchcodec or PyAV."""
    models = list(stream.clips)
    return DataLoader(
        BaselineClips(stream, cfg, pick_decoder(decoder), epoch),
        batch_size=stream.batch_size,
        num_workers=workers,
        persistent_workers=workers > 0,
        prefetch_factor=cfg.prefetch if workers else None,
        collate_fn=functools.partial(collate, kind=stream.kind, models=models),
    )
