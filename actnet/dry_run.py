"""``actnet train --dry-run``: know before you spend. Everything a run would use is resolved and built (the
config with every override, the shard sets, the models, the schedule), a few steps are timed on the real data
and models, and nothing is written: no run folder, no checkpoint, no metrics."""

from __future__ import annotations

import time
from pathlib import Path

from actnet.recipes import to_dict
from actnet.train import Trainer

TIMED_STEPS = 3  # after one warm-up step


def dry_run(cfg, resume: str | Path | None = None, timed_steps: int = TIMED_STEPS) -> dict:
    """What ``cfg`` would train and how long it would take; every rank takes part (the steps are collectives),
    the returned figures are the same on each."""
    trainer = Trainer(cfg, resume=resume, progress=False)
    loader_cfg = trainer.loader_cfg
    unlabeled = "unlabeled" in trainer.loaders
    per_rank = loader_cfg.batch_size * (1 + (loader_cfg.mu if unlabeled else 0))
    plan = {
        "config": to_dict(cfg),
        "run_dir": str(trainer.run_dir),
        "data": cfg.data.url,
        "classes": trainer.num_classes,
        "sets": {
            kind: {"name": getattr(cfg.data, kind), "videos": loader.num_samples}
            for kind, loader in trainer.loaders.items()
        },
        "world": trainer.world,
        "device": str(trainer.device),
        "steps_per_epoch": trainer.steps_per_epoch,
        "epochs": trainer.tcfg.epochs,
        "total_steps": trainer.last_step,
        "start_step": trainer.step,
        "clips_per_step": per_rank * trainer.world,
        "peak_lr": dict(trainer.peak_lr),
        "term_starts": {  # the step each unlabeled term starts at; None: off in this run
            "pseudo-labels": trainer.warm_steps if cfg.objective.teaching != "none" and cfg.objective.gamma else None,
            "contrastive": trainer.contrast_steps if cfg.objective.beta else None,
        },
    }
    iters = trainer.iterators(trainer.step)
    try:
        step_s = []
        for i in range(1 + timed_steps):
            if trainer.step + i >= trainer.last_step and i:
                break
            started = time.perf_counter()
            batches = {name: next(it) for name, it in iters.items()}
            out = trainer.train_step(batches, trainer.step + i)
            out["loss"].item()  # the step's work is done when its loss is on the host
            if i:  # the first step pays for warm-up (pipelines, allocations)
                step_s.append(time.perf_counter() - started)
    finally:
        for it in iters.values():
            it.close()
        for loader in trainer.loaders.values():
            loader.close()
    seconds = sum(step_s) / len(step_s) if step_s else None
    plan["seconds_per_step"] = seconds
    plan["timed_steps"] = len(step_s)
    plan["estimate_s"] = seconds * (trainer.last_step - trainer.step) if seconds is not None else None
    return plan
