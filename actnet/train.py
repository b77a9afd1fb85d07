"""The training loop: setup -> build -> fit, for ActNetFormer and the baselines its config expresses.

    cfg = resolve_run_config("demo", ["train.epochs=4"], {"data": {"url": "runs/demo/shards/synthetic/split1"}})
    Trainer(cfg).fit()                      # or: actnet train --recipe demo --data ... ; torchrun for DDP

One step (METHOD.md section 2): each model runs once on the concatenation of its labeled weak view, its
unlabeled weak view and (once the supervised warm-up is over) its unlabeled strong view; the loss is
``objectives.actnetformer_loss``. ``objective.teaching`` picks who teaches whom (``cross``: ActNetFormer and
CMPL, ``self``: FixMatch, ``none``: supervised only), ``objective.beta`` 0 drops the contrastive term.

Determinism and resuming: the loaders are restarted at every checkpoint boundary with augmentation seeds that
depend only on where they start (see ``DaliLoader.iterate``), and checkpoints hold the models, optimizers,
schedulers, EMA, every rank's RNG states and the loaders' bad samples; so a run resumed from a checkpoint
takes the same steps, with the same losses on the CPU, as one that never stopped. Checkpoints are written to a
temporary file and renamed, so a kill never leaves a truncated ``last.pt``, and a non-finite loss stops the
run before anything is saved.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from actnet.config import ModelConfig, ObjectiveConfig, OptimConfig, RunConfig, from_dict, to_dict
from actnet.errors import ActnetError
from actnet.models import ProjectionHead, create_model
from actnet.objectives import actnetformer_loss

log = logging.getLogger("actnet.train")

CHECKPOINT_FORMAT = "actnet.checkpoint/1"
NO_DECAY = ("pos_embed", "time_embed", "cls_token")


class TrainingDiverged(ActnetError):
    """The loss became NaN or infinite."""


# ------------------------------------------------------------------------------------------ processes


def dist_info() -> tuple[int, int]:
    """(rank, world size): from torch.distributed when initialised, else from torchrun's environment."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def model_device(preference: str) -> torch.device:
    """``cuda:<LOCAL_RANK>`` unless ``--device cpu`` or there is no GPU."""
    if preference == "gpu" and not torch.cuda.is_available():
        raise ActnetError("--device gpu: no CUDA GPU is visible to PyTorch")
    if preference != "cpu" and torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def setup_distributed(device: torch.device) -> tuple[int, int]:
    """Join torchrun's process group (NCCL on GPUs, gloo on the CPU) when there is more than one process."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cpu":  # share the cores between the local processes
            local = int(os.environ.get("LOCAL_WORLD_SIZE", world))
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))
    return dist_info()


def autocast_for(precision: str, device: torch.device):
    """A context factory: bf16 autocast on a GPU (``auto``/``bf16``) or when asked on the CPU, else nothing."""
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


# --------------------------------------------------------------------------------------------- models


class Student(nn.Module):
    """A model and (for the contrastive term) its projection head: ``forward(x, project) -> (logits, z)``.

    ``project`` is the (start, stop) slice of the batch whose features are projected (the unlabeled weak
    views), so DDP sees one forward per model and step.
    """

    def __init__(self, backbone: nn.Module, head: ProjectionHead | None):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x: torch.Tensor, project: tuple[int, int] | None = None):
        features = self.backbone.forward_features(x)
        logits = self.backbone.forward_head(features)
        z = None
        if project is not None and self.head is not None:
            z = self.head(features[project[0] : project[1]])
        return logits, z


def build_models(cfg: ModelConfig, num_classes: int, projection: bool) -> dict[str, Student]:
    """The run's models by role (primary first), pretrained weights loaded from local files if configured."""
    from actnet.models.pretrained import load_pretrained

    students = {}
    for role, name in cfg.presets().items():
        backbone = create_model(name, num_classes, drop_rate=cfg.drop_rate, drop_path_rate=cfg.drop_path_rate)
        weights = cfg.pretrained_primary if role == "primary" else cfg.pretrained_auxiliary
        if weights:
            report = load_pretrained(backbone, weights, strict=False)
            log.info("%s: %s", role, report.summary())
        head = ProjectionHead(backbone.num_features, cfg.projection_dim, cfg.projection_hidden) if projection else None
        students[role] = Student(backbone, head)
    return students


