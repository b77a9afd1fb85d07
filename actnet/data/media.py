"""Probe, re-encode and verify one video with the system ffmpeg (commands built with ffmpeg-python).

Every source video goes through :func:`transcode`: ffprobe reads its streams, ffmpeg re-encodes the first video
stream to the canonical shard format (constant frame rate, short GOP, yuv420p, capped short side, no audio,
rotation applied to the pixels, no metadata), and the output is decoded once more to prove it decodes and to
count its frames exactly. Anything that cannot be made valid raises :class:`MediaError`, whose message is the
one-line reason that goes into ``rejects.jsonl``.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import ffmpeg
import numpy as np

from actnet.config import EncodeConfig

FFMPEG_TIMEOUT_S = 1800
# libvpx-vp9 cpu-used -> x264 preset, so --speed means "faster, larger" for every codec.
X264_PRESETS = ("veryslow", "slower", "slow", "medium", "fast", "faster", "veryfast", "superfast", "ultrafast")


class MediaError(Exception):
    """A video that cannot be made valid; the message is the reject reason."""


@dataclass(frozen=True)
class SourceInfo:
    """What ffprobe says about a source video (display size: rotation already applied)."""

    codec: str
    width: int
    height: int
    fps: Fraction | None  # average frame rate; None when the container does not say
    num_frames: int | None  # from the container, or stream duration x fps; None when unknown
    duration: float | None  # seconds
    rotation: int  # 0, 90, 180 or 270 degrees

    def manifest_fields(self) -> dict:
        return {
            "num_frames": self.num_frames,
            "fps": None if self.fps is None else round(float(self.fps), 6),
            "width": self.width,
            "height": self.height,
            "duration": None if self.duration is None else round(self.duration, 6),
        }


@dataclass(frozen=True)
class EncodedInfo:
    """The encoded video as it is stored in a shard."""

    codec: str
    width: int
    height: int
    fps: Fraction
    num_frames: int

    def as_dict(self) -> dict:
        return {
            "codec": self.codec,
            "width": self.width,
            "height": self.height,
            "fps": round(float(self.fps), 6),
            "fps_rational": f"{self.fps.numerator}/{self.fps.denominator}",
            "num_frames": self.num_frames,
        }


def _ratio(text: str | None) -> Fraction | None:
    try:
        num, _, den = (text or "").partition("/")
        value = Fraction(int(num), int(den or 1))
    except (ValueError, ZeroDivisionError):
        return None
    return value if value > 0 else None


def _seconds(value) -> float | None:
    """ffprobe durations: '12.5' or, in Matroska tags, '00:00:12.500000000'."""
    if value in (None, "", "N/A"):
        return None
    text = str(value)
    try:
        if ":" in text:
            hours, minutes, seconds = text.split(":")
            result = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        else:
            result = float(text)
    except ValueError:
        return None
    return result if math.isfinite(result) and result > 0 else None


def _rotation(stream: dict) -> int:
    degrees = 0.0
    for side_data in stream.get("side_data_list", []) or []:
        if "rotation" in side_data:
            degrees = float(side_data["rotation"])
    if not degrees and "rotate" in (stream.get("tags") or {}):
        degrees = -float(stream["tags"]["rotate"])
    return int(round(-degrees / 90.0)) % 4 * 90


def probe(path: str | Path) -> SourceInfo:
    """ffprobe one file; raises MediaError when it holds no usable video stream."""
    path = Path(path)
    if not path.exists():
        raise MediaError("missing file")
    if path.stat().st_size == 0:
        raise MediaError("empty file (0 bytes)")
    try:
        info = ffmpeg.probe(str(path))
    except ffmpeg.Error as err:
        raise MediaError(f"unreadable: {_last_line(err.stderr)}") from None
    videos = [
        s
        for s in info.get("streams", [])
        if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")
    ]
    if not videos:
        raise MediaError("no video stream (audio-only or data file)")
    stream = videos[0]
    width, height = int(stream.get("width") or 0), int(stream.get("height") or 0)
    if width <= 0 or height <= 0:
        raise MediaError("video stream has no frame size")
    rotation = _rotation(stream)
    if rotation in (90, 270):
        width, height = height, width
    fps = _ratio(stream.get("avg_frame_rate")) or _ratio(stream.get("r_frame_rate"))
    if fps is not None and fps > 1000:  # a timebase, not a frame rate (seen in some mkv/flv files)
        fps = None
    duration = _seconds(stream.get("duration")) or _seconds((stream.get("tags") or {}).get("DURATION"))
    num_frames = int(stream["nb_frames"]) if str(stream.get("nb_frames", "")).isdigit() else None
    if not num_frames and duration and fps:
        num_frames = int(round(duration * fps))
    if duration is None:
        duration = _seconds((info.get("format") or {}).get("duration"))
    return SourceInfo(
        codec=str(stream.get("codec_name", "unknown")),
        width=width,
        height=height,
        fps=fps,
        num_frames=num_frames or None,
        duration=duration,
        rotation=rotation,
    )


def output_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """Cap the shorter side at ``short_side`` keeping the aspect ratio; both sides even; never upscale."""
    short, long = min(width, height), max(width, height)
    target = short if short_side <= 0 else min(short, short_side)
    target = max(2, target - target % 2)
    other = max(2, int(round(long * target / short / 2)) * 2)
    return (target, other) if width <= height else (other, target)


def _encoder_args(cfg: EncodeConfig) -> dict:
    q = cfg.quality
    if cfg.codec == "vp9":
        args = {"vcodec": "libvpx-vp9", "b:v": 0, "g": cfg.gop, "row-mt": 1, "cpu-used": cfg.speed}
        args["deadline"] = "realtime" if cfg.speed >= 6 else "good"
        args.update({"lossless": 1} if q == 0 else {"crf": q})
        return args | {"pix_fmt": "yuv420p"}
    if cfg.codec == "h264":
        return {
            "vcodec": "libx264",
            "crf": q,
            "preset": X264_PRESETS[cfg.speed],
            "g": cfg.gop,
            "bf": 0,
            "pix_fmt": "yuv420p",
            "movflags": "+faststart",
        }
    return {"vcodec": "mjpeg", "q:v": max(2, q), "pix_fmt": "yuvj420p"}


def _canonical_video(src: str | Path, source: SourceInfo, cfg: EncodeConfig):
    """The first video stream at prepare's frame rate and size (the filter chain every stored video went through)."""
    fps = cfg.output_fps(source.fps)
    width, height = output_size(source.width, source.height, cfg.short_side)
    return (
        ffmpeg.input(str(src))["v:0"]
        .filter("fps", fps=f"{fps.numerator}/{fps.denominator}")
        .filter("scale", width, height)
        .filter("setsar", 1)
    )


