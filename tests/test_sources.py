"""Source listings from tiny trees that copy the real layouts and names (no video is opened by a listing)."""

from pathlib import Path

import pytest

from actnet.data.sources import list_folder, list_hmdb51, list_kinetics, list_ucf101
from actnet.errors import ActnetError

UCF_CLASSES = ["ApplyEyeMakeup", "HandstandPushups", "JumpingJack", "JumpRope"]


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def ucf_tree(root: Path) -> Path:
    """Four classes, groups 1, 8 and 15, with the real HandstandPushups/v_HandStandPushups_* quirk."""
    for cls in UCF_CLASSES:
        file_cls = "HandStandPushups" if cls == "HandstandPushups" else cls
        for g in (1, 8, 15):
            for c in (1, 2):
                touch(root / "UCF-101" / cls / f"v_{file_cls}_g{g:02d}_c{c:02d}.avi")
    return root / "UCF-101"


def write_ucf_lists(folder: Path, drop: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "classInd.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(UCF_CLASSES)))
    train, test = [], []
    for i, cls in enumerate(UCF_CLASSES):
        file_cls = "HandStandPushups" if cls == "HandstandPushups" else cls
        for g in (1, 8, 15):
            for c in (1, 2):
                rel = f"{cls}/v_{file_cls}_g{g:02d}_c{c:02d}.avi"
                (test if g <= 7 else train).append(rel if g <= 7 else f"{rel} {i + 1}")
    train.append(f"{UCF_CLASSES[0]}/v_{UCF_CLASSES[0]}_g09_c07.avi 1")  # listed, not on disk
    (folder / "trainlist01.txt").write_text("\r\n".join(train) + "\r\n")  # the official files have CRLF
    (folder / "testlist01.txt").write_text("\r\n".join(test) + "\r\n")
    return folder


def test_ucf101_with_official_lists(tmp_path):
    root = ucf_tree(tmp_path)
    write_ucf_lists(tmp_path / "ucfTrainTestlist")  # found next to the root without --splits
    listing = list_ucf101(root, split=1)
    assert listing.classes == UCF_CLASSES
    assert listing.split == "split1"
    train, test = listing.of_split("train"), listing.of_split("test")
    assert len(train) == 4 * 2 * 2 and len(test) == 4 * 2
    assert {c.group for c in test} == {1} and {c.group for c in train} == {8, 15}
    quirk = [c for c in listing.candidates if c.class_name == "HandstandPushups"]
    assert len(quirk) == 6 and all(c.key.startswith("v_HandStandPushups_g") for c in quirk)
    assert all(c.label == 1 for c in quirk)  # testlist lines carry no label: taken from the class folder
    assert all(Path(c.path).is_file() for c in listing.candidates)
    assert [s.key for s in listing.skipped] == ["v_ApplyEyeMakeup_g09_c07"]
    assert listing.skipped[0].reason == "missing file"


def test_ucf101_without_lists_uses_groups_and_classind_order(tmp_path):
    root = ucf_tree(tmp_path)
    split2 = list_ucf101(root, split=2)
    # classInd order is case-insensitive: JumpingJack before JumpRope.
    assert split2.classes == UCF_CLASSES
    assert {c.group for c in split2.of_split("test")} == {8}
    assert {c.group for c in split2.of_split("train")} == {1, 15}
    split3 = list_ucf101(root, split=3)
    assert {c.group for c in split3.of_split("test")} == {15}


def test_ucf101_errors_name_the_flag_or_file(tmp_path):
    with pytest.raises(ActnetError, match="--root .*not a folder"):
        list_ucf101(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ActnetError, match="--root .*no class folders"):
        list_ucf101(tmp_path / "empty")
    root = ucf_tree(tmp_path)
    lists = write_ucf_lists(tmp_path / "lists")
    (lists / "testlist01.txt").unlink()
    with pytest.raises(ActnetError, match="missing split file .*testlist01.txt"):
        list_ucf101(root, splits=lists)
    with pytest.raises(ActnetError, match="--split"):
        list_ucf101(root, split=4)


def hmdb_tree(tmp_path: Path) -> tuple[Path, Path]:
    root, splits = tmp_path / "hmdb51", tmp_path / "testTrainMulti_7030_splits"
    splits.mkdir()
    for cls in ("brush_hair", "cartwheel"):
        lines = []
        for i, tag in enumerate([1, 1, 2, 0, 2, 1]):
            name = f"April_09_{cls}_u_nm_np1_ba_goo_{i}.avi"
            if not (cls == "cartwheel" and i == 5):  # one listed video missing on disk
                touch(root / cls / name)
            lines.append(f"{name} {tag} ")
        (splits / f"{cls}_test_split1.txt").write_text("\n".join(lines) + "\n")
    return root, splits


def test_hmdb51_pools(tmp_path):
    root, splits = hmdb_tree(tmp_path)
    all_non_test = list_hmdb51(root, splits, split=1)
    assert all_non_test.classes == ["brush_hair", "cartwheel"]
    assert len(all_non_test.of_split("test")) == 4
    assert len(all_non_test.of_split("train")) == 4 + 3  # tags 0 and 1, less the missing one
    assert [s.key for s in all_non_test.skipped] == ["April_09_cartwheel_u_nm_np1_ba_goo_5"]
    train_only = list_hmdb51(root, splits, split=1, pool="train")
    assert len(train_only.of_split("train")) == 3 + 2
    with pytest.raises(ActnetError, match="--splits .*no <class>_test_split2.txt files"):
        list_hmdb51(root, splits, split=2)


def test_kinetics_csv_and_missing_files(tmp_path):
    root = tmp_path / "k400"
    csv = tmp_path / "train.csv"
    csv.write_text(
        "label,youtube_id,time_start,time_end,split\n"
        '"passing American football (in game)",abc-_123,14,24,train\n'
        "abseiling,zzz000111,0,10,train\n"
        "abseiling,gone0000000,30,40,train\n"
        "abseiling,vvv,5,15,val\n"
        "abseiling,ttt,5,15,test\n"
    )
    touch(root / "train" / "passing American football (in game)" / "abc-_123_000014_000024.mp4")
    touch(root / "train" / "abseiling" / "zzz000111_000000_000010.mp4")
    touch(root / "val" / "vvv_000005_000015.mp4")
    listing = list_kinetics(root, [csv])
    assert listing.classes == ["abseiling", "passing American football (in game)"]
    assert sorted(c.key for c in listing.of_split("train")) == ["abc-_123_000014_000024", "zzz000111_000000_000010"]
    assert [c.key for c in listing.of_split("test")] == ["vvv_000005_000015"]
    assert [s.reason for s in listing.skipped] == ["missing file"]
    bad = tmp_path / "bad.csv"
    bad.write_text("label,youtube_id\nx,y\n")
    with pytest.raises(ActnetError, match="--annotations .*bad.csv.*missing columns"):
        list_kinetics(root, [bad])


def test_folder_split_is_per_class_and_stable(tmp_path):
    root = tmp_path / "my set"
    for cls, n in (("b_class", 10), ("A class", 5)):
        for i in range(n):
            touch(root / cls / f"clip {i}.MP4")
    touch(root / "A class" / "notes.txt")  # not a video: ignored
    touch(root / "A class" / ".hidden.mp4")
    listing = list_folder(root, test_fraction=0.2)
    assert listing.dataset == "my_set"
    assert listing.classes == ["A class", "b_class"]
    assert len(listing.candidates) == 15
    assert len(listing.of_split("test")) == 1 + 2
    assert all(c.key.replace("_", "").replace("-", "").isalnum() for c in listing.candidates)
    # Adding videos to one class does not move the other class's test videos.
    for i in range(10, 20):
        touch(root / "b_class" / f"clip {i}.MP4")
    again = list_folder(root, test_fraction=0.2)
    a_test = {c.key for c in listing.of_split("test") if c.label == 0}
    assert a_test == {c.key for c in again.of_split("test") if c.label == 0}


def test_synthetic_appearance_and_clutter_knobs():
    """appearance tints the object with its class colour; clutter 0 leaves a still, plain background;
    the defaults render exactly what the knobs' absence did (same random draws)."""
    import numpy as np

    from actnet.data.synthetic import CLASS_COLOURS, render

    def video(**kw):
        return render(0, np.random.default_rng([3, 0, 1]), 12, 64, 48, **kw).astype(float)

    plain, tinted, calm = video(), video(appearance=1.0), video(clutter=0.0)
    assert np.array_equal(plain, video(clutter=1.0, appearance=0.0))
    # with appearance 1 the object is the class colour (red for move_left), the rest unchanged
    changed = np.abs(tinted - plain).sum(-1) > 30
    assert 20 < changed[0].sum() < 64 * 48 / 2
    assert np.allclose(tinted[0][changed[0]].mean(0) / 255, CLASS_COLOURS[0], atol=0.12)
    # without clutter, pixels away from the object do not change between frames
    still = np.abs(calm[-1] - calm[0]).sum(-1) < 1
    assert still.mean() > 0.5 and calm[0][still].std(0).max() < 1  # and one flat colour
    assert (np.abs(plain[-1] - plain[0]).sum(-1) < 1).mean() < 0.2


def test_kinetics_rows_that_do_not_read_are_rejected_naming_file_and_line(tmp_path):
    touch(tmp_path / "k" / "abc_000000_000010.mp4")
    touch(tmp_path / "k" / "def_000005_000015.mp4")
    csv = tmp_path / "train.csv"
    csv.write_bytes(
        b"label,youtube_id,time_start,time_end,split\n"
        b"abseiling,abc,0,10,train\n"
        b"abseiling,\xff\xfeid,0,10,train\n"  # line 3: not UTF-8
        b"juggling,xyz,soon,later,train\n"  # line 4: times that are not numbers
        b"juggling,def,5,15,val\n"
        b"juggling,ghi\n"  # line 6: too few columns
    )
    listing = list_kinetics(tmp_path / "k", [csv])
    assert [c.key for c in listing.candidates] == ["abc_000000_000010", "def_000005_000015"]
    reasons = {s.relpath: s.reason for s in listing.skipped}
    assert reasons[f"{csv}:3"] == "not UTF-8 text"
    assert reasons[f"{csv}:4"].startswith("time_start/time_end not times")
    assert reasons[f"{csv}:6"] == "too few columns"


def _video_tree(root: Path) -> Path:
    for cls in ("jump", "run"):
        for i in range(2):
            touch(root / cls / f"{cls}{i}.mp4")
    return root


def test_links_inside_the_root_are_followed_once_and_cycles_add_nothing(tmp_path):
    root = _video_tree(tmp_path / "videos")
    (root / "loop").symlink_to(".")  # a cycle at the top: not a class
    (root / "run" / "again").symlink_to("..")  # a cycle below a class
    (root / "jump" / "run0.mp4").symlink_to("../run/run0.mp4")  # a second path to one file
    (root / "jump" / "extra").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    touch(tmp_path / "elsewhere" / "far.mp4")  # outside the root: not followed
    (root / "jump" / "gone.mp4").symlink_to(root / "nothing.mp4")  # broken
    touch(root / "walk" / "walk0.mp4")
    (root / "walk" / "walk1.mp4").symlink_to(root / "walk" / "walk0.mp4")
    listing = list_folder(root, test_fraction=0.0)
    assert listing.classes == ["jump", "run", "walk"]
    paths = sorted(c.relpath for c in listing.candidates)
    # one file, two paths: the first in name order counts (jump/ before run/), the other is reported
    assert paths == ["jump/jump0.mp4", "jump/jump1.mp4", "jump/run0.mp4", "run/run1.mp4", "walk/walk0.mp4"]
    reasons = {s.relpath: s.reason for s in listing.skipped}
    assert reasons["loop"].startswith("a folder listed already")
    assert reasons["run/again"].startswith("a folder listed already")
    assert reasons["jump/extra"].startswith("link leads outside --root")
    assert reasons["jump/gone.mp4"] == "broken link"
    assert reasons["walk/walk1.mp4"] == "the same file as walk/walk0.mp4"
    assert reasons["run/run0.mp4"] == "the same file as jump/run0.mp4"


def test_a_folder_that_cannot_be_read_is_reported_and_a_class_folder_is_an_error(tmp_path, monkeypatch):
    import os

    root = _video_tree(tmp_path / "videos")
    touch(root / "run" / "more" / "run9.mp4")
    real_scandir = os.scandir

    def scandir(path):  # the tests run as root, which reads any folder: refuse as a permission would
        if Path(path).name in blocked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    blocked = {"more"}
    listing = list_folder(root, test_fraction=0.0)
    assert {s.relpath: s.reason for s in listing.skipped} == {"run/more": "cannot read folder (Permission denied)"}
    assert len(listing.candidates) == 4
    blocked = {"run"}
    with pytest.raises(ActnetError, match="cannot read the class folder run"):
        list_folder(root, test_fraction=0.0)