def param_groups(module: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on weights only: not on norms, biases, position/time embeddings or the class token."""
    decay, no_decay = [], []
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name.split(".")[-1] in NO_DECAY else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def channels_last_3d(model: nn.Module) -> nn.Module:
    """Put the 5-D weights (3-D convolutions) in channels_last_3d; ``model.to(memory_format=...)`` would fail on
    the ViT's 4-D patch-embedding weight and has nothing to gain on 1-D and 2-D ones."""
    for param in model.parameters():
        if param.dim() == 5:
            param.data = param.data.contiguous(memory_format=torch.channels_last_3d)
    return model


def make_optimizer(cfg: OptimConfig, module: nn.Module) -> torch.optim.Optimizer:
    """SGD or AdamW over ``param_groups``, built after the module is on its device (fused kernels need that)."""
    groups = param_groups(module, cfg.weight_decay)
    on_fused_device = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in module.parameters())
    impl = {"fused": True} if cfg.fused and on_fused_device else {"foreach": True}
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.momentum, cfg.betas2), **impl)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, **impl)


def lr_factor(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """Linear warm-up from 1/warmup to 1, then a cosine to ``min_ratio`` at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def teachers_for(objective: ObjectiveConfig, roles: list[str]) -> dict[str, str]:
    """Student -> teacher: the other model (cross), itself (self, FixMatch), or nobody (none)."""
    if objective.teaching == "cross":
        return {roles[0]: roles[-1], roles[-1]: roles[0]}
    if objective.teaching == "self":
        return {r: r for r in roles}
    return {}


# ---------------------------------------------------------------------------------------- checkpoints


def _rng_state() -> dict:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": random.getstate(),
    }


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    random.setstate(_tuples(state["python"]))


def _tuples(x):
    return tuple(_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x


def atomic_save(obj, path: Path) -> None:
    """torch.save to a temporary file in the same folder, flushed, then renamed over ``path``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> dict:
    """A training checkpoint (a file, or a run folder's ``last.pt``), with ``run_config`` rebuilt."""
    path = Path(path)
    if path.is_dir():
        path = path / "last.pt"
    if not path.is_file():
        raise ActnetError(f"{path}: no such checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ActnetError(f"{path}: not a readable checkpoint ({err.__class__.__name__}: {err})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ActnetError(f"{path}: not an actnet training checkpoint (format {CHECKPOINT_FORMAT})")
    ckpt["run_config"] = from_dict(RunConfig, ckpt["config"])
    return ckpt


def newest_checkpoint(run_dir: str | Path) -> Path | None:
    """The run folder's newest checkpoint that loads (``last.pt`` or ``step-*.pt``), for ``--resume auto``.

    ``last.pt`` is written at every checkpoint before its ``step-*.pt`` copy, so it is the newest when whole and
    only one file is loaded; one damaged some other way (a disk fault, a hand copy cut short) is passed over with
    a warning and the ``step-*.pt`` files are tried, newest first.
    """
    run_dir = Path(run_dir)
    for path in [run_dir / "last.pt", *sorted(run_dir.glob("step-*.pt"), reverse=True)]:
        if not path.is_file():
            continue
        try:
            load_checkpoint(path)
        except ActnetError as err:
            log.warning("--resume auto: passing over %s", err)
            continue
        return path
    return None


def memory_usage(device: torch.device) -> dict[str, float]:
    """Host resident memory of this process and peak GPU memory since the last call, in GiB."""
    import psutil

    usage = {"host_rss_gib": psutil.Process().memory_info().rss / 2**30}
    if device.type == "cuda":
        usage["gpu_peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        usage["gpu_reserved_gib"] = torch.cuda.memory_reserved(device) / 2**30
        torch.cuda.reset_peak_memory_stats(device)
    return usage


# ------------------------------------------------------------------------------------------- feedback


class Metrics:
    """metrics.jsonl (one JSON object a line) and TensorBoard scalars under ``tb/``, written by rank 0."""

    def __init__(self, run_dir: Path, enabled: bool):
        self.enabled = enabled
        self.file = open(run_dir / "metrics.jsonl", "a") if enabled else None  # noqa: SIM115
        self.tb = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_dir / "tb"))

    def write(self, record: dict, step: int) -> None:
        if not self.enabled:
            return
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        for key, value in _flatten(record).items():
            if isinstance(value, (int, float)) and key not in ("step", "epoch", "time"):
                self.tb.add_scalar(key, value, step)

    def close(self) -> None:
        if self.enabled:
            self.file.close()
            self.tb.close()


def _flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}/"))
        else:
            out[name] = value
    return out


