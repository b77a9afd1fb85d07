"""After training: which unlabeled videos to label next (``actnet suggest``) and the pseudo-labels worth keeping
(``actnet pseudo-label``).

Both score the unlabeled training set with a checkpoint, through evaluation's views (the run's ``eval.clips`` x
``eval.crops`` unless given) and distributed like ``actnet evaluate`` (each rank scores its share, the scores are
gathered). The stored labels of the unlabeled videos are never read into a choice; they are returned apart
(``Scores.hidden``) only so that a tool can measure the choice against them on a data set whose labels are known.

Strategies for ``suggest``:

- ``random``: a seeded draw, the baseline every other strategy must beat;
- ``least-confidence``: the ensemble's lowest top probability first;
- ``disagreement``: videos whose two models predict different classes first, then by the Jensen-Shannon divergence
  of their distributions (the signal a cross-architecture method has and a single model has not);
- ``coverage``: greedy k-center on both models' features (L2-normalised, concatenated), starting from the labeled
  videos: each pick is the video farthest from everything labeled or picked, so the picks are not near-duplicates.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from actnet.checkpoint import checkpoint_path, load_checkpoint, trained_models
from actnet.config import RunConfig
from actnet.data.loader import make_loader
from actnet.data.sampling import ShardSet
from actnet.errors import ActnetError
from actnet.evaluate import class_difference, gather, predict
from actnet.files import atomic_write, require_folder
from actnet.progress import ProgressSink
from actnet.runtime import autocast_for, dist_info, model_device

STRATEGIES = ("random", "least-confidence", "disagreement", "coverage")


@dataclass
class Scores:
    """A checkpoint's view of the unlabeled videos (the ones not in its labeled set), one row per video."""

    keys: list[str]
    probs: dict[str, np.ndarray]  # role -> (N, K), and "ensemble" with two models
    features: dict[str, np.ndarray]  # role -> (N, D); empty unless asked for
    labeled_features: dict[str, np.ndarray]  # the labeled videos' features, for coverage
    labeled: list[str]  # the labeled set's keys, in its order
    classes: list[str]
    hidden: np.ndarray  # the stored labels: for measuring a choice only, never for making it
    url: str
    set_name: str
    views: str


def score_unlabeled(
    checkpoint: str | Path,
    *,
    data: str | None = None,
    clips: int | None = None,
    crops: int | None = None,
    device: str | None = None,
    features: bool = False,
    use_ema: bool = True,
    progress: ProgressSink | None = None,
) -> Scores:
    """Every unlabeled training video of the checkpoint's data (``data`` overrides where it is) scored by its
    models; the videos of its labeled set are left out (and scored apart for their features, with ``features``)."""
    ckpt = load_checkpoint(checkpoint_path(checkpoint))
    cfg: RunConfig = ckpt["run_config"]
    url = data or cfg.data.url
    loader_cfg = replace(
        cfg.loader,
        eval_clips=clips or cfg.eval.clips,
        eval_crops=crops or cfg.eval.crops,
        eval_batch_size=cfg.eval.batch_size,
        device=device or cfg.loader.device,
    )
    if loader_cfg.eval_crops not in (1, 3) or loader_cfg.eval_clips < 1:
        raise ActnetError(f"--clips must be at least 1 and --crops 1 or 3, not {clips} and {crops}")
    rank, world = dist_info()
    dev = model_device(loader_cfg.device)
    models, _ = trained_models(ckpt, dev, use_ema)
    autocast = autocast_for(cfg.train.precision, dev)
    progress = progress or ProgressSink()
    labeled_keys = [ref.key for ref in ShardSet(url, cfg.data.labeled).samples]

    def run(set_name: str, keep=None) -> dict:
        loader = make_loader(url, set_name, "eval", loader_cfg, rank=rank, world=world)
        try:
            if list(loader.classes) != list(ckpt["class_names"]):
                raise ActnetError(f"{url}/{set_name}: {class_difference(list(ckpt['class_names']), loader.classes)}")
            progress.start(f"score {set_name}", len(range(rank, loader.num_samples, world)))
            pred = predict(models, loader, dev, autocast, on_batch=progress.advance, features=features)
            pred = gather(pred)
            pred["classes"] = list(loader.classes)
        finally:
            loader.close()
        return pred

    unl = run(cfg.data.unlabeled)
    labeled_set = set(labeled_keys)
    rows = [i for i, k in enumerate(unl["keys"]) if k not in labeled_set]
    if not rows:
        raise ActnetError(f"{url}/{cfg.data.unlabeled}: every video is in the labeled set {cfg.data.labeled}")
    probs = {r: p[rows].numpy() for r, p in unl["probs"].items()}
    if len(probs) > 1:
        probs["ensemble"] = np.mean([probs[r] for r in models], axis=0)
    feats, labeled_feats = {}, {}
    if features:
        feats = {r: f[rows].numpy() for r, f in unl["features"].items()}
        lab = run(cfg.data.labeled)
        labeled_feats = {r: f.numpy() for r, f in lab["features"].items()}
    return Scores(
        keys=[unl["keys"][i] for i in rows],
        probs=probs,
        features=feats,
        labeled_features=labeled_feats,
        labeled=labeled_keys,
        classes=unl["classes"],
        hidden=unl["labels"][rows].numpy(),
        url=url,
        set_name=cfg.data.unlabeled,
        views=f"{loader_cfg.eval_clips}x{loader_cfg.eval_crops}",
    )


