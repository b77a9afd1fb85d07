"""``actnet benchmark loader``: the DALI loader's clips/s against the DALI-free loaders (torchcodec, PyAV) on the
same shards, samples and frames in the same run, and the ways of reading encoded samples into DALI."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np

from actnet.bench.baseline import DECODERS, available_decoders, baseline_loader
from actnet.bench.common import machine_description, rates, time_batches
from actnet.data.loader import make_loader, sample_stream
from actnet.data.sampling import ShardSet


def _byte_batches(items, batch_size: int):
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
    import webdataset as wds

    from actnet.data.dali import time_reading

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
    baselines = available_decoders(required=False)  # none on a bare GPU machine: DALI's figures alone
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
        row = {"stream": kind, "set": set_name, "variant": variant, "batch": dali.batch_size, "batches": n}
        row["dali"] = rates(*time_batches(dali, n))
        dali.close()
        row["baselines"] = {}
        for decoder in baselines:
            stream = sample_stream(ShardSet(url, set_name), kind, stream_cfg, fetch_threads=0)
            loader = baseline_loader(stream, stream_cfg, workers, decoder)
            row["baselines"][decoder] = rates(*time_batches(loader, n))
        row["best"] = max(row["baselines"], key=lambda d: row["baselines"][d]["clips_per_s"], default=None)
        best = row["baselines"][row["best"]]["clips_per_s"] if baselines else None
        row["speedup"] = row["dali"]["clips_per_s"] / best if best else None
        others = "   ".join(f"{d} {r['clips_per_s']:7.1f}" for d, r in row["baselines"].items())
        ratio = f"x{row['speedup']:.2f}" if baselines else ""
        log(f"  {kind:9s} DALI {row['dali']['clips_per_s']:7.1f} clips/s   {others}   {ratio}")
        rows.append(row)
    readers = benchmark_readers(url, "train", 8, 2 * batches, cfg.num_threads)
    for name, rate in readers.items():
        log(f"  reading: {rate:8.0f} samples/s  {name}")
    machine = machine_description()
    if dali.device == "gpu":
        import torch

        machine["device"] = torch.cuda.get_device_name()
    return {"streams": rows, "readers": readers, "baselines": baselines, "machine": machine}


def loader_markdown(result: dict, cfg, source: str, workers: int) -> str:
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
        "| "
        + " | ".join(["stream", "batch", "DALI clips/s", "DALI frames/s"] + [f"{n} clips/s" for n in names])
        + " | DALI / best alternative |",
        "|---|---:|---:|---:|" + "---:|" * len(names) + "---:|",
    ]
    for r in result["streams"]:
        d = r["dali"]
        label = f"{r['stream']} ({r['set']}{', ' + r['variant'] if r.get('variant') else ''})"
        cells = [label, str(r["batch"]), f"{d['clips_per_s']:.1f}", f"{d['frames_per_s']:.0f}"]
        cells += [f"{r['baselines'][b]['clips_per_s']:.1f}" for b in result["baselines"]]
        cells.append(f"{r['speedup']:.2f} ({DECODERS[r['best']]})" if r["best"] else "n/a (no DALI-free decoder here)")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Reading encoded samples into a DALI pipeline (no decoding), train set:", ""]
    lines += ["| reader | samples/s |", "|---|---:|"]
    lines += [f"| {name} | {rate:.0f} |" for name, rate in result["readers"].items()]
    return "\n".join(lines) + "\n"
