"""What every benchmark section shares: the machine it ran on, the results file, timing a loader's batches.

Each section of ``actnet benchmark all`` is a module of this package (``prepare``, ``loader``, ``decoders``,
``training``, ``options``, ``scaling``, ``soak``) with a ``benchmark_*`` function that returns its figures and a
``*_markdown`` function that writes them up; :mod:`actnet.bench.suite` runs them and :func:`record` puts each
section into the results file (docs/benchmarks.md + .json).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import time
from pathlib import Path

from actnet import code_version
from actnet.errors import ActnetError
from actnet.files import atomic_write

RESULTS_MD = Path("docs/benchmarks.md")


def ffmpeg_description() -> str:
    """The ffmpeg on PATH (its version line), or ``"no ffmpeg"``: a GPU machine has none, and only prepare's
    benchmarks need it, so its absence is described, never raised."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        return "no ffmpeg"
    try:
        done = subprocess.run([ffmpeg, "-version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"ffmpeg at {ffmpeg} did not run ({type(err).__name__})"
    return done.stdout.split("\n")[0].split(" Copyright")[0] or f"ffmpeg at {ffmpeg} printed no version"


def machine_description() -> dict:
    """The date, CPU, core count and versions a figure was measured with."""
    ffmpeg_version = ffmpeg_description()
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
        "actnet": code_version(),
        "device": "CPU only",
    }


def record(section: str, markdown: str, data: dict, results_md: Path = RESULTS_MD) -> None:
    """Replace one section of the results file (between its markers) and its entry in the JSON beside it."""
    begin, end = f"<!-- {section}:begin -->", f"<!-- {section}:end -->"
    text = results_md.read_text() if results_md.exists() else "# Benchmark results\n"
    block = f"{begin}\n{markdown}{end}"
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip("\n") + f"\n\n## {section}\n\n{block}\n"
    atomic_write(results_md, text)
    json_path = results_md.with_suffix(".json")
    all_data = json.loads(json_path.read_text()) if json_path.exists() else {}
    all_data[section] = data
    atomic_write(json_path, json.dumps(all_data, indent=1, sort_keys=True) + "\n")


def _frames_per_clip(views: dict) -> int:
    """Output frames one video contributes to a batch, over all its views (evaluation: V clips each)."""
    total = 0
    for v in views.values():
        shape = v.shape[1:]  # (C, T, H, W) or (V, C, T, H, W)
        total += shape[-3] * (shape[0] if len(shape) == 5 else 1)
    return total


def time_batches(batches, n: int) -> tuple[float, int, int]:
    """(seconds, clips, output frames) for ``n`` batches (:class:`~actnet.data.loader.Batch`) after a warm-up
    batch (pipeline or workers start)."""
    it = iter(batches)
    clips = frames = 0
    try:
        next(it)
        started = time.perf_counter()
        for _ in range(n):
            batch = next(it)
            clips += len(batch)
            frames += len(batch) * _frames_per_clip(batch.views)
    except StopIteration:
        raise ActnetError(
            f"a set is too small to time {n} batches after a warm-up batch; pass fewer --batches"
        ) from None
    return time.perf_counter() - started, clips, frames


def rates(seconds: float, clips: int, frames: int) -> dict:
    """clips/s and frames/s of a timing from :func:`time_batches`."""
    return {"seconds": seconds, "clips": clips, "clips_per_s": clips / seconds, "frames_per_s": frames / seconds}
