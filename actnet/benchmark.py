"""Benchmarks that print figures and record them in the project's results file (docs/benchmarks.md + .json).

``actnet benchmark prepare``: prepare's throughput against the bare ffmpeg encode of the same videos, in the
same run, with the same parallelism and encoder settings. The bare encode runs exactly the ffmpeg command
prepare runs for each video (``media.encode_command``), so the ratio is prepare's own overhead: probing,
verifying the output, writing tars, indexes, manifests and info files.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import resource
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from actnet import __version__
from actnet.config import EncodeConfig, PrepareOptions, ShardConfig, SyntheticConfig
from actnet.data.media import encode_command, probe
from actnet.data.sources import SourceListing, list_folder
from actnet.errors import ActnetError

RESULTS_MD = Path("docs/benchmarks.md")


def machine_description() -> dict:
    first_line = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.split("\n")[0]
    ffmpeg_version = first_line.split(" Copyright")[0]
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": dt.date.today().isoformat(),
        "host_cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "ffmpeg": ffmpeg_version,
        "actnet": __version__,
        "device": "CPU only",
    }


def bare_ffmpeg(listing: SourceListing, encode: EncodeConfig, workers: int, out_dir: Path) -> float:
    """Seconds to run prepare's ffmpeg encode command alone on every video (probing done beforehand, untimed)."""
    jobs = []
    for c in listing.candidates:
        dst = out_dir / f"{c.key}.{encode.extension}"
        jobs.append(encode_command(c.path, dst, probe(c.path), encode))
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for result in pool.map(lambda cmd: subprocess.run(cmd, capture_output=True), jobs):
            result.check_returncode()
    return time.perf_counter() - started


def timed_prepare(listing: SourceListing, opts: PrepareOptions) -> float:
    from actnet.prepare import prepare

    started = time.perf_counter()
    summary = prepare(listing, opts)
    elapsed = time.perf_counter() - started
    assert summary.rejected == 0 and summary.encoded_now == len(listing.candidates)
    return elapsed


