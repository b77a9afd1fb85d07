"""actnet predict over long videos: frames decoded as a stream (memory holds what is planned, whatever the length),
and --timeline, a prediction per window whose segments follow the classes of a video made by concatenating clips
of different synthetic classes."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import prepare_options
from typer.testing import CliRunner

from actnet.cli import app
from actnet.config import SyntheticConfig
from actnet.data.media import open_rgb
from actnet.predict import plan_clips, planned_frames, windows
from actnet.prepare import prepare
from actnet.recipes import resolve_run_config

runner = CliRunner()
# Colour alone tells these classes apart (appearance 1, no clutter): a tiny model learns them in a few steps, so
# the test checks the timeline's windows and segments, not the model.
COLOURED = SyntheticConfig(num_classes=3, videos_per_class=6, frames=32, width=64, height=48, appearance=1.0, clutter=0)
SEGMENT_FRAMES = 32  # each concatenated clip: 32 frames at 25 fps = 1.28 s


@pytest.fixture(scope="module")
def coloured(tmp_path_factory) -> tuple[Path, Path]:
    """(a trained single-model run folder, the rendered class-per-folder tree)."""
    from actnet.data.sources import list_folder
    from actnet.data.synthetic import generate
    from actnet.train import run_training

    base = tmp_path_factory.mktemp("coloured")
    tree = generate(COLOURED, base / "tree", workers=2)
    prepare(list_folder(tree, 0.25, name="coloured"), prepare_options(base, labeled=("4/class",)))
    sets = [
        "loader.batch_size=4",
        "loader.primary={frames: 4, strides: [2], size: 32}",
        "loader.auxiliary=null",
        "loader.augment.flip=false",
        "loader.eval_clips=1",
        "loader.eval_crops=1",
        "loader.num_threads=1",
        "loader.device=cpu",
        "model.primary=r3d_tiny",
        "model.auxiliary=null",
        "objective.teaching=none",
        "objective.beta=0",
        "optim.primary={name: adamw, lr: 0.01, weight_decay: 0.0}",
        "train.epochs=20",
        "train.steps_per_epoch=4",
        "train.warmup_epochs=1",
        "train.eval_every=0",
    ]
    data = {"url": str(base / "shards" / "coloured" / "split1"), "labeled": "labeled-4perclass-seed0"}
    cfg = resolve_run_config(None, sets, {"data": data, "out": str(base / "runs"), "name": "coloured"})
    run_training(cfg, echo=lambda *_: None)
    return base / "runs" / "coloured", tree


def concatenated(tree: Path, classes: list[str], out: Path) -> Path:
    """One video of a clip of each class in turn (stream copy: the frames are the clips' own)."""
    listing = out.with_suffix(".txt")
    listing.write_text("".join(f"file '{next((tree / c).glob('*.mp4'))}'\n" for c in classes))
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing)]
    subprocess.run([*cmd, "-c", "copy", str(out)], check=True)
    return out


def test_timeline_segments_follow_the_classes_of_a_concatenated_video(coloured, tmp_path):
    run, tree = coloured
    classes = ["move_up", "move_left", "move_right"]  # the order of the clips, not of the class index
    video = concatenated(tree, classes, tmp_path / "long.mp4")
    result = runner.invoke(app, ["predict", str(run), str(video), "--timeline", str(tmp_path / "tl")])
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "tl" / "long.mp4.timeline.json").read_text())
    window = doc["window_s"]
    assert window == pytest.approx(7 / 25)  # the primary's clip span: 4 frames at stride 2
    spans = [(w["start_s"], w["end_s"]) for w in doc["windows"]]
    assert spans[0][0] == 0 and spans[-1][1] == pytest.approx(3 * SEGMENT_FRAMES / 25)  # the whole video
    assert all(b[0] == pytest.approx(a[1]) for a, b in zip(spans[:-1], spans[1:-1]))  # hop = window: back to back
    assert spans[-2][0] < spans[-1][0] < spans[-2][1]  # but for the last, a whole window ending at the last frame
    segs = doc["segments"]["primary"]
    assert [s["class"] for s in segs] == classes, segs
    for seg, boundary in zip(segs, [SEGMENT_FRAMES / 25, 2 * SEGMENT_FRAMES / 25]):
        assert abs(seg["end_s"] - boundary) <= window + 1e-6  # within one window of the true boundary
    csv = (tmp_path / "tl" / "long.mp4.timeline.csv").read_text().splitlines()
    assert csv[0] == "start_s,end_s,primary_class,primary_confidence" and len(csv) == 1 + len(spans)
    png = tmp_path / "tl" / "long.mp4.timeline.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 2000
    assert "move_up 0.0-" in result.output

    # an overlapping hop and a window longer than a segment still cover the video back to front
    again = runner.invoke(
        app, ["predict", str(run), str(video), "--timeline", str(tmp_path / "tl2"), "--window", "1", "--hop", "0.5"]
    )
    assert again.exit_code == 0, again.output
    doc2 = json.loads((tmp_path / "tl2" / "long.mp4.timeline.json").read_text())
    assert doc2["window_s"] == 1.0 and doc2["hop_s"] == 12 / 25  # whole frames: 12.5 rounds to 12
    assert doc2["windows"][-1]["end_s"] == pytest.approx(3 * SEGMENT_FRAMES / 25)
    bad = runner.invoke(app, ["predict", str(run), str(video), "--timeline", str(tmp_path / "x"), "--hop", "-1"])
    assert bad.exit_code == 2 and "--window and --hop must not be negative" in bad.output