def encode_command(src: str | Path, dst: str | Path, source: SourceInfo, cfg: EncodeConfig) -> list[str]:
    """The ffmpeg command line that re-encodes ``src`` to ``dst`` (used by prepare and by its benchmark)."""
    output = ffmpeg.output(
        _canonical_video(src, source, cfg),
        str(dst),
        threads=cfg.threads,
        map_metadata=-1,
        fflags="+bitexact",
        **{"flags:v": "+bitexact"},
        **_encoder_args(cfg),
    )
    return output.global_args("-nostdin", "-y", "-v", "error", "-nostats", "-progress", "pipe:1").compile()


RGB_FLAGS = "gauss+full_chroma_inp+full_chroma_int+accurate_rnd"


def decode_rgb(src: str | Path, cfg: EncodeConfig) -> tuple[np.ndarray, float]:
    """Every frame of ``src`` as uint8 RGB (N, H, W, 3), at the frame rate and size prepare would store, and
    that frame rate: raw files get what shards hold, without a shard in between (``actnet predict``)."""
    source = probe(src)
    fps = cfg.output_fps(source.fps)
    width, height = output_size(source.width, source.height, cfg.short_side)
    # YUV -> RGB as close to DALI's decoder as swscale gets (measured: mean 0.35, max 11 levels on VP9 test clips;
    # swscale's default chroma handling differs by 3 / 90)
    rgb = _canonical_video(src, source, cfg).filter("scale", flags=RGB_FLAGS).filter("format", "rgb24")
    cmd = (
        ffmpeg.output(rgb, "pipe:1", format="rawvideo", pix_fmt="rgb24")
        .global_args("-nostdin", "-v", "error")
        .compile()
    )
    result = _run(cmd, "decoding")
    frames = np.frombuffer(result.stdout, np.uint8)
    if frames.size == 0 or frames.size % (width * height * 3):
        raise MediaError(f"decoding gave {frames.size} bytes, not whole {width}x{height} frames")
    return frames.reshape(-1, height, width, 3), float(fps)


