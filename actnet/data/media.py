"""Probe, re-encode and verify videos with the system ffmpeg (commands built with ffmpeg-python).

Every source video goes through :func:`encode`, :func:`verify_many` and :func:`accept` (:func:`transcode` for
one video): ffprobe reads its streams, ffmpeg re-encodes the first video stream to the canonical shard format
(constant frame rate, short GOP, yuv420p, capped short side, no audio, rotation applied to the pixels, no
metadata), and the output is decoded once more, several files per ffmpeg run, to prove it decodes and to count
its frames exactly. Anything that cannot be made valid raises :class:`MediaError`, whose message is the
one-line reason that goes into ``rejects.jsonl``.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import ffmpeg
import numpy as np

from actnet.config import EncodeConfig
from actnet.data.codecs import NVDEC_MIN_SIZE, at_least
from actnet.data.storage import is_remote, readable_url

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


# A network source (an s3:// object, through a presigned URL) that stops answering fails within this, in
# microseconds as ffmpeg wants it, instead of holding an encoder until FFMPEG_TIMEOUT_S.
NETWORK_TIMEOUT_US = 30_000_000


def _input_args(src: str | Path) -> tuple[str, dict]:
    """The URL or path ffmpeg/ffprobe open for ``src`` and their input options (a read timeout for networks)."""
    url = readable_url(src)
    return url, ({"rw_timeout": NETWORK_TIMEOUT_US} if "://" in url else {})


def probe(path: str | Path) -> SourceInfo:
    """ffprobe one file (a local path, or an ``s3://`` object read over HTTP); raises MediaError when it holds no
    usable video stream."""
    if not is_remote(str(path)):
        path = Path(path)
        if not path.exists():
            raise MediaError("missing file")
        if path.stat().st_size == 0:
            raise MediaError("empty file (0 bytes)")
    try:
        url, options = _input_args(path)
        info = ffmpeg.probe(url, **options)
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


def stored_size(width: int, height: int, cfg: EncodeConfig) -> tuple[int, int]:
    """The frame size prepare stores a ``width`` x ``height`` video at: :func:`output_size`, then, with
    ``--small-videos upscale``, scaled up to the smallest frame NVDEC decodes in the codec (this wins over a
    ``--short-side`` cap below it)."""
    size = output_size(width, height, cfg.short_side)
    return at_least(*size, NVDEC_MIN_SIZE[cfg.codec]) if cfg.small_videos == "upscale" else size


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
    width, height = stored_size(source.width, source.height, cfg)
    url, options = _input_args(src)
    return (
        ffmpeg.input(url, **options)["v:0"]
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


def _rgb_command(src: str | Path, source: SourceInfo, cfg: EncodeConfig) -> list[str]:
    # YUV -> RGB as close to DALI's decoder as swscale gets (measured: mean 0.35, max 11 levels on VP9 test clips;
    # swscale's default chroma handling differs by 3 / 90)
    rgb = _canonical_video(src, source, cfg).filter("scale", flags=RGB_FLAGS).filter("format", "rgb24")
    return (
        ffmpeg.output(rgb, "pipe:1", format="rawvideo", pix_fmt="rgb24")
        .global_args("-nostdin", "-v", "error")
        .compile()
    )


@dataclass(frozen=True)
class RgbStream:
    """What :func:`open_rgb` decodes: frames of ``width`` x ``height`` at ``fps``, about ``estimated_frames`` of
    them (from the container; None when it does not say: count them with a pass of :meth:`frames`)."""

    src: str
    source: SourceInfo
    cfg: EncodeConfig
    fps: float
    width: int
    height: int
    estimated_frames: int | None

    def frames(self):
        """The frames as uint8 RGB (H, W, 3) arrays, one at a time from ffmpeg's pipe: memory holds one frame,
        whatever the video's length. Each call decodes from the start; errors are :class:`MediaError`.

        The consumer sets the pace (a slow model, a timeline over an hour of video), so there is no limit on the
        whole decode: ffmpeg is stopped only when it gives nothing for ``FFMPEG_STALL_S`` while it is waited on."""
        frame_bytes = self.width * self.height * 3
        proc = subprocess.Popen(
            _rgb_command(self.src, self.source, self.cfg),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        errors: list[bytes] = []
        drain = threading.Thread(target=lambda: errors.append(proc.stderr.read()), daemon=True)
        drain.start()
        watchdog = _Stall(proc, FFMPEG_STALL_S)
        try:
            while True:
                watchdog.waiting()
                chunk = proc.stdout.read(frame_bytes)
                watchdog.done()
                if watchdog.fired:
                    raise MediaError(f"decoding stalled: no frame from ffmpeg for {FFMPEG_STALL_S} s")
                if not chunk:
                    break
                if len(chunk) < frame_bytes:
                    raise MediaError(f"decoding ended inside a frame ({len(chunk)} of {frame_bytes} bytes)")
                yield np.frombuffer(chunk, np.uint8).reshape(self.height, self.width, 3)
            if proc.wait() != 0:
                drain.join(5)
                raise MediaError(f"decoding failed: {_last_line(b''.join(errors))}")
        finally:
            watchdog.stop()
            if proc.poll() is None:  # the caller stopped early, or an error above
                proc.kill()
            proc.wait()
            proc.stdout.close()


FFMPEG_STALL_S = 300  # a streamed decode that gives no frame for this long while waited on is stopped


class _Stall:
    """Kills ``proc`` when a read has waited on it for more than ``limit`` seconds (checked every 0.5 s)."""

    def __init__(self, proc: subprocess.Popen, limit: float):
        self.proc, self.limit, self.since, self.fired = proc, limit, None, False
        self._stop = threading.Event()
        threading.Thread(target=self._watch, daemon=True).start()

    def waiting(self) -> None:
        self.since = time.monotonic()

    def done(self) -> None:
        self.since = None

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            since = self.since
            if since is not None and time.monotonic() - since > self.limit:
                self.fired = True
                self.proc.kill()
                return

    def stop(self) -> None:
        self._stop.set()


def open_rgb(src: str | Path, cfg: EncodeConfig) -> RgbStream:
    """``src`` as prepare would store it (its frame rate and size), to be decoded as a stream of frames."""
    source = probe(src)
    fps = cfg.output_fps(source.fps)
    width, height = stored_size(source.width, source.height, cfg)
    if source.fps is not None and fps == source.fps and source.num_frames:
        estimate = source.num_frames  # no resampling: the container's count
    else:
        estimate = round(source.duration * fps) if source.duration else None
    return RgbStream(str(src), source, cfg, float(fps), width, height, estimate or None)


def decode_rgb(src: str | Path, cfg: EncodeConfig) -> tuple[np.ndarray, float]:
    """Every frame of ``src`` as uint8 RGB (N, H, W, 3), at the frame rate and size prepare would store, and
    that frame rate: raw files get what shards hold, without a shard in between (short clips; ``actnet predict``
    streams with :func:`open_rgb` instead)."""
    source = probe(src)
    fps = cfg.output_fps(source.fps)
    width, height = stored_size(source.width, source.height, cfg)
    result = _run(_rgb_command(src, source, cfg), "decoding")
    frames = np.frombuffer(result.stdout, np.uint8)
    if frames.size == 0 or frames.size % (width * height * 3):
        raise MediaError(f"decoding gave {frames.size} bytes, not whole {width}x{height} frames")
    return frames.reshape(-1, height, width, 3), float(fps)


def decode_frames_at(src: str | Path, indices: list[int]) -> np.ndarray:
    """Frames ``indices`` (in increasing order) of a stored video as uint8 RGB (N, H, W, 3), at its own size
    (contact sheets)."""
    source = probe(src)
    picked = ffmpeg.input(str(src))["v:0"].filter("select", "+".join(f"eq(n,{i})" for i in indices))
    cmd = (
        ffmpeg.output(picked, "pipe:1", format="rawvideo", pix_fmt="rgb24", fps_mode="passthrough")
        .global_args("-nostdin", "-v", "error")
        .compile()
    )
    frames = np.frombuffer(_run(cmd, "decoding").stdout, np.uint8)
    return frames.reshape(-1, source.height, source.width, 3)


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


# ffmpeg's closing report at -loglevel verbose, one line per input stream (FFmpeg 4.x to 6.x)
_INPUT_STATS = re.compile(
    r"Input stream #(\d+):\d+ \(video\): (\d+) packets read \(\d+ bytes\);(?: (\d+) frames decoded;)?"
)
_ERROR_LEVELS = ("[error]", "[fatal]", "[panic]")
_LOG_PREFIX = re.compile(r"^(\[[^\]]*\] )+")  # "[vp9 @ 0x55d0] [error] " before a message


def _count_in_one_run(paths: list[Path], cfg: EncodeConfig) -> list[int]:
    """Decode (``full``) or demux (``packets``) every file in one ffmpeg process; raises on the first problem."""
    cmd = ["ffmpeg", "-nostdin", "-loglevel", "level+verbose"]
    for path in paths:
        cmd += ["-threads", "1", "-i", str(path)]
    for i in range(len(paths)):
        cmd += ["-map", f"{i}:v:0", *(["-c", "copy"] if cfg.verify == "packets" else []), "-f", "null", "-"]
    try:
        result = subprocess.run(cmd, capture_output=True, timeout=FFMPEG_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise MediaError(f"verifying the encoded file timed out after {FFMPEG_TIMEOUT_S} s") from None
    lines = result.stderr.decode(errors="replace").splitlines()
    errors = [_LOG_PREFIX.sub("", line).strip() for line in lines if any(tag in line for tag in _ERROR_LEVELS)]
    if result.returncode != 0 or errors:
        what = "does not decode" if result.returncode != 0 else "decodes with errors"
        if cfg.verify == "packets":
            what = "does not demux" if result.returncode != 0 else "demuxes with errors"
        raise MediaError(f"encoded file {what}: {(errors or [_last_line(result.stderr)])[-1][:300]}")
    counts: dict[int, int] = {}
    for line in lines:
        if m := _INPUT_STATS.search(line):
            counts[int(m[1])] = int(m[2] if cfg.verify == "packets" else m[3] or 0)
    if len(counts) != len(paths):
        raise MediaError("ffmpeg printed no frame count for the encoded file")
    return [counts[i] for i in range(len(paths))]


def verify_many(paths: list[str | Path], cfg: EncodeConfig) -> list[int | MediaError]:
    """Prove encoded files decode (``cfg.verify``: ``full`` decodes every frame, ``packets`` only demuxes) and
    count their frames, one ffmpeg process for all of them: an ffmpeg start costs ~70 ms of CPU, as much as
    decoding a 7-second 320x240 clip. When the shared run fails, each file is verified alone, so the message names
    the failure of the file that has it and its neighbours are unaffected. Returns a count or a MediaError per path.
    """
    paths = [Path(p) for p in paths]
    try:
        return list(_count_in_one_run(paths, cfg))
    except MediaError as err:
        if len(paths) == 1:
            return [err]
    return [verify_many([p], cfg)[0] for p in paths]


def verify(path: str | Path, cfg: EncodeConfig) -> int:
    """Prove one encoded file decodes; return its exact number of frames."""
    (result,) = verify_many([path], cfg)
    if isinstance(result, MediaError):
        raise result
    return result


def encode(src: str | Path, dst: str | Path, cfg: EncodeConfig) -> tuple[SourceInfo, int]:
    """Probe ``src`` and encode it to ``dst``; returns the probe and the number of frames ffmpeg wrote."""
    source = probe(src)
    if source.fps is not None and source.fps < 1 and cfg.fps is None:
        raise MediaError(f"frame rate {float(source.fps):.3f} fps is below 1 fps")
    result = _run(encode_command(src, dst, source, cfg), "ffmpeg")
    if not os.path.exists(dst) or os.path.getsize(dst) == 0:
        raise MediaError("ffmpeg wrote no output")
    return source, _progress_frames(result.stdout)


def accept(source: SourceInfo, encoded_frames: int, decoded: int, cfg: EncodeConfig) -> EncodedInfo:
    """Check an encoded and verified video against its source; raises MediaError with the reject reason."""
    fps = cfg.output_fps(source.fps)
    if decoded != encoded_frames:
        raise MediaError(f"encoded file holds {decoded} frames, ffmpeg reported {encoded_frames}")
    if decoded < cfg.min_frames:
        raise MediaError(f"too short: {decoded} frames (--min-frames {cfg.min_frames})")
    if source.num_frames and source.fps:
        expected = source.num_frames / source.fps * fps
        if decoded < 0.9 * expected - 1:
            raise MediaError(f"truncated or corrupt: {decoded} of about {int(expected)} frames decodable")
    width, height = stored_size(source.width, source.height, cfg)
    return EncodedInfo(codec=cfg.codec, width=width, height=height, fps=fps, num_frames=decoded)


def transcode(src: str | Path, dst: str | Path, cfg: EncodeConfig) -> tuple[SourceInfo, EncodedInfo]:
    """Probe ``src``, encode it to ``dst`` and verify the result; raises MediaError with the reject reason."""
    source, encoded_frames = encode(src, dst, cfg)
    return source, accept(source, encoded_frames, verify(dst, cfg), cfg)