def test_windows_cover_a_stream_with_bounded_memory():
    frames = (np.full((2, 2, 3), i, np.uint8) for i in range(10))
    got = [(first, w[:, 0, 0, 0].tolist()) for first, w in windows(frames, 4, 4)]
    assert got == [(0, [0, 1, 2, 3]), (4, [4, 5, 6, 7]), (6, [6, 7, 8, 9])]  # the last one ends at the last frame
    frames = (np.full((2, 2, 3), i, np.uint8) for i in range(7))
    assert [(f, w[:, 0, 0, 0].tolist()) for f, w in windows(frames, 4, 2)] == [
        (0, [0, 1, 2, 3]),
        (2, [2, 3, 4, 5]),
        (3, [3, 4, 5, 6]),
    ]
    frames = (np.full((2, 2, 3), i, np.uint8) for i in range(10))
    assert [(f, w[:, 0, 0, 0].tolist()) for f, w in windows(frames, 2, 4)] == [(0, [0, 1]), (4, [4, 5]), (8, [8, 9])]
    assert [(f, len(w)) for f, w in windows(iter([np.zeros((2, 2, 3), np.uint8)] * 3), 8, 8)] == [(0, 3)]


def test_planned_frames_are_exact_when_the_container_miscounts(coloured, tmp_path, monkeypatch):
    """Streaming keeps only the planned frames; a wrong estimate from the container costs a second pass, not a
    wrong frame."""
    from dataclasses import replace

    from actnet.checkpoint import encode_of, load_checkpoint
    from actnet.data.media import decode_rgb

    run, tree = coloured
    encode = encode_of(load_checkpoint(run))
    video = next((tree / "move_up").glob("*.mp4"))
    everything, fps = decode_rgb(video, encode)
    clip = resolve_run_config("demo").loader.primary

    def plans(n):
        return {"primary": plan_clips(n, fps, clip, 3)}

    stream = open_rgb(video, encode)
    assert stream.estimated_frames == len(everything) == 32
    for estimate in (32, 20, 50, None):
        picked, n = planned_frames(replace(stream, estimated_frames=estimate), plans)
        assert n == 32
        np.testing.assert_array_equal(picked["primary"], everything[plans(32)["primary"]])


def test_a_slow_consumer_is_not_a_stall_but_a_silent_ffmpeg_is(coloured, monkeypatch):
    """A streamed decode has no limit on its whole length (the consumer sets the pace: an hour of timeline), only
    on how long a read waits for ffmpeg."""
    import time

    from actnet.checkpoint import encode_of, load_checkpoint
    from actnet.data import media

    run, tree = coloured
    stream = open_rgb(next((tree / "move_up").glob("*.mp4")), encode_of(load_checkpoint(run)))
    monkeypatch.setattr(media, "FFMPEG_STALL_S", 1)
    n = 0
    for _ in stream.frames():
        if n < 2:
            time.sleep(1.6)  # longer than the stall limit, in the consumer: ffmpeg waits on us, not we on it
        n += 1
    assert n == 32
    monkeypatch.setattr(media, "_rgb_command", lambda *_: ["sleep", "30"])  # an ffmpeg that never writes
    started = time.monotonic()
    with pytest.raises(media.MediaError, match="decoding stalled: no frame from ffmpeg for 1 s"):
        list(stream.frames())
    assert time.monotonic() - started < 5
