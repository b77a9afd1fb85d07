"""Probe / re-encode / verify on real files made by ffmpeg, one test per kind of bad input real data has."""

import json
import os
import subprocess
from dataclasses import replace
from fractions import Fraction

import pytest
from conftest import TEST_ENCODE, ffmpeg, make_video

from actnet.config import EncodeConfig
from actnet.data.codecs import NVDEC_MIN_SIZE, decoders_for
from actnet.data.media import MediaError, encode, output_size, probe, stored_size, transcode, verify_many


def ffprobe_json(path, *args) -> dict:
    cmd = ["ffprobe", "-v", "error", "-of", "json", *args, str(path)]
    return json.loads(subprocess.run(cmd, capture_output=True, check=True).stdout)


def packet_times(path) -> list[float]:
    info = ffprobe_json(path, "-select_streams", "v:0", "-show_entries", "packet=pts_time")
    return sorted(float(p["pts_time"]) for p in info["packets"])


def test_output_size_caps_short_side_keeps_aspect_and_never_upscales():
    assert output_size(1920, 1080, 320) == (568, 320)
    assert output_size(1080, 1920, 320) == (320, 568)
    assert output_size(320, 240, 320) == (320, 240)  # already small: unchanged
    assert output_size(171, 128, 320) == (172, 128)  # odd sides become even
    assert output_size(640, 480, 0) == (640, 480)


def test_videos_smaller_than_gpus_decode_are_scaled_up_to_their_minimum_or_kept():
    upscale = EncodeConfig(short_side=96)  # the default policy
    assert stored_size(128, 96, upscale) == (172, 128)  # VP9 needs 128x128 on every NVDEC generation
    assert stored_size(96, 128, upscale) == (128, 172)  # portrait alike
    assert stored_size(1920, 1080, upscale) == (228, 128)  # the cap to 96 is below the minimum: the minimum wins
    assert stored_size(320, 240, EncodeConfig()) == (320, 240)  # large enough: unchanged
    assert stored_size(64, 48, EncodeConfig(codec="h264")) == (64, 48)  # H.264 decodes from 48x16
    assert stored_size(40, 30, EncodeConfig(codec="mjpeg")) == (86, 64)
    assert stored_size(128, 96, EncodeConfig(short_side=96, small_videos="keep")) == (128, 96)
    for codec, (w, h) in NVDEC_MIN_SIZE.items():
        assert "gpu" in decoders_for(codec, w, h)
        assert "gpu" not in decoders_for(codec, w - 2, h) and "gpu" not in decoders_for(codec, w, h - 2)
    assert decoders_for("vp9", 128, 96) == ["cpu"] and decoders_for("vp9", 172, 128) == ["cpu", "gpu"]
    assert decoders_for("h264", 640, 480) == ["gpu"]


def test_a_small_video_is_stored_at_the_gpu_minimum(tmp_path):
    src = make_video(tmp_path / "small.mp4", frames=12, size="64x48")
    _, video = transcode(src, tmp_path / "up.webm", EncodeConfig(short_side=48, speed=8))
    assert (video.width, video.height) == (172, 128)
    stream = ffprobe_json(tmp_path / "up.webm", "-show_streams")["streams"][0]
    assert (stream["width"], stream["height"]) == (172, 128)
    _, kept = transcode(src, tmp_path / "kept.webm", TEST_ENCODE)
    assert (kept.width, kept.height) == (64, 48)


def test_canonical_output_cfr_short_gop_no_audio(tmp_path):
    src = make_video(tmp_path / "in.mp4", frames=40, size="96x64", extra=["-f", "mp4"])
    ffmpeg(
        "-i",
        str(src),
        "-f",
        "lavfi",
        "-i",
        "sine=duration=2",
        "-c:v",
        "copy",
        "-c:a",
        "aac",
        "-shortest",
        str(tmp_path / "with_audio.mp4"),
    )
    source, encoded = transcode(tmp_path / "with_audio.mp4", tmp_path / "out.webm", replace(TEST_ENCODE, gop=16))
    assert (source.width, source.height, source.fps, source.num_frames) == (96, 64, Fraction(25), 40)
    assert (encoded.width, encoded.height, encoded.num_frames, encoded.codec) == (72, 48, 40, "vp9")
    streams = ffprobe_json(tmp_path / "out.webm", "-show_streams")["streams"]
    assert [s["codec_type"] for s in streams] == ["video"]  # audio dropped
    assert streams[0]["codec_name"] == "vp9" and streams[0]["pix_fmt"] == "yuv420p"
    keyframes = ffprobe_json(
        tmp_path / "out.webm", "-select_streams", "v:0", "-skip_frame", "nokey", "-show_entries", "frame=pts_time"
    )["frames"]
    key_times = [float(f["pts_time"]) for f in keyframes]
    assert len(key_times) >= 3 and max(b - a for a, b in zip(key_times, key_times[1:])) <= 16 / 25 + 1e-6


def test_unreadable_file_is_rejected(tmp_path):
    bad = tmp_path / "garbage.avi"
    bad.write_bytes(os.urandom(5000))
    with pytest.raises(MediaError, match="^unreadable"):
        transcode(bad, tmp_path / "out.webm", TEST_ENCODE)


