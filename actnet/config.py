"""Configuration: frozen dataclasses, the only place defaults live.

Each component receives only its own slice (an :class:`EncodeConfig` for the transcoder, a :class:`ShardConfig`
for the shard writer, a :class:`LoaderConfig` for the input pipeline ...); only the orchestration (``prepare``,
``Trainer``, ``evaluate``) sees a whole :class:`PrepareOptions` or :class:`RunConfig`. Cross-field checks live in
``__post_init__`` and their messages name the command-line flag or config key, so the CLI prints them as they
are. Closed sets of values are :class:`Choice` enums, declared once: the config holds their string value, the
CLI offers the enum. Recipes, ``--set`` overrides and plain-data conversion live in :mod:`actnet.recipes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from fractions import Fraction

from actnet.errors import ActnetError


class Choice(str, Enum):
    """A closed set of string values."""

    @classmethod
    def check(cls, value: str, flag: str) -> str:
        """``value`` when it is one of the choices, else an error naming ``flag``."""
        values = [c.value for c in cls]
        if value not in values:
            raise ActnetError(f"{flag} must be one of {', '.join(values)}, not {value!r}")
        return value


class Codec(Choice):
    vp9 = "vp9"  # decodes on DALI's CPU and GPU backends
    h264 = "h264"  # GPU (NVDEC) only
    mjpeg = "mjpeg"


class Verify(Choice):
    full = "full"  # decode every encoded frame
    packets = "packets"  # demux only


class SmallVideos(Choice):
    upscale = "upscale"  # scale videos below the smallest frame NVDEC decodes up to it: the set decodes everywhere
    keep = "keep"  # store them as they are: the set then decodes on the CPU only (info.json says so)


class Device(Choice):
    auto = "auto"  # the GPU when there is one
    cpu = "cpu"
    gpu = "gpu"


class Teaching(Choice):
    cross = "cross"  # each model pseudo-labels the other (ActNetFormer, CMPL)
    self = "self"  # each model pseudo-labels itself (FixMatch)
    none = "none"  # supervised only


class Negatives(Choice):
    global_ = "global"  # every rank's videos: one objective whatever the number of GPUs
    local = "local"  # this rank's videos only (the per-rank form, for ablation)


class Optimizer(Choice):
    sgd = "sgd"
    adamw = "adamw"


class Precision(Choice):
    auto = "auto"  # bf16 autocast on a GPU, fp32 on the CPU
    fp32 = "fp32"
    bf16 = "bf16"


class Interpolation(Choice):
    nearest = "nearest"
    linear = "linear"


class HmdbPool(Choice):
    """HMDB-51's training pool: tag 1 only, or tags 0 and 1 (the semi-supervised protocol)."""

    train = "train"
    all_non_test = "all-non-test"


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
        if self.verify_batch < 1:
            raise ActnetError(f"verify_batch must be at least 1, not {self.verify_batch}")


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ClipConfig:
    """The clip one model sees: T frames at a stride drawn per sample from ``strides``, cropped to ``size``.

    Time-based sampling: with ``fps`` set, a rate (frames per second of the clip) is drawn per sample instead and
    the stride comes from each video's own frame rate, ``max(1, round(video_fps / rate))``, so a clip spans about
    ``frames / rate`` seconds whether the video runs at 24, 30 or 60 fps (Kinetics mixes them).
    """

    frames: int = 8  # T
    strides: tuple[int, ...] = (8,)  # temporal strides in frames, one drawn per sample ("variable frame rates")
    size: int = 224  # square crop side in pixels
    eval_stride: int = 0  # stride of evaluation clips; 0 takes the first of ``strides``
    fps: tuple[float, ...] = ()  # time-based: sampling rates in frames/s, one drawn per sample; () uses strides

    def __post_init__(self) -> None:
        if self.frames < 1:
            raise ActnetError(f"clip frames must be at least 1, not {self.frames}")
        if not self.strides or any(s < 1 for s in self.strides):
            raise ActnetError(f"clip strides must be a non-empty list of positive integers, not {self.strides}")
        if self.size < 8:
            raise ActnetError(f"clip size must be at least 8 pixels, not {self.size}")
        if self.eval_stride < 0:
            raise ActnetError(f"clip eval_stride must be 0 (first stride) or positive, not {self.eval_stride}")
        if any(not 0 < r <= 240 for r in self.fps):
            raise ActnetError(f"clip fps must be rates in (0, 240] frames per second, not {list(self.fps)}")

    @property
    def test_stride(self) -> int:
        return self.eval_stride or self.strides[0]

    def stride_for(self, video_fps: float, rate: float | None = None) -> int:
        """The stride of a clip from a video at ``video_fps``: ``rate`` (or the first of ``fps``) when sampling
        by time, else the evaluation stride."""
        if not self.fps:
            return self.test_stride
        rate = rate or self.fps[0]
        return max(1, round(float(video_fps) / rate)) if video_fps and video_fps > 0 else self.test_stride