def _last_line(stderr: bytes | str | None) -> str:
    text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else (stderr or "")
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no message"


def _run(cmd: list[str], what: str) -> subprocess.CompletedProcess:
    try:
        result = subprocess.run(cmd, capture_output=True, timeout=FFMPEG_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise MediaError(f"{what} timed out after {FFMPEG_TIMEOUT_S} s") from None
    if result.returncode != 0:
        raise MediaError(f"{what} failed: {_last_line(result.stderr)}")
    return result


def _progress_frames(stdout: bytes) -> int:
    """The last ``frame=N`` of ffmpeg's -progress output."""
    frames = 0
    for line in stdout.decode(errors="replace").splitlines():
        if line.startswith("frame="):
            frames = int(line[6:].strip() or 0)
    return frames


def verify(path: str | Path, cfg: EncodeConfig) -> int:
    """Prove an encoded file decodes; return its exact number of frames."""
    if cfg.verify == "full":
        cmd = ["ffmpeg", "-nostdin", "-v", "error", "-threads", "1", "-i", str(path), "-map", "0:v:0"]
        result = _run(cmd + ["-f", "null", "-", "-nostats", "-progress", "pipe:1"], "decoding the encoded file")
        if result.stderr.strip():
            raise MediaError(f"encoded file decodes with errors: {_last_line(result.stderr)}")
        return _progress_frames(result.stdout)
    cmd = ["ffprobe", "-v", "error", "-count_packets", "-select_streams", "v:0"]
    result = _run(cmd + ["-show_entries", "stream=nb_read_packets", "-of", "json", str(path)], "ffprobe")
    streams = json.loads(result.stdout or b"{}").get("streams") or [{}]
    return int(streams[0].get("nb_read_packets") or 0)


def transcode(src: str | Path, dst: str | Path, cfg: EncodeConfig) -> tuple[SourceInfo, EncodedInfo]:
    """Probe ``src``, encode it to ``dst`` and verify the result; raises MediaError with the reject reason."""
    source = probe(src)
    fps = cfg.output_fps(source.fps)
    if source.fps is not None and source.fps < 1 and cfg.fps is None:
        raise MediaError(f"frame rate {float(source.fps):.3f} fps is below 1 fps")
    result = _run(encode_command(src, dst, source, cfg), "ffmpeg")
    encoded_frames = _progress_frames(result.stdout)
    if not os.path.exists(dst) or os.path.getsize(dst) == 0:
        raise MediaError("ffmpeg wrote no output")
    decoded = verify(dst, cfg)
    if decoded != encoded_frames:
        raise MediaError(f"encoded file holds {decoded} frames, ffmpeg reported {encoded_frames}")
    if decoded < cfg.min_frames:
        raise MediaError(f"too short: {decoded} frames (--min-frames {cfg.min_frames})")
    if source.num_frames and source.fps:
        expected = source.num_frames / source.fps * fps
        if decoded < 0.9 * expected - 1:
            raise MediaError(f"truncated or corrupt: {decoded} of about {int(expected)} frames decodable")
    width, height = output_size(source.width, source.height, cfg.short_side)
    return source, EncodedInfo(codec=cfg.codec, width=width, height=height, fps=fps, num_frames=decoded)
