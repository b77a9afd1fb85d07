"""Configuration: frozen dataclasses, the only place defaults live.

Each component receives only its own slice (an :class:`EncodeConfig` for the transcoder, a :class:`ShardConfig`
for the shard writer, a :class:`SyntheticConfig` for the generator). Cross-field checks live in ``__post_init__``
and their messages name the command-line flag, so the CLI can print them as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from actnet.errors import ActnetError

CODECS = ("vp9", "h264", "mjpeg")
CODEC_EXTENSION = {"vp9": "webm", "h264": "mp4", "mjpeg": "avi"}
# Quality when --crf is not given: libvpx-vp9 crf, libx264 crf, mjpeg qscale (2 best .. 31 worst).
DEFAULT_QUALITY = {"vp9": 32, "h264": 23, "mjpeg": 3}


@dataclass(frozen=True)
class EncodeConfig:
    """How every video is re-encoded into the canonical shard format (see DESIGN.md, "Codec")."""

    codec: str = "vp9"  # vp9 decodes on DALI's CPU and GPU backends; h264 only on the GPU; mjpeg on both
    short_side: int = 320  # cap on the shorter side in pixels (never upscaled); 0 keeps the source size
    fps: float | None = None  # output frame rate; None keeps the source's average rate (made constant)
    max_fps: float = 60.0  # sources above this (or with an unknown rate) are resampled to it when fps is None
    crf: int | None = None  # quality; None takes the codec default (DEFAULT_QUALITY); 0 is lossless for vp9/h264
    gop: int = 16  # keyframe interval in frames: short GOPs make DALI's random clip seeks cheap
    speed: int = 6  # libvpx cpu-used 0..8 (>= 6 uses the realtime deadline); h264 maps it to an x264 preset
    min_frames: int = 8  # a video with fewer decodable frames is rejected
    threads: int = 1  # ffmpeg threads per video; parallelism comes from --workers
    verify: str = "full"  # full: decode every output frame; packets: demux only (faster, weaker)

    def __post_init__(self) -> None:
        if self.codec not in CODECS:
            raise ActnetError(f"--codec must be one of {', '.join(CODECS)}, not {self.codec!r}")
        if self.short_side < 0 or (0 < self.short_side < 16):
            raise ActnetError(f"--short-side must be 0 (keep) or at least 16, not {self.short_side}")
        if self.fps is not None and not 1 <= self.fps <= 240:
            raise ActnetError(f"--fps must be between 1 and 240, not {self.fps}")
        if not 1 <= self.max_fps <= 240:
            raise ActnetError(f"--max-fps must be between 1 and 240, not {self.max_fps}")
        if self.crf is not None and not 0 <= self.crf <= 63:
            raise ActnetError(f"--crf must be between 0 and 63, not {self.crf}")
        if self.gop < 1:
            raise ActnetError(f"--gop must be at least 1, not {self.gop}")
        if not 0 <= self.speed <= 8:
            raise ActnetError(f"--speed must be between 0 and 8, not {self.speed}")
        if self.min_frames < 1:
            raise ActnetError(f"--min-frames must be at least 1, not {self.min_frames}")
        if self.verify not in ("full", "packets"):
            raise ActnetError(f"--verify must be 'full' or 'packets', not {self.verify!r}")

    @property
    def extension(self) -> str:
        """File extension of an encoded sample inside a shard (also its webdataset component name)."""
        return CODEC_EXTENSION[self.codec]

    @property
    def quality(self) -> int:
        return DEFAULT_QUALITY[self.codec] if self.crf is None else self.crf

    def output_fps(self, source_fps: Fraction | None) -> Fraction:
        """The constant output rate for a source whose average rate is ``source_fps`` (None: unknown)."""
        if self.fps is not None:
            return Fraction(self.fps).limit_denominator(1001)
        cap = Fraction(self.max_fps).limit_denominator(1001)
        if source_fps is None or source_fps <= 0 or source_fps > cap:
            return cap
        return source_fps


@dataclass(frozen=True)
class ShardConfig:
    """How encoded samples are grouped into WebDataset tar shards."""

    shard_size: int = 256 * 2**20  # target bytes per shard (a shard closes once it reaches this)
    min_shards: int = 8  # at least this many shards per set (when it has that many samples), for ranks/workers

    def __post_init__(self) -> None:
        if self.shard_size < 2**16:
            raise ActnetError(f"--shard-size must be at least 64 KiB, not {self.shard_size}")
        if self.min_shards < 1:
            raise ActnetError(f"--min-shards must be at least 1, not {self.min_shards}")

    def group_of(self, position: int, total: int) -> int:
        """Which of ``min_shards`` equal runs of a set's ``total`` samples ``position`` falls in.

        A shard never spans two runs, so a set of at least ``min_shards`` samples always gets at least that
        many shards, whose counts differ by at most one (before size limits and rejects).
        """
        return position * self.min_shards // max(1, total)


@dataclass(frozen=True)
class SyntheticConfig:
    """The built-in synthetic action data set (see actnet/data/synthetic.py for the classes)."""

    num_classes: int = 8  # the first N motion classes of the catalogue
    videos_per_class: int = 24
    frames: int = 48  # frames per video
    width: int = 128
    height: int = 96
    fps: int = 25
    test_fraction: float = 0.25  # per class, drawn by a seeded hash of the key
    seed: int = 0

    def __post_init__(self) -> None:
        from actnet.data.synthetic import CLASS_NAMES  # local import keeps config free of numpy

        if not 2 <= self.num_classes <= len(CLASS_NAMES):
            raise ActnetError(f"--classes must be between 2 and {len(CLASS_NAMES)}, not {self.num_classes}")
        if self.videos_per_class < 2:
            raise ActnetError(f"--videos-per-class must be at least 2, not {self.videos_per_class}")
        if self.frames < 8:
            raise ActnetError(f"--frames must be at least 8, not {self.frames}")
        if self.width < 32 or self.height < 32 or self.width % 2 or self.height % 2:
            raise ActnetError(f"--size must be even and at least 32x32, not {self.width}x{self.height}")
        if not 1 <= self.fps <= 120:
            raise ActnetError(f"--fps must be between 1 and 120, not {self.fps}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ActnetError(f"--test-fraction must be between 0 and 1, not {self.test_fraction}")


@dataclass(frozen=True)
class PrepareOptions:
    """Everything ``actnet prepare`` needs besides the source listing."""

    out: str  # local folder or s3://bucket/prefix
    manifests: str | None = "manifests"  # where manifests are also written (the repo's manifests/); None: skip
    labeled: tuple[str, ...] = ()  # labeled-subset specs: "1%", "10/class", "5%-random"
    labeled_lists: tuple[str, ...] = ()  # files of published labeled lists (keys or paths, one per line)
    seed: int = 0
    workers: int = 0  # 0: one per CPU core
    part: tuple[int, int] = (1, 1)  # (i, k): this machine prepares part i of k
    max_reject_fraction: float = 0.05
    work_dir: str | None = None  # local staging for remote outputs; default ~/.cache/actnet/staging
    encode: EncodeConfig = field(default_factory=EncodeConfig)
    shards: ShardConfig = field(default_factory=ShardConfig)

    def __post_init__(self) -> None:
        i, k = self.part
        if not (k >= 1 and 1 <= i <= k):
            raise ActnetError(f"--part must be i/k with 1 <= i <= k, not {i}/{k}")
        if not 0.0 <= self.max_reject_fraction <= 1.0:
            raise ActnetError(f"--max-reject-fraction must be between 0 and 1, not {self.max_reject_fraction}")
        if self.workers < 0:
            raise ActnetError(f"--workers must be 0 (all cores) or positive, not {self.workers}")


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ClipConfig:
    """The clip one model sees: T frames at a stride drawn per sample from ``strides``, cropped to ``size``."""

    frames: int = 8  # T
    strides: tuple[int, ...] = (8,)  # temporal strides in frames, one drawn per sample ("variable frame rates")
    size: int = 224  # square crop side in pixels
    eval_stride: int = 0  # stride of evaluation clips; 0 takes the first of ``strides``

    def __post_init__(self) -> None:
        if self.frames < 1:
            raise ActnetError(f"clip frames must be at least 1, not {self.frames}")
        if not self.strides or any(s < 1 for s in self.strides):
            raise ActnetError(f"clip strides must be a non-empty list of positive integers, not {self.strides}")
        if self.size < 8:
            raise ActnetError(f"clip size must be at least 8 pixels, not {self.size}")
        if self.eval_stride < 0:
            raise ActnetError(f"clip eval_stride must be 0 (first stride) or positive, not {self.eval_stride}")

    @property
    def test_stride(self) -> int:
        return self.eval_stride or self.strides[0]


@dataclass(frozen=True)
class AugmentConfig:
    """Spatial augmentation of training clips; one draw per clip, shared by all its frames."""

    scale: tuple[float, float] = (8 / 7, 10 / 7)  # short side drawn in [lo, hi] x crop size (256-320 for 224)
    flip: bool = True
    rand_augment_n: int = 2  # strong view: RandAugment ops per clip (0 disables RandAugment)
    rand_augment_m: int = 9  # strong view: magnitude bin 0..30
    cutout: float = 0.0  # strong view: side of a square erased patch as a fraction of the crop (0: off)

    def __post_init__(self) -> None:
        lo, hi = self.scale
        if not 1.0 <= lo <= hi:
            raise ActnetError(f"augment scale must satisfy 1 <= lo <= hi, not {self.scale}")
        if self.rand_augment_n < 0 or not 0 <= self.rand_augment_m <= 30:
            raise ActnetError("augment rand_augment_n must be >= 0 and rand_augment_m within 0..30")
        if not 0.0 <= self.cutout < 1.0:
            raise ActnetError(f"augment cutout must be within [0, 1), not {self.cutout}")


DEVICES = ("auto", "cpu", "gpu")


@dataclass(frozen=True)
class LoaderConfig:
    """The DALI input pipeline: batch sizes, each model's clip, augmentation, evaluation views, workers."""

    batch_size: int = 8  # labeled clips per rank and step
    mu: int = 1  # unlabeled clips per labeled clip in a step
    eval_batch_size: int = 4  # videos per evaluation batch (each gives clips x crops views)
    primary: ClipConfig = field(default_factory=lambda: ClipConfig(frames=8, strides=(8,)))  # the 3D-CNN: slower
    auxiliary: ClipConfig | None = field(default_factory=lambda: ClipConfig(frames=8, strides=(4,)))  # the ViT
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    eval_clips: int = 10  # K temporal clips per test video
    eval_crops: int = 3  # 3 (spatial crops along the long side) or 1 (centre)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    device: str = "auto"  # auto: the GPU when there is one; cpu; gpu
    num_threads: int = 2  # DALI CPU threads per pipeline
    prefetch: int = 2  # batches DALI prepares ahead
    fetch_threads: int = 4  # threads reading sample bytes ahead (ranged reads; matters for s3://)
    max_bad_samples: int = 10  # samples that fail to decode are skipped and logged; one more stops the run
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("batch_size", "mu", "eval_batch_size", "eval_clips", "num_threads", "prefetch"):
            if getattr(self, name) < 1:
                raise ActnetError(f"loader {name} must be at least 1, not {getattr(self, name)}")
        if self.eval_crops not in (1, 3):
            raise ActnetError(f"loader eval_crops must be 1 or 3, not {self.eval_crops}")
        if self.device not in DEVICES:
            raise ActnetError(f"--device must be one of {', '.join(DEVICES)}, not {self.device!r}")
        if self.fetch_threads < 0 or self.max_bad_samples < 0:
            raise ActnetError("loader fetch_threads and max_bad_samples must not be negative")

    def clips(self) -> dict[str, ClipConfig]:
        """The models' clips by role, primary first."""
        out = {"primary": self.primary}
        if self.auxiliary is not None:
            out["auxiliary"] = self.auxiliary
        return out