@dataclass(frozen=True)
class AugmentConfig:
    """Spatial augmentation of training clips; one draw per clip, shared by all its frames."""

    scale: tuple[float, float] = (8 / 7, 10 / 7)  # short side drawn in [lo, hi] x crop size (256-320 for 224)
    flip: bool = True
    rand_augment_n: int = 2  # strong view: RandAugment ops per clip (0 disables RandAugment)
    rand_augment_m: int = 9  # strong view: magnitude bin 0..30
    # strong view: resampling of RandAugment's rotate/shear/translate; nearest is torchvision's default and what
    # FixMatch's PIL ops do, and 1.5x faster on DALI's CPU backend than linear
    rand_augment_interp: str = "nearest"
    cutout: float = 0.0  # strong view: side of a square erased patch as a fraction of the crop (0: off)

    def __post_init__(self) -> None:
        lo, hi = self.scale
        if not 1.0 <= lo <= hi:
            raise ActnetError(f"augment scale must satisfy 1 <= lo <= hi, not {self.scale}")
        if self.rand_augment_n < 0 or not 0 <= self.rand_augment_m <= 30:
            raise ActnetError("augment rand_augment_n must be >= 0 and rand_augment_m within 0..30")
        if not 0.0 <= self.cutout < 1.0:
            raise ActnetError(f"augment cutout must be within [0, 1), not {self.cutout}")
        Interpolation.check(self.rand_augment_interp, "augment rand_augment_interp")


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
        Device.check(self.device, "--device")
        if self.fetch_threads < 0 or self.max_bad_samples < 0:
            raise ActnetError("loader fetch_threads and max_bad_samples must not be negative")

    def clips(self) -> dict[str, ClipConfig]:
        """The models' clips by role, primary first."""
        out = {"primary": self.primary}
        if self.auxiliary is not None:
            out["auxiliary"] = self.auxiliary
        return out


# ------------------------------------------------------------------------------------------ training


@dataclass(frozen=True)
class DataConfig:
    """Which shard sets a run reads: ``<url>/<labeled>``, ``<url>/<unlabeled>``, ``<url>/<test>``."""

    url: str = ""  # an <out>/<dataset>/<split> folder or s3:// prefix written by `actnet prepare` (--data)
    labeled: str = "labeled-1pct-seed0"  # the labeled subset's set name; --labeled 1% picks labeled-1pct-seed<seed>
    unlabeled: str = "train"  # every training video; its labels are never read
    test: str = "test"


@dataclass(frozen=True)
class ModelConfig:
    """The two architectures (presets of actnet.models) and their projection heads."""

    primary: str = "r3d50"  # Z, the 3D-CNN
    auxiliary: str | None = "timesformer_s"  # A, the transformer; null trains the primary alone
    drop_rate: float = 0.0  # dropout before each classifier
    drop_path_rate: float = 0.1  # stochastic depth (transformers)
    projection_dim: int = 128  # m(.) output (METHOD.md 2.3)
    projection_hidden: int = 512
    pretrained_primary: str | None = None  # local 2D/3D checkpoint files (nothing is downloaded)
    pretrained_auxiliary: str | None = None

    def presets(self) -> dict[str, str]:
        out = {"primary": self.primary}
        if self.auxiliary:
            out["auxiliary"] = self.auxiliary
        return out


@dataclass(frozen=True)
class ObjectiveConfig:
    """L = L_s + gamma (L_u^Z + L_u^A) + beta L_ca (METHOD.md section 2). Baselines are settings of it."""

    teaching: str = "cross"  # cross: each model pseudo-labels the other; self: FixMatch; none: supervised only
    threshold: float = 0.95  # tau (our choice, FixMatch)
    gamma: float = 1.0  # pseudo-label weight, once the supervised warm-up is over (our choice)
    beta: float = 0.5  # contrastive weight (our choice, LTG); 0 turns the term off
    temperature: float = 0.5  # NT-Xent temperature (our choice, LTG/TCL)
    symmetric: bool = False  # also anchor the contrastive loss on the auxiliary (the paper anchors on Z)
    negatives: str = "global"  # under DDP: global (every rank's videos, as one big GPU would) or local (this rank's)
    supervised_epochs: float = 30.0  # pseudo-labels switch on after this many epochs (our choice, LTG)

    def __post_init__(self) -> None:
        Teaching.check(self.teaching, "objective.teaching")
        Negatives.check(self.negatives, "objective.negatives")
        if not 0.0 <= self.threshold <= 1.0:
            raise ActnetError(f"objective.threshold must be within [0, 1], not {self.threshold}")
        if self.gamma < 0 or self.beta < 0 or self.temperature <= 0 or self.supervised_epochs < 0:
            raise ActnetError("objective gamma, beta and supervised_epochs must be >= 0 and temperature > 0")

    @property
    def uses_unlabeled(self) -> bool:
        return (self.teaching != "none" and self.gamma > 0) or self.beta > 0


