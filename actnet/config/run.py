"""What ``actnet train`` and ``actnet evaluate`` read: the loader (clips, augmentation, views), data sets, models,
objective, optimizers, the loop and evaluation, gathered in :class:`RunConfig`."""

from __future__ import annotations

from dataclasses import dataclass, field

from actnet.config.choices import Device, Interpolation, Negatives, Optimizer, Precision, TeacherMode, Teaching
from actnet.errors import ActnetError

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
    # evaluation: the short side is resized to this before the 1 or 3 crops of ``size``; 0: ``size`` itself (the
    # TimeSformer/SVFormer protocol: 224 then 224 crops); 256 with 224 crops is the SlowFast/mmaction centre protocol
    test_short_side: int = 0

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
        if self.test_short_side and self.test_short_side < self.size:
            raise ActnetError(
                f"clip test_short_side must be 0 (the crop size) or at least the crop size {self.size}, "
                f"not {self.test_short_side}"
            )

    @property
    def test_scale(self) -> int:
        """The short side of evaluation frames before cropping."""
        return self.test_short_side or self.size

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
    fetch_threads: int = 64  # reads in flight ahead of the decoder (ranged reads; on s3:// each waits a round trip)
    coalesce_kib: int = 4096  # neighbouring samples of a shard read in order share one ranged read up to this; 0: off
    max_bad_samples: int = 10  # samples that fail to decode are skipped and logged; one more stops the run
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("batch_size", "mu", "eval_batch_size", "eval_clips", "num_threads", "prefetch"):
            if getattr(self, name) < 1:
                raise ActnetError(f"loader {name} must be at least 1, not {getattr(self, name)}")
        if self.eval_crops not in (1, 3):
            raise ActnetError(f"loader eval_crops must be 1 or 3, not {self.eval_crops}")
        Device.check(self.device, "--device")
        if self.fetch_threads < 0 or self.max_bad_samples < 0 or self.coalesce_kib < 0:
            raise ActnetError("loader fetch_threads, coalesce_kib and max_bad_samples must not be negative")

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
    # the contrastive term switches on after this many epochs; 0: from the first step (METHOD.md: only the
    # pseudo-labels wait for the warm-up, so the warm-up is supervised + contrastive, not supervised alone)
    contrastive_epochs: float = 0.0
    teacher_mode: str = "train"  # how the teacher's weak view runs: train (FixMatch, the default) or eval

    def __post_init__(self) -> None:
        Teaching.check(self.teaching, "objective.teaching")
        TeacherMode.check(self.teacher_mode, "objective.teacher_mode")
        if self.contrastive_epochs < 0:
            raise ActnetError(f"objective.contrastive_epochs must be >= 0, not {self.contrastive_epochs}")
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
    lr: float = 0.1  # peak learning rate at ``lr_batch`` labeled clips per step over all ranks
    # linear scaling: the run uses lr x global batch / lr_batch, global batch = loader.batch_size x world size
    # (DeiT: 5e-4 at 512; LTG: 0.1 at 64); 0: ``lr`` as given, whatever the batch
    lr_batch: int = 0
    momentum: float = 0.9  # SGD momentum / AdamW beta1
    weight_decay: float = 1e-4
    nesterov: bool = False
    betas2: float = 0.999  # AdamW beta2
    fused: bool = True  # torch's fused kernels (CPU and CUDA; 2-7x faster steps measured); false: foreach

    def __post_init__(self) -> None:
        Optimizer.check(self.name, "optim name")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ActnetError(f"optim lr must be > 0 and weight_decay >= 0, not {self.lr}, {self.weight_decay}")
        if self.lr_batch < 0:
            raise ActnetError(f"optim lr_batch must be 0 (no scaling) or positive, not {self.lr_batch}")

    def scaled_lr(self, global_batch: int) -> float:
        """The peak learning rate for ``global_batch`` labeled clips per step (linear scaling from ``lr_batch``)."""
        return self.lr * global_batch / self.lr_batch if self.lr_batch else self.lr


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
