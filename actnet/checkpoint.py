"""Training checkpoints: what they hold, how they are written and read, and the models they rebuild.

A checkpoint holds both models (and projection heads), optimizers, schedulers, EMA, the step, every rank's RNG
states, the samples found bad, the resolved config, the presets, the class names and how the videos were
encoded, so ``actnet evaluate``, ``predict`` and ``export`` need nothing else. It is written through
:func:`actnet.files.atomic_path`: a kill never leaves a truncated ``last.pt``.
"""

from __future__ import annotations

import logging
import random
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch
from torch import nn

from actnet.config import EncodeConfig, RunConfig
from actnet.errors import ActnetError
from actnet.files import atomic_path
from actnet.recipes import from_dict

log = logging.getLogger("actnet.train")

CHECKPOINT_FORMAT = "actnet.checkpoint/1"


def checkpoint_path(path: str | Path) -> Path:
    """A checkpoint file as given, or a run folder's ``last.pt``."""
    path = Path(path)
    return path / "last.pt" if path.is_dir() else path


def rng_state() -> dict:
    """This process's random number generators (torch, CUDA, numpy, Python) as tensors and plain data."""
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": random.getstate(),
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    random.setstate(_tuples(state["python"]))


def _tuples(x):
    return tuple(_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x


def save_checkpoint(state: dict, path: Path) -> None:
    """``torch.save`` through a temporary file in the same folder, flushed and renamed over ``path``."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(state, f)


def load_checkpoint(path: str | Path) -> dict:
    """A training checkpoint (a file, or a run folder's ``last.pt``), with ``run_config`` rebuilt."""
    path = checkpoint_path(path)
    if not path.is_file():
        raise ActnetError(f"{path}: no such checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch's messages run to many lines (its advice on weights_only): keep the first
        raise ActnetError(f"{path}: not a readable checkpoint ({err.__class__.__name__}: {first_line(err)})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ActnetError(f"{path}: not an actnet training checkpoint (format {CHECKPOINT_FORMAT})")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise ActnetError(f"{path}: an incomplete actnet checkpoint (no {', '.join(missing)})")
    try:
        ckpt["run_config"] = from_dict(RunConfig, ckpt["config"])
    except ActnetError as err:
        raise ActnetError(f"{path}: its config does not load: {err}") from None
    ckpt["_path"] = str(path)
    return ckpt


REQUIRED_KEYS = ("config", "models", "num_classes", "class_names", "presets", "step")


def first_line(err: BaseException, most: int = 240) -> str:
    """The first non-empty line of an exception's message, at most ``most`` characters."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return (lines[0] if lines else err.__class__.__name__)[:most]


def load_weights(module: nn.Module, state, where: str) -> None:
    """``module.load_state_dict(state)``, failing with one line (the first mismatch) when the weights do not fit."""
    try:
        module.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError, ValueError, AttributeError) as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        detail = lines[1] if len(lines) > 1 else (lines[0] if lines else type(err).__name__)
        raise ActnetError(f"{where}: the weights do not fit the model ({detail[:240]})") from None


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


def trained_models(ckpt: dict, device: torch.device, use_ema: bool = True) -> tuple[dict[str, nn.Module], str]:
    """A loaded checkpoint's backbones by role, in eval mode on ``device``, and which weights they hold
    (``"ema"`` when the run kept an EMA and ``use_ema``, else ``"model"``)."""
    from actnet.task import build_students

    cfg: RunConfig = ckpt["run_config"]
    models = {
        r: s.backbone
        for r, s in build_students(cfg.model, ckpt["num_classes"], projection=False, pretrained=False).items()
    }
    which = "ema" if (use_ema and ckpt.get("ema")) else "model"
    weights = ckpt["ema"] if which == "ema" else ckpt["models"]
    for role, model in models.items():
        if role not in weights:
            raise ActnetError(f"{ckpt.get('_path', 'checkpoint')}: holds no weights for the {role} model")
        load_weights(model, weights[role], f"{ckpt.get('_path', 'checkpoint')} ({role} model, {which} weights)")
        model.to(device).eval()
    return models, which


def encode_of(ckpt: dict) -> EncodeConfig:
    """The EncodeConfig the run's shards were made with (the defaults for a checkpoint that predates it)."""
    recorded = {"small_videos": "keep", **(ckpt.get("encode") or {})}  # before the option, small videos were kept
    known = {f.name for f in fields(EncodeConfig)}
    return EncodeConfig(**{k: v for k, v in recorded.items() if k in known})