def ffmpeg_start_ms(runs: int = 10) -> float:
    """CPU milliseconds one ``ffmpeg -version`` costs (loading its libraries): paid by every ffmpeg run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    for _ in range(runs):
        subprocess.run(["ffmpeg", "-hide_banner", "-version"], capture_output=True, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return 1000 * (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / runs


def benchmark_prepare(
    listing: SourceListing,
    encode: EncodeConfig,
    workers: int,
    repeat: int = 2,
    log=print,
) -> dict:
    """Alternate bare-ffmpeg and prepare runs ``repeat`` times; report the fastest of each."""
    frames = 0
    for c in listing.candidates:
        info = probe(c.path)
        frames += int(round(info.num_frames / float(info.fps) * float(encode.output_fps(info.fps))))
    # prepare_unbatched: one verifying ffmpeg run per video, as before verification was batched (the "before")
    rows: dict[str, list[float]] = {"ffmpeg": [], "prepare": [], "prepare_packets": [], "prepare_unbatched": []}
    with tempfile.TemporaryDirectory(prefix="actnet-bench-") as tmp:
        for r in range(repeat):
            for name in rows:
                work = Path(tmp) / f"{name}-{r}"
                work.mkdir()
                if name == "ffmpeg":
                    seconds = bare_ffmpeg(listing, encode, workers, work)
                else:
                    enc = replace(encode, verify="packets") if name == "prepare_packets" else encode
                    opts = PrepareOptions(
                        out=str(work),
                        manifests=None,
                        workers=workers,
                        encode=enc,
                        shards=ShardConfig(),
                        verify_batch=1 if name == "prepare_unbatched" else PrepareOptions.verify_batch,
                    )
                    seconds = timed_prepare(listing, opts)
                rows[name].append(seconds)
                log(f"  run {r + 1}/{repeat} {name:16s} {seconds:7.2f} s")
                shutil.rmtree(work)
    best = {name: min(times) for name, times in rows.items()}
    n = len(listing.candidates)
    return {
        "videos": n,
        "frames": frames,
        "workers": workers,
        "encode": asdict(encode),
        "seconds": best,
        "all_seconds": rows,
        "videos_per_s": {name: n / s for name, s in best.items()},
        "ratio": {name: best[name] / best["ffmpeg"] for name in rows if name != "ffmpeg"},
        "verify_batch": PrepareOptions.verify_batch,
        "ffmpeg_start_cpu_ms": ffmpeg_start_ms(),
        "machine": machine_description(),
    }


def synthetic_listing_for_benchmark(
    videos: int, frames: int, width: int, height: int, cache: Path | None, workers: int
) -> SourceListing:
    from actnet.data import synthetic

    per_class = max(2, -(-videos // 8))
    cfg = SyntheticConfig(num_classes=8, videos_per_class=per_class, frames=frames, width=width, height=height)
    root = synthetic.generate(cfg, synthetic.synthetic_root(cfg, cache), workers)
    listing = list_folder(root, test_fraction=0.25, name="bench")
    listing.candidates = sorted(listing.candidates, key=lambda c: c.key)[:videos]
    return listing


def prepare_markdown(result: dict, source: str) -> str:
    s, v, r, m = result["seconds"], result["videos_per_s"], result["ratio"], result["machine"]
    enc = result["encode"]
    lines = [
        f"Measured {m['date']} on {m['host_cpu']} ({m['cores']} cores, {m['device']}), {m['ffmpeg']}, "
        f"actnet {m['actnet']}. Source: {source}; {result['videos']} videos, {result['frames']} output frames; "
        f"{result['workers']} parallel jobs; codec {enc['codec']}, speed {enc['speed']}, short side "
        f"{enc['short_side']}, GOP {enc['gop']}. Best of {len(result['all_seconds']['ffmpeg'])} alternating runs.",
        "",
        "| pipeline | seconds | videos/s | frames/s | time vs bare ffmpeg |",
        "|---|---:|---:|---:|---:|",
        f"| bare ffmpeg encode (same command, same parallelism) | {s['ffmpeg']:.2f} | {v['ffmpeg']:.2f} | "
        f"{result['frames'] / s['ffmpeg']:.0f} | 1.00 |",
    ]
    batch = result.get("verify_batch", PrepareOptions.verify_batch)
    names = {
        "prepare": f"actnet prepare, --verify full (default), up to {batch} videos per verifying ffmpeg run",
        "prepare_packets": f"actnet prepare, --verify packets, up to {batch} videos per verifying ffmpeg run",
        "prepare_unbatched": "actnet prepare, --verify full, one verifying ffmpeg run per video (before batching)",
    }
    lines += [
        f"| {label} | {s[name]:.2f} | {v[name]:.2f} | {result['frames'] / s[name]:.0f} | {r[name]:.2f} |"
        for name, label in names.items()
        if name in s
    ]
    if "ffmpeg_start_cpu_ms" in result:
        lines += [
            "",
            f"Besides the encode, prepare runs ffprobe on each source and ffmpeg to verify what it wrote; starting "
            f"either costs {result['ffmpeg_start_cpu_ms']:.0f} ms of CPU here (`ffmpeg -version`: the libraries "
            "it loads), so verification decodes up to "
            f"{batch} encoded videos per ffmpeg run and pays that start once for all of them.",
        ]
    return "\n".join(lines) + "\n"


def record(section: str, markdown: str, data: dict, results_md: Path = RESULTS_MD) -> None:
    """Replace one section of the results file (between its markers) and its entry in the JSON beside it."""
    begin, end = f"<!-- {section}:begin -->", f"<!-- {section}:end -->"
    text = results_md.read_text() if results_md.exists() else "# Benchmark results\n"
    block = f"{begin}\n{markdown}{end}"
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip("\n") + f"\n\n## {section}\n\n{block}\n"
    results_md.parent.mkdir(parents=True, exist_ok=True)
    results_md.write_text(text)
    json_path = results_md.with_suffix(".json")
    all_data = json.loads(json_path.read_text()) if json_path.exists() else {}
    all_data[section] = data
    json_path.write_text(json.dumps(all_data, indent=1, sort_keys=True) + "\n")


# ----------------------------------------------------------------------------------------------- the loader


def _frames_per_clip(views: dict) -> int:
    """Output frames one video contributes to a batch, over all its views (evaluation: V clips each)."""
    total = 0
    for v in views.values():
        shape = v.shape[1:]  # (C, T, H, W) or (V, C, T, H, W)
        total += shape[-3] * (shape[0] if len(shape) == 5 else 1)
    return total


def _time_batches(batches, n: int) -> tuple[float, int, int]:
    """(seconds, clips, output frames) for ``n`` batches after a warm-up batch (pipeline or workers start)."""
    it = iter(batches)
    clips = frames = 0
    try:
        next(it)
        started = time.perf_counter()
        for _ in range(n):
            batch = next(it)
            views = batch.views if hasattr(batch, "views") else {k: v for k, v in batch.items() if "." in k}
            size = len(next(iter(views.values())))
            clips += size
            frames += size * _frames_per_clip(views)
    except StopIteration:
        raise ActnetError(
            f"a set is too small to time {n} batches after a warm-up batch; pass fewer --batches"
        ) from None
    return time.perf_counter() - started, clips, frames


def _byte_batches(items, batch_size: int):
    import numpy as np

    batch = []
    for data in items:
        batch.append(np.frombuffer(data, np.uint8))
        if len(batch) == batch_size:
            yield batch
            batch = []


def _cycle(make):
    while True:
        yield from make()


def benchmark_readers(url: str, set_name: str, batch_size: int, batches: int, threads: int) -> dict:
    """Samples/s bringing encoded videos into DALI: our index + ranged reads, webdataset, DALI's own reader."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    import webdataset as wds

    from actnet.data.dali import time_reading
    from actnet.data.sampling import ShardSet

    shards = ShardSet(url, set_name)
    ext = shards.extension
    tars = [shards.storage.url(s.name) for s in shards.info.shards]
    pool = ThreadPoolExecutor(4)

    def indexed():
        order = [int(i) for i in np.random.default_rng(0).permutation(len(shards))]
        return pool.map(lambda i: shards.fetch(i)[ext], order)

    def streamed():
        return (s[ext] for s in wds.WebDataset(tars, shardshuffle=False, empty_check=False))

    native = {"paths": tars, "index_paths": [shards.storage.url(s.index) for s in shards.info.shards], "ext": ext}
    runs = {
        "actnet index + ranged reads -> external_source (random order)": dict(
            feed=_byte_batches(_cycle(indexed), batch_size)
        ),
        "webdataset library (sequential) -> external_source": dict(feed=_byte_batches(_cycle(streamed), batch_size)),
        "DALI fn.readers.webdataset (sequential)": dict(native=native),
    }
    out = {}
    for name, kwargs in runs.items():
        seconds = time_reading(batch_size, batches, threads, **kwargs)
        out[name] = batch_size * batches / seconds
    pool.shutdown(wait=False, cancel_futures=True)
    return out


