"""The loader a user would write without DALI, for ``actnet benchmark loader`` to compare against.

torchcodec (or PyAV, whose wheels bundle FFmpeg, where torchcodec cannot load the system's FFmpeg libraries, as
on a bare GPU machine) decodes in PyTorch DataLoader worker processes (torchvision's own video decoding was
removed in 0.28); torchvision.transforms.v2 augments. It reads the same shards through the same index, picks
the same samples and frames (``sampling.py``) and produces the same views with the same shapes, so the two
loaders differ only in how they decode and augment.
"""

from __future__ import annotations

import io

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from actnet.config import AugmentConfig, ClipConfig, LoaderConfig
from actnet.data.sampling import SampleStream
from actnet.errors import ActnetError

DECODERS = {"torchcodec": "torchcodec", "pyav": "PyAV"}  # name -> how tables print it


def available_decoders() -> list[str]:
    """The DALI-free decoders that load here (torchcodec needs the system's FFmpeg libraries; PyAV bundles them)."""
    found = []
    for name in DECODERS:
        try:
            __import__("torchcodec.decoders" if name == "torchcodec" else "av")
            found.append(name)
        except Exception:  # noqa: BLE001 - ImportError, or RuntimeError when FFmpeg's libraries are missing
            pass
    if not found:
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


def _resize_short(frames: torch.Tensor, short: int, antialias: bool = False) -> torch.Tensor:
    """uint8 (T, C, H, W) -> float (T, C, h, w) with min(h, w) == short."""
    h, w = frames.shape[-2:]
    scale = short / min(h, w)
    size = (max(short, round(h * scale)), max(short, round(w * scale)))
    return F.interpolate(frames.float(), size=size, mode="bilinear", align_corners=False, antialias=antialias)


def _crop(frames: torch.Tensor, size: int, px: float, py: float) -> torch.Tensor:
    h, w = frames.shape[-2:]
    y, x = round(py * (h - size)), round(px * (w - size))
    return frames[..., y : y + size, x : x + size]


def _normalize(frames: torch.Tensor, mean, std) -> torch.Tensor:
    """float 0..255 (T, C, H, W) -> normalised (C, T, H, W)."""
    m = torch.tensor(mean).view(1, 3, 1, 1) * 255
    s = torch.tensor(std).view(1, 3, 1, 1) * 255
    return ((frames - m) / s).permute(1, 0, 2, 3).contiguous()


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
        out = {"label": job.label, "id": job.id}
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
        x = _resize_short(clip, round((lo + (hi - lo) * r[0]) * clip_cfg.size))
        x = _crop(x, clip_cfg.size, r[1], r[2])
        return x.flip(-1) if aug.flip and r[3] < 0.5 else x

    def _weak(self, clip, clip_cfg: ClipConfig, aug: AugmentConfig, gen) -> torch.Tensor:
        return _normalize(self._spatial(clip, clip_cfg, aug, gen), self.cfg.mean, self.cfg.std)

    def _strong(self, clip, clip_cfg: ClipConfig, aug: AugmentConfig, gen) -> torch.Tensor:
        from torchvision.transforms import InterpolationMode, v2

        x = self._spatial(clip, clip_cfg, aug, gen).round().clamp(0, 255).to(torch.uint8)
        if aug.rand_augment_n:  # leading dims are a batch: one op draw for every frame of the clip
            interp = InterpolationMode.NEAREST if aug.rand_augment_interp == "nearest" else InterpolationMode.BILINEAR
            x = v2.RandAugment(num_ops=aug.rand_augment_n, magnitude=aug.rand_augment_m, interpolation=interp)(x)
        return _normalize(x.float(), self.cfg.mean, self.cfg.std)

    def _eval_views(self, clip, clip_cfg: ClipConfig, crops) -> torch.Tensor:
        return eval_views(clip, self.stream.eval_clips, clip_cfg.size, crops, self.cfg.mean, self.cfg.std)


def eval_views(clip: torch.Tensor, k: int, size: int, crops, mean, std) -> torch.Tensor:
    """uint8 (K*T, C, H, W) frames of K clips -> (K*crops, C, T, S, S) evaluation views, as the DALI graph makes
    them: short side resized (antialiased) to ``size``, then each crop of every clip, normalised."""
    x = _resize_short(clip, size, antialias=True)
    views = [_normalize(_crop(x, size, px, py), mean, std) for px, py in crops]
    v = torch.stack(views)  # (crops, C, K*T, S, S)
    c, kt = v.shape[1], v.shape[2]
    return v.view(len(crops), c, k, kt // k, size, size).permute(2, 0, 1, 3, 4, 5).reshape(-1, c, kt // k, size, size)


def baseline_loader(
    stream: SampleStream, cfg: LoaderConfig, workers: int, decoder: str = "auto", epoch: int = 0
) -> DataLoader:
    return DataLoader(
        BaselineClips(stream, cfg, pick_decoder(decoder), epoch),
        batch_size=stream.batch_size,
        num_workers=workers,
        persistent_workers=workers > 0,
        prefetch_factor=cfg.prefetch if workers else None,
    )
