"""Using a trained model: actnet predict (raw files, several containers, a corrupt one), actnet export (ONNX
logits against PyTorch's), actnet doctor (a healthy setup, ffmpeg missing, S3 reachable or not)."""

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_video, tiny_config
from typer.testing import CliRunner

from actnet.checkpoint import load_checkpoint, trained_models
from actnet.cli import app
from actnet.config import EncodeConfig
from actnet.data.loader import make_loader
from actnet.data.media import decode_rgb
from actnet.data.sampling import ShardSet
from actnet.predict import clip_views, predict_files
from actnet.train import Trainer

runner = CliRunner()


@pytest.fixture(scope="module")
def run_dir(shards, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("operate")
    Trainer(tiny_config(shards, out, "tiny", "train.max_steps=2", "eval.crops=3"), progress=False).fit()
    return out / "tiny"


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("raw")
    make_video(folder / "a.mp4", frames=30)  # H.264 in MP4
    make_video(folder / "b.avi", frames=20, size="80x60")  # MPEG-4 part 2 in AVI
    make_video(folder / "c.webm", frames=12, pattern="mandelbrot", codec=["-c:v", "libvpx-vp9", "-cpu-used", "8"])
    make_video(folder / "sub" / "d.mkv", frames=50, fps="50", size="48x64")  # portrait, 50 fps, in a subfolder
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4000))
    (folder / "notes.txt").write_text("not a video: folders give their video files only")
    return folder


# ---------------------------------------------------------------------------------------------- predict


