"""The benchmarks on tiny inputs: every section gives plausible figures and writes them up (speed targets live in
the figures, never in timed tests)."""

import json

import numpy as np
import pytest
import torch
from conftest import index_frames, tiny_config
from typer.testing import CliRunner

from actnet.cli import app
from actnet.data.sampling import ShardSet
from actnet.errors import ActnetError


def test_benchmark_loader_records_its_figures(indexed, tmp_path):
    results = tmp_path / "bench.md"
    args = ["benchmark", "loader", "--data", str(indexed), "--size", "16", "--frames", "4", "--batch-size", "2"]
    args += ["--batches", "1", "--eval-clips", "1", "--workers", "1", "--results", str(results)]
    run = CliRunner().invoke(app, args)
    assert run.exit_code == 0, run.output
    data = json.loads(results.with_suffix(".json").read_text())["loader"]
    assert [r["stream"] for r in data["streams"]] == ["labeled", "unlabeled", "eval", "unlabeled"]
    assert [r["variant"] for r in data["streams"]] == ["", "", "", "linear RandAugment geometry, before"]
    for row in data["streams"]:
        assert row["dali"]["clips_per_s"] > 0 and set(row["baselines"]) == {"torchcodec", "pyav"}
        assert all(b["clips_per_s"] > 0 for b in row["baselines"].values())
        assert row["speedup"] == row["dali"]["clips_per_s"] / row["baselines"][row["best"]]["clips_per_s"]
    assert len(data["readers"]) == 3 and "| unlabeled (train) | 2 |" in results.read_text()


