"""What ``actnet prepare`` reads: encoding, sharding, the synthetic set, and the options of one prepare run."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from actnet.config.choices import CODEC_EXTENSION, DEFAULT_QUALITY, Codec, Engine, SmallVideos, Verify
from actnet.errors import ActnetError


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
    # videos whose stored frame would be smaller than NVDEC decodes (VP9: 128x128): upscale (to that minimum, after
    # the short-side cap) or keep (the set is then CPU-only); see actnet/data/codecs.py
    small_videos: str = "upscale"

    def __post_init__(self) -> None:
        Codec.check(self.codec, "--codec")
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
        Verify.check(self.verify, "--verify")
        SmallVideos.check(self.small_videos, "--small-videos")

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
    appearance: float = 0.0  # weight of a per-class colour in the object (0: only motion tells the classes apart)
    clutter: float = 1.0  # background drift/contrast, distractors, flicker and noise (0: plain still background)

    def __post_init__(self) -> None:
        if self.num_classes < 2:  # the catalogue's size bounds it from above (data/synthetic.py checks)
            raise ActnetError(f"--classes must be at least 2, not {self.num_classes}")
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
        if not (0.0 <= self.appearance <= 1.0 and 0.0 <= self.clutter <= 1.0):
            raise ActnetError(
                f"--appearance and --clutter must be within [0, 1], not {self.appearance}, {self.clutter}"
            )


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
    verify_batch: int = 8  # encoded videos verified per ffmpeg run (an ffmpeg start costs ~70 ms of CPU)
    rehash: bool = False  # a rerun also checks the sha256 of the shards it keeps (not only sizes and indices)
    engine: str = "local"  # local: threads on this machine; ray: Ray tasks across a cluster
    ray_address: str | None = None  # --engine ray: the cluster to join ("auto", "ray://host:10001"); None: start one
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
        Engine.check(self.engine, "--engine")
        if self.ray_address is not None and self.engine != "ray":
            raise ActnetError("--address is for --engine ray")
        if self.verify_batch < 1:
            raise ActnetError(f"verify_batch must be at least 1, not {self.verify_batch}")
