"""The decoders section: DALI's CPU decoder and NVDEC against FFmpeg (through torchcodec and PyAV) on the same
frames: how far apart their pixels are, and whether each returns the frame asked for."""

from __future__ import annotations

import json

import numpy as np

from actnet.bench.baseline import DECODERS, available_decoders, decode_at
from actnet.bench.common import machine_description
from actnet.data.codecs import CPU_DECODER_CODECS
from actnet.data.dali import decode_frames
from actnet.data.sampling import ShardSet
from actnet.errors import ActnetError


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
    """DALI's CPU decoder and (with a GPU) NVDEC against FFmpeg's decoders (through torchcodec and/or PyAV, where
    one loads) and against each other, on the same frames of the same shard samples, the last frame included: the
    decoders should differ only by colour-conversion rounding."""
    shards = ShardSet(url, set_name)
    refs = available_decoders(required=not gpu)  # on a GPU, NVDEC against the CPU decoder is enough
    cpu = shards.codec in CPU_DECODER_CODECS
    mine = (["DALI cpu"] if cpu else []) + (["DALI gpu"] if gpu else [])
    pairs = [(a, DECODERS[r]) for a in mine for r in refs] + ([("DALI gpu", "DALI cpu")] if gpu and cpu else [])
    if not pairs:
        raise ActnetError(f"{url}: nothing to compare {shards.codec} decoding with here")
    found: dict[tuple[str, str], list[dict]] = {pair: [] for pair in pairs}
    for i in range(min(samples, len(shards))):
        members = shards.fetch(i)
        video = members[shards.extension]
        n = json.loads(members["json"])["video"]["num_frames"]
        index = sorted({int(round(x)) for x in np.linspace(0, n - 1, min(n, frames_per_sample))})
        decoded = {DECODERS[r]: decode_at(video, index, r).permute(0, 2, 3, 1).numpy() for r in refs}
        for name in mine:
            decoded[name] = decode_frames(video, index, name.split()[-1])
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
