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


def plot_timeline(timeline: dict, path: Path) -> Path:
    """A strip per model (and the ensemble): each window coloured by its top class, its confidence as the bar's
    height, with the class names of the segments written on them; time in seconds below."""
    plt = _pyplot()
    classes, rows = timeline["classes"], list(timeline["segments"])
    cmap = plt.get_cmap("tab20" if len(classes) > 10 else "tab10")
    end = max(w["end_s"] for w in timeline["windows"])
    fig, axes = plt.subplots(
        len(rows), 1, figsize=(max(6.0, min(18.0, 1.2 * end + 3)), 1.3 * len(rows) + 0.6), squeeze=False, sharex=True
    )
    for ax, role in zip(axes[:, 0], rows):
        for w in timeline["windows"]:
            name, confidence = w["top"][role]
            ax.bar(
                w["start_s"],
                confidence,
                width=w["end_s"] - w["start_s"],
                align="edge",
                color=cmap(classes.index(name) % cmap.N),
                edgecolor="none",
            )
        for seg in timeline["segments"][role]:
            ax.text((seg["start_s"] + seg["end_s"]) / 2, 1.02, seg["class"], ha="center", va="bottom", fontsize=7)
        ax.set_ylim(0, 1.25)
        ax.set_yticks([0, 0.5, 1])
        ax.set_ylabel(role, fontsize=8)
    axes[-1, 0].set_xlabel("time (s)")
    axes[-1, 0].set_xlim(0, end)
    fig.suptitle(
        f"{Path(timeline['file']).name}: top class per {timeline['window_s']:.2f} s window (height: confidence)",
        fontsize=9,
    )
    fig.tight_layout()
    _save(fig, path, 110)
    plt.close(fig)
    return path
