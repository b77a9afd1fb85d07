"""``actnet benchmark predict``: ``actnet predict``'s peak memory against the video's length.

Videos of each length are made by ffmpeg (``testsrc2`` at 320x240, 25 fps, H.264). Each figure is the peak
resident memory of a fresh process that loads the checkpoint and predicts one video, so it holds nothing else:
the whole-video prediction (K clips evenly spaced, frames decoded as a stream and only the planned ones kept),
the ``--timeline`` prediction (one window at a time), and, for comparison, ``predict`` as it was before it
streamed: every frame decoded into memory, then the same views picked from them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from actnet.bench.common import machine_description

# One measurement in a fresh interpreter: its peak RSS is the measurement's own.
CHILD = """
import json, resource, sys, time
mode, checkpoint, video = sys.argv[1:4]
import torch
from actnet.predict import Predictor, predict_files, predict_timeline
torch.set_grad_enabled(False)
started = time.perf_counter()
if mode == "whole":
    predict_files(checkpoint, [video])
elif mode == "timeline":
    predict_timeline(checkpoint, video)
else:  # predict before it streamed: every frame decoded into memory, then the views picked from them
    from actnet.data.media import decode_rgb
    from actnet.predict import clip_views
    p = Predictor(checkpoint)
    frames, fps = decode_rgb(video, p.encode)
    k, crops = p.cfg.eval.clips, p.cfg.eval.crops
    for role, model in p.models.items():
        model(clip_views(frames, fps, p.clips[role], p.cfg.loader, k, crops))
seconds = time.perf_counter() - started
print(json.dumps({"peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "seconds": seconds}))
"""
MODES = {
    "whole": "predict (K clips, streamed)",
    "timeline": "predict --timeline (streamed)",
    "decode-all": "predict before: all frames in memory",
}


def make_video(path: Path, seconds: float) -> Path:
    if not path.exists():
        cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"]
        cmd += ["-t", f"{seconds:g}", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)]
        subprocess.run(cmd, check=True)
    return path


def benchmark_predict(checkpoint: str, minutes: list[float], work: Path, modes=tuple(MODES), log=print) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for length in minutes:
        video = make_video(work / f"testsrc-{length:g}min.mp4", 60 * length)
        for mode in modes:
            started = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-c", CHILD, mode, checkpoint, str(video)], capture_output=True, text=True
            )
            if proc.returncode != 0:
                raise RuntimeError(f"{mode} on {video}: {proc.stderr.strip().splitlines()[-1:]}")
            found = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append({"minutes": length, "mode": mode, **found, "wall_s": time.perf_counter() - started})
            log(
                f"{length:g} min, {MODES[mode]}: peak RSS {found['peak_rss'] / 2**20:.0f} MiB, {found['seconds']:.1f} s"
            )
    return {"machine": machine_description(), "checkpoint": checkpoint, "rows": rows}


def predict_markdown(result: dict) -> str:
    m = result["machine"]
    lengths = sorted({r["minutes"] for r in result["rows"]})
    lines = [
        f"Measured {m['date']} on {m['host_cpu']} ({m['cores']} cores), actnet {m['actnet']}. Videos: ffmpeg "
        "testsrc2, 320x240 at 25 fps, H.264; checkpoint: the demo's tiny models (64 px). Peak RSS of a fresh "
        "process that loads the checkpoint and handles one video (Python, torch and the models included).",
        "",
        "| what | " + " | ".join(f"{x:g} min: peak RSS | time" for x in lengths) + " |",
        "|---|" + "---:|---:|" * len(lengths),
    ]
    for mode, label in MODES.items():
        cells = []
        for length in lengths:
            row = next((r for r in result["rows"] if r["minutes"] == length and r["mode"] == mode), None)
            cells += [f"{row['peak_rss'] / 2**20:.0f} MiB", f"{row['seconds']:.1f} s"] if row else ["-", "-"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