def benchmark_loader(url: str, cfg, batches: int, workers: int, log=print) -> dict:
    """clips/s and frames/s of the DALI loader and of each DALI-free loader that loads here (torchcodec, PyAV, in
    a DataLoader with ``workers`` workers), same samples, same frames, same run.

    The labeled stream reads the train set here (labeled sets are too small to time): its graph, not its set,
    is what is measured.
    """
    from actnet.data.baseline import available_decoders, baseline_loader
    from actnet.data.dali import make_loader
    from actnet.data.sampling import SampleStream, ShardSet

    baselines = available_decoders()
    # the last row keeps the "before" of nearest-neighbour RandAugment geometry (the default since it was measured)
    linear = replace(cfg, augment=replace(cfg.augment, rand_augment_interp="linear"))
    streams = [("labeled", "train", cfg, ""), ("unlabeled", "train", cfg, ""), ("eval", "test", cfg, "")]
    if cfg.augment.rand_augment_n and cfg.augment.rand_augment_interp != "linear":
        streams.append(("unlabeled", "train", linear, "linear RandAugment geometry, before"))
    rows = []
    for kind, set_name, stream_cfg, variant in streams:
        dali = make_loader(url, set_name, kind, stream_cfg)
        available = dali.steps_per_epoch - 1 if kind == "eval" else batches
        n = max(1, min(batches, available))
        row = {"stream": kind, "set": set_name, "variant": variant, "batch": dali.stream.batch_size, "batches": n}
        row["dali"] = _rates(*_time_batches(dali, n))
        row["baselines"] = {}
        for decoder in baselines:
            stream = SampleStream(
                ShardSet(url, set_name),
                kind,
                stream_cfg.clips(),
                dali.stream.batch_size,
                seed=stream_cfg.seed,
                eval_clips=stream_cfg.eval_clips,
                eval_crops=stream_cfg.eval_crops,
                fetch_threads=0,
            )
            loader = baseline_loader(stream, stream_cfg, workers, decoder)
            row["baselines"][decoder] = _rates(*_time_batches(loader, n))
        row["best"] = max(row["baselines"], key=lambda d: row["baselines"][d]["clips_per_s"])
        row["speedup"] = row["dali"]["clips_per_s"] / row["baselines"][row["best"]]["clips_per_s"]
        others = "   ".join(f"{d} {r['clips_per_s']:7.1f}" for d, r in row["baselines"].items())
        log(f"  {kind:9s} DALI {row['dali']['clips_per_s']:7.1f} clips/s   {others}   x{row['speedup']:.2f}")
        rows.append(row)
    readers = benchmark_readers(url, "train", 8, 2 * batches, cfg.num_threads)
    for name, rate in readers.items():
        log(f"  reading: {rate:8.0f} samples/s  {name}")
    machine = machine_description()
    if dali.device == "gpu":
        import torch

        machine["device"] = torch.cuda.get_device_name()
    return {"streams": rows, "readers": readers, "baselines": baselines, "machine": machine}


