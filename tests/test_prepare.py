"""actnet prepare end to end on real (tiny) videos: contents, determinism, resume, parts, labeled copies."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import TEST_ENCODE, prepare_options

from actnet.data.shards import ShardSetInfo, iter_samples
from actnet.data.sources import list_folder
from actnet.data.storage import open_storage
from actnet.errors import ActnetError
from actnet.prepare import finalize, prepare


def split_dir(out: Path) -> Path:
    return out / "shards" / "videos" / "split1"


def read_set(folder: Path, set_name: str) -> tuple[ShardSetInfo, dict[str, dict[str, bytes]]]:
    info = ShardSetInfo.from_json((folder / f"{set_name}.info.json").read_bytes())
    samples = {}
    for shard in info.shards:
        with open(folder / shard.name, "rb") as f:
            for key, members in iter_samples(f):
                assert key not in samples
                samples[key] = members
    return info, samples


def test_prepare_folder_end_to_end(folder_copy, tmp_path):
    (folder_copy / "move_up" / "broken.avi").write_bytes(os.urandom(3000))  # bad input among good videos
    listing = list_folder(folder_copy, test_fraction=0.25, name="videos")
    opts = prepare_options(tmp_path, labeled=("1%", "2/class"), max_reject_fraction=0.5)
    summary = prepare(listing, opts)
    assert summary.complete and summary.candidates == 13 and summary.rejected == 1
    assert summary.sets["train"]["samples"] + summary.sets["test"]["samples"] == 12
    folder = split_dir(tmp_path)

    rejects = [json.loads(line) for line in (folder / "rejects.jsonl").read_text().splitlines()]
    assert [r["path"] for r in rejects] == ["move_up/broken.avi"] and rejects[0]["reason"].startswith("unreadable")

    train_info, train = read_set(folder, "train")
    n_train = summary.sets["train"]["samples"]
    assert train_info.num_samples == len(train) == n_train >= 8
    assert len(train_info.shards) == 4  # --min-shards 4
    assert train_info.classes == ["move_left", "move_right", "move_up"]
    manifest = [json.loads(line) for line in (folder / "manifests" / "train.jsonl").read_text().splitlines()]
    assert [r["key"] for r in manifest] == sorted(train)
    for members in train.values():
        assert set(members) == {"cls", "json", "webm"}
        meta = json.loads(members["json"])
        assert int(members["cls"]) == meta["label"] == train_info.classes.index(meta["class_name"])
        assert meta["video"]["codec"] == "vp9" and meta["video"]["height"] == 48 and meta["video"]["num_frames"] == 16
    assert sum(train_info.class_counts) == n_train
    # The shard's DALI index is exactly what DALI's own wds2idx makes of the tar.
    wds2idx = Path(sys.executable).parent / "wds2idx"
    for shard in train_info.shards:
        ours = (folder / shard.index).read_text()
        subprocess.run(
            [str(wds2idx), str(folder / shard.name), str(tmp_path / "ref.idx")], check=True, capture_output=True
        )
        assert ours == (tmp_path / "ref.idx").read_text()
    sha = hashlib.sha256((folder / train_info.shards[0].name).read_bytes()).hexdigest()
    assert sha == train_info.shards[0].sha256

    # Labeled subsets: copied out of the train shards byte for byte, 1 resp. 2 per class.
    one_info, one = read_set(folder, "labeled-1pct-seed0")
    two_info, two = read_set(folder, "labeled-2perclass-seed0")
    assert one_info.class_counts == [1, 1, 1] and two_info.class_counts == [2, 2, 2]
    assert set(one) <= set(two) <= set(train)
    assert all(one[k]["webm"] == train[k]["webm"] for k in one)
    assert (folder / "manifests" / "labeled-1pct-seed0.txt").read_text().split() == sorted(one)
    assert one_info.labeled == {"spec": "1%", "seed": 0, "num_keys": 3}
    # The repo-level manifests are the same files.
    local = tmp_path / "manifests" / "videos" / "split1"
    assert (local / "train.jsonl").read_bytes() == (folder / "manifests" / "train.jsonl").read_bytes()
    assert not (folder / ".staging").exists()


def test_same_inputs_give_byte_identical_outputs(synthetic_tree, tmp_path):
    listing = list_folder(synthetic_tree, test_fraction=0.25, name="videos")
    for run in ("a", "b"):
        prepare(listing, prepare_options(tmp_path / run, labeled=("1%",), workers=2 if run == "a" else 1))
    a, b = split_dir(tmp_path / "a"), split_dir(tmp_path / "b")
    for name in (
        "manifests/train.jsonl",
        "manifests/test.jsonl",
        "manifests/labeled-1pct-seed0.txt",
        "train.info.json",
        "test.info.json",
        "labeled-1pct-seed0.info.json",
        "train-000000.tar",
        "train-000000.idx",
    ):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_rerun_is_a_noop_and_labeled_sets_can_be_added_later(synthetic_tree, tmp_path):
    listing = list_folder(synthetic_tree, test_fraction=0.25, name="videos")
    first = prepare(listing, prepare_options(tmp_path, labeled=("1%",)))
    assert first.encoded_now == 12
    folder = split_dir(tmp_path)
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.tar")}
    again = prepare(listing, prepare_options(tmp_path, labeled=("1%", "3/class")))
    assert again.encoded_now == 0  # nothing re-encoded
    assert {p.name: p.stat().st_mtime_ns for p in folder.glob("*.tar") if p.name in stamps} == stamps
    info, samples = read_set(folder, "labeled-3perclass-seed0")
    assert info.class_counts == [3, 3, 3]
    with pytest.raises(ActnetError, match="--out .*other settings .*encode"):
        prepare(listing, prepare_options(tmp_path, encode=replace(TEST_ENCODE, codec="mjpeg")))


def test_parts_then_merge_equal_a_single_run(synthetic_tree, tmp_path):
    listing = list_folder(synthetic_tree, test_fraction=0.25, name="videos")
    for i in (1, 2):
        summary = prepare(listing, prepare_options(tmp_path / "parts", part=(i, 2), labeled=("1%",)))
        assert not summary.complete
    storage = open_storage(tmp_path / "parts" / "shards" / "videos" / "split1")
    merged = finalize(storage, [], seed=0, manifests_dir=None)
    assert merged.complete and merged.sets["train"]["samples"] == 9
    prepare(listing, prepare_options(tmp_path / "single"))
    parts, single = split_dir(tmp_path / "parts"), split_dir(tmp_path / "single")
    assert (parts / "manifests/train.jsonl").read_bytes() == (single / "manifests/train.jsonl").read_bytes()
    info, samples = read_set(parts, "train")
    assert {s.name.split("-")[1] for s in info.shards} == {"p1of2", "p2of2"}
    _, single_samples = read_set(single, "train")
    assert {k: v["webm"] for k, v in samples.items()} == {k: v["webm"] for k, v in single_samples.items()}


def test_merge_refuses_unfinished_parts(synthetic_tree, tmp_path):
    listing = list_folder(synthetic_tree, test_fraction=0.25, name="videos")
    prepare(listing, prepare_options(tmp_path, part=(2, 3)))
    with pytest.raises(ActnetError, match=r"part\(s\) 1, 3 of 3 not finished"):
        finalize(open_storage(split_dir(tmp_path)), [], seed=0, manifests_dir=None)


def test_resume_after_kill(folder_copy, tmp_path):
    """Kill -9 in the middle of a run: finished shards stay, nothing half-written looks complete, rerun resumes."""
    out = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "actnet",
        "prepare",
        "folder",
        "--root",
        str(folder_copy),
        "--name",
        "videos",
        "--test-fraction",
        "0.25",
        "--out",
        str(out / "shards"),
        "--manifests",
        "",
        "-j",
        "1",
        "--short-side",
        "48",
        "--speed",
        "8",
        "--min-shards",
        "4",
        "--small-videos",
        "keep",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first_marker = split_dir(out) / "_done" / "train-000000.json"
    deadline = time.monotonic() + 120
    while not first_marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    folder = split_dir(out)
    assert first_marker.exists() and not (folder / "train.info.json").exists()  # incomplete, and says so
    done_before = {p.name for p in (folder / "_done").glob("train-*.json")}
    stamp = (folder / "train-000000.tar").stat().st_mtime_ns

    listing = list_folder(folder_copy, test_fraction=0.25, name="videos")
    resumed = prepare(listing, prepare_options(tmp_path / "killed"))
    assert 0 < resumed.encoded_now < 12 - len(done_before) * 2 + 1
    assert (folder / "train-000000.tar").stat().st_mtime_ns == stamp  # finished shard not redone
    reference = tmp_path / "reference"
    prepare(listing, prepare_options(reference))
    for name in ("train.info.json", "test.info.json", "manifests/train.jsonl"):
        assert (folder / name).read_bytes() == (split_dir(reference) / name).read_bytes(), name


def test_info_says_which_decoders_read_the_set(synthetic_tree, tmp_path):
    """64x48 sources: kept as they are only the CPU decodes them; scaled up to NVDEC's minimum both do."""
    listing = list_folder(synthetic_tree, 0.25, name="synthetic")
    for policy, size, devices in (("keep", [64, 64], ["cpu"]), ("upscale", [172, 172], ["cpu", "gpu"])):
        encode = replace(TEST_ENCODE, small_videos=policy)
        prepare(listing, prepare_options(tmp_path / policy, encode=encode, manifests=None))
        info = ShardSetInfo.from_json((tmp_path / policy / "shards/synthetic/split1/train.info.json").read_bytes())
        assert info.devices == devices and info.video["width"] == size and info.encode["small_videos"] == policy


def test_an_output_from_before_the_small_video_option_kept_its_small_videos(synthetic_tree, tmp_path):
    listing = list_folder(synthetic_tree, 0.25, name="synthetic")
    prepare(listing, prepare_options(tmp_path, manifests=None))
    plan_file = tmp_path / "shards/synthetic/split1/plan.json"
    plan = json.loads(plan_file.read_text())
    del plan["encode"]["small_videos"]  # as plan.json was written before the option existed
    plan_file.write_text(json.dumps(plan))
    assert prepare(listing, prepare_options(tmp_path, manifests=None)).encoded_now == 0  # keep: the same settings
    with pytest.raises(ActnetError, match="other settings"):
        prepare(listing, prepare_options(tmp_path, manifests=None, encode=replace(TEST_ENCODE, small_videos="upscale")))