def _progress(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeRemainingColumn(),
        disable=not enabled,
    )


def plot_curves(metrics_file: Path, path: Path) -> Path | None:
    """Loss parts, mask rate and quick-eval top-1 against the step, from metrics.jsonl, as a PNG."""
    records = [json.loads(line) for line in metrics_file.read_text().splitlines() if line.strip()]
    train = [r for r in records if "loss" in r]
    evals = [r for r in records if "eval" in r]
    if not train:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    steps = [r["step"] for r in train]
    for key in ("loss", "sup", "pseudo", "contrastive"):
        axes[0].plot(steps, [r[key] for r in train], label=key)
    axes[0].set_title("loss")
    axes[0].legend(fontsize=8)
    axes[1].plot(steps, [r["mask_rate"] for r in train], label="mask rate")
    axes[1].plot(steps, [r["pseudo_acc"] for r in train], label="pseudo-label accuracy")
    axes[1].set_title("pseudo-labels")
    axes[1].set_ylim(-0.02, 1.02)
    axes[1].legend(fontsize=8)
    for role in evals[0]["eval"] if evals else []:
        axes[2].plot([r["step"] for r in evals], [r["eval"][role] for r in evals], marker="o", label=role)
    axes[2].set_title("quick eval top-1 (1 clip x 1 crop)")
    axes[2].set_ylim(-0.02, 1.02)
    if evals:
        axes[2].legend(fontsize=8)
    for ax in axes:
        ax.set_xlabel("step")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------- trainer