def test_predict_reads_several_containers_and_reports_a_corrupt_file(run_dir, videos):
    results = predict_files(run_dir, [videos], top_k=2)
    by_name = {Path(r["file"]).name: r for r in results}
    assert sorted(by_name) == ["a.mp4", "b.avi", "broken.mp4", "c.webm", "d.mkv"]
    assert "error" in by_name["broken.mp4"]
    classes = load_checkpoint(run_dir)["class_names"]
    for name in ("a.mp4", "b.avi", "c.webm", "d.mkv"):
        r = by_name[name]
        assert set(r["top"]) == {"primary", "auxiliary", "ensemble"}
        for role, top in r["top"].items():
            assert len(top) == 2 and top[0][1] >= top[1][1] and top[0][0] in classes
            assert torch.isclose(r["probs"][role].sum(), torch.tensor(1.0), atol=1e-5)
        mean = (r["probs"]["primary"] + r["probs"]["auxiliary"]) / 2
        assert torch.allclose(r["probs"]["ensemble"], mean)
    assert by_name["a.mp4"]["frames"] == 30 and by_name["d.mkv"]["fps"] == 50

    result = runner.invoke(app, ["predict", str(run_dir), str(videos / "a.mp4"), str(videos / "broken.mp4")])
    assert result.exit_code == 1  # the bad file is named, the good one still predicted
    assert "broken.mp4" in result.output and "a.mp4 (30 frames" in result.output and "ensemble" in result.output
    result = runner.invoke(app, ["predict", str(run_dir), str(videos / "c.webm"), "--json", "-k", "1"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout[result.stdout.index("[") :])
    assert doc[0]["file"].endswith("c.webm") and len(doc[0]["top"]["ensemble"]) == 1
    missing = runner.invoke(app, ["predict", str(run_dir), str(videos / "nope.mp4")])
    assert missing.exit_code == 2 and "nope.mp4: no such file or folder" in missing.output


def test_predict_makes_the_views_evaluation_makes(run_dir, shards, tmp_path):
    """The same stored video through DALI's evaluation graph and through predict's decode + views, at the crop
    size as test scale and at a larger test short side (loader.*.test_short_side)."""
    from dataclasses import replace

    base = load_checkpoint(run_dir)["run_config"].loader
    test_set = ShardSet(str(shards), "test")
    encode = EncodeConfig(**test_set.info.encode)
    first_views = {}
    for short in (0, 40):
        cfg = replace(base, eval_clips=2, eval_crops=3, eval_batch_size=2)
        cfg = replace(
            cfg,
            primary=replace(cfg.primary, test_short_side=short),
            auxiliary=replace(cfg.auxiliary, test_short_side=short),
        )
        batch = next(iter(make_loader(str(shards), "test", "eval", cfg)))
        first_views[short] = batch["primary", "eval"][0]
        for i, sample_id in enumerate(batch.ids.tolist()):
            path = tmp_path / f"{i}.{test_set.extension}"
            path.write_bytes(test_set.fetch(sample_id)[test_set.extension])
            frames, fps = decode_rgb(path, encode)
            for role in ("primary", "auxiliary"):
                ours = clip_views(frames, fps, getattr(cfg, role), cfg, 2, 3)
                dali = batch[role, "eval"][i]
                assert ours.shape == dali.shape
                diff = (ours - dali).abs()  # same frames and crops; the resize kernels differ slightly
                assert diff.mean() < 0.03 and diff.max() < 0.5, (short, role, diff.mean().item(), diff.max().item())
    assert first_views[0].shape == first_views[40].shape  # the same crop size ...
    assert (first_views[0] - first_views[40]).abs().mean() > 0.05  # ... of a larger picture


# ----------------------------------------------------------------------------------------------- export


def test_export_onnx_and_torchscript_match_pytorch(run_dir, tmp_path):
    import onnxruntime as ort

    result = runner.invoke(app, ["export", str(run_dir), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    contract = json.loads((tmp_path / "actnet-ensemble.json").read_text())
    ckpt = load_checkpoint(run_dir)
    assert contract["class_names"] == ckpt["class_names"] and contract["mean"] == list(ckpt["run_config"].loader.mean)
    assert [i["name"] for i in contract["inputs"]] == ["primary_clip", "auxiliary_clip"]
    assert contract["inputs"][0]["shape"] == ["batch", 3, 4, 32, 32] and contract["inputs"][0]["stride"] == 2
    assert contract["inputs"][0]["test_short_side"] == 32  # the crop size: the run set no larger test scale
    gen = torch.Generator().manual_seed(0)
    x = [torch.randn(3, *i["shape"][1:], generator=gen) for i in contract["inputs"]]  # batch 3: not the traced 2
    models, _ = trained_models(ckpt, torch.device("cpu"))
    with torch.no_grad():
        want = [models["primary"](x[0]), models["auxiliary"](x[1])]
    want.append((want[0].softmax(-1) + want[1].softmax(-1)) / 2)
    session = ort.InferenceSession(str(tmp_path / "actnet-ensemble.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(contract["outputs"], {i["name"]: t.numpy() for i, t in zip(contract["inputs"], x)})
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w.numpy(), rtol=1e-4, atol=1e-4)
    scripted = torch.jit.load(str(tmp_path / "actnet-ensemble.torchscript.pt"))
    with torch.no_grad():
        for g, w in zip(scripted(*x), want):
            torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)

    args = ["export", str(run_dir), "--out", str(tmp_path), "--model", "auxiliary", "--format", "onnx"]
    one = runner.invoke(app, args)
    assert one.exit_code == 0, one.output
    single = ort.InferenceSession(str(tmp_path / "actnet-auxiliary.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(single.run(None, {"auxiliary_clip": x[1].numpy()})[0], want[1].numpy(), atol=1e-4)
    bad = runner.invoke(app, ["export", str(run_dir), "--model", "both"])
    assert bad.exit_code == 2 and "--model must be one of" in bad.output


# ----------------------------------------------------------------------------------------------- doctor


def _rows(output: str) -> dict[str, str]:
    rows = {}
    for line in output.splitlines():
        parts = line.split()
        for status in ("ok", "warn", "fail", "skip"):
            if status in parts:
                rows[" ".join(parts[: parts.index(status)])] = status
                break
    return rows


def test_doctor_on_a_healthy_setup():
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 0, result.output
    rows = _rows(result.output)
    for name in ("python", "torch", "ffmpeg", "ffmpeg encoders", "dali", "decode vp9 (cpu)", "decode mjpeg (cpu)"):
        assert rows[name] == "ok", (name, result.output)
    assert rows["decode h264 (cpu)"] == "skip" and rows["s3"] == "skip"


def test_doctor_without_ffmpeg_says_how_to_fix_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no ffmpeg, no ffprobe
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 1
    rows = _rows(result.output)
    assert rows["ffmpeg"] == "fail" and rows["decode vp9 (cpu)"] == "skip"
    assert "fail ffmpeg: apt-get install -y ffmpeg" in result.output


def test_doctor_checks_the_configured_s3_endpoint(s3_bucket, monkeypatch):
    result = runner.invoke(app, ["doctor"])
    assert _rows(result.output)["s3"] == "ok" and "reachable" in result.output
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 1 and _rows(result.output)["s3"] == "fail"
    assert "check AWS_ENDPOINT_URL" in result.output
