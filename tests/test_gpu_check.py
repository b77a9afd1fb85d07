"""tools/gpu_check.sh run in a simulated GPU machine: a PATH without ffmpeg or ffprobe (a GPU machine has neither),
only the shard sets carried there, the gpu tests skipping themselves at the device boundary (no GPU here) and no
nvidia-smi. Every step of the plan must report, none may die for want of ffmpeg, and what comes back must fit
the device tool's limits (at most 8 files, 16 MiB each, 64 MiB in all)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import prepare_options

from actnet.config import SyntheticConfig
from actnet.data.sources import list_folder
from actnet.data.synthetic import generate
from actnet.prepare import prepare

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tools" / "gpu_check.sh"
MISSING_THERE = {"ffmpeg", "ffprobe", "ffplay", "nvidia-smi"}


def plan() -> tuple[list[tuple[str, int]], int]:
    out = subprocess.run(["bash", str(SCRIPT), "plan"], capture_output=True, text=True, check=True).stdout
    rows = [(m[1], int(m[2])) for m in re.finditer(r"^  (\S+)\s+(\d+) s", out, re.M)]
    return [r for r in rows if r[0] not in ("unpack", "carries")], int(re.search(r"^total (\d+) s", out, re.M)[1])


def test_the_plan_fits_in_nine_minutes_of_device_time():
    steps, total = plan()
    assert [name for name, _ in steps][:4] == ["nvidia-smi", "versions", "doctor", "gpu-tests"]  # most valuable first
    assert total <= 9 * 60, f"the GPU check's plan takes {total} s with its carries"
    assert sum(seconds for _, seconds in steps) < total  # the unpacking and the carries are counted


def without_ffmpeg(bin_dir: Path) -> str:
    """A PATH with every program of this one except ffmpeg, ffprobe and nvidia-smi (links in one folder)."""
    bin_dir.mkdir()
    for folder in os.environ["PATH"].split(os.pathsep):
        if not Path(folder).is_dir():
            continue
        for program in Path(folder).iterdir():
            if program.name in MISSING_THERE or (bin_dir / program.name).exists() or not os.access(program, os.X_OK):
                continue
            (bin_dir / program.name).symlink_to(program)
    return str(bin_dir)


@pytest.mark.slow
def test_the_gpu_check_runs_on_a_machine_without_ffmpeg(tmp_path):
    # made here, with ffmpeg, as `pack` makes them: 48 training videos, enough for the loader section's batches
    tree = generate(SyntheticConfig(num_classes=4, videos_per_class=16, frames=16, width=64, height=48), tmp_path / "v")
    prepare(list_folder(tree, 0.25, name="synthetic"), prepare_options(tmp_path / "bench", labeled=("10%",)))
    bench = tmp_path / "bench" / "shards" / "synthetic" / "split1"
    sets = tmp_path / "sets" / "vp9" / "videos"
    sets.mkdir(parents=True)
    (sets / "split1").symlink_to(bench)  # the decoders step reads <set>/videos/split1 for each carried set
    out = tmp_path / "out"
    env = {
        **os.environ,
        "PATH": without_ffmpeg(tmp_path / "bin"),
        "OUT": str(out),
        "PYTHON": sys.executable,
        "PYTHONPATH": str(ROOT),
        "GPU_CHECK_SIMULATE": "1",
        "GPU_CHECK_BUDGET_SCALE": "4",
        "GPU_CHECK_BENCH_DATA": str(bench),
        "ACTNET_GPU_SETS": str(tmp_path / "sets"),
        "CUDA_VISIBLE_DEVICES": "",
    }
    done = subprocess.run(["bash", str(SCRIPT), "run"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = (out / "summary.txt").read_text()
    assert summary.startswith("simulated GPU machine (no ffmpeg)"), summary
    reported = dict(re.findall(r"^(\S+): (.+?) in \d+ s \(budget \d+ s\)$", summary, re.M))
    steps, _ = plan()
    assert list(reported) == [name for name, _ in steps], summary  # every step reports, in the plan's order
    assert reported.pop("nvidia-smi") == "not run (nvidia-smi not found)"
    assert reported.pop("doctor") == "exit 1", summary  # doctor reports the missing ffmpeg as a failed check
    # the step-options ladder compiles the tiny models cold, row after row: on 2 CPU cores it outlasts even the
    # stretched budget, and a step stopped at its budget is what the plan allows for (the next one starts)
    assert reported.pop("step-options") in ("exit 0", "stopped at its budget"), summary
    assert all(what == "exit 0" for what in reported.values()), summary
    with tarfile.open(out / "gpu-check.tar.gz") as archive:
        names = {Path(n).name for n in archive.getnames()}
        logs = {Path(m.name).name: archive.extractfile(m).read().decode() for m in archive.getmembers() if m.isfile()}
    assert {f"{name}.txt" for name, _ in steps} <= names and {"benchmarks.md", "benchmarks.json"} <= names
    assert "ffmpeg" in logs["doctor.txt"] and "not on PATH" in logs["doctor.txt"]
    assert not [name for name, text in logs.items() if "Traceback" in text or "FileNotFoundError" in text]
    records = logs["benchmarks.md"]
    for section in ("loader", "training", "soak", "decoders-vp9"):
        assert f"<!-- {section}:begin -->" in records, section
    assert "no ffmpeg" in logs["benchmarks.json"]  # the machine is described, its missing ffmpeg included
    back = [p for p in out.rglob("*") if p.is_file()]  # what the device tool returns: at most 8 files, 16 MiB each
    assert sorted(p.name for p in back) == ["gpu-check.tar.gz", "summary.txt"]
    assert all(p.stat().st_size < 16 * 2**20 for p in back) and sum(p.stat().st_size for p in back) < 64 * 2**20
