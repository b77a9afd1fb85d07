"""``actnet doctor``: what this installation can do, checked rather than assumed, each problem with its fix.

Every check runs for real: the video backends decode a tiny clip made on the spot by ffmpeg (VP9 and MJPEG
on DALI's CPU decoder; those and H.264 on the GPU decoder when there is a GPU), the encoders are listed by
the ffmpeg on PATH, and object storage is asked for a bucket listing when an endpoint or credentials are set.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"

# What prepare and the loaders use: the encoders prepare offers, and which decoder handles which codec.
ENCODERS = {"libvpx-vp9": "vp9", "libx264": "h264", "mjpeg": "mjpeg"}
# The check clip: large enough for every NVDEC generation in every codec below (actnet.data.codecs.NVDEC_MIN_SIZE),
# so a GPU failure is the GPU's, not the clip's.
CLIP_SIZE = (256, 144)
CLIP_ARGS = {
    "vp9": ("webm", ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-pix_fmt", "yuv420p"]),
    "mjpeg": ("avi", ["-c:v", "mjpeg", "-pix_fmt", "yuvj420p"]),
    "h264": ("mp4", ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]),
}


@dataclass
class Check:
    name: str
    status: str  # ok, warn, fail, skip
    detail: str
    fix: str = ""


def _run(cmd: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def check_python() -> Check:
    v = sys.version_info
    ok = v >= (3, 10)
    fix = "" if ok else "use Python 3.10 or newer for the virtual environment"
    return Check("python", OK if ok else FAIL, f"{platform.python_version()} ({sys.executable})", fix)


def check_torch() -> list[Check]:
    try:
        import torch
    except ImportError:
        return [Check("torch", FAIL, "not importable", "pip install torch (make setup does it)")]
    build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU build"
    checks = [Check("torch", OK, f"{torch.__version__}, {build}")]
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        driver = ""
        if shutil.which("nvidia-smi"):
            r = _run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
            driver = f", driver {r.stdout.strip().splitlines()[0]}" if r.returncode == 0 and r.stdout.strip() else ""
        checks.append(Check("gpu", OK, f"{torch.cuda.device_count()} x {name}{driver}"))
    else:
        fix = "no NVIDIA GPU/driver visible: everything runs on the CPU (slowly); for GPU decode/training " + (
            "install the NVIDIA driver" if torch.version.cuda else "install a CUDA build of torch"
        )
        checks.append(Check("gpu", WARN, "none visible to torch", fix))
    return checks


def check_ffmpeg() -> tuple[list[Check], str | None]:
    ffmpeg, ffprobe = shutil.which("ffmpeg"), shutil.which("ffprobe")
    if not ffmpeg or not ffprobe:
        missing = " and ".join(n for n, p in (("ffmpeg", ffmpeg), ("ffprobe", ffprobe)) if not p)
        return [Check("ffmpeg", FAIL, f"{missing} not on PATH", "apt-get install -y ffmpeg (or put it on PATH)")], None
    version = _run([ffmpeg, "-hide_banner", "-version"]).stdout.split("\n", 1)[0].replace("ffmpeg version ", "")
    listed = _run([ffmpeg, "-hide_banner", "-encoders"]).stdout
    have = {codec for enc, codec in ENCODERS.items() if f" {enc} " in listed}
    missing = [f"{enc} ({codec})" for enc, codec in ENCODERS.items() if codec not in have]
    checks = [Check("ffmpeg", OK, f"{version.split(' Copyright')[0]} at {ffmpeg}")]
    detail = ", ".join(f"{enc} ({codec})" for enc, codec in ENCODERS.items() if codec in have) or "none"
    if missing:
        fix = f"this ffmpeg lacks {', '.join(missing)}: prepare --codec cannot use them; install a full ffmpeg build"
        checks.append(Check("ffmpeg encoders", WARN if "vp9" in have else FAIL, detail, fix))
    else:
        checks.append(Check("ffmpeg encoders", OK, detail))
    return checks, ffmpeg


def _make_clip(ffmpeg: str, codec: str, folder: Path) -> bytes:
    ext, args = CLIP_ARGS[codec]
    path = folder / f"doctor.{ext}"
    width, height = CLIP_SIZE
    cmd = [ffmpeg, "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc=size={width}x{height}:rate=25"]
    r = _run([*cmd, "-frames:v", "10", *args, str(path)])
    if r.returncode != 0:
        raise RuntimeError(r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "ffmpeg failed")
    return path.read_bytes()


def check_dali(ffmpeg: str | None, gpu: bool) -> list[Check]:
    try:
        from actnet.data.codecs import CPU_DECODER_CODECS
        from actnet.data.dali import dali_version, decode_frames
    except ImportError as err:
        return [Check("dali", FAIL, f"not importable ({err})", "pip install nvidia-dali-cuda130 (Linux x86-64/arm64)")]
    checks = [Check("dali", OK, dali_version())]
    devices = ["cpu", "gpu"] if gpu else ["cpu"]
    with tempfile.TemporaryDirectory(prefix="actnet-doctor-") as tmp:
        for codec in CLIP_ARGS:
            for device in devices:
                name = f"decode {codec} ({device})"
                if device == "cpu" and codec not in CPU_DECODER_CODECS:
                    checks.append(Check(name, SKIP, "not supported by DALI's CPU decoder (by design): GPU only"))
                    continue
                if ffmpeg is None:
                    checks.append(Check(name, SKIP, "needs ffmpeg to make the test clip", "install ffmpeg first"))
                    continue
                try:
                    clip = _make_clip(ffmpeg, codec, Path(tmp))
                except RuntimeError as err:
                    checks.append(Check(name, SKIP, f"ffmpeg could not encode the test clip: {err}"))
                    continue
                try:
                    frames = decode_frames(clip, [0, 4, 9], device)
                except Exception as err:  # noqa: BLE001 - any failure is the finding
                    fix = "check the GPU driver supports NVDEC" if device == "gpu" else "reinstall nvidia-dali-cuda130"
                    checks.append(Check(name, FAIL, str(err)[:200], fix))
                    continue
                good = frames.shape == (3, CLIP_SIZE[1], CLIP_SIZE[0], 3)
                detail = f"3 frames {frames.shape[2]}x{frames.shape[1]}" if good else f"unexpected {frames.shape}"
                checks.append(Check(name, OK if good else FAIL, detail, "" if good else "report this DALI build"))
    return checks


def check_s3() -> list[Check]:
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_S3")
    configured = endpoint or os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE")
    configured = configured or (Path.home() / ".aws" / "credentials").exists()
    if not configured:
        return [Check("s3", SKIP, "not configured (AWS_ENDPOINT_URL, credentials): only needed for s3:// URLs")]
    import boto3
    from botocore.config import Config

    where = endpoint or "AWS"
    try:
        session = boto3.session.Session()
        if session.get_credentials() is None:
            return [Check("s3", FAIL, f"{where}: no credentials found", "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")]
        client = session.client("s3", config=Config(connect_timeout=3, read_timeout=5, retries={"max_attempts": 1}))
        buckets = client.list_buckets().get("Buckets", [])
    except Exception as err:  # noqa: BLE001
        text = str(err).splitlines()[0][:200]
        return [Check("s3", FAIL, f"{where}: {text}", "check AWS_ENDPOINT_URL, the network and the credentials")]
    return [Check("s3", OK, f"{where}: reachable, {len(buckets)} bucket(s) listed")]


def run_checks() -> list[Check]:
    checks = [check_python()]
    torch_checks = check_torch()
    checks += torch_checks
    gpu = any(c.name == "gpu" and c.status == OK for c in torch_checks)
    ffmpeg_checks, ffmpeg = check_ffmpeg()
    checks += ffmpeg_checks
    checks += check_dali(ffmpeg, gpu)
    checks += check_s3()
    return checks