@dataclass(frozen=True)
class OptimConfig:
    """One model's optimizer; norms, biases and embeddings get no weight decay."""

    name: str = "sgd"
    lr: float = 0.1  # peak learning rate for the recipe's global batch (not rescaled automatically)
    momentum: float = 0.9  # SGD momentum / AdamW beta1
    weight_decay: float = 1e-4
    nesterov: bool = False
    betas2: float = 0.999  # AdamW beta2
    fused: bool = True  # torch's fused kernels (CPU and CUDA; 2-7x faster steps measured); false: foreach

    def __post_init__(self) -> None:
        Optimizer.check(self.name, "optim name")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ActnetError(f"optim lr must be > 0 and weight_decay >= 0, not {self.lr}, {self.weight_decay}")


@dataclass(frozen=True)
class OptimizersConfig:
    primary: OptimConfig = field(default_factory=OptimConfig)
    auxiliary: OptimConfig = field(default_factory=OptimConfig)


@dataclass(frozen=True)
class TrainConfig:
    """The loop: length, schedule, precision, checkpoints, logging."""

    epochs: int = 250  # (ActNetFormer's table)
    steps_per_epoch: int = 0  # 0: one pass over the unlabeled set (the labeled set when it is not used)
    warmup_epochs: float = 5.0  # linear learning-rate warm-up, then cosine to min_lr_ratio x peak
    min_lr_ratio: float = 0.0
    grad_clip: float = 0.0  # max gradient norm per model; 0: off
    ema: float = 0.0  # decay of an exponential moving average of each model (evaluated instead); 0: off
    compile: bool = False  # torch.compile both models
    precision: str = "auto"  # auto: bf16 autocast on a GPU, fp32 on the CPU
    channels_last: bool = True  # channels_last_3d weights for the 3-D convolutions (faster on the CPU too)
    log_every: int = 10  # steps between metric lines (the only host syncs)
    print_every: int = 100  # when stdout is not a terminal: a plain status line at least every this many steps
    print_minutes: float = 5.0  # ... and at least this often (checked at each metrics line)
    ckpt_every: int = 0  # steps between checkpoints; 0: at the end of every epoch
    eval_every: int = 1  # epochs between quick evaluations (1 clip x 1 crop on the test set); 0: off
    keep: int = 1  # step checkpoints kept besides last.pt
    seed: int = 0
    max_steps: int = 0  # stop after this many steps in total (tests, smoke runs); 0: no limit

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.steps_per_epoch < 0 or self.max_steps < 0:
            raise ActnetError("train epochs must be >= 1, steps_per_epoch and max_steps >= 0")
        Precision.check(self.precision, "train precision")
        if not 0.0 <= self.ema < 1.0:
            raise ActnetError(f"train ema must be within [0, 1), not {self.ema}")
        if self.log_every < 1 or self.ckpt_every < 0 or self.eval_every < 0 or self.keep < 0:
            raise ActnetError("train log_every must be >= 1; ckpt_every, eval_every and keep >= 0")
        if self.print_every < 1 or not self.print_minutes > 0:
            raise ActnetError("train print_every must be >= 1 and print_minutes > 0")


@dataclass(frozen=True)
class EvalConfig:
    """`actnet evaluate`: views per test video (the loader's eval_clips/eval_crops for this run)."""

    clips: int = 10  # K temporal clips (METHOD.md: 10 x 3; 1 x 1 is the quick mode)
    crops: int = 3
    batch_size: int = 4

    def __post_init__(self) -> None:
        if self.clips < 1:
            raise ActnetError(f"--clips (eval.clips) must be at least 1, not {self.clips}")
        if self.crops not in (1, 3):
            raise ActnetError(f"--crops (eval.crops) must be 1 or 3, not {self.crops}")
        if self.batch_size < 1:
            raise ActnetError(f"--batch-size (eval.batch_size) must be at least 1, not {self.batch_size}")


@dataclass(frozen=True)
class RunConfig:
    """Everything `actnet train` reads; each component gets only its slice."""

    name: str = "run"
    out: str = "runs"  # the run folder is <out>/<name>
    data: DataConfig = field(default_factory=DataConfig)
    loader: LoaderConfig = field(default_factory=LoaderConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    optim: OptimizersConfig = field(default_factory=OptimizersConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        if (self.model.auxiliary is None) != (self.loader.auxiliary is None):
            raise ActnetError(
                "model.auxiliary and loader.auxiliary must both be set or both be null (one clip per model)"
            )
        if self.model.auxiliary is None and self.objective.teaching == "cross":
            raise ActnetError("objective.teaching=cross needs two models; use self (FixMatch) or none with one")
        if self.model.auxiliary is None and self.objective.beta > 0:
            raise ActnetError("objective.beta > 0 (the contrastive term) needs two models; set it to 0")

    @property
    def run_dir(self) -> str:
        return f"{self.out.rstrip('/')}/{self.name}"
