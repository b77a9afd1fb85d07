"""The input pipeline (sampling.py + dali.py) on DALI's CPU backend, with tiny lossless clips that say which
frame and which video they are: the red level of frame i is 20 + 5 i, the green level of video v is 30 + 25 v.
"""

import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FRAME_COUNTS, index_frames, prepare_folder, with_one_sample_changed, write_raw_video

from actnet.config import AugmentConfig, ClipConfig, LoaderConfig
from actnet.data import dali, sampling
from actnet.data.loader import make_loader, resolve_device
from actnet.data.sampling import ShardSet
from actnet.errors import ActnetError

CLIPS = {"primary": ClipConfig(frames=4, strides=(3, 5), size=16), "auxiliary": ClipConfig(4, (1, 2), 16)}
CFG = LoaderConfig(
    batch_size=2,
    mu=2,
    eval_batch_size=3,
    primary=CLIPS["primary"],
    auxiliary=CLIPS["auxiliary"],
    augment=AugmentConfig(scale=(1.0, 1.25), rand_augment_n=2, rand_augment_m=9),
    eval_clips=2,
    eval_crops=3,
    num_threads=1,
    fetch_threads=2,
    max_bad_samples=2,
)


def decode_levels(clip: torch.Tensor, cfg: LoaderConfig = CFG) -> tuple[np.ndarray, np.ndarray]:
    """(frame index per frame, video id per frame) read back from a normalised (C, T, H, W) clip."""
    mean = torch.tensor(cfg.mean).view(3, 1, 1, 1)
    std = torch.tensor(cfg.std).view(3, 1, 1, 1)
    pixels = ((clip * std + mean) * 255).mean(dim=(2, 3))  # (C, T): the frames are uniform
    return np.rint((pixels[0].numpy() - 20) / 5).astype(int), np.rint((pixels[1].numpy() - 30) / 25).astype(int)


@pytest.fixture(scope="module")
def textured(tmp_path_factory) -> Path:
    """Videos whose every frame is the same noise texture: a clip's frames stay equal only under one crop."""
    root = tmp_path_factory.mktemp("textured") / "videos"
    rng = np.random.default_rng(0)
    for v in range(4):
        grey = rng.integers(0, 256, (32, 48), dtype=np.uint8)
        write_raw_video(root / "ab"[v % 2] / f"t{v}.mkv", np.repeat(grey[None, :, :, None], 12, 0).repeat(3, 3))
    return prepare_folder(root, tmp_path_factory.mktemp("textured-out"))


def video_of(folder: Path) -> dict[str, tuple[int, int]]:
    """key -> (video number, label) from the manifests."""
    rows = []
    for name in ("train", "test"):
        rows += [json.loads(x) for x in (folder / "manifests" / f"{name}.jsonl").read_text().splitlines()]
    return {r["key"]: (int(Path(r["path"]).stem[1:]), r["label"]) for r in rows}


# ------------------------------------------------------------------------------------ pure-Python choices


def test_clip_frames_for_given_starts_and_strides():
    assert sampling.clip_indices(3, 4, 5, 40) == [3, 8, 13, 18]
    assert sampling.clip_indices(30, 4, 5, 40) == [30, 35, 39, 39]  # past the end the last frame repeats
    assert sampling.clip_span(8, 8) == 57
    # shared centre: the longest clip placed by u, the shorter centred on it and kept inside the video
    assert sampling.shared_centre_starts(40, [16, 4], 0.0) == [0, 6]
    assert sampling.shared_centre_starts(40, [16, 4], 0.999) == [24, 30]
    assert sampling.shared_centre_starts(10, [16, 4], 0.5) == [0, 3]  # too short: centred on the video
    assert sampling.uniform_starts(40, 10, 3) == [0, 15, 30]
    assert sampling.uniform_starts(40, 10, 1) == [15]
    assert sampling.crop_positions(48, 32, 3) == [(0.0, 0.5), (0.5, 0.5), (1.0, 0.5)]
    assert sampling.crop_positions(32, 48, 3) == [(0.5, 0.0), (0.5, 0.5), (0.5, 1.0)]


