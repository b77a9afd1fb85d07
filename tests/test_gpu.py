"""The GPU path, on a GPU (every test here is marked ``gpu`` and skips without one): NVDEC decoding the frames
asked for in every shard codec, all three streams with strong augmentation on the device, a bad sample recovered
on the GPU, tensors on the pipeline's own GPU, and what NVDEC does with a frame below its minimum size.

The shard sets come from ``ACTNET_GPU_SETS`` (made elsewhere by ``tools/gpu_check.sh pack``: a GPU machine may
have no ffmpeg) or are made here with ffmpeg. ``tools/gpu_check.sh run`` runs this file on a lent GPU machine.
"""

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FRAME_COUNTS, with_one_sample_changed
from gpu_sets import SETS, SIZE, make_sets, set_folder

from actnet.config import AugmentConfig, ClipConfig, LoaderConfig
from actnet.data.sampling import ShardSet

pytestmark = pytest.mark.gpu

CFG = LoaderConfig(
    batch_size=4,
    mu=2,
    eval_batch_size=3,
    primary=ClipConfig(frames=8, strides=(2, 4), size=64),
    auxiliary=ClipConfig(frames=8, strides=(1, 2), size=64),
    augment=AugmentConfig(scale=(1.0, 1.25), rand_augment_n=2, rand_augment_m=9, cutout=0.25),
    eval_clips=2,
    eval_crops=3,
    num_threads=2,
    device="gpu",
)
PLAIN = replace(CFG, augment=AugmentConfig(scale=(1.0, 1.0), flip=False, rand_augment_n=0))  # levels survive


@pytest.fixture(scope="module")
def gpu_sets(tmp_path_factory) -> Path:
    carried = os.environ.get("ACTNET_GPU_SETS")
    return Path(carried) if carried else make_sets(tmp_path_factory.mktemp("gpu-sets"))


def frame_levels(clip: torch.Tensor, cfg: LoaderConfig) -> list[int]:
    """The frame index each frame of a normalised (C, T, H, W) clip shows (red = 20 + 5 i)."""
    mean, std = torch.tensor(cfg.mean).view(3, 1, 1, 1), torch.tensor(cfg.std).view(3, 1, 1, 1)
    red = ((clip.cpu() * std + mean) * 255).mean(dim=(2, 3))[0]
    return np.rint((red.numpy() - 20) / 5).astype(int).tolist()


@pytest.mark.parametrize("name", list(SETS))
def test_nvdec_decodes_the_frames_asked_for_including_the_last(gpu_sets, name):
    from actnet.data.dali import decode_frames

    shards = ShardSet(str(set_folder(gpu_sets, name)), "train")
    for i in range(len(shards)):
        members = shards.fetch(i)
        video = members[shards.extension]
        n = int(json.loads(members["json"])["video"]["num_frames"])
        assert n in FRAME_COUNTS
        wanted = [0, 1, n // 2, n - 2, n - 1]
        frames = decode_frames(video, wanted, "gpu")
        assert frames.shape == (len(wanted), SIZE[1], SIZE[0], 3)
        red = np.rint((frames[..., 0].reshape(len(wanted), -1).mean(1) - 20) / 5).astype(int)
        assert red.tolist() == wanted, (name, i)
        if shards.codec != "h264":  # the CPU decoder reads it too: the two agree up to colour rounding
            cpu = decode_frames(video, wanted, "cpu")
            assert np.abs(frames.astype(int) - cpu.astype(int)).mean() < 3, (name, i)


@pytest.mark.parametrize("name", ["vp9", "h264", "mjpeg"])
def test_three_streams_with_strong_augmentation_on_the_gpu(gpu_sets, name):
    from actnet.data.loader import make_loader

    url = str(set_folder(gpu_sets, name))
    for kind, set_name in (("labeled", "train"), ("unlabeled", "train"), ("eval", "train")):
        loader = make_loader(url, set_name, kind, CFG)
        assert loader.device == "gpu"
        epochs = 0
        batches = []
        while len(batches) < 20:  # evaluation passes end; training streams do not
            for batch in loader.iterate(epochs):
                batches.append(batch)
                if len(batches) == 20:
                    break
            epochs += 1
        loader.close()
        for batch in batches:
            for view, clips in batch.views.items():
                assert clips.is_cuda and clips.device.index == loader.device_id, (kind, view)
                assert clips.dtype == torch.float32 and torch.isfinite(clips).all(), (kind, view)
                assert clips.shape[-3:] == (8, 64, 64), (kind, view)


@pytest.mark.parametrize("name", ["vp9", "h264"])
def test_the_planned_frames_reach_the_gpu_views(gpu_sets, name):
    from actnet.data.loader import make_loader

    url = str(set_folder(gpu_sets, name))
    for kind, set_name in (("unlabeled", "train"), ("eval", "test")):
        batch = next(iter(make_loader(url, set_name, kind, PLAIN)))
        for (model, view), clips in batch.views.items():
            clips = clips if view != "eval" else clips[:, 0]  # eval: the first clip, first crop
            for i in range(len(batch)):
                assert frame_levels(clips[i], PLAIN) == batch.frames[model][i][:8], (model, view)


def test_a_bad_sample_is_recovered_on_the_gpu(gpu_sets, tmp_path):
    from actnet.data.loader import make_loader

    garbage = b"\x1aE\xdf\xa3" + bytes(range(256)) * 40
    bad_key = with_one_sample_changed(
        set_folder(gpu_sets, "vp9"), "train", tmp_path, lambda members: {**members, "webm": garbage}
    )
    loader = make_loader(str(tmp_path), "train", "unlabeled", replace(CFG, max_bad_samples=2))
    batches = [b for _, b in zip(range(6), loader)]  # two epochs
    assert all(len(b) == 8 for b in batches) and bad_key not in {k for b in batches for k in b.keys}
    assert [b["key"] for b in loader.bad] == [bad_key]


def test_a_frame_below_nvdec_minimum_is_an_error_not_an_abort(tmp_path):
    """Audit item: DALI enforces NVDEC's minimum inside the parser's callback; this says whether that raises (as
    the loader needs) or takes the process down. A subprocess, so an abort fails this test and nothing else."""
    clip = Path(__file__).with_name("data") / "tiny_32x24.webm"
    code = (
        "import sys; from actnet.data.dali import DecodeError, decode_frames\n"
        f"try:\n    decode_frames(open({str(clip)!r}, 'rb').read(), [0, 1], 'gpu')\n"
        "except DecodeError as err:\n    print('raised:', err); sys.exit(0)\n"
        "print('decoded'); sys.exit(3)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "raised:" in result.stdout, (
        result.returncode,
        result.stdout,
        result.stderr[-2000:],
    )


def test_the_pipeline_and_its_tensors_use_this_rank_gpu(gpu_sets, monkeypatch):
    from actnet.data.loader import make_loader

    monkeypatch.setenv("LOCAL_RANK", str(torch.cuda.device_count() - 1))  # the last GPU, not torch's current one
    loader = make_loader(str(set_folder(gpu_sets, "vp9")), "train", "labeled", PLAIN)
    batch = next(iter(loader))
    assert loader.device_id == torch.cuda.device_count() - 1
    assert all(v.device.index == loader.device_id for v in batch.views.values())
