"""``actnet benchmark all|prepare|loader``: which data and settings each section runs on, and the whole suite.

The default configuration takes a few minutes on 2 cores; ``full`` makes every run bigger; ``paper_input`` also
times the paper's models at 8 x 224 on a CPU (always on a GPU). Each section's figures go into the results file
through :func:`actnet.bench.common.record`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from actnet.bench import SECTIONS, decoders, loader, options, prepare, scaling, soak, training
from actnet.bench.common import machine_description, record
from actnet.config import ClipConfig, EncodeConfig, LoaderConfig, PrepareOptions, SyntheticConfig
from actnet.data.codecs import NVDEC_MIN_SIZE, at_least
from actnet.data.sources import list_folder
from actnet.data.synthetic import synthetic_listing
from actnet.errors import ActnetError
from actnet.prepare import prepare as prepare_shards
from actnet.progress import ProgressSink
from actnet.recipes import resolve_run_config


def _cache() -> Path:
    return Path.home() / ".cache" / "actnet"


def bench_shards(workers: int, progress: ProgressSink | None = None) -> tuple[Path, str]:
    """The built-in synthetic set prepared once into the user cache (train, test, labeled 10%): at 128x96 where
    there is no GPU (the figures of docs/benchmarks.md), scaled up to the smallest frame NVDEC decodes where there
    is one."""
    cfg = SyntheticConfig()
    listing = synthetic_listing(cfg, None, workers, progress)
    gpu = torch.cuda.is_available()
    cache = _cache() / ("bench-loader-gpu" if gpu else "bench-loader")
    encode = EncodeConfig(short_side=96, small_videos="upscale" if gpu else "keep")
    opts = PrepareOptions(out=str(cache), manifests=None, workers=workers, labeled=("10%",), encode=encode)
    summary = prepare_shards(listing, opts, progress)
    if progress is not None:
        progress.close()
    if summary.reject_fraction > opts.max_reject_fraction:
        raise ActnetError(f"preparing the synthetic shards for the benchmark failed (see {summary.url}/rejects.jsonl)")
    width, height = at_least(cfg.width, cfg.height, NVDEC_MIN_SIZE["vp9"]) if gpu else (cfg.width, cfg.height)
    size = f"{width}x{height}"
    return cache / listing.dataset / listing.split, f"built-in synthetic set ({size}, {cfg.frames} frames, VP9)"


def loader_config(size: int, frames: int, batch_size: int, eval_clips: int, workers: int, device: str):
    """Both models' clips at ``frames`` x ``size``, variable strides, as the loader section times them."""
    return LoaderConfig(
        batch_size=batch_size,
        mu=1,
        eval_batch_size=max(1, batch_size // 2),
        primary=ClipConfig(frames, (4, 8), size),
        auxiliary=ClipConfig(frames, (2, 4), size),
        eval_clips=eval_clips,
        num_threads=workers,
        device=device,
    )


def prepare_section(
    root: Path | None,
    videos: int,
    frames: int,
    size: tuple[int, int],
    workers: int,
    speed: int,
    repeat: int,
    cache: Path | None,
    log=print,
) -> tuple[dict, str]:
    """``actnet benchmark prepare``: figures and their markdown, on a folder data set or rendered synthetic videos."""
    if root is None:
        width, height = size
        listing = prepare.synthetic_listing_for_benchmark(videos, frames, width, height, cache, workers)
        source = f"synthetic, {width}x{height}, {frames} frames at 25 fps (H.264 sources)"
    else:
        listing = list_folder(root, test_fraction=0.0)
        listing.candidates = listing.candidates[:videos]
        source = f"folder {root}"
    log(f"benchmark prepare: {len(listing.candidates)} videos, {workers} jobs")
    result = prepare.benchmark_prepare(listing, EncodeConfig(speed=speed), workers, repeat, log=log)
    return result, prepare.prepare_markdown(result, source)


def loader_section(data: Path | None, cfg: LoaderConfig, batches: int, workers: int, log=print, progress=None):
    """``actnet benchmark loader``: figures and their markdown, on ``data`` or the synthetic set."""
    data, source = (data, str(data)) if data is not None else bench_shards(workers, progress)
    log(f"benchmark loader: {data}, {batches} batches per stream, {workers} threads/workers")
    result = loader.benchmark_loader(str(data), cfg, batches, workers, log=log)
    return result, loader.loader_markdown(result, cfg, source, workers)


def training_section(base: dict, common: list[str], gpu: bool, full: bool, paper_input: bool, log=print) -> dict:
    """The demo's tiny models, and the paper's R50 + ViT-S at 8 x 224 on a GPU (or with ``paper_input``)."""
    demo = resolve_run_config("demo", common, {**base, "name": "bench"})
    rows = [training.benchmark_training(demo, 10 if full else 5, log)]
    if gpu or paper_input:
        paper = [*common, "objective.supervised_epochs=0"] + ([] if gpu else ["loader.batch_size=1", "loader.mu=1"])
        paper_cfg = resolve_run_config("ucf101_1pct", paper, {**base, "name": "bench-paper"})
        rows.append(training.benchmark_training(paper_cfg, 10 if gpu else 2, log))
    note = (
        ""
        if gpu
        else (
            f"GPU rows: not measured. No GPU machine was lent to the session that ran this ({rows[0]['device']}); "
            "`actnet benchmark all` on a GPU machine adds them (paper input, bf16, NVDEC decoding)."
        )
    )
    return {"rows": rows, "note": note}


def step_options_section(base: dict, common: list[str], gpu: bool, full: bool, log=print) -> dict:
    """The speed-option ladder: the paper's models and input on a GPU, the demo's tiny ones on a CPU (where bf16,
    emulated, is timed only with ``full``)."""
    recipe = "ucf101_1pct" if gpu else "demo"
    fixed = [*common, "objective.supervised_epochs=0"] if gpu else common
    rows = options.STEP_OPTIONS if gpu or full else [r for r in options.STEP_OPTIONS if "bf16" not in r[0]]

    def make(extra):
        return resolve_run_config(recipe, [*fixed, *extra], {**base, "name": "bench-options"})

    cfg = make([])
    lc = cfg.loader
    described = (
        f"{cfg.model.primary} + {cfg.model.auxiliary}, {lc.primary.frames} x {lc.primary.size} x {lc.primary.size}, "
        f"batch {lc.batch_size} + {lc.batch_size * lc.mu}"
    )
    ladder = options.benchmark_step_options(make, rows, 10 if gpu or full else 5, log=log)
    paper = resolve_run_config("ucf101_1pct", [], {**base, "name": "bench-options"})
    device = torch.device("cuda" if gpu else "cpu")
    optim = {"primary": paper.optim.primary, "auxiliary": paper.optim.auxiliary}
    models = {"primary": paper.model.primary, "auxiliary": paper.model.auxiliary}
    opt_rows = options.benchmark_optimizer_step(optim, models, 101, device)
    note = "" if gpu else "GPU rows: not measured (no GPU machine was lent to the session that ran this)."
    return {
        "rows": ladder,
        "config": described,
        "device": torch.cuda.get_device_name() if gpu else "CPU",
        "optimizer": opt_rows,
        "optimizer_models": f"{paper.model.primary} + {paper.model.auxiliary}, 101 classes, the paper's optimizers",
        "note": note,
        "machine": machine_description(),
    }


def run_all(
    results: Path,
    *,
    full: bool = False,
    paper_input: bool = False,
    workers: int = 0,
    device: str = "auto",
    data: Path | None = None,
    skip: set[str] = frozenset(),
    log=print,
    progress: ProgressSink | None = None,
) -> float:
    """Every section not in ``skip``, each recorded in ``results`` as it finishes; returns the minutes it took."""
    if unknown := set(skip) - set(SECTIONS):
        raise ActnetError(f"--skip: no section {', '.join(sorted(unknown))} (sections: {', '.join(SECTIONS)})")
    if data is not None and not data.is_dir():
        raise ActnetError(f"--data {data}: no such folder")
    todo = [name for name in SECTIONS if name not in skip]
    started = time.perf_counter()
    workers = workers or os.cpu_count() or 1
    gpu = device != "cpu" and torch.cuda.is_available()
    shards = None

    def bench_data() -> tuple[Path, str]:
        nonlocal shards
        if shards is None:
            shards = (data, str(data)) if data is not None else bench_shards(workers, progress)
        return shards

    loader_cfg = loader_config(64, 8, 8, 10, workers, device)
    common = [f"loader.device={device}", f"loader.num_threads={workers}", "train.eval_every=0"]
    for k, section in enumerate(todo, 1):
        log(f"[bold]{k}/{len(todo)} {section}[/]")
        if section in ("loader", "decoders", "training", "step-options", "soak"):
            url, source = bench_data()
            base = {"data": {"url": str(url), "labeled": "labeled-10pct-seed0"}, "out": str(_cache())}
        if section == "prepare":
            listing = prepare.synthetic_listing_for_benchmark(
                48 if full else 12, 175 if full else 100, 320, 240, None, workers
            )
            result = prepare.benchmark_prepare(listing, EncodeConfig(), workers, 2 if full else 1, log=log)
            markdown = prepare.prepare_markdown(result, "synthetic, 320x240 (H.264 sources)")
        elif section == "loader":
            result = loader.benchmark_loader(str(url), loader_cfg, 8 if full else 4, workers, log=log)
            markdown = loader.loader_markdown(result, loader_cfg, source, workers)
        elif section == "decoders":
            result = decoders.benchmark_decoders(str(url), "test", 48 if full else 16, gpu)
            if gpu:
                result["device"] = torch.cuda.get_device_name()
            markdown = decoders.decoders_markdown(result, source)
        elif section == "training":
            result = training_section(base, common, gpu, full, paper_input, log)
            markdown = training.training_markdown(result["rows"], result["note"])
        elif section == "step-options":
            result = step_options_section(base, common, gpu, full, log)
            markdown = options.step_options_markdown(result)
        elif section == "scaling":
            syn = SyntheticConfig()
            listing = synthetic_listing(syn, None, workers, progress)
            if progress is not None:
                progress.close()
            listing.candidates = sorted(listing.candidates, key=lambda c: c.key)[: 96 if full else 32]
            result = scaling.benchmark_scaling(listing, workers, loader_cfg, 8 if full else 4, log=log)
            markdown = scaling.scaling_markdown(
                result, f"built-in synthetic set ({syn.width}x{syn.height}, {syn.frames} frames)"
            )
        else:
            epochs = 100 if full else 24
            log(f"  {epochs} epochs of the unlabeled loader in a fresh process")
            result = soak.soak_in_child(str(url), loader_cfg, epochs)
            markdown = soak.soak_markdown(result, source)
        record(section, markdown, result, results)
    return (time.perf_counter() - started) / 60
