"""Benchmarks that print figures and record them in the project's results file (docs/benchmarks.md + .json).

``actnet benchmark prepare``: prepare's throughput against the bare ffmpeg encode of the same videos, in the
same run, with the same parallelism and encoder settings. The bare encode runs exactly the ffmpeg command
prepare runs for each video (``media.encode_command``), so the ratio is prepare's own overhead: probing,
verifying the output, writing tars, indexes, manifests and info files.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path

from actnet import __version__
from actnet.config import EncodeConfig, PrepareOptions, ShardConfig, SyntheticConfig
from actnet.data.media import encode_command, probe
from actnet.data.sources import SourceListing, list_folder

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
    rows: dict[str, list[float]] = {"ffmpeg": [], "prepare": [], "prepare_packets": []}
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
                        out=str(work), manifests=None, workers=workers, encode=enc, shards=ShardConfig()
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
        "ratio": {
            "prepare": best["prepare"] / best["ffmpeg"],
            "prepare_packets": best["prepare_packets"] / best["ffmpeg"],
        },
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
        f"| actnet prepare, --verify full (default) | {s['prepare']:.2f} | {v['prepare']:.2f} | "
        f"{result['frames'] / s['prepare']:.0f} | {r['prepare']:.2f} |",
        f"| actnet prepare, --verify packets | {s['prepare_packets']:.2f} | {v['prepare_packets']:.2f} | "
        f"{result['frames'] / s['prepare_packets']:.0f} | {r['prepare_packets']:.2f} |",
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
