"""Shards written by prepare, read back by the webdataset library and by DALI (CPU backend) with our index files."""

import json
import subprocess

import numpy as np
import pytest
from conftest import prepare_options

from actnet.data.shards import ShardSetInfo
from actnet.data.sources import list_folder
from actnet.prepare import prepare


@pytest.fixture(scope="module")
def shard_folder(synthetic_tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("roundtrip")
    prepare(list_folder(synthetic_tree, test_fraction=0.25, name="videos"), prepare_options(out, workers=2))
    return out / "shards" / "videos" / "split1"


def ffmpeg_frames(video: bytes, tmp_path, width: int, height: int) -> np.ndarray:
    path = tmp_path / "clip.webm"
    path.write_bytes(video)
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)


def test_webdataset_library_reads_every_sample(shard_folder):
    import webdataset as wds

    info = ShardSetInfo.from_json((shard_folder / "train.info.json").read_bytes())
    urls = [str(shard_folder / s.name) for s in info.shards]
    manifest = [json.loads(x) for x in (shard_folder / "manifests" / "train.jsonl").read_text().splitlines()]
    seen = {}
    for sample in wds.WebDataset(urls, shardshuffle=False, empty_check=False):
        assert {"__key__", "cls", "json", "webm"} <= set(sample)
        seen[sample["__key__"]] = int(sample["cls"])
    assert seen == {r["key"]: r["label"] for r in manifest}


def test_dali_reader_and_cpu_decoder_with_our_index(shard_folder, tmp_path):
    from nvidia.dali import fn, pipeline_def

    info = ShardSetInfo.from_json((shard_folder / "train.info.json").read_bytes())
    paths = [str(shard_folder / s.name) for s in info.shards]
    index_paths = [str(shard_folder / s.index) for s in info.shards]

    @pipeline_def(batch_size=3, num_threads=1, device_id=None, prefetch_queue_depth=1)
    def pipe():
        video, label, meta = fn.readers.webdataset(
            paths=paths,
            index_paths=index_paths,
            ext=["webm", "cls", "json"],
            missing_component_behavior="error",
            random_shuffle=False,
            name="reader",
        )
        return fn.decoders.video(video, device="cpu"), label, meta, video

    p = pipe()
    p.build()
    assert p.epoch_size("reader") == info.num_samples
    checked = 0
    while checked < info.num_samples:
        frames, labels, metas, videos = p.run()
        for i in range(len(frames)):
            meta = json.loads(bytes(np.array(metas[i])))
            clip = np.array(frames[i])
            video = meta["video"]
            assert clip.shape == (video["num_frames"], video["height"], video["width"], 3)
            assert int(bytes(np.array(labels[i]))) == meta["label"]
            reference = ffmpeg_frames(bytes(np.array(videos[i])), tmp_path, video["width"], video["height"])
            assert reference.shape == clip.shape
            # The same frames as ffmpeg decodes, in the same order: each DALI frame is closest to ffmpeg's frame
            # of the same index (YUV->RGB conversion differs by a few levels between the two).
            diff = np.abs(clip[:, None].astype(np.int16) - reference[None].astype(np.int16)).mean(axis=(2, 3, 4))
            assert (diff.argmin(axis=1) == np.arange(len(clip))).all()
            assert diff.diagonal().max() < 5.0
            checked += 1
