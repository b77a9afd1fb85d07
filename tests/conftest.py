"""Shared fixtures: tiny real videos made by ffmpeg, a tiny synthetic folder data set, lossless videos whose pixels
say which frame and video they are, a tiny prepared set and run config for training, a real S3 server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from actnet.config import EncodeConfig, PrepareOptions, RunConfig, ShardConfig, SyntheticConfig
from actnet.data.shards import ShardRecord, ShardSetInfo, ShardWriter, iter_samples, sha256_file
from actnet.data.sources import list_folder
from actnet.prepare import prepare
from actnet.recipes import resolve_run_config

# Small, fast encodes for tests: the production defaults are exercised by the CLI and benchmark.
TEST_ENCODE = EncodeConfig(short_side=48, speed=8, small_videos="keep")  # CPU tests: tiny frames stay tiny
TEST_SHARDS = ShardConfig(min_shards=4)
TINY_SYNTHETIC = SyntheticConfig(num_classes=3, videos_per_class=4, frames=16, width=64, height=48, seed=1)


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except Exception:
        has_gpu = False
    if not has_gpu:
        skip = pytest.mark.skip(reason="needs an NVIDIA GPU")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def make_video(
    path: Path,
    *,
    frames: int = 12,
    size: str = "64x48",
    fps: str = "25",
    pattern: str = "testsrc",
    codec: list[str] | None = None,
    extra: list[str] | None = None,
) -> Path:
    """A small real video file made with ffmpeg's test sources."""
    path.parent.mkdir(parents=True, exist_ok=True)
    codec = codec or (
        ["-c:v", "mpeg4", "-q:v", "4"]
        if path.suffix == ".avi"
        else ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    )
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        f"{pattern}=size={size}:rate={fps}",
        "-frames:v",
        str(frames),
        *codec,
        *(extra or []),
        str(path),
    )
    return path


def prepare_options(out: Path, **kwargs) -> PrepareOptions:
    kwargs.setdefault("encode", TEST_ENCODE)
    kwargs.setdefault("shards", TEST_SHARDS)
    kwargs.setdefault("manifests", str(out / "manifests"))
    kwargs.setdefault("workers", 2)
    return PrepareOptions(out=str(out / "shards"), **kwargs)


@pytest.fixture(scope="session")
def synthetic_tree(tmp_path_factory) -> Path:
    """A 3-class, 12-video synthetic data set in the class-per-folder layout (rendered once per session)."""
    from actnet.data.synthetic import generate

    root = tmp_path_factory.mktemp("synthetic") / "tree"
    return generate(TINY_SYNTHETIC, root, workers=2)


@pytest.fixture
def folder_copy(synthetic_tree, tmp_path) -> Path:
    """A private copy of the synthetic tree a test may add bad files to."""
    root = tmp_path / "videos"
    shutil.copytree(synthetic_tree, root)
    return root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server():
    """A real S3-compatible HTTP server (moto) on 127.0.0.1; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(s3_server, monkeypatch):
    """A fresh bucket on the local server, with the environment pointing every client at it."""
    import uuid

    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    bucket = f"actnet-{uuid.uuid4().hex[:8]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture(autouse=True)
def _no_user_cache(tmp_path, monkeypatch):
    """Keep ~/.cache untouched by tests."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    os.makedirs(tmp_path / "home", exist_ok=True)


# ------------------------------------------------ videos whose pixels say which frame and video they are

LOSSLESS = EncodeConfig(crf=0, short_side=0, speed=8, min_frames=8, small_videos="keep")


FRAME_COUNTS = [24, 29, 35, 40, 26, 31, 37, 43]  # video v has FRAME_COUNTS[v] frames