def test_zero_length_and_missing_files_are_rejected(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(MediaError, match=r"empty file \(0 bytes\)"):
        probe(tmp_path / "empty.mp4")
    with pytest.raises(MediaError, match="missing file"):
        probe(tmp_path / "nowhere.mp4")


def test_truncated_file_is_rejected(tmp_path):
    src = make_video(tmp_path / "full.avi", frames=50, size="96x64", pattern="testsrc2")
    data = src.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) * 2 // 5])
    with pytest.raises(MediaError, match="truncated or corrupt"):
        transcode(cut, tmp_path / "out.webm", TEST_ENCODE)


@pytest.mark.parametrize("mode", ["full", "packets"])
def test_verify_many_names_the_damaged_files_and_counts_the_rest(tmp_path, mode):
    """One ffmpeg run verifies a batch; a damaged file gets its own reason and its neighbours their counts."""
    good = []
    for i, frames in enumerate((30, 41)):
        src = make_video(tmp_path / f"src{i}.mp4", frames=frames, size="96x64", extra=["-f", "mp4"])
        good.append(tmp_path / f"good{i}.webm")
        encode(src, good[-1], TEST_ENCODE)
    data = bytearray(good[1].read_bytes())
    cut, garbled = tmp_path / "cut.webm", tmp_path / "garbled.webm"
    cut.write_bytes(data[: len(data) // 2])
    n = len(data)
    data[n // 3 : n // 3 + n // 4] = b"\xff" * (n // 4)  # spans several blocks: breaks the container too
    garbled.write_bytes(data)
    cfg = replace(TEST_ENCODE, verify=mode)
    assert verify_many(good, cfg) == [30, 41]
    results = verify_many([good[0], cut, good[1], garbled], cfg)
    assert results[0] == 30 and results[2] == 41
    for damaged in (results[1], results[3]):
        assert isinstance(damaged, MediaError) and str(damaged).startswith("encoded file ")


def test_audio_only_file_is_rejected(tmp_path):
    audio = tmp_path / "song.mp4"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac", str(audio))
    with pytest.raises(MediaError, match="no video stream"):
        transcode(audio, tmp_path / "out.webm", TEST_ENCODE)


def test_too_short_video_is_rejected(tmp_path):
    src = make_video(tmp_path / "short.mp4", frames=4)
    with pytest.raises(MediaError, match=r"too short: 4 frames"):
        transcode(src, tmp_path / "out.webm", TEST_ENCODE)


def test_high_frame_rate_is_resampled_to_max_fps(tmp_path):
    src = make_video(tmp_path / "fast.mp4", frames=60, fps="120")
    source, encoded = transcode(src, tmp_path / "out.webm", TEST_ENCODE)
    assert source.fps == 120
    assert encoded.fps == 60 and encoded.num_frames == 30
    times = packet_times(tmp_path / "out.webm")
    assert len(times) == 30 and all(abs((b - a) - 1 / 60) < 2e-3 for a, b in zip(times, times[1:]))


def test_ntsc_rate_is_kept_exactly(tmp_path):
    src = make_video(tmp_path / "ntsc.mp4", frames=30, fps="30000/1001")
    _, encoded = transcode(src, tmp_path / "out.webm", TEST_ENCODE)
    assert encoded.fps == Fraction(30000, 1001)
    assert encoded.as_dict()["fps_rational"] == "30000/1001" and encoded.num_frames == 30


def test_variable_frame_rate_becomes_constant(tmp_path):
    src = make_video(tmp_path / "cfr.mp4", frames=40)
    vfr = tmp_path / "vfr.mkv"
    # Uneven frame durations: every third frame lasts three times as long.
    ffmpeg(
        "-i",
        str(src),
        "-vf",
        "setpts='(N+2*floor(N/3))/(25*TB)'",
        "-fps_mode",
        "passthrough",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        str(vfr),
    )
    gaps = [round(b - a, 3) for a, b in zip(packet_times(vfr), packet_times(vfr)[1:])]
    assert len(set(gaps)) > 1  # the source really is variable
    source, encoded = transcode(vfr, tmp_path / "out.webm", TEST_ENCODE)
    times = packet_times(tmp_path / "out.webm")
    step = 1 / float(encoded.fps)
    assert all(abs((b - a) - step) < 2e-3 for a, b in zip(times, times[1:]))
    assert encoded.num_frames == len(times) >= 40


def test_rotation_metadata_is_applied_to_the_pixels(tmp_path):
    src = make_video(tmp_path / "landscape.mp4", frames=12, size="96x64")
    rotated = tmp_path / "phone.mp4"
    ffmpeg("-i", str(src), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(rotated))
    source = probe(rotated)
    assert source.rotation in (90, 270) and (source.width, source.height) == (64, 96)
    _, encoded = transcode(rotated, tmp_path / "out.webm", TEST_ENCODE)
    assert (encoded.width, encoded.height) == (48, 72)  # portrait, short side capped at 48
    out = ffprobe_json(tmp_path / "out.webm", "-show_streams")["streams"][0]
    assert (out["width"], out["height"]) == (48, 72) and not out.get("side_data_list")


def test_1080p_is_downscaled(tmp_path):
    src = make_video(tmp_path / "big.mp4", frames=10, size="1920x1080")
    _, encoded = transcode(src, tmp_path / "out.webm", TEST_ENCODE)
    assert (encoded.width, encoded.height) == (86, 48)