def test_benchmark_storage_reads_through_the_latency_proxy_and_records(indexed, tmp_path, monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    results = tmp_path / "bench.md"
    args = ["benchmark", "storage", "--data", str(indexed), "--latency-ms", "0,30", "--size", "16", "--frames", "4"]
    args += ["--batch-size", "2", "--batches", "1", "--repeat", "1", "--workers", "1", "--results", str(results)]
    run = CliRunner().invoke(app, args)
    assert run.exit_code == 0, run.output
    data = json.loads(results.with_suffix(".json").read_text())["storage"]
    assert [r["stream"] for r in data["streams"]] == ["unlabeled", "eval"]
    for row in data["streams"]:
        assert row["local"] > 0 and row["local_fetch"] > 0 and set(row["latency"]) == {"0.0", "30.0"}
        for figures in row["latency"].values():
            assert figures["clips_per_s"] > 0 and figures["samples_per_s"] > 0
            assert 0 < figures["requests"] <= 1  # at most one ranged GET per sample
            assert figures["bytes"] > figures["sample_bytes"]  # the sample plus HTTP headers
    assert "| unlabeled (train) | 30 ms |" in results.read_text()
    before = [*args[:-2], "--latency-ms", "0", "--fetch-threads", "4", "--coalesce-kib", "0", "--server", "folder"]
    run = CliRunner().invoke(app, before)
    words = " ".join(run.output.split())  # the console wraps lines
    assert run.exit_code == 0 and "4 reads in flight, one read per sample" in words
    assert "a light S3-compatible server" in words
    bad = CliRunner().invoke(app, [*args[:4], "--latency-ms", "soon"])
    assert bad.exit_code == 2 and "--latency-ms 'soon'" in bad.output


def test_the_folder_bucket_answers_as_s3_does(monkeypatch):
    """The benchmark's light server: boto3's HEAD, GET, ranged GET and LIST, and S3's errors for what is missing."""
    from actnet.bench.storage import BENCH_BUCKET, endpoint, local_s3_server
    from actnet.data.storage import StorageError, open_storage

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with local_s3_server("folder") as server, endpoint(server.url):
        (server.folder / "sets" / "a").mkdir(parents=True)
        (server.folder / "sets" / "a" / "x.bin").write_bytes(bytes(range(200)))
        (server.folder / "sets" / "y.txt").write_bytes(b"hello")
        storage = open_storage(f"s3://{BENCH_BUCKET}/sets")
        assert storage.exists("y.txt") and not storage.exists("z.txt")
        assert storage.read_bytes("y.txt") == b"hello"
        assert storage.read_range("a/x.bin", 10, 5) == bytes(range(10, 15))
        assert storage.sizes() == {"a/x.bin": 200, "y.txt": 5} and storage.list("a") == ["a/x.bin"]
        with pytest.raises(StorageError, match="no such object"):
            storage.read_range("z.txt", 0, 1)
        with pytest.raises(StorageError, match="no such bucket"):
            open_storage("s3://no-such-bucket/sets").read_bytes("y.txt")


def test_pyav_and_torchcodec_decode_the_same_frames_in_any_order(indexed):
    from actnet.bench.baseline import decode_at, pick_decoder

    assert pick_decoder() == "torchcodec" and pick_decoder("pyav") == "pyav"
    with pytest.raises(ActnetError, match="--baseline"):
        pick_decoder("opencv")
    shards = ShardSet(str(indexed), "train")
    members = shards.fetch(0)
    n = json.loads(members["json"])["video"]["num_frames"]
    index = [n - 1, 3, 3, 0, n // 2]  # unsorted, repeated, both ends
    a = decode_at(members[shards.extension], index, "pyav")
    b = decode_at(members[shards.extension], index, "torchcodec")
    assert a.shape == b.shape == (5, 3, 24, 32) and a.dtype == torch.uint8
    assert torch.equal(a, b)
    levels = a[:, 0].float().mean(dim=(1, 2))  # red encodes the frame index: 20 + 5 i
    assert np.rint((levels.numpy() - 20) / 5).astype(int).tolist() == index


def test_decoder_comparison_finds_the_same_frames_and_would_see_a_shifted_seek(indexed):
    from actnet.bench.decoders import _agreement, benchmark_decoders, decoders_markdown

    result = benchmark_decoders(str(indexed), "train", 3, gpu=False, frames_per_sample=5)
    pairs = [(r["decoder"], r["reference"]) for r in result["rows"]]
    assert pairs == [("DALI cpu", "torchcodec"), ("DALI cpu", "PyAV")]
    for row in result["rows"]:
        assert row["samples"] == 3 and row["frames"] == 15
        assert row["same_frame"] == 15 and row["mean_abs"] < 1.5  # lossless VP9: colour rounding only
    assert "| DALI cpu | PyAV | 3 | 15 |" in decoders_markdown(result, "test videos")
    frames = index_frames(0, 6)
    shifted = _agreement(frames[1:], frames[:-1])  # every frame one index late
    assert shifted["mean_abs"] == pytest.approx(5 / 3)  # red is 5 levels off, green and blue agree
    assert shifted["same_frame"] == 1  # only the last frame: its true frame is not among the references


def test_training_benchmark_and_soak_give_plausible_figures(shards, tmp_path):
    from torch.utils.flop_counter import FlopCounterMode

    from actnet.bench.soak import benchmark_soak
    from actnet.bench.training import benchmark_training, training_markdown
    from actnet.models import create_model

    cfg = tiny_config(shards, tmp_path, "bench", "objective.supervised_epochs=1")
    r = benchmark_training(cfg, 2, log=lambda *_: None)
    assert r["clips_per_s"] > 0 and r["starvation"] > 0 and r["mfu"] is None  # no peak rate for a CPU
    forward = 0  # both models forward over the step's clips: labeled weak + unlabeled weak + unlabeled strong
    for role, clip in cfg.loader.clips().items():
        model = create_model(cfg.model.presets()[role], 3)
        x = torch.randn(2 + 2 * 2, 3, clip.frames, clip.size, clip.size)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(x)
        forward += counter.get_total_flops()
    assert 2.5 < r["flops_per_step"] / forward < 3.5  # forward + backward is about three forwards
    text = training_markdown([r], "GPU rows: not measured")
    assert "| CPU | r3d_tiny + timesformer_tiny | 4 x 32 x 32 | 2 + 2 | fp32 |" in text and "n/a" in text

    soak = benchmark_soak(str(shards), cfg.loader, 3, log=lambda *_: None)
    assert len(soak["rss_mib"]) == 4 and soak["clips"] == 3 * soak["batches_per_epoch"] * 2


def test_step_option_ladder_adds_each_row_to_the_last(shards, tmp_path):
    from actnet.bench.options import benchmark_optimizer_step, benchmark_step_options, step_options_markdown
    from actnet.config import OptimConfig

    seen = []

    def make(overrides):
        seen.append(list(overrides))
        return tiny_config(shards, tmp_path, f"ladder{len(seen)}", *overrides)

    rows = [
        ("before", ["train.channels_last=false", "optim.primary.fused=false"]),
        ("+ cl", ["train.channels_last=true"]),
    ]
    ladder = benchmark_step_options(make, rows, 1, log=lambda *_: None)
    assert seen == [rows[0][1], rows[0][1] + rows[1][1]]
    assert all(r["step_s"] > 0 and r["warmup_s"] > 0 for r in ladder)

    optims = {"primary": OptimConfig(name="sgd"), "auxiliary": OptimConfig(name="adamw")}
    models = {"primary": "r3d_tiny", "auxiliary": "timesformer_tiny"}
    opt = benchmark_optimizer_step(optims, models, 3, torch.device("cpu"), repeat=1)
    assert [r["optimizer"] for r in opt] == ["sgd", "adamw"] and all(min(r["ms"].values()) > 0 for r in opt)
    from actnet.bench.common import machine_description

    result = {"rows": ladder, "config": "tiny", "device": "CPU", "optimizer": opt, "optimizer_models": "tiny"}
    text = step_options_markdown(result | {"machine": machine_description()})
    assert "| before |" in text and "| + cl |" in text and "| 1.00 |" in text and "| r3d_tiny | sgd |" in text


def test_the_loader_figures_stand_alone_where_no_dali_free_decoder_loads(indexed, monkeypatch):
    """A bare GPU machine has neither FFmpeg nor PyAV: the loader section then records DALI's figures alone."""
    from actnet.bench import loader as section
    from actnet.bench.suite import loader_config

    monkeypatch.setattr(section, "available_decoders", lambda required=True: [])
    cfg = loader_config(16, 4, 2, 1, 1, "cpu")
    result = section.benchmark_loader(str(indexed), cfg, 1, 1, log=lambda *_: None)
    assert result["baselines"] == [] and all(
        r["speedup"] is None and r["dali"]["clips_per_s"] > 0 for r in result["streams"]
    )
    table = [line for line in section.loader_markdown(result, cfg, "x", 1).splitlines() if line.startswith("| ")]
    assert {line.count("|") for line in table[:5]} == {6}  # the header and its 4 rows: equally wide
    assert all("n/a (no DALI-free decoder here)" in line for line in table[1:5])


def test_benchmark_prepare_says_where_the_cpu_goes(tmp_path):
    results = tmp_path / "bench.md"
    args = ["benchmark", "prepare", "--videos", "4", "--frames", "12", "--size", "64x48", "--workers", "1"]
    args += ["--repeat", "1", "--cache", str(tmp_path / "cache"), "--results", str(results)]
    run = CliRunner().invoke(app, args)
    assert run.exit_code == 0, run.output
    data = json.loads(results.with_suffix(".json").read_text())["prepare"]
    cpu = data["cpu"]
    assert set(cpu) == {"probe", "encode", "verify_full", "verify_packets", "prepare_children", "prepare_own"}
    assert all(seconds > 0 for seconds in cpu.values())
    # prepare's children are its probes, encodes and verifying runs: about the stages' sum, never far below it
    assert cpu["prepare_children"] > 0.7 * (cpu["probe"] + cpu["encode"] + cpu["verify_full"])
    assert "| ffprobe on each source (one process per video) |" in results.read_text()