def write_raw_video(path: Path, frames: np.ndarray, fps: int = 25) -> None:
    """Lossless FFV1 from uint8 (N, H, W, 3) RGB frames."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n, h, w, _ = frames.shape
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}"]
    cmd += ["-r", str(fps), "-i", "pipe:0", "-c:v", "ffv1", "-pix_fmt", "yuv444p", str(path)]
    subprocess.run(cmd, input=frames.tobytes(), check=True)


def index_frames(video: int, n: int, size=(24, 32)) -> np.ndarray:
    frames = np.empty((n, *size, 3), np.uint8)
    frames[..., 0] = (20 + 5 * np.arange(n))[:, None, None]
    frames[..., 1] = 30 + 25 * video
    frames[..., 2] = 128
    return frames


def prepare_folder(root: Path, out: Path, **kwargs) -> Path:
    opts = prepare_options(out, encode=LOSSLESS, shards=ShardConfig(min_shards=3), **kwargs)
    prepare(list_folder(root, test_fraction=0.25, name="videos"), opts)
    return out / "shards" / "videos" / "split1"


def with_one_sample_changed(source: Path, set_name: str, out: Path, change) -> str:
    """A copy of a shard set in ``out`` whose first sample's members are ``change(members)``; returns its key."""
    info = ShardSetInfo.from_json((source / f"{set_name}.info.json").read_bytes())
    bad_key, records = None, []
    for shard in info.shards:
        writer = ShardWriter(out / shard.name, out / shard.index)
        with open(source / shard.name, "rb") as f:
            for key, members in iter_samples(f):
                if bad_key is None:
                    bad_key, members = key, change(members)
                writer.add(key, members)
        writer.close()
        records.append(
            ShardRecord(
                shard.name,
                shard.index,
                writer.num_samples,
                (out / shard.name).stat().st_size,
                sha256_file(out / shard.name),
            )
        )
    (out / f"{set_name}.info.json").write_bytes(replace(info, shards=records).to_json())
    return bad_key


@pytest.fixture(scope="session")
def indexed(tmp_path_factory) -> Path:
    """8 videos of 2 classes (6 train, 2 test, 1 labeled per class) whose pixels encode frame and video."""
    root = tmp_path_factory.mktemp("indexed") / "videos"
    for v, n in enumerate(FRAME_COUNTS):
        write_raw_video(root / "ab"[v % 2] / f"v{v}.mkv", index_frames(v, n))
    return prepare_folder(root, tmp_path_factory.mktemp("indexed-out"), labeled=("1/class",))


# ------------------------------------------------------------------- a tiny prepared set and run config

# A run small enough for a test: 4-frame 32-px clips, tiny models, pseudo-labels from the first step
# (threshold 0 keeps every prediction, so the pseudo-label term is exercised), 3 steps per epoch.
TINY = [
    "loader.batch_size=2",
    "loader.mu=1",
    "loader.eval_batch_size=2",
    "loader.primary={frames: 4, strides: [2], size: 32}",
    "loader.auxiliary={frames: 4, strides: [1, 2], size: 32}",
    "loader.augment.flip=false",
    "loader.eval_clips=1",
    "loader.eval_crops=1",
    "loader.num_threads=1",
    "loader.fetch_threads=1",
    "loader.device=cpu",
    "model.primary=r3d_tiny",
    "model.auxiliary=timesformer_tiny",
    "model.drop_path_rate=0.1",
    "objective.threshold=0.0",
    "objective.supervised_epochs=0",
    "optim.primary={name: sgd, lr: 0.05}",
    "optim.auxiliary={name: adamw, lr: 0.001, weight_decay: 0.05}",
    "train.epochs=4",
    "train.steps_per_epoch=3",
    "train.warmup_epochs=1",
    "train.log_every=1",
    "train.eval_every=0",
    "eval.clips=2",
    "eval.crops=3",
    "eval.batch_size=2",
]


@pytest.fixture(scope="session")
def shards(synthetic_tree, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("train-data")
    prepare(list_folder(synthetic_tree, 0.25, name="synthetic"), prepare_options(out, labeled=("1/class",)))
    return out / "shards" / "synthetic" / "split1"


def tiny_config(shards: Path, out: Path, name: str, *sets: str) -> RunConfig:
    options = {"data": {"url": str(shards), "labeled": "labeled-1perclass-seed0"}, "out": str(out), "name": name}
    return resolve_run_config(None, [*TINY, *sets], options)
