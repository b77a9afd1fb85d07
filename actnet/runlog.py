"""What a training run records about itself while it runs: ``metrics.jsonl``, TensorBoard scalars, host and GPU
memory, and the one-line summary its progress bar shows."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from actnet.files import atomic_write
from actnet.progress import duration_text, rate_text


class Metrics:
    """metrics.jsonl (one JSON object a line) and TensorBoard scalars under ``tb/``, written by rank 0."""

    def __init__(self, run_dir: Path, enabled: bool, step: int = 0):
        """Records past ``step`` (the checkpoint a run resumes from, 0 for a new run) were logged by a run that was
        killed before saving them: they are dropped, so the resumed run does not log those steps twice."""
        self.enabled = enabled
        if enabled:
            truncate_metrics(run_dir / "metrics.jsonl", step)
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


def truncate_metrics(path: Path, step: int) -> int:
    """Keep the records of ``path`` up to ``step`` (and drop a half-written last line); returns how many went."""
    if not path.exists():
        return 0
    kept, dropped = [], 0
    for line in path.read_text().splitlines(keepends=True):
        try:
            record = json.loads(line) if line.endswith("\n") else None
        except ValueError:
            record = None
        if record is not None and record.get("step", 0) <= step:
            kept.append(line)
        else:
            dropped += 1
    if dropped:
        atomic_write(path, "".join(kept))
    return dropped


def _flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}/"))
        else:
            out[name] = value
    return out


def memory_usage(device: torch.device) -> dict[str, float]:
    """Host resident memory of this process and peak GPU memory since the last call, in GiB."""
    import psutil

    usage = {"host_rss_gib": psutil.Process().memory_info().rss / 2**30}
    if device.type == "cuda":
        usage["gpu_peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        usage["gpu_reserved_gib"] = torch.cuda.memory_reserved(device) / 2**30
        torch.cuda.reset_peak_memory_stats(device)
    return usage


def summary_line(r: dict) -> str:
    """A metrics record as the progress bar's text: epoch, loss parts, mask rate, speed, data wait, memory."""
    return (
        f"ep {r['epoch']:.1f} loss {r['loss']:.3f} (sup {r['sup']:.3f} pl {r['pseudo']:.3f} "
        f"ca {r['contrastive']:.3f}) mask {r['mask_rate']:.2f} {rate_text(r['clips_per_s'], 'clips')} "
        f"data {100 * r['data_share']:.0f}% rss {r['host_rss_gib']:.1f}G"
        + (f" gpu {r['gpu_peak_gib']:.1f}G" if "gpu_peak_gib" in r else "")
    )


def status_line(r: dict, total_steps: int, eta_s: float | None) -> str:
    """A metrics record as one plain line for logs that are not a terminal: the progress bar's fields plus the
    step, the learning rates and the time left."""
    lrs = "/".join(f"{lr:.3g}" for lr in r["lr"].values())
    eta = f" eta {duration_text(eta_s)}" if eta_s is not None else ""
    return f"step {r['step']}/{total_steps} {summary_line(r)} lr {lrs}{eta}"
