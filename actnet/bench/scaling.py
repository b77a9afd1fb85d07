"""The scaling section: prepare's time against videos, jobs and shards; the unlabeled stream's clips/s against DALI
threads and shards."""

from __future__ import annotations

import tempfile
from dataclasses import asdict, replace
from pathlib import Path

from actnet.bench.common import machine_description, time_batches
from actnet.bench.prepare import timed_prepare
from actnet.config import EncodeConfig, PrepareOptions, ShardConfig
from actnet.data.loader import make_loader
from actnet.data.sampling import ShardSet
from actnet.data.sources import SourceListing


def benchmark_scaling(listing: SourceListing, workers: int, loader_cfg, batches: int, log=print) -> dict:
    """Prepare seconds against videos, jobs and shards; unlabeled-stream clips/s against DALI threads and shards."""
    encode = EncodeConfig(short_side=96, speed=8, small_videos="keep")
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
                seconds, clips, _ = time_batches(loader, count)
                loader.close()
                row = {
                    "shards": len(ShardSet(str(folder), "train").info.shards),
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
