"""``actnet benchmark prepare``: prepare's throughput against the bare ffmpeg encode of the same videos, in the same
run, with the same parallelism and encoder settings. The bare encode runs exactly the ffmpeg command prepare runs
for each video (``media.encode_command``), so the ratio is prepare's own overhead: probing, verifying the output,
writing tars, indexes, manifests and info files.
"""

from __future__ import annotations

import resource
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path

from actnet.bench.common import machine_description
from actnet.config import EncodeConfig, PrepareOptions, ShardConfig, SyntheticConfig
from actnet.data import synthetic
from actnet.data.media import encode_command, probe, verify_many
from actnet.data.sources import SourceListing, list_folder
from actnet.prepare import prepare


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
    """Seconds one ``prepare`` of ``listing`` takes (every video must be encoded, none rejected)."""
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


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def profile_prepare(listing: SourceListing, encode: EncodeConfig, workers: int, verify_batch: int) -> dict:
    """CPU seconds of each of prepare's stages over every video, each stage run alone (one at a time, so the
    children's CPU is that stage's): ffprobe on the sources, the encode, the verifying decode (full) or demux
    (packets) in batches as prepare runs them, and, from a whole prepare, the CPU of prepare's own process
    (Python: tars, indexes, hashes, manifests) and of all its children together."""
    cpu: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="actnet-profile-") as tmp:
        before = _children_cpu()
        sources = [probe(c.path) for c in listing.candidates]
        cpu["probe"] = _children_cpu() - before
        outputs = [Path(tmp) / f"{c.key}.{encode.extension}" for c in listing.candidates]
        before = _children_cpu()
        for c, info, dst in zip(listing.candidates, sources, outputs):
            subprocess.run(encode_command(c.path, dst, info, encode), capture_output=True, check=True)
        cpu["encode"] = _children_cpu() - before
        for mode in ("full", "packets"):
            before = _children_cpu()
            for i in range(0, len(outputs), verify_batch):
                verify_many(outputs[i : i + verify_batch], replace(encode, verify=mode))
            cpu[f"verify_{mode}"] = _children_cpu() - before
        work = Path(tmp) / "prepare"
        opts = PrepareOptions(out=str(work), manifests=None, workers=workers, encode=encode, shards=ShardConfig())
        before, own = _children_cpu(), time.process_time()
        timed_prepare(listing, opts)
        cpu["prepare_children"], cpu["prepare_own"] = _children_cpu() - before, time.process_time() - own
    return cpu


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
        "cpu": profile_prepare(listing, encode, workers, PrepareOptions.verify_batch),
        "machine": machine_description(),
    }


def synthetic_listing_for_benchmark(
    videos: int, frames: int, width: int, height: int, cache: Path | None, workers: int
) -> SourceListing:
    """``videos`` synthetic sources of the given length and size (UCF-101-like by default), rendered once."""
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
    if "cpu" in result:
        lines += ["", *profile_markdown(result["cpu"])]
    return "\n".join(lines) + "\n"


def profile_markdown(cpu: dict) -> list[str]:
    """Where prepare's CPU goes, against the encode's: the stages' rows, then prepare's whole."""
    enc = cpu["encode"]
    rows = [
        ("the encode (ffmpeg, one run per video)", cpu["encode"]),
        ("ffprobe on each source (one process per video)", cpu["probe"]),
        ("verifying decode, --verify full (batched)", cpu["verify_full"]),
        ("verifying demux, --verify packets (batched)", cpu["verify_packets"]),
        ("prepare's own process (Python: tars, indexes, hashes, manifests)", cpu["prepare_own"]),
        ("prepare, every ffmpeg/ffprobe it ran (--verify full)", cpu["prepare_children"]),
    ]
    total = cpu["prepare_own"] + cpu["prepare_children"]
    return [
        "Where the CPU goes (each stage run alone over every video; CPU seconds of all cores, so a ratio here is "
        "what the wall-clock ratio tends to when every core is busy):",
        "",
        "| stage | CPU seconds | x the encode |",
        "|---|---:|---:|",
        *(f"| {name} | {seconds:.2f} | {seconds / enc:.3f} |" for name, seconds in rows),
        f"| prepare in all (own + children) | {total:.2f} | {total / enc:.3f} |",
    ]