class Trainer:
    """Builds everything a run needs from a :class:`RunConfig`; :meth:`fit` trains it."""

    def __init__(self, cfg: RunConfig, *, resume: str | Path | None = None, progress: bool = True):
        from actnet.data.dali import make_loader

        self.device = model_device(cfg.loader.device)
        self.rank, self.world = setup_distributed(self.device)
        self.cfg, self.tcfg, self.ocfg = cfg, cfg.train, cfg.objective
        self.run_dir = Path(cfg.run_dir)
        self.main = self.rank == 0
        ckpt = load_checkpoint(resume) if resume else None
        if ckpt is None and (self.run_dir / "last.pt").exists():
            raise ActnetError(
                f"{self.run_dir}: already holds a checkpoint; resume it with --resume {self.run_dir} "
                f"or choose another --name/--out"
            )

        # Data: the loaders get their slice of the config, with the run's seed.
        loader_cfg = replace(cfg.loader, seed=self.tcfg.seed)
        self.loader_cfg = loader_cfg
        self.loaders = {
            "labeled": make_loader(
                cfg.data.url, cfg.data.labeled, "labeled", loader_cfg, rank=self.rank, world=self.world
            )
        }
        if self.ocfg.uses_unlabeled:
            self.loaders["unlabeled"] = make_loader(
                cfg.data.url, cfg.data.unlabeled, "unlabeled", loader_cfg, rank=self.rank, world=self.world
            )
        info = self.loaders["labeled"].stream.shards.info
        self.class_names, self.num_classes = list(info.classes), len(info.classes)
        self.encode = dict(info.encode)  # how the videos were made: `actnet predict` treats raw files the same
        if self.tcfg.steps_per_epoch:
            self.steps_per_epoch = self.tcfg.steps_per_epoch
        else:  # one pass over the unlabeled set, whether or not this run reads it: baselines take the same steps
            from actnet.data.sampling import ShardSet, steps_per_epoch

            if "unlabeled" in self.loaders:
                n = len(self.loaders["unlabeled"].stream.shards)
            else:  # only its info.json and index are read
                n = len(ShardSet(cfg.data.url, cfg.data.unlabeled))
            self.steps_per_epoch = steps_per_epoch(n, loader_cfg.batch_size * loader_cfg.mu, self.world)
        self.total_steps = self.tcfg.epochs * self.steps_per_epoch
        self.last_step = min(self.total_steps, self.tcfg.max_steps or self.total_steps)
        self.warm_steps = round(self.ocfg.supervised_epochs * self.steps_per_epoch)

        # Models, the same initial weights on every rank.
        torch.manual_seed(self.tcfg.seed)
        self.students = build_models(cfg.model, self.num_classes, projection=self.ocfg.beta > 0)
        self.roles = list(self.students)
        self.teachers = teachers_for(self.ocfg, self.roles)
        for s in self.students.values():
            s.to(self.device)
            if self.tcfg.channels_last:
                channels_last_3d(s)
        optims = {"primary": cfg.optim.primary, "auxiliary": cfg.optim.auxiliary}
        self.optimizers = {r: make_optimizer(optims[r], s) for r, s in self.students.items()}
        warmup = round(self.tcfg.warmup_epochs * self.steps_per_epoch)
        self.schedulers = {
            r: torch.optim.lr_scheduler.LambdaLR(
                o, lambda step: lr_factor(step, warmup, self.total_steps, self.tcfg.min_lr_ratio)
            )
            for r, o in self.optimizers.items()
        }
        self.ema = None
        if self.tcfg.ema > 0:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            self.ema = {
                r: AveragedModel(s, multi_avg_fn=get_ema_multi_avg_fn(self.tcfg.ema), use_buffers=True)
                for r, s in self.students.items()
            }
        self.forward = dict(self.students)
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.forward = {r: DDP(s, device_ids=ids) for r, s in self.students.items()}
        if self.tcfg.compile:
            self.forward = {r: torch.compile(m) for r, m in self.forward.items()}
        self.autocast = autocast_for(self.tcfg.precision, self.device)

        self.step = 0
        if ckpt is not None:
            self._restore(ckpt)
        # Randomness of the steps themselves (dropout, drop path) differs per rank.
        if ckpt is None:
            torch.manual_seed(self.tcfg.seed * 1_000_003 + 7919 * self.rank + 1)
        self.progress_enabled = progress and self.main
        self.metrics: Metrics | None = None
        self.history: list[dict] = []

    # ------------------------------------------------------------------------------------------ state

    def state(self) -> dict:
        rngs = [_rng_state()]
        bad = {name: sorted(loader.stream.bad) for name, loader in self.loaders.items()}
        if self.world > 1:
            rngs = [None] * self.world
            dist.all_gather_object(rngs, _rng_state())
        return {
            "format": CHECKPOINT_FORMAT,
            "config": to_dict(self.cfg),
            "presets": self.cfg.model.presets(),
            "num_classes": self.num_classes,
            "class_names": self.class_names,
            "encode": self.encode,
            "step": self.step,
            "epoch": self.step / self.steps_per_epoch,
            "models": {r: s.backbone.state_dict() for r, s in self.students.items()},
            "heads": {r: s.head.state_dict() for r, s in self.students.items() if s.head is not None},
            "ema": {r: e.module.backbone.state_dict() for r, e in self.ema.items()} if self.ema else None,
            "ema_state": {r: e.state_dict() for r, e in self.ema.items()} if self.ema else None,
            "optimizers": {r: o.state_dict() for r, o in self.optimizers.items()},
            "schedulers": {r: s.state_dict() for r, s in self.schedulers.items()},
            "rng": rngs,
            "bad_samples": bad,
            "world": self.world,
        }

    def _restore(self, ckpt: dict) -> None:
        if ckpt["presets"] != self.cfg.model.presets() or ckpt["num_classes"] != self.num_classes:
            raise ActnetError("--resume: the checkpoint's models or classes differ from this run's")
        for r, s in self.students.items():
            s.backbone.load_state_dict(ckpt["models"][r])
            if s.head is not None:
                s.head.load_state_dict(ckpt["heads"][r])
            self.optimizers[r].load_state_dict(ckpt["optimizers"][r])
            self.schedulers[r].load_state_dict(ckpt["schedulers"][r])
            if self.ema:
                self.ema[r].load_state_dict(ckpt["ema_state"][r])
        self.step = ckpt["step"]
        rngs = ckpt["rng"]
        if len(rngs) == self.world:
            _set_rng_state(rngs[self.rank])
        else:
            log.warning("resuming with %d processes from a checkpoint of %d: RNG states restart", self.world, len(rngs))
            torch.manual_seed(self.tcfg.seed * 1_000_003 + 7919 * self.rank + self.step)
        for name, ids in ckpt["bad_samples"].items():
            if name in self.loaders:
                self.loaders[name].stream.bad.update(ids)

    def save(self) -> Path:
        state = self.state()  # a collective under DDP: every rank calls it
        last = self.run_dir / "last.pt"
        if self.main:
            atomic_save(state, last)
            if self.tcfg.keep:
                atomic_save(state, self.run_dir / f"step-{self.step:08d}.pt")
                kept = sorted(self.run_dir.glob("step-*.pt"))
                for old in kept[: -self.tcfg.keep]:
                    old.unlink()
        if self.world > 1:  # no rank goes on (or reads the checkpoint) before it is complete
            dist.barrier()
        return last

    # ------------------------------------------------------------------------------------------- loop

    def _boundaries(self) -> list[int]:
        """Steps after which the loaders restart: epoch ends, checkpoint steps and the last step."""
        every = self.tcfg.ckpt_every or self.steps_per_epoch
        marks = set(range(self.steps_per_epoch, self.last_step + 1, self.steps_per_epoch))
        marks |= set(range(every, self.last_step + 1, every))
        marks.add(self.last_step)
        return sorted(m for m in marks if m > self.step)

    def _is_checkpoint(self, step: int) -> bool:
        every = self.tcfg.ckpt_every or self.steps_per_epoch
        return step % every == 0 or step == self.last_step

    def _start(self, step: int) -> dict:
        """Each loader's iterator positioned at global step ``step``."""
        out = {}
        for name, loader in self.loaders.items():
            spe = loader.steps_per_epoch
            out[name] = loader.iterate(step // spe, step % spe)
        return out

    def train_step(self, batches: dict, step: int) -> dict[str, torch.Tensor]:
        """One optimisation step of every model; returns detached loss parts and diagnostics (no host sync)."""
        lab, unl = batches["labeled"], batches.get("unlabeled")
        pseudo_on = unl is not None and bool(self.teachers) and self.ocfg.gamma > 0 and step >= self.warm_steps
        contrast = unl is not None and self.ocfg.beta > 0
        n_lab = len(lab)
        n_unl = len(unl) if (pseudo_on or contrast) else 0
        labels = lab.label.to(self.device, non_blocking=True)
        logits, projections = {}, {}
        for s in self.students.values():
            s.train()
        with self.autocast():
            for role, model in self.forward.items():
                parts = [lab[role, "weak"]]
                if n_unl:
                    parts.append(unl[role, "weak"])
                if pseudo_on:
                    parts.append(unl[role, "strong"])
                x = torch.cat([p.to(self.device, non_blocking=True) for p in parts])
                if self.tcfg.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last_3d)
                logits[role], projections[role] = model(x, (n_lab, n_lab + n_unl) if contrast else None)
        labeled = {r: x[:n_lab] for r, x in logits.items()}
        weak = {r: x[n_lab : n_lab + n_unl] for r, x in logits.items()} if pseudo_on else {}
        strong = {r: x[n_lab + n_unl :] for r, x in logits.items()} if pseudo_on else {}
        out = actnetformer_loss(
            labeled,
            labels,
            weak,
            strong,
            projections if contrast else None,
            threshold=self.ocfg.threshold,
            gamma=self.ocfg.gamma if pseudo_on else 0.0,
            beta=self.ocfg.beta,
            temperature=self.ocfg.temperature,
            symmetric=self.ocfg.symmetric,
            teachers=self.teachers,
        )
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        for role, opt in self.optimizers.items():
            if self.tcfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(self.students[role].parameters(), self.tcfg.grad_clip)
            opt.step()
            self.schedulers[role].step()
            if self.ema:
                self.ema[role].update_parameters(self.students[role])
        out["loss"] = out["loss"].detach()
        with torch.no_grad():  # diagnostics only: labels of unlabeled clips are never used for training
            out["train_acc"] = torch.stack([(x.argmax(-1) == labels).float().mean() for x in labeled.values()]).mean()
            hits, count = out["loss"].new_zeros(()), out["loss"].new_zeros(())
            if pseudo_on:
                truth = unl.label.to(self.device, non_blocking=True)
                for teacher in set(self.teachers.values()):
                    confidence, guess = weak[teacher].float().softmax(-1).max(-1)
                    kept = confidence >= self.ocfg.threshold
                    hits = hits + ((guess == truth) & kept).sum()
                    count = count + kept.sum()
            out["pl_hits"], out["pl_count"] = hits, count
        return out

    def fit(self) -> dict:
        """Train to the last step; returns the final quick evaluation (or {} when it is off)."""
        if self.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            import yaml

            (self.run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(self.cfg), sort_keys=False))
        self.metrics = Metrics(self.run_dir, self.main)
        clips = (
            self.loader_cfg.batch_size * (1 + (self.loader_cfg.mu if "unlabeled" in self.loaders else 0))
        ) * self.world
        result: dict = {}
        try:
            with _progress(self.progress_enabled) as bar:
                task = bar.add_task(self.cfg.name, total=self.last_step, completed=self.step, info="")
                for boundary in self._boundaries():
                    self._segment(boundary, bar, task, clips)
                    epoch_end = self.step % self.steps_per_epoch == 0
                    epoch = self.step // self.steps_per_epoch
                    due = self.tcfg.eval_every and epoch_end and epoch % self.tcfg.eval_every == 0
                    if due or (self.step == self.last_step and self.tcfg.eval_every):
                        result = self.quick_eval()
                    if self._is_checkpoint(self.step):
                        self.save()
        finally:
            self.metrics.close()
            for loader in self.loaders.values():
                loader.stream.close()
        if self.main:
            plot_curves(self.run_dir / "metrics.jsonl", self.run_dir / "curves.png")
        return result

    def _segment(self, stop: int, bar, task, clips_per_step: int) -> None:
        iters = self._start(self.step)
        sums: dict[str, torch.Tensor] = {}
        count, data_s, compute_s, started = 0, 0.0, 0.0, time.perf_counter()
        try:
            while self.step < stop:
                t0 = time.perf_counter()
                batches = {name: next(it) for name, it in iters.items()}
                t1 = time.perf_counter()
                out = self.train_step(batches, self.step)
                self.step += 1
                compute_s += time.perf_counter() - t1
                data_s += t1 - t0
                for k, v in out.items():
                    sums[k] = sums[k] + v if k in sums else v.clone()
                count += 1
                bar.advance(task)
                if self.step % self.tcfg.log_every == 0 or self.step == stop:
                    record = self._log(sums, count, data_s, compute_s, time.perf_counter() - started, clips_per_step)
                    bar.update(task, info=self._info(record))
                    sums, count, data_s, compute_s, started = {}, 0, 0.0, 0.0, time.perf_counter()
        finally:
            for it in iters.values():
                it.close()

    def _log(self, sums, count, data_s, compute_s, elapsed, clips_per_step) -> dict:
        """The one host sync per log interval: averages, the non-finite check, a metrics line."""
        values = {k: v.item() for k, v in sums.items()}
        if self.world > 1:  # the loss check must agree across ranks
            flag = torch.tensor([float(math.isfinite(values["loss"]))], device=self.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MIN)
            finite = bool(flag.item())
        else:
            finite = math.isfinite(values["loss"])
        epoch = self.step / self.steps_per_epoch
        if not finite:
            last = self.run_dir / "last.pt"
            kept = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint was written yet"
            raise TrainingDiverged(
                f"step {self.step} (epoch {epoch:.2f}): the loss is {values['loss']} "
                f"(sup {values['sup']:.4g}, pseudo {values['pseudo']:.4g}, contrastive {values['contrastive']:.4g}); "
                f"stopped without saving; {kept}"
            )
        record = {
            "step": self.step,
            "epoch": round(epoch, 4),
            "time": time.time(),
            **{k: values[k] / count for k in ("loss", "sup", "pseudo", "contrastive", "mask_rate", "train_acc")},
            "pseudo_acc": values["pl_hits"] / values["pl_count"] if values["pl_count"] else 0.0,
            "lr": {r: o.param_groups[0]["lr"] for r, o in self.optimizers.items()},
            "clips_per_s": clips_per_step * count / max(elapsed, 1e-9),
            "data_s": data_s / count,
            "compute_s": compute_s / count,
            "data_share": data_s / max(data_s + compute_s, 1e-9),  # of the step time spent waiting for batches
            **memory_usage(self.device),
        }
        self.metrics.write(record, self.step)
        self.history.append(record)
        return record

    @staticmethod
    def _info(r: dict) -> str:
        return (
            f"ep {r['epoch']:.1f} loss {r['loss']:.3f} (sup {r['sup']:.3f} pl {r['pseudo']:.3f} "
            f"ca {r['contrastive']:.3f}) mask {r['mask_rate']:.2f} {r['clips_per_s']:.0f} clips/s "
            f"data {100 * r['data_share']:.0f}% rss {r['host_rss_gib']:.1f}G"
            + (f" gpu {r['gpu_peak_gib']:.1f}G" if "gpu_peak_gib" in r else "")
        )

    def eval_models(self) -> dict[str, nn.Module]:
        """The weights evaluation uses: the EMA when there is one."""
        if self.ema:
            return {r: e.module.backbone for r, e in self.ema.items()}
        return {r: s.backbone for r, s in self.students.items()}

    def quick_eval(self) -> dict:
        """Top-1 of each model and the ensemble on the test set, 1 clip x 1 crop; logged; all ranks take part."""
        from actnet.evaluate import run_evaluation

        cfg = replace(self.loader_cfg, eval_clips=1, eval_crops=1, eval_batch_size=self.cfg.eval.batch_size)
        report = run_evaluation(
            self.eval_models(),
            self.cfg.data.url,
            self.cfg.data.test,
            cfg,
            self.device,
            self.autocast,
            self.rank,
            self.world,
        )
        top1 = {role: m["top1"] for role, m in report["models"].items()}
        self.metrics.write({"step": self.step, "epoch": self.step / self.steps_per_epoch, "eval": top1}, self.step)
        if self.main:
            log.info("step %d quick eval top-1: %s", self.step, top1)
        return top1
