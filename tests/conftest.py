"""Shared fixtures: tiny real videos made by ffmpeg, a tiny synthetic folder data set, a real S3 server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from actnet.config import EncodeConfig, PrepareOptions, ShardConfig, SyntheticConfig

# Small, fast encodes for tests: the production defaults are exercised by the CLI and benchmark.
TEST_ENCODE = EncodeConfig(short_side=48, speed=8)
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