def _rates(seconds: float, clips: int, frames: int) -> dict:
    return {"seconds": seconds, "clips": clips, "clips_per_s": clips / seconds, "frames_per_s": frames / seconds}


def loader_markdown(result: dict, cfg, source: str, workers: int) -> str:
    from actnet.data.baseline import DECODERS

    m = result["machine"]
    p, a = cfg.primary, cfg.auxiliary
    names = [DECODERS[d] for d in result["baselines"]]
    lines = [
        f"Measured {m['date']} on {m['host_cpu']} ({m['cores']} cores, {m['device']}), actnet {m['actnet']}. "
        f"Shards: {source}. Clips: primary {p.frames} frames, strides {list(p.strides)}, {p.size} px; auxiliary "
        f"{a.frames} frames, strides {list(a.strides)}, {a.size} px; RandAugment n={cfg.augment.rand_augment_n} "
        f"m={cfg.augment.rand_augment_m} ({cfg.augment.rand_augment_interp} geometry); evaluation {cfg.eval_clips} "
        f"clips x {cfg.eval_crops} crops. DALI with {cfg.num_threads} threads; {' and '.join(names)} + "
        f"torchvision.transforms.v2 in a DataLoader with {workers} workers, reading the same samples and frames "
        "through the same index. A clip is one video with all its views (labeled: a weak view per model; "
        "unlabeled: weak + strong per model; evaluation: clips x crops per model); frames/s counts every output "
        "frame.",
        "",
        "| stream | batch | DALI clips/s | DALI frames/s | "
        + " | ".join(f"{n} clips/s" for n in names)
        + " | DALI / best alternative |",
        "|---|---:|---:|---:|" + "---:|" * len(names) + "---:|",
    ]
    for r in result["streams"]:
        d = r["dali"]
        label = f"{r['stream']} ({r['set']}{', ' + r['variant'] if r.get('variant') else ''})"
        others = " | ".join(f"{r['baselines'][b]['clips_per_s']:.1f}" for b in result["baselines"])
        lines.append(
            f"| {label} | {r['batch']} | {d['clips_per_s']:.1f} | {d['frames_per_s']:.0f} | {others} | "
            f"{r['speedup']:.2f} ({DECODERS[r['best']]}) |"
        )
    lines += ["", "Reading encoded samples into a DALI pipeline (no decoding), train set:", ""]
    lines += ["| reader | samples/s |", "|---|---:|"]
    lines += [f"| {name} | {rate:.0f} |" for name, rate in result["readers"].items()]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------- training

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
    for key, value in PEAK_BF16.items():  # most specific first
        if key in device_name:
            return value
    return None


def _resident(batch, device):
    """The batch with its tensors already on ``device`` (what "no input pipeline" means)."""
    return replace(batch, views={k: v.to(device) for k, v in batch.views.items()}, label=batch.label.to(device))


@contextlib.contextmanager
def _training_at_full_loss(run_cfg):
    """A Trainer with its loaders started past the supervised warm-up (every term of the loss on); yields
    ``(trainer, iterators, step0, sync)`` and closes the loaders after."""
    import torch

    from actnet.train import Trainer

    trainer = Trainer(run_cfg, progress=False)
    dev = trainer.device
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    step0 = trainer.warm_steps
    iters = trainer._start(step0)
    try:
        yield trainer, iters, step0, sync
    finally:
        for it in iters.values():
            it.close()
        for loader in trainer.loaders.values():
            loader.stream.close()


