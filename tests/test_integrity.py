"""Damage is found, named and repaired: actnet verify, prepare reruns that redo damaged shards, the loader's own
quick check, temporaries of killed runs, and metrics.jsonl after a resume."""

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import pytest
from conftest import prepare_options
from typer.testing import CliRunner

from actnet.cli import app
from actnet.data.loader import make_loader
from actnet.data.sources import list_folder
from actnet.errors import ActnetError
from actnet.files import atomic_write, clean_orphans
from actnet.prepare import prepare
from actnet.runlog import Metrics
from actnet.verify import verify_output

runner = CliRunner()


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def prepared(synthetic_tree, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    out = tmp_path_factory.mktemp("integrity")
    prepare(list_folder(synthetic_tree, 0.25, name="videos"), prepare_options(out, labeled=("1/class",)))
    folder = out / "shards" / "videos" / "split1"
    return folder, _digests(folder)


@pytest.fixture
def damaged(prepared, tmp_path) -> Path:
    """A private copy of the prepared output (same absolute layout under tmp_path) to damage."""
    folder, _ = prepared
    copy = tmp_path / "shards" / "videos" / "split1"
    shutil.copytree(folder, copy)
    return copy


def _flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def _problems(folder: Path, quick: bool) -> list[str]:
    return [p for c in verify_output(str(folder), quick=quick) for p in c.problems]


def test_verify_passes_a_sound_output_and_names_each_kind_of_damage(damaged):
    assert _problems(damaged, quick=False) == []
    (damaged / "train-000001.idx").unlink()
    os.truncate(damaged / "test-000000.tar", 2000)
    _flip(damaged / "train-000002.tar", 1500)  # inside the first member's data: same size, other bytes
    index = damaged / "train-000003.idx"
    index.write_text(index.read_text().replace("\ncls ", "\ncls x", 1))
    quick = _problems(damaged, quick=True)
    assert any("train-000001.idx: missing index file" in p for p in quick)
    assert any("test-000000.tar: 2000 bytes" in p and "truncated" in p for p in quick)
    assert any("train-000003.idx: line 2 is malformed" in p for p in quick)
    assert not any("train-000002" in p for p in quick)  # a flipped byte needs the full check
    full = _problems(damaged, quick=False)
    assert any("train-000002.tar: sha256 differs" in p for p in full) and len(full) == len(quick) + 1


def test_verify_decodes_every_video(damaged, tmp_path):
    """A video that no longer decodes is found even when its shard's recorded hash was updated to match."""
    from conftest import with_one_sample_changed

    out = tmp_path / "rewritten"
    out.mkdir()
    for name in ("manifests",):
        shutil.copytree(damaged / name, out / name)
    bad = with_one_sample_changed(damaged, "train", out, lambda m: {**m, "webm": m["webm"][:200]})
    problems = [p for c in verify_output(str(out), ["train"]) for p in c.problems]
    assert len(problems) == 1 and f"sample {bad}" in problems[0], problems


def test_verify_command_exit_status_and_lines(damaged):
    ok = runner.invoke(app, ["verify", str(damaged), "--quick"])
    assert ok.exit_code == 0, ok.output
    os.truncate(damaged / "train-000000.tar", 100)
    bad = runner.invoke(app, ["verify", str(damaged), "--set", "train"])
    assert bad.exit_code == 1
    assert "train-000000.tar: 100 bytes" in bad.output and "error:" in bad.output and "Traceback" not in bad.output


def test_a_rerun_of_prepare_repairs_damaged_shards_byte_identical(prepared, damaged, synthetic_tree):
    _, before = prepared
    out = damaged.parent.parent.parent
    (damaged / "train-000001.idx").unlink()
    os.truncate(damaged / "test-000000.tar", 2000)
    os.truncate(damaged / "labeled-1perclass-seed0-000000.tar", 512)
    _flip(damaged / "train-000002.tar", 1500)
    redo = sum(
        len(json.loads((damaged / f"_done/{s}.json").read_text())["rows"]) for s in ("train-000001", "test-000000")
    )
    listing = list_folder(synthetic_tree, 0.25, name="videos")
    summary = prepare(listing, prepare_options(out, labeled=("1/class",)))
    assert summary.encoded_now == redo  # the videos of train-000001 and test-000000, nothing else
    assert _problems(damaged, quick=True) == []
    assert _problems(damaged, quick=False) != []  # the flipped byte: sizes and indices cannot see it
    summary = prepare(listing, prepare_options(out, labeled=("1/class",), rehash=True))
    assert summary.encoded_now > 0 and _problems(damaged, quick=False) == []
    after = _digests(damaged)
    assert {k: v for k, v in after.items() if not k.startswith("_done")} == {
        k: v for k, v in before.items() if not k.startswith("_done")
    }


def test_the_loader_names_a_missing_index_in_one_line(damaged):
    (damaged / "train-000000.idx").unlink()
    with pytest.raises(ActnetError) as err:
        make_loader(str(damaged), "train", "unlabeled", _loader_cfg())
    message = str(err.value)
    assert "train-000000.idx: missing index file" in message and "\n" not in message


def _loader_cfg():
    from actnet.config import ClipConfig, LoaderConfig

    clip = ClipConfig(frames=2, strides=(1,), size=32)
    return LoaderConfig(batch_size=2, primary=clip, auxiliary=clip, device="cpu", num_threads=1, fetch_threads=1)


def test_orphaned_temporaries_are_removed_and_live_ones_kept(tmp_path):
    dead = 2**22 + 12345  # above the default pid_max: no such process
    orphan = tmp_path / f".last.pt.{dead}.ab12cd_e.tmp"
    live = tmp_path / f".last.pt.{os.getpid()}.zz99yy_x.tmp"
    old_style = tmp_path / ".train.jsonl.k3j4h5g6.tmp"
    fresh_old_style = tmp_path / ".test.jsonl.q1w2e3r4.tmp"
    for path in (orphan, live, old_style, fresh_old_style):
        path.write_bytes(b"partial")
    an_hour_ago = time.time() - 3600
    os.utime(old_style, (an_hour_ago, an_hour_ago))
    (tmp_path / "last.pt").write_bytes(b"kept")
    assert sorted(clean_orphans(tmp_path)) == sorted([orphan, old_style])
    assert live.exists() and fresh_old_style.exists() and (tmp_path / "last.pt").exists()


def test_the_temporary_of_an_atomic_write_names_its_process(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (seen.append(Path(src).name), real_replace(src, dst)))
    atomic_write(tmp_path / "x.json", "{}")
    assert seen and seen[0].startswith(f".x.json.{os.getpid()}.") and seen[0].endswith(".tmp")


def test_metrics_of_a_resumed_run_go_back_to_the_checkpoint(tmp_path):
    lines = [json.dumps({"step": s, "loss": 1.0 / s}) + "\n" for s in range(1, 7)]
    (tmp_path / "metrics.jsonl").write_text("".join(lines) + '{"step": 7, "lo')  # killed mid-line
    metrics = Metrics(tmp_path, enabled=True, step=4)
    metrics.write({"step": 5, "loss": 0.5}, 5)
    metrics.close()
    steps = [json.loads(x)["step"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5]
