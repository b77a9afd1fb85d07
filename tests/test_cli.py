"""The actnet command line: help everywhere, clean one-line errors, exit codes, prepare + inspect end to end."""

import os

import pytest
from PIL import Image
from typer.testing import CliRunner

from actnet.cli import app

runner = CliRunner()
COMMANDS = [
    [],
    ["prepare"],
    ["prepare", "ucf101"],
    ["prepare", "hmdb51"],
    ["prepare", "kinetics"],
    ["prepare", "folder"],
    ["prepare", "synthetic"],
    ["prepare", "merge"],
    ["inspect"],
    ["demo"],
    ["benchmark"],
    ["benchmark", "prepare"],
]
FAST = ["--short-side", "48", "--speed", "8", "--min-shards", "2", "-j", "2", "--small-videos", "keep"]


def invoke(*args: str):
    return runner.invoke(app, list(args), env={"NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "200"})


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "actnet")
def test_help(command):
    result = invoke(*command, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_user_errors_are_one_line_without_traceback(tmp_path):
    result = invoke("prepare", "ucf101", "--root", str(tmp_path / "nope"), "--out", str(tmp_path / "o"))
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [f"error: --root {tmp_path / 'nope'}: not a folder"]
    result = invoke("prepare", "folder", "--root", str(tmp_path), "--labeled", "3")
    assert result.exit_code == 2 and "error: --labeled '3'" in result.output and "Traceback" not in result.output
    result = invoke("prepare", "folder", "--root", str(tmp_path), "--shard-size", "lots")
    assert result.exit_code == 2 and "--shard-size" in result.output
    result = invoke("inspect", str(tmp_path))
    assert result.exit_code == 2 and "no shard sets here" in result.output


def test_reject_fraction_sets_the_exit_code_but_keeps_the_shards(folder_copy, tmp_path):
    for i in range(3):
        (folder_copy / "move_left" / f"bad{i}.mp4").write_bytes(os.urandom(2000))
    out = tmp_path / "out"
    args = ["prepare", "folder", "--root", str(folder_copy), "--out", str(out), "--manifests", "", *FAST]
    result = invoke(*args, "--max-reject-fraction", "0.1")
    assert result.exit_code == 1
    assert "3 of 15 videos rejected" in result.output and "above --max-reject-fraction" in result.output
    assert (out / "videos" / "split1" / "train.info.json").exists()
    assert invoke(*args, "--max-reject-fraction", "0.5").exit_code == 0


def test_synthetic_prepare_then_inspect_with_contact_sheet(tmp_path):
    out = tmp_path / "shards"
    result = invoke(
        "prepare",
        "synthetic",
        "--classes",
        "3",
        "--videos-per-class",
        "3",
        "--frames",
        "16",
        "--size",
        "64x48",
        "--cache",
        str(tmp_path / "cache"),
        "--out",
        str(out),
        "--labeled",
        "1/class",
        "--manifests",
        str(tmp_path / "manifests"),
        *FAST,
    )
    assert result.exit_code == 0, result.output
    assert "labeled-1perclass-seed0" in result.output
    assert (tmp_path / "manifests" / "synthetic" / "split1" / "train.jsonl").exists()
    sheet = tmp_path / "sheet.png"
    result = invoke(
        "inspect", str(out / "synthetic" / "split1"), "--contact-sheet", str(sheet), "--clips", "3", "--frames", "4"
    )
    assert result.exit_code == 0, result.output
    assert "move_left" in result.output and "vp9" in result.output
    with Image.open(sheet) as image:
        assert image.size[0] == 4 * 64 // 64 * 64 and image.size[1] >= 3 * 48  # 4 frames wide, 3 clips high


def test_parts_on_separate_machines_then_merge(synthetic_tree, tmp_path):
    out = tmp_path / "out"
    for part in ("1/2", "2/2"):
        result = invoke(
            "prepare",
            "folder",
            "--root",
            str(synthetic_tree),
            "--name",
            "videos",
            "--out",
            str(out),
            "--part",
            part,
            *FAST,
        )
        assert result.exit_code == 0, result.output
        assert f"part {part} done" in result.output
    result = invoke("prepare", "merge", str(out / "videos" / "split1"), "--labeled", "1%", "--manifests", "")
    assert result.exit_code == 0, result.output
    assert "labeled-1pct-seed0" in result.output
    assert invoke("prepare", "folder", "--root", str(synthetic_tree), "--part", "3/2").exit_code == 2


def _real_layout(kind: str, tmp_path):
    """A tiny real-video tree in the layout of each public data set, and its CLI arguments."""
    from conftest import make_video

    root = tmp_path / kind
    if kind == "ucf101":
        for cls, file_cls in (("ApplyEyeMakeup", "ApplyEyeMakeup"), ("HandstandPushups", "HandStandPushups")):
            for g in (1, 8):
                make_video(root / cls / f"v_{file_cls}_g{g:02d}_c01.avi", pattern="testsrc2")
        return ["--root", str(root)], {"train": 2, "test": 2}
    if kind == "hmdb51":
        splits = tmp_path / "splits"
        splits.mkdir()
        for cls in ("brush_hair", "cartwheel"):
            names = [f"{cls}_clip_{i}.avi" for i in range(3)]
            for name in names:
                make_video(root / cls / name, pattern="smptebars")
            (splits / f"{cls}_test_split1.txt").write_text(f"{names[0]} 1 \n{names[1]} 0 \n{names[2]} 2 \n")
        return ["--root", str(root), "--splits", str(splits)], {"train": 4, "test": 2}
    csv = tmp_path / "k400.csv"
    csv.write_text(
        "label,youtube_id,time_start,time_end,split\nabseiling,aaa,0,10,train\nabseiling,bbb,3,13,val\n"
        "juggling,ccc,1,11,train\njuggling,gone,0,10,train\n"
    )
    for stem in ("aaa_000000_000010", "bbb_000003_000013", "ccc_000001_000011"):
        make_video(root / f"{stem}.mp4", pattern="testsrc")
    return ["--root", str(root), "--annotations", str(csv)], {"train": 2, "test": 1}


@pytest.mark.parametrize("kind", ["ucf101", "hmdb51", "kinetics"])
def test_prepare_public_layouts_end_to_end(kind, tmp_path):
    import json

    args, expected = _real_layout(kind, tmp_path)
    out = tmp_path / "out"
    result = invoke("prepare", kind, *args, "--out", str(out), "--manifests", "", "--labeled", "1/class", *FAST)
    assert result.exit_code == 0, result.output
    dataset = "kinetics400" if kind == "kinetics" else kind
    folder = out / dataset / "split1"
    for set_name, count in expected.items():
        assert json.loads((folder / f"{set_name}.info.json").read_text())["num_samples"] == count
    assert json.loads((folder / "labeled-1perclass-seed0.info.json").read_text())["num_samples"] == 2
    if kind == "kinetics":  # the missing video is reported, not fatal
        assert "1 listed videos missing" in result.output
        assert json.loads((folder / "rejects.jsonl").read_text())["reason"] == "missing file"