# ------------------------------------------------------------------------------------------------ suggest


def _top(probs: dict[str, np.ndarray]) -> np.ndarray:
    return probs["ensemble"] if "ensemble" in probs else next(iter(probs.values()))


def js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Row-wise Jensen-Shannon divergence (natural log, within [0, ln 2])."""
    m = (p + q) / 2

    def kl(a, b):
        return np.sum(np.where(a > 0, a * (np.log(np.clip(a, 1e-12, None)) - np.log(np.clip(b, 1e-12, None))), 0), 1)

    return (kl(p, m) + kl(q, m)) / 2


def _normalised(features: dict[str, np.ndarray]) -> np.ndarray:
    parts = [f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12) for f in features.values()]
    return np.concatenate(parts, axis=1)


def rank_videos(scores: Scores, strategy: str, budget: int, seed: int = 0) -> list[tuple[int, float]]:
    """``budget`` rows of ``scores`` to label next, best first, each with the score that chose it."""
    n = len(scores.keys)
    budget = min(budget, n)
    if strategy == "random":
        order = np.random.default_rng(seed).permutation(n)[:budget]
        return [(int(i), 0.0) for i in order]
    if strategy == "least-confidence":
        score = 1.0 - _top(scores.probs).max(1)
    elif strategy == "disagreement":
        roles = [r for r in scores.probs if r != "ensemble"]
        if len(roles) != 2:
            raise ActnetError("--strategy disagreement needs a checkpoint with two models")
        p, q = scores.probs[roles[0]], scores.probs[roles[1]]
        score = (p.argmax(1) != q.argmax(1)).astype(float) + js_divergence(p, q)
    elif strategy == "coverage":
        if not scores.features:
            raise ActnetError("coverage needs the videos' features (score_unlabeled(..., features=True))")
        x = _normalised(scores.features)
        centres = _normalised(scores.labeled_features) if scores.labeled_features else x[:0]
        picked: list[tuple[int, float]] = []
        nearest = np.full(n, np.inf) if len(centres) == 0 else _min_distance(x, centres)
        for _ in range(budget):
            i = int(np.argmax(np.where(np.isinf(nearest), np.finfo(float).max, nearest)))
            picked.append((i, float(nearest[i]) if np.isfinite(nearest[i]) else 0.0))
            nearest = np.minimum(nearest, _min_distance(x, x[i : i + 1]))
            nearest[i] = -1.0  # never again
        return picked
    else:
        raise ActnetError(f"--strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
    order = np.lexsort((np.arange(n), -score))[:budget]  # highest score first, ties by position
    return [(int(i), float(score[i])) for i in order]


def _min_distance(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    d = np.full(len(x), np.inf)
    for start in range(0, len(centres), 1024):  # bounded memory on big sets
        c = centres[start : start + 1024]
        d = np.minimum(d, np.sqrt(np.maximum(((x[:, None, :] - c[None]) ** 2).sum(-1), 0)).min(1))
    return d


def _prediction(scores: Scores, i: int) -> dict:
    out = {}
    for role, p in scores.probs.items():
        c = int(p[i].argmax())
        out[role] = {"class": scores.classes[c], "confidence": round(float(p[i, c]), 6)}
    return out


def write_suggestions(scores: Scores, picked: list[tuple[int, float]], strategy: str, out: Path):
    """``next.txt`` (the keys to label, one per line: what ``prepare --labeled-list`` reads), ``labeled-next.txt``
    (the current labeled keys and those), ``suggestions.jsonl`` (rank, key, score, each model's prediction) and
    ``suggestions.png`` (a contact sheet of the chosen clips, captioned with the models' predictions)."""
    from actnet.inspect_shards import contact_sheet

    out = require_folder(out, "--out")
    keys = [scores.keys[i] for i, _ in picked]
    rows = [
        {"rank": r + 1, "key": scores.keys[i], "strategy": strategy, "score": round(s, 6)} | _prediction(scores, i)
        for r, (i, s) in enumerate(picked)
    ]
    atomic_write(out / "next.txt", "".join(k + "\n" for k in keys))
    atomic_write(out / "labeled-next.txt", "".join(k + "\n" for k in [*scores.labeled, *keys]))
    atomic_write(out / "suggestions.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    captions = {}
    for row in rows:
        said = ", ".join(f"{r} {row[r]['class']} {row[r]['confidence']:.2f}" for r in scores.probs)
        captions[row["key"]] = f"#{row['rank']} {row['key']}: {said}"
    sheet = contact_sheet(scores.url, scores.set_name, out / "suggestions.png", keys=keys[:24], captions=captions)
    files = {"next": out / "next.txt", "labeled_next": out / "labeled-next.txt", "jsonl": out / "suggestions.jsonl"}
    return files | {"sheet": sheet}


# ------------------------------------------------------------------------------------------- pseudo-labels


def pseudo_label_rows(scores: Scores, threshold: float, agree: bool = False) -> list[dict]:
    """One row per unlabeled video: the ensemble's class and confidence (the one model's, with one), each model's,
    whether the models agree, and ``accepted``: confidence >= ``threshold`` (and, with ``agree``, the models
    agreeing)."""
    top = _top(scores.probs)
    roles = [r for r in scores.probs if r != "ensemble"]
    rows = []
    for i, key in enumerate(scores.keys):
        c = int(top[i].argmax())
        models = {r: int(scores.probs[r][i].argmax()) for r in roles}
        agreed = len(set(models.values())) == 1
        accepted = bool(top[i, c] >= threshold and (agreed or not agree))
        row = {"key": key, "label": c, "class": scores.classes[c], "confidence": round(float(top[i, c]), 6)}
        row |= {"agree": agreed, "accepted": accepted} | _prediction(scores, i)
        rows.append(row)
    return rows


def precision_table(scores: Scores, thresholds: list[float]) -> list[dict]:
    """For each threshold: how many pseudo-labels are kept and how many of them are right against the stored
    labels, for confidence alone and for confidence with the two models agreeing."""
    out = []
    for t in thresholds:
        for agree in (False, True) if len([r for r in scores.probs if r != "ensemble"]) == 2 else (False,):
            rows = pseudo_label_rows(scores, t, agree)
            kept = [r for r, truth in zip(rows, scores.hidden) if r["accepted"]]
            right = sum(int(r["label"] == truth) for r, truth in zip(rows, scores.hidden) if r["accepted"])
            out.append(
                {
                    "threshold": t,
                    "agree": agree,
                    "kept": len(kept),
                    "of": len(rows),
                    "precision": right / len(kept) if kept else None,
                }
            )
    return out


def write_pseudo_labels(scores: Scores, rows: list[dict], out: Path, sheet_rows: int = 16) -> dict:
    """``pseudo-labels.jsonl`` (every row), ``accepted.txt`` (the accepted keys), ``pseudo-labels.png`` (a contact
    sheet of the least certain accepted videos, captioned with their pseudo-label and confidence)."""
    from actnet.inspect_shards import contact_sheet

    out = require_folder(out, "--out")
    atomic_write(out / "pseudo-labels.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    accepted = [r for r in rows if r["accepted"]]
    atomic_write(out / "accepted.txt", "".join(r["key"] + "\n" for r in accepted))
    written = {"jsonl": out / "pseudo-labels.jsonl", "accepted": out / "accepted.txt"}
    least = sorted(accepted, key=lambda r: (r["confidence"], r["key"]))[:sheet_rows]
    if least:
        captions = {
            r["key"]: f"{r['class']} {r['confidence']:.2f}{'' if r['agree'] else ' (models differ)'}" for r in least
        }
        keys = [r["key"] for r in least]
        written["sheet"] = contact_sheet(
            scores.url, scores.set_name, out / "pseudo-labels.png", keys=keys, captions=captions
        )
    return written


def class_counts(rows: list[dict], classes: list[str]) -> list[tuple[str, int, int]]:
    """(class, accepted, predicted) per class."""
    accepted = np.bincount([r["label"] for r in rows if r["accepted"]], minlength=len(classes))
    predicted = np.bincount([r["label"] for r in rows], minlength=len(classes))
    return [(c, int(a), int(p)) for c, a, p in zip(classes, accepted, predicted)]
