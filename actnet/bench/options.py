"""The step-options section: a ladder of compute options, each row adding one to the row before (fused
optimizers, channels_last_3d, torch.compile from cold caches, bf16), and the optimizer step alone, foreach
against fused."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from dataclasses import replace

import torch

from actnet.bench.training import resident, training_at_full_loss
from actnet.models import create_model
from actnet.optim import make_optimizer
from actnet.runtime import synchronize

# The compute-side speed options, each row adding one to the row before; the first row is how the trainer ran
# before the options were turned on by default (fused optimizers, channels_last_3d). bf16 stays off on a CPU
# (``train.precision=auto``) and compile is opt-in: their rows say why.
STEP_OPTIONS: list[tuple[str, list[str]]] = [
    (
        "fp32, foreach optimizers, contiguous weights (before)",
        ["train.precision=fp32", "optim.primary.fused=false", "optim.auxiliary.fused=false", "train.compile=false"]
        + ["train.channels_last=false"],
    ),
    ("+ fused optimizers (default)", ["optim.primary.fused=true", "optim.auxiliary.fused=true"]),
    ("+ channels_last_3d conv weights (default)", ["train.channels_last=true"]),
    ("+ torch.compile (train.compile=true)", ["train.compile=true"]),
    ("+ bf16 autocast (default on a GPU)", ["train.precision=bf16"]),
]


@contextlib.contextmanager
def _cold_compile_caches():
    """Point torch.compile's on-disk caches (inductor, triton) at an empty folder and forget compiled frames."""
    saved = {k: os.environ.get(k) for k in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR")}
    with tempfile.TemporaryDirectory(prefix="actnet-compile-") as tmp:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(tmp, "inductor")
        os.environ["TRITON_CACHE_DIR"] = os.path.join(tmp, "triton")
        torch._dynamo.reset()
        try:
            yield
        finally:
            torch._dynamo.reset()
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def time_resident_steps(run_cfg, steps: int) -> dict:
    """Seconds per full dual-model step on one batch per stream already in device memory (the loader left out, so
    options that change only the compute are compared alone), after two warm-up steps (compilation included)."""
    with training_at_full_loss(run_cfg) as (trainer, iters, step0, sync):
        batch = {name: resident(next(it), trainer.device) for name, it in iters.items()}
    started = time.perf_counter()
    for k in range(2):
        trainer.train_step(batch, step0 + k)
    sync()
    warmup = time.perf_counter() - started
    started = time.perf_counter()
    for k in range(steps):
        trainer.train_step(batch, step0 + 2 + k)
    sync()
    return {"step_s": (time.perf_counter() - started) / steps, "warmup_s": warmup, "steps": steps}


def benchmark_step_options(make_cfg, rows: list[tuple[str, list[str]]], steps: int, log=print) -> list[dict]:
    """``make_cfg(overrides)`` -> RunConfig; each row's overrides are added to those of the rows before it.
    Compilation starts cold: fresh inductor and triton caches, so the warm-up is what a first run pays."""
    results, overrides = [], []
    for label, sets in rows:
        overrides = overrides + sets
        with _cold_compile_caches():
            timing = time_resident_steps(make_cfg(overrides), steps)
        results.append({"options": label, "overrides": list(overrides), **timing})
        log(f"  {label:56s} {1000 * timing['step_s']:8.1f} ms/step (warm-up {timing['warmup_s']:.1f} s)")
    return results


def benchmark_optimizer_step(optims: dict, models: dict[str, str], num_classes: int, device, repeat: int = 5) -> list:
    """Milliseconds per optimizer step of each model, torch's foreach kernels against its fused ones."""
    rows = []
    for role, model_name in models.items():
        model = create_model(model_name, num_classes).to(device)
        for p in model.parameters():
            p.grad = torch.randn_like(p)
        row = {"role": role, "model": model_name, "optimizer": optims[role].name, "ms": {}}
        for impl in ("foreach", "fused"):
            opt = make_optimizer(replace(optims[role], fused=impl == "fused"), model)
            for _ in range(2):
                opt.step()
            synchronize(device)
            started = time.perf_counter()
            for _ in range(repeat):
                opt.step()
            synchronize(device)
            row["ms"][impl] = 1000 * (time.perf_counter() - started) / repeat
        rows.append(row)
        del model
    return rows


def step_options_markdown(result: dict) -> str:
    m, rows = result["machine"], result["rows"]
    base = rows[0]["step_s"]
    cfg = result["config"]
    lines = [
        f"Measured {m['date']} on {result['device']} ({m['host_cpu']}, {m['cores']} cores), actnet {m['actnet']}. "
        f"The full dual-model step ({cfg}) on one batch per stream already in device memory, {rows[0]['steps']} "
        "timed steps after 2 warm-up steps (compilation happens in those, from empty caches); each row adds one "
        "option to the row above it. `actnet benchmark all` runs it.",
        "",
        "| options | ms / step | vs first row | warm-up s |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {r['options']} | {1000 * r['step_s']:.1f} | {r['step_s'] / base:.2f} | {r['warmup_s']:.1f} |" for r in rows
    ]
    lines += [
        "",
        f"Optimizer step alone, {result['optimizer_models']} ({result['device']}):",
        "",
        "| model | optimizer | foreach ms | fused ms | fused / foreach |",
        "|---|---|---:|---:|---:|",
    ]
    lines += [
        f"| {r['model']} | {r['optimizer']} | {r['ms']['foreach']:.1f} | {r['ms']['fused']:.1f} | "
        f"{r['ms']['fused'] / r['ms']['foreach']:.2f} |"
        for r in result["optimizer"]
    ]
    if result.get("note"):
        lines += ["", result["note"]]
    return "\n".join(lines) + "\n"
