"""The training loop: setup -> fit, for ActNetFormer and every baseline its config expresses.

    cfg = resolve_run_config("demo", ["train.epochs=4"], {"data": {"url": "runs/demo/shards/synthetic/split1"}})
    Trainer(cfg).fit()                      # or: actnet train --recipe demo --data ... ; torchrun for DDP

The :class:`Trainer` builds the run from its config, each part from its own slice: the loaders
(:mod:`actnet.data.loader`), the models and the objective as one task (:mod:`actnet.task`), an optimizer and a
schedule per model (:mod:`actnet.optim`); then :meth:`Trainer.fit` runs the steps, logs (:mod:`actnet.runlog`),
evaluates quickly (:mod:`actnet.evaluate`) and saves checkpoints (:mod:`actnet.checkpoint`).

Determinism and resuming: the loaders are restarted at every checkpoint boundary with augmentation seeds that
depend only on where they start (see ``DaliLoader.iterate``), and checkpoints hold the models, optimizers,
schedulers, EMA, every rank's RNG states and the loaders' bad samples; so a run resumed from a checkpoint
takes the same steps, with the same losses on the CPU, as one that never stopped. A non-finite loss stops the
run before anything is saved.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path

import rich
import torch
import torch.distributed as dist
from torch import nn

from actnet.checkpoint import (
    CHECKPOINT_FORMAT,
    checkpoint_path,
    load_checkpoint,
    load_weights,
    newest_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from actnet.config import RunConfig
from actnet.data.loader import make_loader, set_size, steps_per_epoch
from actnet.errors import ActnetError
from actnet.evaluate import run_evaluation
from actnet.files import atomic_write, clean_orphans, require_folder
from actnet.optim import make_optimizer, make_scheduler
from actnet.plots import plot_curves
from actnet.progress import progress_bar
from actnet.recipes import resolve_run_config, to_dict
from actnet.runlog import Metrics, memory_usage, status_line, summary_line
from actnet.runtime import autocast_for, mean_across_ranks, model_device, setup_distributed
from actnet.task import ActNetFormerTask, build_students

log = logging.getLogger("actnet.train")


class TrainingDiverged(ActnetError):
    """The loss became NaN or infinite."""


def resolve_training(recipe: str | None, sets, options: dict, resume: str | None) -> tuple[RunConfig, Path | None]:
    """The config and the checkpoint of an ``actnet train`` command.

    Without ``resume``: defaults < recipe < ``sets`` < ``options``. With a checkpoint (a file or a run folder):
    the checkpoint's own config < ``sets`` < ``options``. ``resume="auto"``: the run folder the command names gets
    resumed from its newest checkpoint that loads, or the run starts when it has none (the checkpoint is ``None``).
    """
    if resume == "auto":
        found = newest_checkpoint(resolve_run_config(recipe, sets, options).run_dir)
        resume = str(found) if found else None
    if not resume:
        return resolve_run_config(recipe, sets, options), None
    path = checkpoint_path(resume)
    base = to_dict(load_checkpoint(path)["run_config"])
    return resolve_run_config(None, sets, options, base=base), path


def run_training(cfg: RunConfig, resume: str | Path | None = None, echo=None) -> dict:
    """Train one run (``actnet train``, ``actnet demo``); ``echo`` gets what it trains and where its files went.
    Returns the final quick evaluation."""
    trainer = Trainer(cfg, resume=resume)
    if trainer.main and echo:
        echo(trainer.describe())
    result = trainer.fit()
    if trainer.preempted:
        if trainer.main and echo:
            echo(
                f"stopped by {trainer.stop_signal or 'a signal to another rank'} at step {trainer.step} of "
                f"{trainer.last_step}: checkpoint {trainer.run_dir}/last.pt; the same command with --resume auto "
                "continues"
            )
        return result
    if trainer.main and echo:
        top1 = ", ".join(f"{r} {100 * v:.1f}%" for r, v in result.items())
        echo(f"done: {trainer.run_dir}/last.pt" + (f"; quick eval top-1: {top1}" if top1 else ""))
    return result


class Trainer:
    """Builds everything a run needs from a :class:`RunConfig`; :meth:`fit` trains it."""

    def __init__(self, cfg: RunConfig, *, resume: str | Path | None = None, progress: bool = True):
        self.device = model_device(cfg.loader.device)
        self.rank, self.world = setup_distributed(self.device)
        self.cfg, self.tcfg, self.ocfg = cfg, cfg.train, cfg.objective
        self.run_dir = require_folder(cfg.run_dir, "--out/--name")
        self.main = self.rank == 0
        ckpt = load_checkpoint(resume) if resume else None
        if ckpt is None and (self.run_dir / "last.pt").exists():
            raise ActnetError(
                f"{self.run_dir}: already holds a checkpoint; resume it with --resume {self.run_dir} "
                f"or choose another --name/--out"
            )

        # Data: the loaders get their slice of the config, with the run's seed.
        self.loader_cfg = loader_cfg = replace(cfg.loader, seed=self.tcfg.seed)
        sets = {"labeled": cfg.data.labeled}
        if self.ocfg.uses_unlabeled:
            sets["unlabeled"] = cfg.data.unlabeled
        self.loaders = {
            kind: make_loader(cfg.data.url, name, kind, loader_cfg, rank=self.rank, world=self.world)
            for kind, name in sets.items()
        }
        self.class_names = self.loaders["labeled"].classes
        self.num_classes = len(self.class_names)
        self.encode = self.loaders["labeled"].encode  # how the videos were made: `actnet predict` does the same
        if self.tcfg.steps_per_epoch:
            self.steps_per_epoch = self.tcfg.steps_per_epoch
        else:  # one pass over the unlabeled set, whether or not this run reads it: baselines take the same steps
            n = (
                self.loaders["unlabeled"].num_samples
                if "unlabeled" in self.loaders
                else set_size(cfg.data.url, cfg.data.unlabeled)
            )
            self.steps_per_epoch = steps_per_epoch(n, loader_cfg.batch_size * loader_cfg.mu, self.world)
        self.total_steps = self.tcfg.epochs * self.steps_per_epoch
        self.last_step = min(self.total_steps, self.tcfg.max_steps or self.total_steps)
        self.warm_steps = round(self.ocfg.supervised_epochs * self.steps_per_epoch)
        self.contrast_steps = round(self.ocfg.contrastive_epochs * self.steps_per_epoch)

        # Models, the same initial weights on every rank; an optimizer and a schedule each.
        torch.manual_seed(self.tcfg.seed)
        self.students = build_students(
            cfg.model, self.num_classes, projection=self.ocfg.beta > 0, pretrained=ckpt is None
        )
        for s in self.students.values():
            s.to(self.device)
            if self.tcfg.channels_last:
                channels_last_3d(s)
        optims = {"primary": cfg.optim.primary, "auxiliary": cfg.optim.auxiliary}
        self.global_batch = loader_cfg.batch_size * self.world  # labeled clips per step: what lr_batch scales by
        self.optimizers = {r: make_optimizer(optims[r], s, self.global_batch) for r, s in self.students.items()}
        self.peak_lr = {r: optims[r].scaled_lr(self.global_batch) for r in self.students}
        log.info("peak learning rates at %d labeled clips per step: %s", self.global_batch, self.peak_lr)
        warmup = round(self.tcfg.warmup_epochs * self.steps_per_epoch)
        self.schedulers = {
            r: make_scheduler(o, warmup, self.total_steps, self.tcfg.min_lr_ratio) for r, o in self.optimizers.items()
        }
        self.ema = None
        if self.tcfg.ema > 0:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            self.ema = {
                r: AveragedModel(s, multi_avg_fn=get_ema_multi_avg_fn(self.tcfg.ema), use_buffers=True)
                for r, s in self.students.items()
            }
        forward = dict(self.students)
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            # a projection head that waits for objective.contrastive_epochs has no gradient until then
            unused = self.ocfg.beta > 0 and self.contrast_steps > 0
            forward = {r: DDP(s, device_ids=ids, find_unused_parameters=unused) for r, s in self.students.items()}
        if self.tcfg.compile:
            forward = {r: torch.compile(m) for r, m in forward.items()}
        self.autocast = autocast_for(self.tcfg.precision, self.device)
        self.task = ActNetFormerTask(
            forward,
            self.ocfg,
            warm_steps=self.warm_steps,
            contrast_steps=self.contrast_steps,
            device=self.device,
            autocast=self.autocast,
            channels_last=self.tcfg.channels_last,
        )

        self.step = 0
        if ckpt is not None:
            self._restore(ckpt)
        # Preemption (SIGTERM, SIGUSR1): ranks agree at every step on a CPU group, without a device sync.
        self.stop_signal: str | None = None
        self.preempted = False
        self._control = dist.new_group(backend="gloo") if self.world > 1 else None
        # Randomness of the steps themselves (dropout, drop path) differs per rank.
        if ckpt is None:
            torch.manual_seed(self.tcfg.seed * 1_000_003 + 7919 * self.rank + 1)
        self.progress_enabled = progress and self.main
        # a batch job's log is not a terminal: plain status lines there instead of the bar (train.print_*)
        self.plain_lines = self.progress_enabled and not rich.get_console().is_terminal
        self._printed = (-1, 0.0)  # step and time of the last plain line
        self._started = (0, 0.0)  # step and time this process began training at
        self.metrics: Metrics | None = None
        self.history: list[dict] = []

    def describe(self) -> str:
        """One line: the models, the videos each stream reads, the schedule and where it runs."""
        roles = ", ".join(f"{r} {s.backbone.preset}" for r, s in self.students.items())
        counts = ", ".join(f"{name} {loader.num_samples}" for name, loader in self.loaders.items())
        return (
            f"[bold]{self.cfg.name}[/]: {roles}; videos: {counts}; {self.steps_per_epoch} steps/epoch x "
            f"{self.tcfg.epochs} epochs on {self.device} ({self.world} process(es))"
            + (f", resumed at step {self.step}" if self.step else "")
        )

    # ------------------------------------------------------------------------------------------ state

    def state(self) -> dict:
        rngs = [rng_state()]
        if self.world > 1:
            rngs = [None] * self.world
            dist.all_gather_object(rngs, rng_state())
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
            "bad_samples": {name: loader.bad_ids for name, loader in self.loaders.items()},
            "world": self.world,
        }

    def _restore(self, ckpt: dict) -> None:
        if ckpt["presets"] != self.cfg.model.presets() or ckpt["num_classes"] != self.num_classes:
            raise ActnetError("--resume: the checkpoint's models or classes differ from this run's")
        where = f"--resume {ckpt.get('_path', '')}".rstrip()
        for r, s in self.students.items():
            load_weights(s.backbone, ckpt["models"][r], f"{where} ({r} model)")
            if s.head is not None:
                load_weights(s.head, ckpt["heads"][r], f"{where} ({r} head)")
            self.optimizers[r].load_state_dict(ckpt["optimizers"][r])
            self.schedulers[r].load_state_dict(ckpt["schedulers"][r])
            if self.ema:
                self.ema[r].load_state_dict(ckpt["ema_state"][r])
        self.step = ckpt["step"]
        rngs = ckpt["rng"]
        if len(rngs) == self.world:
            set_rng_state(rngs[self.rank])
        else:
            log.warning("resuming with %d processes from a checkpoint of %d: RNG states restart", self.world, len(rngs))
            torch.manual_seed(self.tcfg.seed * 1_000_003 + 7919 * self.rank + self.step)
        for name, ids in ckpt["bad_samples"].items():
            if name in self.loaders:
                self.loaders[name].skip(ids)

    def save(self) -> Path:
        state = self.state()  # a collective under DDP: every rank calls it
        last = self.run_dir / "last.pt"
        if self.main:
            save_checkpoint(state, last)
            if self.tcfg.keep:
                save_checkpoint(state, self.run_dir / f"step-{self.step:08d}.pt")
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

    def iterators(self, step: int) -> dict:
        """Each loader's batches from global step ``step`` on (close them when done)."""
        out = {}
        for name, loader in self.loaders.items():
            spe = loader.steps_per_epoch
            out[name] = loader.iterate(step // spe, step % spe)
        return out

    def train_step(self, batches: dict, step: int) -> dict[str, torch.Tensor]:
        """One optimisation step of every model; returns detached loss parts and diagnostics (no host sync)."""
        out = self.task(batches, step)
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
        return out

    def fit(self) -> dict:
        """Train to the last step; returns the final quick evaluation (or {} when it is off)."""
        if self.main:
            import yaml

            clean_orphans(self.run_dir)  # temporaries of a run killed mid-write
            atomic_write(self.run_dir / "config.yaml", yaml.safe_dump(to_dict(self.cfg), sort_keys=False))
        self.metrics = Metrics(self.run_dir, self.main, self.step)
        clips = (
            self.loader_cfg.batch_size * (1 + (self.loader_cfg.mu if "unlabeled" in self.loaders else 0))
        ) * self.world
        result: dict = {}
        previous = self._catch_signals()
        try:
            self._started = (self.step, time.monotonic())
            bar_on = self.progress_enabled and not self.plain_lines
            with progress_bar(info=True, enabled=bar_on, console=rich.get_console()) as bar:
                task = bar.add_task(self.cfg.name, total=self.last_step, completed=self.step, info="")
                for boundary in self._boundaries():
                    self._segment(boundary, bar, task, clips)
                    if self.preempted:  # a checkpoint now, at this step boundary, then out
                        self.save()
                        break
                    epoch_end = self.step % self.steps_per_epoch == 0
                    epoch = self.step // self.steps_per_epoch
                    due = self.tcfg.eval_every and epoch_end and epoch % self.tcfg.eval_every == 0
                    if due or (self.step == self.last_step and self.tcfg.eval_every):
                        result = self.quick_eval()
                    if self._is_checkpoint(self.step):
                        self.save()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.metrics.close()
            for loader in self.loaders.values():
                loader.close()
        if self.main:
            plot_curves(self.run_dir / "metrics.jsonl", self.run_dir / "curves.png")
        return result

    def _segment(self, stop: int, bar, task, clips_per_step: int) -> None:
        iters = self.iterators(self.step)
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
                self.preempted = self._stop_requested()
                if self.step % self.tcfg.log_every == 0 or self.step == stop or self.preempted:
                    record = self._log(sums, count, data_s, compute_s, time.perf_counter() - started, clips_per_step)
                    bar.update(task, info=summary_line(record))
                    if self.plain_lines:
                        self._print_line(record)
                    sums, count, data_s, compute_s, started = {}, 0, 0.0, 0.0, time.perf_counter()
                if self.preempted:
                    return
        finally:
            for it in iters.values():
                it.close()

    def _catch_signals(self) -> dict:
        """SIGTERM and SIGUSR1 (what Slurm and torchrun send before ending a job) ask for a checkpoint at the next
        step boundary and a clean exit; returns the handlers they replaced."""
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous = {}
        for sig in (signal.SIGTERM, signal.SIGUSR1):

            def handler(signum, frame):
                self.stop_signal = signal.Signals(signum).name

            previous[sig] = signal.signal(sig, handler)
        return previous

    def _stop_requested(self) -> bool:
        """Whether any rank was asked to stop: every rank decides the same at the same step."""
        if self._control is None:
            return self.stop_signal is not None
        flag = torch.tensor([0 if self.stop_signal is None else 1], dtype=torch.int32)
        dist.all_reduce(flag, group=self._control)
        return bool(flag.item())

    def _print_line(self, record: dict) -> None:
        """A plain status line when ``train.print_every`` steps or ``train.print_minutes`` have passed since the
        last one (and at the first metrics line and the last step)."""
        now = time.monotonic()
        last_step, last_time = self._printed
        due = last_step < 0 or self.step == self.last_step or self.step - last_step >= self.tcfg.print_every
        if not (due or now - last_time >= 60 * self.tcfg.print_minutes):
            return
        first_step, started = self._started
        done = self.step - first_step
        eta = (self.last_step - self.step) * (now - started) / done if done else None
        print(status_line(record, self.last_step, eta), flush=True)
        self._printed = (self.step, now)

    def _log(self, sums, count, data_s, compute_s, elapsed, clips_per_step) -> dict:
        """The one host sync per log interval: the loss parts averaged over the interval and over the ranks (one
        collective under DDP, so every rank logs the global batch's figures and takes the same non-finite
        decision), the non-finite check, a metrics line."""
        keys = sorted(sums)
        values = dict(zip(keys, mean_across_ranks(torch.stack([sums[k].float() for k in keys])).tolist()))
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

    def eval_models(self) -> dict[str, nn.Module]:
        """The weights evaluation uses: the EMA when there is one."""
        if self.ema:
            return {r: e.module.backbone for r, e in self.ema.items()}
        return {r: s.backbone for r, s in self.students.items()}

    def quick_eval(self) -> dict:
        """Top-1 of each model and the ensemble on the test set, 1 clip x 1 crop; logged; all ranks take part."""
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


def channels_last_3d(model: nn.Module) -> nn.Module:
    """Put the 5-D weights (3-D convolutions) in channels_last_3d; ``model.to(memory_format=...)`` would fail on
    the ViT's 4-D patch-embedding weight and has nothing to gain on 1-D and 2-D ones."""
    for param in model.parameters():
        if param.dim() == 5:
            param.data = param.data.contiguous(memory_format=torch.channels_last_3d)
    return model
