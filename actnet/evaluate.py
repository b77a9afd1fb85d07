"""Multi-view evaluation of both models and their ensemble, from a checkpoint alone.

Each test video gives K clips x crops views; a model's prediction for the video is the mean of its softmax
over the views, the ensemble's the mean of the two models' predictions. Under ``torchrun`` every rank
evaluates its own videos (the loader gives video i to rank i % world, once) and the per-video predictions
are gathered after the loop, so every video counts exactly once whatever the number of ranks.

    report = evaluate_checkpoint("runs/demo/last.pt")      # or: actnet evaluate runs/demo/last.pt
    report["models"]["ensemble"]["top1"]
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from actnet import code_version
from actnet.checkpoint import checkpoint_path, load_checkpoint, trained_models
from actnet.config import EvalConfig, LoaderConfig, RunConfig
from actnet.data.loader import make_loader
from actnet.errors import ActnetError
from actnet.files import atomic_write, require_folder
from actnet.plots import plot_confusion
from actnet.progress import ProgressSink
from actnet.runtime import autocast_for, dist_info, model_device


def ensemble_name(roles: list[str]) -> list[str]:
    """The rows of a report: each model, and ``ensemble`` when there are two."""
    return [*roles, "ensemble"] if len(roles) > 1 else list(roles)


@torch.no_grad()
def predict(
    models: dict[str, nn.Module], loader, device: torch.device, autocast, on_batch=None, features: bool = False
) -> dict:
    """Per-video mean softmax of each model over the loader's views: {"ids", "keys", "labels", "probs": {role:
    (N, K)}}, and with ``features`` each model's pooled features averaged over the views ({"features": {role:
    (N, D)}}: what ``actnet suggest`` measures coverage with).

    ``loader`` yields evaluation batches (views (B, V, C, T, S, S)); only this rank's videos are seen.
    """
    for m in models.values():
        m.eval()
    ids, keys, labels = [], [], []
    probs: dict[str, list] = {role: [] for role in models}
    feats: dict[str, list] = {role: [] for role in models}
    for batch in loader:
        for role, model in models.items():
            x = batch[role, "eval"]
            b, v = x.shape[:2]
            x = x.to(device, non_blocking=True).flatten(0, 1)
            with autocast():
                if features:
                    f = model.forward_features(x)
                    logits = model.forward_head(f)
                    feats[role].append(f.float().view(b, v, -1).mean(1).cpu())
                else:
                    logits = model(x)
            probs[role].append(logits.float().softmax(-1).view(b, v, -1).mean(1).cpu())
        ids.append(batch.ids)
        keys.extend(batch.keys)
        labels.append(batch.label)
        if on_batch is not None:
            on_batch(len(batch.ids))
    if not ids:  # a rank with no videos (more ranks than test videos)
        empty = torch.zeros(0, dtype=torch.long)
        out = {"ids": empty, "keys": [], "labels": empty, "probs": {role: torch.zeros(0, 0) for role in models}}
        return out | ({"features": {role: torch.zeros(0, 0) for role in models}} if features else {})
    out = {
        "ids": torch.cat(ids),
        "keys": keys,
        "labels": torch.cat(labels),
        "probs": {role: torch.cat(p) for role, p in probs.items()},
    }
    return out | ({"features": {role: torch.cat(f) for role, f in feats.items()}} if features else {})


def gather(pred: dict) -> dict:
    """All ranks' predictions on every rank, one row per video id (sorted by id)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        parts = [None] * dist.get_world_size()
        dist.all_gather_object(parts, pred)
    else:
        parts = [pred]
    skipped = [bad for p in parts for bad in p.get("skipped", [])]
    parts = [p for p in parts if len(p["ids"])] or parts[:1]
    ids = torch.cat([p["ids"] for p in parts])
    order = torch.argsort(ids)
    if len(torch.unique(ids)) != len(ids):
        raise RuntimeError("evaluation saw a video twice across ranks")
    keys = [k for p in parts for k in p.get("keys", [])]
    out = {
        "ids": ids[order],
        "keys": [keys[i] for i in order.tolist()] if len(keys) == len(ids) else [],
        "labels": torch.cat([p["labels"] for p in parts])[order],
        "probs": {role: torch.cat([p["probs"][role] for p in parts])[order] for role in parts[0]["probs"]},
        "skipped": skipped,
    }
    if "features" in parts[0]:
        out["features"] = {r: torch.cat([p["features"][r] for p in parts])[order] for r in parts[0]["features"]}
    return out


