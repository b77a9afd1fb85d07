"""The training section: the full dual-model step with the real loader and on batches already in device memory
(starvation), its FLOPs and, on GPUs with a known peak, model FLOP utilisation."""

from __future__ import annotations

import contextlib
import time
from dataclasses import replace

import torch
from torch.utils.flop_counter import FlopCounterMode

from actnet.bench.common import machine_description
from actnet.runtime import synchronize, uses_bf16
from actnet.train import Trainer

# Dense bf16 tensor-core peaks (FLOP/s) from the vendors' data sheets, for model FLOP utilisation.
PEAK_BF16 = {
    "H200": 989.4e12,
    "H100 SXM": 989.4e12,
    "H100 80GB HBM3": 989.4e12,
    "H100 PCIe": 756.5e12,
    "H100": 989.4e12,
    "A100": 312e12,
    "L40S": 362e12,
    "L4": 121e12,
    "RTX 4090": 165.2e12,
}


def peak_bf16(device_name: str) -> float | None:
    """The dense bf16 peak of a GPU by its name (None when it is not in the table)."""
    for key, value in PEAK_BF16.items():  # most specific first
        if key in device_name:
            return value
    return None


def resident(batch, device):
    """The batch with its tensors already on ``device`` (what "no input pipeline" means)."""
    return replace(batch, views={k: v.to(device) for k, v in batch.views.items()}, label=batch.label.to(device))


@contextlib.contextmanager
def training_at_full_loss(run_cfg):
    """A Trainer with its loaders started past the supervised warm-up (every term of the loss on); yields
    ``(trainer, iterators, step0, sync)`` and closes the loaders after."""
    trainer = Trainer(run_cfg, progress=False)
    step0 = trainer.warm_steps
    iters = trainer.iterators(step0)
    try:
        yield trainer, iters, step0, lambda: synchronize(trainer.device)
    finally:
        for it in iters.values():
            it.close()
        for loader in trainer.loaders.values():
            loader.close()


def benchmark_training(run_cfg, steps: int, log=print) -> dict:
    """The full dual-model step (labeled weak | unlabeled weak | unlabeled strong for both models, pseudo-labels
    and the contrastive term on): clips/s with the real loader, the same on batches already in device memory
    (the starvation ratio is the first's step time over the second's), and the step's FLOPs from torch's flop
    counter, as a share of the device's peak bf16 rate when it is known."""
    with training_at_full_loss(run_cfg) as (trainer, iters, step0, sync):
        dev = trainer.device

        def batches():
            return {name: next(it) for name, it in iters.items()}

        first = batches()
        for k in range(2):  # warm-up: allocator, cuDNN autotuning, DALI's first batches
            trainer.train_step(first if k == 0 else batches(), step0 + k)
        sync()
        with FlopCounterMode(display=False) as counter:
            trainer.train_step(first, step0)
        flops = counter.get_total_flops()
        sync()
        started = time.perf_counter()
        for k in range(steps):
            trainer.train_step(batches(), step0 + k)
        sync()
        real = (time.perf_counter() - started) / steps
        in_memory = {name: resident(b, dev) for name, b in first.items()}
        sync()
        started = time.perf_counter()
        for k in range(steps):
            trainer.train_step(in_memory, step0 + k)
        sync()
        ideal = (time.perf_counter() - started) / steps
    lc = run_cfg.loader
    clips = lc.batch_size * (1 + lc.mu)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    peak = peak_bf16(name) if dev.type == "cuda" else None
    result = {
        "device": name,
        "models": run_cfg.model.presets(),
        "input": {r: [c.frames, c.size, c.size] for r, c in lc.clips().items()},
        "batch": {"labeled": lc.batch_size, "unlabeled": lc.batch_size * lc.mu},
        "precision": "bf16" if uses_bf16(run_cfg.train.precision, dev) else "fp32",
        "steps": steps,
        "step_s": real,
        "step_s_resident": ideal,
        "clips_per_s": clips / real,
        "starvation": real / ideal,
        "flops_per_step": flops,
        "achieved_flops": flops / real,
        "mfu": flops / real / peak if peak else None,
        "peak_bf16": peak,
    }
    log(
        f"  {'+'.join(result['models'].values())} at {result['input']['primary']}: {result['clips_per_s']:.2f} "
        f"clips/s, starvation {result['starvation']:.3f}, {flops / 1e9:.1f} GFLOP/step"
    )
    return result


def training_markdown(rows: list[dict], gpu_note: str) -> str:
    m = machine_description()
    lines = [
        f"Measured {m['date']} on {m['host_cpu']} ({m['cores']} cores), actnet {m['actnet']}. One step = both "
        "models forward and backward on labeled weak + unlabeled weak + unlabeled strong clips, pseudo-labels and "
        "the contrastive term on. clips/s counts videos (labeled + unlabeled) per second with the real DALI "
        "loader; starvation = step time with the loader / step time on batches already in device memory (goal "
        "<= 1.05); FLOPs from torch.utils.flop_counter over one step; MFU = achieved FLOP/s / the device's peak "
        "dense bf16 rate (no peak is defined for a CPU).",
        "",
        "| device | models | input (T x S x S) | batch (lab + unl) | precision | clips/s | step s | starvation "
        "| GFLOP/step | achieved TFLOP/s | MFU |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        t, s, _ = r["input"]["primary"]
        mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "n/a"
        lines.append(
            f"| {r['device']} | {' + '.join(r['models'].values())} | {t} x {s} x {s} | "
            f"{r['batch']['labeled']} + {r['batch']['unlabeled']} | {r['precision']} | {r['clips_per_s']:.2f} | "
            f"{r['step_s']:.3f} | {r['starvation']:.3f} | {r['flops_per_step'] / 1e9:.1f} | "
            f"{r['achieved_flops'] / 1e12:.3f} | {mfu} |"
        )
    if gpu_note:
        lines += ["", gpu_note]
    return "\n".join(lines) + "\n"
