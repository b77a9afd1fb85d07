"""Results people would rather see than read: training curves and confusion matrices, as PNGs (matplotlib,
headless)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from actnet.files import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path, dpi: int) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    return path


def plot_curves(metrics_file: Path, path: Path) -> Path | None:
    """Loss parts, mask rate and quick-eval top-1 against the step, from metrics.jsonl, as a PNG."""
    records = [json.loads(line) for line in metrics_file.read_text().splitlines() if line.strip()]
    train = [r for r in records if "loss" in r]
    evals = [r for r in records if "eval" in r]
    if not train:
        return None
    plt = _pyplot()
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
    _save(fig, path, 100)
    plt.close(fig)
    return path


def plot_confusion(report: dict, path: Path) -> Path:
    """One confusion matrix per row of an evaluation report (primary, auxiliary, ensemble), side by side."""
    plt = _pyplot()
    classes = report["classes"]
    rows = list(report["models"])
    n = len(classes)
    side = max(3.5, 0.32 * n + 2)
    fig, axes = plt.subplots(1, len(rows), figsize=(side * len(rows), side), squeeze=False)
    for ax, role in zip(axes[0], rows):
        m = np.asarray(report["models"][role]["confusion"], dtype=float)
        norm = m / np.maximum(m.sum(1, keepdims=True), 1)
        ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
        ax.set_title(f"{role}: top-1 {100 * report['models'][role]['top1']:.1f}%")
        ticks = range(n) if n <= 40 else []
        ax.set_xticks(list(ticks), [classes[i] for i in ticks], rotation=90, fontsize=7)
        ax.set_yticks(list(ticks), [classes[i] for i in ticks], fontsize=7)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        if n <= 20:
            for i in range(n):
                for j in range(n):
                    if m[i, j]:
                        colour = "white" if norm[i, j] > 0.5 else "black"
                        ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=7, color=colour)
    fig.tight_layout()
    _save(fig, path, 110)
    plt.close(fig)
    return path