def metrics(probs: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict:
    """top-1, top-5, mean class accuracy, per-class accuracy and the confusion matrix (rows: true class)."""
    n = len(labels)
    top = probs.topk(min(5, probs.shape[1]), dim=1).indices
    pred = top[:, 0]
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
    confusion.index_put_((labels, pred), torch.ones(n, dtype=torch.long), accumulate=True)
    per_class_total = confusion.sum(1)
    per_class = [
        (confusion[c, c].item() / per_class_total[c].item()) if per_class_total[c] else None for c in range(num_classes)
    ]
    present = [a for a in per_class if a is not None]
    correct = int((pred == labels).sum().item())
    return {
        "videos": n,
        "top1": correct / n if n else math.nan,
        "top1_interval": list(wilson_interval(correct, n)),  # 95%: what the test set's size alone leaves open
        "top5": (top == labels[:, None]).any(1).float().mean().item() if n else math.nan,
        "mean_class_accuracy": float(np.mean(present)) if present else math.nan,
        "per_class": per_class,
        "confusion": confusion.tolist(),
    }


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95% for z 1.96) of a proportion seen as ``successes`` of ``n``: how far a top-1
    measured on ``n`` test videos may be from the model's true accuracy by the luck of which videos were drawn."""
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def summarize(pred: dict, num_classes: int) -> dict[str, dict]:
    """Metrics of each model and (with two) the ensemble, the mean of their softmax."""
    probs = dict(pred["probs"])
    if len(probs) > 1:
        probs["ensemble"] = torch.stack(list(probs.values())).mean(0)
    return {role: metrics(p, pred["labels"], num_classes) for role, p in probs.items()}


def evaluate_checkpoint(
    checkpoint: str | Path,
    *,
    data: str | None = None,
    set_name: str | None = None,
    eval_cfg: EvalConfig | None = None,
    device: str | None = None,
    use_ema: bool = True,
    out: str | Path | None = None,
    progress: ProgressSink | None = None,
) -> dict:
    """Evaluate a training checkpoint; writes ``eval-<set>-<K>x<crops>.json`` and a confusion PNG to ``out``
    (default: the checkpoint's folder) on rank 0, and returns the report on every rank."""
    checkpoint = checkpoint_path(checkpoint)
    folder = require_folder(out, "--out") if out else checkpoint.parent
    ckpt = load_checkpoint(checkpoint)
    cfg: RunConfig = ckpt["run_config"]
    eval_cfg = eval_cfg or cfg.eval
    loader_cfg = replace(
        cfg.loader,
        eval_clips=eval_cfg.clips,
        eval_crops=eval_cfg.crops,
        eval_batch_size=eval_cfg.batch_size,
        device=device or cfg.loader.device,
    )
    rank, world = dist_info()
    dev = model_device(loader_cfg.device)
    models, weights = trained_models(ckpt, dev, use_ema)
    set_name = set_name or cfg.data.test
    url = data or cfg.data.url
    autocast = autocast_for(cfg.train.precision, dev)
    report = run_evaluation(
        models, url, set_name, loader_cfg, dev, autocast, rank, world, ckpt["class_names"], progress=progress
    )
    report.update(
        code=code_version(),
        checkpoint=str(checkpoint),
        step=ckpt["step"],
        weights=weights,
        classes=ckpt["class_names"],
    )
    if rank == 0:
        stem = f"eval-{set_name}-{eval_cfg.clips}x{eval_cfg.crops}"
        atomic_write(folder / f"{stem}.json", json.dumps(report, indent=1) + "\n")
        report["confusion_png"] = str(plot_confusion(report, folder / f"{stem}-confusion.png"))
    return report


def class_difference(trained: list[str], found: list[str]) -> str:
    """One line saying how a shard set's classes differ from the ones a model was trained on."""
    if len(trained) != len(found):
        head = f"{len(found)} classes, the checkpoint's models know {len(trained)}"
    elif set(trained) == set(found):
        return "the same classes in another label order than the checkpoint's; its figures would be meaningless"
    else:
        head = "other classes than the checkpoint's"
    only_set, only_ckpt = sorted(set(found) - set(trained)), sorted(set(trained) - set(found))
    parts = [f"only in the set: {', '.join(only_set[:5])}{' ...' if len(only_set) > 5 else ''}"] if only_set else []
    if only_ckpt:
        parts.append(f"only in the checkpoint: {', '.join(only_ckpt[:5])}{' ...' if len(only_ckpt) > 5 else ''}")
    return head + (f" ({'; '.join(parts)})" if parts else "")


def run_evaluation(
    models, url, set_name, loader_cfg: LoaderConfig, dev, autocast, rank=0, world=1, classes=None, progress=None
):
    """Predict every video of ``<url>/<set_name>`` (this rank's share), gather, and score. With ``classes`` (the
    models' class names, in label order) a set whose classes differ is refused before anything runs."""
    loader = make_loader(url, set_name, "eval", loader_cfg, rank=rank, world=world)
    try:
        if classes is not None and list(classes) != list(loader.classes):
            raise ActnetError(f"{url}/{set_name}: {class_difference(list(classes), list(loader.classes))}")
        progress = progress or ProgressSink()
        progress.start(f"evaluate {set_name}", len(range(rank, loader.num_samples, world)))
        pred = predict(models, loader, dev, autocast, on_batch=progress.advance)
        pred["skipped"] = loader.bad
        pred = gather(pred)
    finally:
        loader.close()
    if len(pred["ids"]) == 0:
        raise ActnetError(f"{url}/{set_name}: no test video could be evaluated")
    return {
        "set": set_name,
        "views": f"{loader_cfg.eval_clips}x{loader_cfg.eval_crops}",
        "videos": len(pred["ids"]),
        "skipped": pred["skipped"],
        "models": summarize(pred, len(loader.classes)),
        "classes": loader.classes,
    }