def test_rank_splits_are_disjoint_complete_and_equal():
    n, batch, world = 23, 3, 2
    steps = sampling.steps_per_epoch(n, batch, world)
    for epoch in range(3):
        parts = [sampling.train_positions(n, batch, r, world, 7, "unlabeled", epoch) for r in range(world)]
        assert all(len(p) == steps * batch for p in parts)  # equal steps on every rank
        seen = np.concatenate(parts)
        assert set(seen.tolist()) == set(range(n))  # every sample each epoch
        assert len(seen) - len(set(seen.tolist())) == steps * batch * world - n  # only the cycled tail repeats
        assert not set(parts[0][: n // world].tolist()) & set(parts[1][: n // world].tolist())
    again = sampling.train_positions(n, batch, 0, world, 7, "unlabeled", 1)
    assert (again == sampling.train_positions(n, batch, 0, world, 7, "unlabeled", 1)).all()  # seeded
    assert (again != sampling.train_positions(n, batch, 0, world, 7, "unlabeled", 2)).any()  # reshuffled
    evals = [list(sampling.eval_positions(n, r, world)) for r in range(world)]
    assert sorted(evals[0] + evals[1]) == list(range(n))


def _jobs(stream: sampling.SampleStream, batches: int, epoch: int = 0) -> list[tuple]:
    out = []
    for batch, _ in zip(stream.batches(epoch), range(batches)):
        out += [(j.id, j.key, j.label, j.video, j.frames, j.strides, j.crops, j.epoch, j.position) for j in batch]
    return out


def test_how_bytes_are_read_never_changes_what_a_stream_gives(indexed, monkeypatch):
    """Coalesced reads, read-ahead depth and thread count change the requests, not the samples, frames or order."""
    shards = ShardSet(str(indexed), "train")
    reads = []
    read_range = shards.storage.read_range
    monkeypatch.setattr(shards.storage, "read_range", lambda *a: reads.append(a) or read_range(*a))
    for kind, batches in (("labeled", 5), ("unlabeled", 4), ("eval", 99)):
        runs = {}
        for threads, kib in ((0, 0), (1, 4096), (5, 4096), (2, 0)):
            stream = sampling.SampleStream(
                shards, kind, CLIPS, 2, seed=3, eval_clips=2, eval_crops=3, fetch_threads=threads, coalesce_kib=kib
            )
            stream.mark_bad(4)  # replaced in training, left out of evaluation, whatever the reads
            reads.clear()
            runs[threads, kib] = (_jobs(stream, batches), len(reads))
            stream.close()
        first = runs[0, 0][0]
        assert all(jobs == first for jobs, _ in runs.values()), kind
        assert 4 not in {j[0] for j in first}
        if kind == "eval":  # in shard order: neighbours share a read
            assert runs[0, 0][1] == len(first) == len(shards) - 1
            assert runs[5, 4096][1] < len(first)


def test_reads_join_only_close_neighbours_of_one_shard():
    ref = lambda i, shard, offset, length=100: sampling.SampleRef(i, f"k{i}", shard, offset, length, {})  # noqa: E731
    a, b = ref(0, "s0.tar", 0), ref(1, "s0.tar", 1024)
    assert sampling.joins(a, b, a, 4096)
    assert not sampling.joins(a, b, a, 1000)  # the span would pass the read size
    assert not sampling.joins(b, a, a, 4096)  # not backwards
    assert not sampling.joins(a, ref(1, "s1.tar", 1024), a, 4096)  # another shard
    assert not sampling.joins(a, ref(1, "s0.tar", 100 + sampling.COALESCE_GAP + 1), a, 1 << 30)  # too far apart


# -------------------------------------------------------------------------------------- DALI, CPU backend


def test_labeled_stream_frames_labels_and_shapes(indexed):
    videos = video_of(indexed)
    loader = make_loader(str(indexed), "labeled-1perclass-seed0", "labeled", CFG)
    assert loader.device == "cpu" and loader.steps_per_epoch == 1
    batches = [b for _, b in zip(range(3), loader)]
    for batch in batches:
        assert set(batch.views) == {("primary", "weak"), ("auxiliary", "weak")}
        assert batch.label.dtype == torch.long and batch.label.shape == (2,)
        for i, key in enumerate(batch.keys):
            video, label = videos[key]
            assert batch.label[i].item() == label  # labels travel with their keys
            n = FRAME_COUNTS[video]
            spans = {}
            for model, clip_cfg in CLIPS.items():
                clip = batch[model, "weak"]
                assert clip.shape == (2, 3, 4, 16, 16) and clip.dtype == torch.float32
                frames, ids = decode_levels(clip[i])
                assert (ids == video).all()  # the clip is of the video its key names
                stride = batch.strides[model][i]
                assert stride in clip_cfg.strides
                expected = batch.frames[model][i]
                assert frames.tolist() == expected  # DALI decoded exactly the planned frames
                assert expected == sampling.clip_indices(expected[0], 4, stride, n)
                spans[model] = (expected[0] + expected[-1]) / 2
            assert abs(spans["primary"] - spans["auxiliary"]) <= 1  # both models see the same moment


def test_a_paper_recipes_rates_vary_within_one_batch(indexed):
    """ucf101_1pct's per-sample frame rates, at test size: both models see several strides in one batch, the
    3D-CNN always the slower one, and every clip holds exactly the frames its stride plans."""
    from actnet.recipes import resolve_run_config

    recipe = resolve_run_config("ucf101_1pct").loader
    clips = {m: replace(getattr(recipe, m), frames=4, size=16, test_short_side=0) for m in ("primary", "auxiliary")}
    cfg = replace(CFG, batch_size=4, mu=2, augment=replace(CFG.augment, rand_augment_n=0), **clips)
    batch = next(iter(make_loader(str(indexed), "train", "unlabeled", cfg)))
    assert len(batch.keys) == 8
    for model, clip_cfg in clips.items():
        assert len(set(batch.strides[model])) >= 2, (model, batch.strides[model])
        assert set(batch.strides[model]) <= set(clip_cfg.strides)
        for i in range(8):
            frames, _ = decode_levels(batch[model, "weak"][i], cfg)
            assert frames.tolist() == batch.frames[model][i]
    assert all(p > a for p, a in zip(batch.strides["primary"], batch.strides["auxiliary"]))


def test_unlabeled_weak_and_strong_views_share_frames(indexed):
    cfg = replace(CFG, augment=replace(CFG.augment, rand_augment_n=0))
    loader = make_loader(str(indexed), "train", "unlabeled", cfg)
    batch = next(iter(loader))
    assert len(batch) == 4 and loader.steps_per_epoch == 2  # 6 videos, 4 per step
    for model in CLIPS:
        weak, strong = batch[model, "weak"], batch[model, "strong"]
        assert weak.shape == strong.shape == (4, 3, 4, 16, 16)
        for i in range(4):
            assert decode_levels(weak[i])[0].tolist() == decode_levels(strong[i])[0].tolist() == batch.frames[model][i]


def test_one_crop_and_flip_per_clip_and_randaugment_is_applied(textured):
    cfg = replace(CFG, augment=replace(CFG.augment, cutout=0.25))
    loader = make_loader(str(textured), "train", "unlabeled", cfg)
    batch = next(iter(loader))
    for model in CLIPS:
        for view in ("weak", "strong"):
            clip = batch[model, view]
            # every frame of the source is the same texture, so one spatial draw keeps the frames equal
            assert (clip - clip[:, :, :1]).abs().max().item() < 1e-5, (model, view)
        weak, strong = batch[model, "weak"], batch[model, "strong"]
        assert (weak - strong).abs().mean().item() > 0.05  # the views are different draws
    # the draws differ between clips: two samples of the same video rarely get the same crop
    first = batch["primary", "weak"][:, :, 0]
    assert len({tuple(np.round(f.flatten()[:20].numpy(), 3)) for f in first}) > 1


def test_randaugment_geometry_resampling_is_a_setting(textured):
    """Nearest (the default, as torchvision and FixMatch's PIL ops) and linear resampling: same draws, so the weak
    views agree and only the strong views differ."""
    with pytest.raises(ActnetError, match="rand_augment_interp"):
        AugmentConfig(rand_augment_interp="cubic")
    assert AugmentConfig().rand_augment_interp == "nearest"
    nearest = next(iter(make_loader(str(textured), "train", "unlabeled", CFG)))
    cfg = replace(CFG, augment=replace(CFG.augment, rand_augment_interp="linear"))
    linear = next(iter(make_loader(str(textured), "train", "unlabeled", cfg)))
    for model in CLIPS:
        assert torch.equal(nearest[model, "weak"], linear[model, "weak"])
    assert any(not torch.equal(nearest[m, "strong"], linear[m, "strong"]) for m in CLIPS)


def test_same_seed_same_batches_on_cpu(indexed):
    def first(seed):
        loader = make_loader(str(indexed), "train", "unlabeled", replace(CFG, seed=seed))
        return next(iter(loader))

    a, b, c = first(0), first(0), first(1)
    assert a.keys == b.keys
    for name in a.views:
        assert torch.equal(a[name], b[name])
    assert a.keys != c.keys or any(not torch.equal(a[n], c[n]) for n in a.views)


def test_two_ranks_split_training_samples_with_equal_steps(indexed):
    loaders = [make_loader(str(indexed), "train", "labeled", CFG, rank=r, world=2) for r in range(2)]
    steps = {ld.steps_per_epoch for ld in loaders}
    assert steps == {2}  # ceil(6 / (2 * 2))
    ids = []
    for ld in loaders:
        it = iter(ld)
        ids.append([i for _ in range(2) for i in next(it).ids.tolist()])
    assert len(ids[0]) == len(ids[1]) == 4
    assert set(ids[0] + ids[1]) == set(range(6))  # complete; 8 slots for 6 samples: the tail repeats two
    expected = [sampling.train_positions(6, 2, r, 2, 0, "labeled", 0).tolist() for r in range(2)]
    assert ids == expected


def test_evaluation_sees_every_video_once_across_ranks(indexed):
    videos = video_of(indexed)
    seen = []
    for rank in range(2):
        loader = make_loader(str(indexed), "test", "eval", replace(CFG, eval_batch_size=3), rank=rank, world=2)
        for batch in loader:
            seen += batch.keys
            for model, clip_cfg in CLIPS.items():
                views = batch[model, "eval"]
                assert views.shape == (len(batch), 2 * 3, 3, 4, 16, 16)  # K=2 clips x 3 crops
                for i, key in enumerate(batch.keys):
                    video = videos[key][0]
                    n, stride = FRAME_COUNTS[video], clip_cfg.strides[0]
                    starts = sampling.uniform_starts(n, sampling.clip_span(4, stride), 2)
                    for k, start in enumerate(starts):
                        for crop in range(3):
                            frames, ids = decode_levels(views[i, k * 3 + crop])
                            assert frames.tolist() == sampling.clip_indices(start, 4, stride, n)
                            assert (ids == video).all()
    test_keys = [json.loads(x)["key"] for x in (indexed / "manifests" / "test.jsonl").read_text().splitlines()]
    assert sorted(seen) == sorted(test_keys) and len(test_keys) == 2  # each test video once, none padded in


def test_three_evaluation_crops_lie_along_the_long_side(textured):
    loader = make_loader(str(textured), "test", "eval", replace(CFG, eval_clips=1))
    batch = next(iter(loader))
    views = batch["primary", "eval"][0]  # (3 crops, C, T, 16, 16) of a 48x32 video resized to 24x16
    assert views.shape[0] == 3
    left, centre, right = views[0, 0, 0], views[1, 0, 0], views[2, 0, 0]
    assert torch.allclose(left[:, 4:], centre[:, :12], atol=1e-5)  # the centre crop starts 4 px to the right
    assert torch.allclose(centre[:, 4:], right[:, :12], atol=1e-5)
    assert not torch.allclose(left, right)


# --------------------------------------------------------------------------------------------- bad data


@pytest.fixture(scope="module")
def with_corrupt_sample(indexed, tmp_path_factory) -> tuple[Path, str]:
    """A copy of the indexed train set in which one sample's video bytes are garbage."""
    out = tmp_path_factory.mktemp("corrupt")
    garbage = b"\x1aE\xdf\xa3" + bytes(range(256)) * 40
    return out, with_one_sample_changed(indexed, "train", out, lambda members: {**members, "webm": garbage})


def test_a_sample_that_fails_to_decode_is_skipped_logged_and_counted(with_corrupt_sample, caplog):
    folder, bad_key = with_corrupt_sample
    loader = make_loader(str(folder), "train", "unlabeled", CFG)
    with caplog.at_level(logging.WARNING, logger="actnet.data"):
        batches = [b for _, b in zip(range(4), loader)]  # two epochs
    assert all(len(b) == 4 for b in batches)  # training batches keep their size
    assert bad_key not in {k for b in batches for k in b.keys}
    assert [b["key"] for b in loader.bad] == [bad_key] and "decoder" in loader.bad[0]["error"]
    assert bad_key in caplog.text


def test_too_many_bad_samples_stop_the_run_naming_them(with_corrupt_sample):
    folder, bad_key = with_corrupt_sample
    loader = make_loader(str(folder), "train", "labeled", replace(CFG, max_bad_samples=0))
    with pytest.raises(ActnetError, match=f"{bad_key}.*train-0000"):
        for _ in zip(range(4), loader):
            pass


def test_evaluation_leaves_a_bad_sample_out_once(with_corrupt_sample):
    folder, bad_key = with_corrupt_sample
    loader = make_loader(str(folder), "train", "eval", CFG)
    keys = [k for b in loader for k in b.keys]
    assert len(keys) == 5 and len(set(keys)) == 5 and bad_key not in keys
    assert [b["key"] for b in loader.bad] == [bad_key]


def test_frames_past_the_end_of_a_video_fail_that_sample_instead_of_turning_black(indexed, tmp_path):
    """A sample whose metadata claims 20 frames more than its video holds: evaluation's last clip reaches past the
    end, and DALI (pad_mode none) fails it instead of padding it with black frames; the loader names it."""

    def longer(members):
        meta = json.loads(members["json"])
        meta["video"]["num_frames"] += 20
        return {**members, "json": json.dumps(meta).encode()}

    key = with_one_sample_changed(indexed, "test", tmp_path, longer)
    loader = make_loader(str(tmp_path), "test", "eval", CFG)
    keys = [k for b in loader for k in b.keys]
    assert key not in keys and len(keys) == 1
    assert [b["key"] for b in loader.bad] == [key] and "out-of-bounds frame index" in loader.bad[0]["error"]


def _in_flight(loader):
    """A feeder with the loader's first batch in flight, as when a pipeline run fails."""
    feeder = dali._Feeder(loader.stream.batches(0), loader.models, loader.kind == "eval", clean=loader._clean)
    feeder()
    return feeder


def _gpu_decoder(monkeypatch, fails):
    """Make the loader's probes see a GPU decoder that fails with ``fails`` (None: the GPU decodes what the CPU
    does); the CPU decoder stays the real one. Only the decisions run: no GPU pipeline is ever built."""
    real = dali.decode_frames

    def decode(video, frames, device="cpu", device_id=None):
        if device == "gpu":
            if fails is not None:
                raise dali.DecodeError("gpu", fails)
            device = "cpu"
        return real(video, frames, device)

    monkeypatch.setattr(dali, "decode_frames", decode)


def test_a_gpu_that_fails_on_what_the_cpu_decodes_is_blamed_not_the_samples(indexed, monkeypatch):
    loader = make_loader(str(indexed), "train", "unlabeled", CFG)
    loader.device = "gpu"
    _gpu_decoder(monkeypatch, "Video is too small in at least one dimension")
    with pytest.raises(
        dali.DeviceFault,
        match=r"GPU video decoder on cuda:0.*vp9 videos \(sample \S+ decodes on the CPU\).*too small.*--device cpu",
    ) as err:
        loader._recover(_in_flight(loader), RuntimeError("the pipeline failed"))
    assert err.value.exit_code == 1 and loader.bad == []  # no sample is blamed


def test_a_gpu_only_codec_failing_alike_three_times_is_the_device(indexed, monkeypatch):
    loader = make_loader(str(indexed), "train", "unlabeled", CFG)
    loader.device = "gpu"
    monkeypatch.setattr(type(loader.stream.shards), "codec", property(lambda self: "h264"))  # no CPU cross-check
    _gpu_decoder(monkeypatch, "CUDA_ERROR_ILLEGAL_ADDRESS")
    with pytest.raises(dali.DeviceFault, match=r"h264 videos \(the first 3 samples probed fail alike\)"):
        loader._recover(_in_flight(loader), RuntimeError("the pipeline failed"))


def test_a_bad_sample_on_the_gpu_is_still_the_sample(with_corrupt_sample, monkeypatch):
    folder, bad_key = with_corrupt_sample
    loader = make_loader(str(folder), "train", "unlabeled", CFG)
    loader.device = "gpu"
    _gpu_decoder(monkeypatch, None)  # the GPU decodes what the CPU decodes, and fails where it fails
    feeder = _in_flight(loader)
    loader._recover(feeder, RuntimeError("the pipeline failed"))
    assert [b["key"] for b in loader.bad] == [bad_key] and len(feeder.requeued) == 1


def test_h264_shards_on_cpu_say_so(tmp_path):
    with pytest.raises(ActnetError, match=r"shards/x.*h264.*only on a GPU.*--codec vp9"):
        resolve_device("cpu", "h264", "shards/x")
    assert resolve_device("cpu", "vp9", "shards/x") == "cpu"


def test_where_a_set_decodes_decides_the_device(monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # the decision only: nothing runs on a GPU
    assert resolve_device("auto", "vp9", "s/train", ["cpu", "gpu"]) == "gpu"
    with caplog.at_level(logging.WARNING, logger="actnet.data"):
        assert resolve_device("auto", "vp9", "s/train", ["cpu"]) == "cpu"  # small videos kept: the CPU decodes
    assert "smaller than NVDEC decodes" in caplog.text and "--small-videos upscale" in caplog.text
    small = r"s/train: holds videos smaller than NVDEC decodes \(vp9 needs at least 128x128\); use --device cpu"
    with pytest.raises(ActnetError, match=small):
        resolve_device("gpu", "vp9", "s/train", ["cpu"])
    assert resolve_device("auto", "h264", "s/train", None) == "gpu"  # a set made before info.json said: by codec
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto", "vp9", "s/train", ["cpu"]) == "cpu"
    with pytest.raises(ActnetError, match="no CUDA GPU"):
        resolve_device("gpu", "vp9", "s/train", ["cpu", "gpu"])


def test_missing_set_names_the_path(indexed):
    with pytest.raises(ActnetError, match="labeled-9pct-seed0.info.json"):
        make_loader(str(indexed), "labeled-9pct-seed0", "labeled", CFG)


# ------------------------------------------------------------------------------------------ object storage


def test_s3_stream_equals_local(indexed, s3_bucket):
    import boto3

    client = boto3.client("s3")
    for path in indexed.iterdir():
        if path.is_file():
            client.upload_file(str(path), s3_bucket, f"sets/{path.name}")
    url = f"s3://{s3_bucket}/sets"
    local, remote = (make_loader(u, "train", "unlabeled", CFG) for u in (str(indexed), url))
    a, b = next(iter(local)), next(iter(remote))
    assert a.keys == b.keys
    for name in a.views:
        assert torch.equal(a[name], b[name])
    evaluated = [k for batch in make_loader(url, "test", "eval", CFG) for k in batch.keys]
    assert len(evaluated) == 2


def test_the_gpu_sets_hold_what_the_gpu_tests_expect(tmp_path):
    """The sets tools/gpu_check.sh carries to a GPU machine, checked here on the CPU decoder: NVDEC-sized frames,
    the devices each set decodes on, and the frames asked for (last included) in every CPU codec."""
    from gpu_sets import SETS, SIZE, make_sets, set_folder

    base = make_sets(tmp_path)
    for name, encode in SETS.items():
        shards = ShardSet(str(set_folder(base, name)), "train")
        assert shards.info.devices == (["gpu"] if encode.codec == "h264" else ["cpu", "gpu"]), name
        assert shards.info.video["width"] == [SIZE[0], SIZE[0]] and shards.info.video["height"] == [SIZE[1]] * 2
        if encode.codec == "h264":
            continue
        for i in range(len(shards)):
            members = shards.fetch(i)
            n = json.loads(members["json"])["video"]["num_frames"]
            frames = dali.decode_frames(members[shards.extension], [0, n // 2, n - 1], "cpu")
            red = np.rint((frames[..., 0].reshape(3, -1).mean(1) - 20) / 5).astype(int)
            assert red.tolist() == [0, n // 2, n - 1], (name, i)


# ---------------------------------------------------------------------------------- time-based sampling


@pytest.fixture(scope="module")
def mixed_rates(tmp_path_factory) -> Path:
    """Videos of two classes at 25 and 50 fps, about a second each, pixels encoding frame and video."""
    root = tmp_path_factory.mktemp("rates") / "videos"
    for v in range(6):
        fps = (25, 50)[v % 2]
        frames = index_frames(v, (23, 47)[v % 2])  # 47 at most: the red level of frame 47 is 255
        write_raw_video(root / "ab"[v // 3] / f"v{v}.mkv", frames, fps=fps)
    return prepare_folder(root, tmp_path_factory.mktemp("rates-out"))


def test_time_based_clips_cover_the_same_seconds_whatever_the_frame_rate(mixed_rates):
    assert ClipConfig(frames=4, fps=(12.5,)).stride_for(50.0) == 4
    assert ClipConfig(frames=4, fps=(12.5,)).stride_for(29.97) == 2
    assert ClipConfig(frames=4, strides=(3,)).stride_for(50.0) == 3  # frame-based: fps plays no part
    with pytest.raises(ActnetError, match="clip fps"):
        ClipConfig(fps=(0.0,))
    rates = {
        "primary": ClipConfig(frames=4, fps=(12.5, 6.25), size=16),
        "auxiliary": ClipConfig(4, (1,), 16, fps=(25,)),
    }
    cfg = replace(CFG, primary=rates["primary"], auxiliary=rates["auxiliary"], eval_clips=1, eval_crops=1)
    fps_of = {}
    for name in ("train", "test"):
        for row in map(json.loads, (mixed_rates / "manifests" / f"{name}.jsonl").read_text().splitlines()):
            fps_of[row["key"]] = 25 if int(Path(row["path"]).stem[1:]) % 2 == 0 else 50
    seen = set()
    for batch in (b for _, b in zip(range(4), make_loader(str(mixed_rates), "train", "labeled", cfg))):
        for i, key in enumerate(batch.keys):
            for model, clip_cfg in rates.items():
                rate = fps_of[key] / batch.strides[model][i]
                assert rate in clip_cfg.fps  # the stride comes from the video's own rate
                frames, _ = decode_levels(batch[model, "weak"][i], cfg)
                assert frames.tolist() == batch.frames[model][i]
                seen.add((model, fps_of[key], rate))
    assert {(m, f) for m, f, _ in seen} >= {("primary", 25), ("primary", 50), ("auxiliary", 25), ("auxiliary", 50)}
    extents = set()
    for batch in make_loader(str(mixed_rates), "test", "eval", cfg):
        for i, key in enumerate(batch.keys):
            frames = batch.frames["primary"][i]
            extents.add((frames[-1] - frames[0]) / fps_of[key])  # seconds from first to last frame
    assert extents == {3 / 12.5}  # the first rate for evaluation: 0.24 s at 25 and at 50 fps
