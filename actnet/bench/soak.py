"""The soak section: host memory of a fresh process while the unlabeled loader runs many epochs (a leak shows as
a trend that keeps its size when the run is made longer)."""

from __future__ import annotations

import gc
import multiprocessing as mp
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import psutil

from actnet.bench.common import machine_description
from actnet.data.loader import make_loader


def soak_in_child(url: str, loader_cfg, epochs: int) -> dict:
    """:func:`benchmark_soak` in a fresh process, so that what earlier benchmarks left in this one does not count."""
    with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(benchmark_soak, url, loader_cfg, epochs).result()


def benchmark_soak(url: str, loader_cfg, epochs: int, log=print) -> dict:
    """Host memory of the process while the unlabeled loader runs ``epochs`` whole epochs (a leak shows as growth)."""
    proc = psutil.Process()
    loader = make_loader(url, "train", "unlabeled", loader_cfg)
    rss, clips, started = [proc.memory_info().rss], 0, time.perf_counter()
    try:
        for epoch in range(epochs):  # training streams never end: an epoch is steps_per_epoch batches, as in training
            batches = loader.iterate(epoch)
            for _, batch in zip(range(loader.steps_per_epoch), batches):
                clips += len(batch)
            batches.close()
            gc.collect()
            rss.append(proc.memory_info().rss)
            log(f"  soak epoch {epoch + 1}/{epochs}: rss {rss[-1] / 2**20:.0f} MiB")
    finally:
        loader.close()
    settled = rss[3:] if len(rss) > 5 else rss[1:]  # after the first epochs' one-time allocations
    half = len(settled) // 2
    slope = float(np.polyfit(np.arange(len(settled)), settled, 1)[0]) if len(settled) > 1 else 0.0
    return {
        "epochs": epochs,
        "batches_per_epoch": loader.steps_per_epoch,
        "clips": clips,
        "seconds": time.perf_counter() - started,
        "rss_mib": [r / 2**20 for r in rss],
        "growth_mib": (settled[-1] - settled[0]) / 2**20,
        "growth_second_half_mib": (settled[-1] - settled[half]) / 2**20,
        "slope_mib_per_epoch": slope / 2**20,  # least squares over the settled epochs
        "settled_from_epoch": len(rss) - len(settled),
        "machine": machine_description(),
    }


def soak_markdown(result: dict, source: str) -> str:
    m, rss = result["machine"], result["rss_mib"]
    picks = sorted({0, 1, 3, len(rss) // 4, len(rss) // 2, 3 * len(rss) // 4, len(rss) - 1})
    lines = [
        f"Measured {m['date']} on {m['host_cpu']} ({m['cores']} cores, {m['device']}), actnet {m['actnet']}. "
        f"The unlabeled loader (both models, weak + strong views) over {result['epochs']} epochs of {source} "
        f"({result['batches_per_epoch']} batches each, {result['clips']} clips, {result['seconds']:.0f} s), "
        "host resident memory of the process after each epoch:",
        "",
        "| after epoch | " + " | ".join(str(i) for i in picks) + " |",
        "|---|" + "---:|" * len(picks),
        "| RSS MiB | " + " | ".join(f"{rss[i]:.0f}" for i in picks) + " |",
        "",
        f"From epoch {result['settled_from_epoch']} (after the first epochs' one-time allocations) to the end: "
        f"{result['growth_mib']:+.1f} MiB; over the second half {result['growth_second_half_mib']:+.1f} MiB; "
        f"least-squares trend {result['slope_mib_per_epoch']:+.2f} MiB per epoch. The soak runs in a fresh "
        "process; a leak would show as a trend that keeps its size when the run is made longer (`--full`: 100 "
        "epochs).",
    ]
    return "\n".join(lines) + "\n"