def benchmark_training(run_cfg, steps: int, log=print) -> dict:
    """The full dual-model step (labeled weak | unlabeled weak | unlabeled strong for both models, pseudo-labels
    and the contrastive term on): clips/s with the real loader, the same on batches already in device memory
    (the starvation ratio is the first's step time over the second's), and the step's FLOPs from torch's flop
    counter, as a share of the device's peak bf16 rate when it is known."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with _training_at_full_loss(run_cfg) as (trainer, iters, step0, sync):
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
        resident = {name: _resident(b, dev) for name, b in first.items()}
        sync()
        started = time.perf_counter()
        for k in range(steps):
            trainer.train_step(resident, step0 + k)
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
        "precision": "bf16"
        if run_cfg.train.precision == "bf16" or (run_cfg.train.precision == "auto" and dev.type == "cuda")
        else "fp32",
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


# ---------------------------------------------------------------------------------------------- decoders


def _agreement(frames: np.ndarray, reference: np.ndarray) -> dict:
    """How far ``frames`` are from ``reference`` (same indices), in 8-bit levels, and whether each frame is
    nearest to the reference frame of its own index (a seek landing on a neighbour shows here)."""
    diff = np.abs(frames.astype(np.int16) - reference.astype(np.int16))
    mean_to = np.abs(frames[:, None].astype(np.int16) - reference[None].astype(np.int16)).mean(axis=(2, 3, 4))
    return {
        "frames": len(frames),
        "mean_abs": float(diff.mean()),
        "p99_abs": float(np.percentile(diff, 99)),
        "max_abs": int(diff.max()),
        "same_frame": int((mean_to.argmin(axis=1) == np.arange(len(frames))).sum()),
    }


def benchmark_decoders(url: str, set_name: str, samples: int, gpu: bool, frames_per_sample: int = 8) -> dict:
    """DALI's CPU decoder and (with a GPU) NVDEC against FFmpeg's decoders (through torchcodec and/or PyAV) on the
    same frames of the same shard samples: the decoders should differ only by colour-conversion rounding."""
    from actnet.data.baseline import DECODERS, available_decoders, decode_at
    from actnet.data.dali import decode_frames
    from actnet.data.sampling import ShardSet

    shards = ShardSet(url, set_name)
    refs = available_decoders()
    pairs = [("DALI cpu", DECODERS[r]) for r in refs]
    if gpu:
        pairs += [("DALI gpu", DECODERS[r]) for r in refs] + [("DALI gpu", "DALI cpu")]
    found: dict[tuple[str, str], list[dict]] = {pair: [] for pair in pairs}
    for i in range(min(samples, len(shards))):
        members = shards.fetch(i)
        video = members[shards.extension]
        n = json.loads(members["json"])["video"]["num_frames"]
        index = sorted({int(round(x)) for x in np.linspace(0, n - 1, min(n, frames_per_sample))})
        decoded = {DECODERS[r]: decode_at(video, index, r).permute(0, 2, 3, 1).numpy() for r in refs}
        decoded["DALI cpu"] = decode_frames(video, index, "cpu")
        if gpu:
            decoded["DALI gpu"] = decode_frames(video, index, "gpu")
        for a, b in pairs:
            found[(a, b)].append(_agreement(decoded[a], decoded[b]))
    rows = []
    for (a, b), parts in found.items():
        frames = sum(p["frames"] for p in parts)
        rows.append(
            {
                "decoder": a,
                "reference": b,
                "samples": len(parts),
                "frames": frames,
                "mean_abs": sum(p["mean_abs"] * p["frames"] for p in parts) / frames,
                "p99_abs": max(p["p99_abs"] for p in parts),
                "max_abs": max(p["max_abs"] for p in parts),
                "same_frame": sum(p["same_frame"] for p in parts),
            }
        )
    return {"rows": rows, "set": set_name, "codec": shards.codec, "gpu": gpu, "machine": machine_description()}


def decoders_markdown(result: dict, source: str) -> str:
    m = result["machine"]
    lines = [
        f"Measured {m['date']} on {result.get('device', m['device'])} ({m['host_cpu']}, {m['cores']} cores), "
        f"actnet {m['actnet']}. The same frames (evenly spaced, by index) of the same samples of {source} "
        f"({result['set']} set, {result['codec']}), decoded to RGB by each decoder (torchcodec and PyAV through "
        "FFmpeg); differences in 8-bit levels. "
        '"Nearest is the same frame" counts decoded frames closest to the reference frame of their own index '
        "(a seek that lands on a neighbour would not be).",
        "",
        "| decoder | reference | samples | frames | mean abs diff | 99th pct (worst sample) | max abs diff "
        "| nearest is the same frame |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['decoder']} | {r['reference']} | {r['samples']} | {r['frames']} | {r['mean_abs']:.2f} | "
        f"{r['p99_abs']:.0f} | {r['max_abs']} | {r['same_frame']}/{r['frames']} |"
        for r in result["rows"]
    ]
    if not result["gpu"]:
        lines += ["", "GPU rows (NVDEC against the CPU decoder): not measured; no GPU machine was lent to this run."]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------ step options

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
    import torch

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
    with _training_at_full_loss(run_cfg) as (trainer, iters, step0, sync):
        batch = {name: _resident(next(it), trainer.device) for name, it in iters.items()}
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
    import torch

    from actnet.models import create_model
    from actnet.train import make_optimizer

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
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            started = time.perf_counter()
            for _ in range(repeat):
                opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
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


# ---------------------------------------------------------------------------------------------- scaling


def benchmark_scaling(listing: SourceListing, workers: int, loader_cfg, batches: int, log=print) -> dict:
    """Prepare seconds against videos, jobs and shards; unlabeled-stream clips/s against DALI threads and shards."""
    from actnet.data.dali import make_loader

    encode = EncodeConfig(short_side=96, speed=8)
    n = len(listing.candidates)
    sizes = sorted({max(4, n // 4), max(4, n // 2), n})
    prepare_rows, loader_rows = [], []
    with tempfile.TemporaryDirectory(prefix="actnet-scaling-") as tmp:

        def run(videos: int, jobs: int, shards: int) -> tuple[float, Path]:
            sub = replace(listing, candidates=listing.candidates[:videos])
            out = Path(tmp) / f"v{videos}-j{jobs}-s{shards}"
            opts = PrepareOptions(
                out=str(out), manifests=None, workers=jobs, encode=encode, shards=ShardConfig(min_shards=shards)
            )
            seconds = timed_prepare(sub, opts)
            prepare_rows.append({"videos": videos, "jobs": jobs, "shards": shards, "seconds": seconds})
            log(f"  prepare {videos:4d} videos, {jobs} jobs, >= {shards:2d} shards: {seconds:6.2f} s")
            return seconds, out / listing.dataset / listing.split

        for videos in sizes:
            run(videos, workers, 4)
        if workers > 1:
            run(n, 1, 4)
        folders = {shards: run(n, workers, shards)[1] for shards in (1, 16)}
        for folder in folders.values():
            for threads in sorted({1, workers}):
                cfg = replace(loader_cfg, num_threads=threads)
                loader = make_loader(str(folder), "train", "unlabeled", cfg)
                count = min(batches, loader.steps_per_epoch)
                seconds, clips, _ = _time_batches(loader, count)
                loader.stream.close()
                row = {
                    "shards": len(loader.stream.shards.info.shards),
                    "threads": threads,
                    "clips_per_s": clips / seconds,
                }
                loader_rows.append(row)
                log(f"  loader  {row['shards']:2d} shards, {threads} threads: {row['clips_per_s']:6.1f} clips/s")
    return {"prepare": prepare_rows, "loader": loader_rows, "encode": asdict(encode), "machine": machine_description()}


def scaling_markdown(result: dict, source: str) -> str:
    m, enc = result["machine"], result["encode"]
    lines = [
        f"Measured {m['date']} on {m['host_cpu']} ({m['cores']} cores, {m['device']}), actnet {m['actnet']}. "
        f"Source: {source}; encode {enc['codec']} speed {enc['speed']}, short side {enc['short_side']}. "
        "Loader: the unlabeled stream (both models, weak + strong), DALI CPU backend.",
        "",
        "| videos | prepare jobs | shards (min) | prepare s | videos/s |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in result["prepare"]:
        lines.append(
            f"| {r['videos']} | {r['jobs']} | {r['shards']} | {r['seconds']:.2f} | {r['videos'] / r['seconds']:.2f} |"
        )
    lines += ["", "| shards | DALI threads | unlabeled clips/s |", "|---:|---:|---:|"]
    lines += [f"| {r['shards']} | {r['threads']} | {r['clips_per_s']:.1f} |" for r in result["loader"]]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------- soak


def soak_in_child(url: str, loader_cfg, epochs: int) -> dict:
    """:func:`benchmark_soak` in a fresh process, so that what earlier benchmarks left in this one does not count."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(benchmark_soak, url, loader_cfg, epochs).result()


def benchmark_soak(url: str, loader_cfg, epochs: int, log=print) -> dict:
    """Host memory of the process while the unlabeled loader runs ``epochs`` whole epochs (a leak shows as growth)."""
    import gc

    import psutil

    from actnet.data.dali import make_loader

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
        loader.stream.close()
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
