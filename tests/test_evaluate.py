"""Evaluation: metrics against hand-computed values, every test video counted once with all its views."""

import json
from pathlib import Path

import pytest
import torch
from conftest import tiny_config

from actnet.errors import ActnetError
from actnet.evaluate import evaluate_checkpoint, metrics
from actnet.train import Trainer


def test_metrics_against_hand_computed_values():
    probs = torch.tensor(
        [
            [0.7, 0.2, 0.1],  # true 0, right
            [0.1, 0.3, 0.6],  # true 0, wrong (2), 0 is third
            [0.2, 0.5, 0.3],  # true 1, right
            [0.5, 0.1, 0.4],  # true 2, wrong (0), 2 second
        ]
    )
    labels = torch.tensor([0, 0, 1, 2])
    m = metrics(probs, labels, 3)
    assert m["top1"] == 0.5
    assert m["top5"] == 1.0  # top-k is capped at the 3 classes
    assert m["per_class"] == [0.5, 1.0, 0.0]
    assert m["mean_class_accuracy"] == pytest.approx(0.5)
    assert m["confusion"] == [[1, 0, 1], [0, 1, 0], [1, 0, 0]]


def test_evaluate_counts_each_video_once_with_all_views(shards, tmp_path):
    Trainer(tiny_config(shards, tmp_path, "ev", "train.max_steps=2"), progress=False).fit()
    report = evaluate_checkpoint(tmp_path / "ev" / "last.pt")
    test_count = json.loads((shards / "test.info.json").read_text())["num_samples"]
    assert report["videos"] == test_count == sum(sum(r) for r in report["models"]["ensemble"]["confusion"])
    assert report["views"] == "2x3" and set(report["models"]) == {"primary", "auxiliary", "ensemble"}
    assert Path(report["confusion_png"]).stat().st_size > 0
    saved = json.loads((tmp_path / "ev" / "eval-test-2x3.json").read_text())
    assert saved["models"]["ensemble"]["top1"] == report["models"]["ensemble"]["top1"]


def test_a_checkpoint_needs_nothing_else_not_even_its_pretrained_files(shards, synthetic_tree, tmp_path):
    """Trained from a local 2D ViT file; with that file gone, evaluate, predict and resume still work, and the
    weights they use are the checkpoint's."""
    from timm.models.vision_transformer import VisionTransformer

    from actnet.predict import predict_files

    vit = VisionTransformer(img_size=64, patch_size=8, embed_dim=64, depth=4, num_heads=4, num_classes=5)
    weights = tmp_path / "vit2d.pth"
    torch.save({"model": vit.state_dict()}, weights)
    cfg = tiny_config(shards, tmp_path, "pre", "train.max_steps=2", f"model.pretrained_auxiliary={weights}")
    Trainer(cfg, progress=False).fit()
    weights.unlink()
    report = evaluate_checkpoint(tmp_path / "pre" / "last.pt")
    assert report["videos"] > 0
    video = next(p for p in sorted(synthetic_tree.rglob("*")) if p.is_file())
    (result,) = predict_files(tmp_path / "pre" / "last.pt", [video], clips=1, crops=1)
    assert "error" not in result and set(result["top"]) == {"primary", "auxiliary", "ensemble"}
    resumed_cfg = tiny_config(shards, tmp_path, "pre", "train.max_steps=3", f"model.pretrained_auxiliary={weights}")
    resumed = Trainer(resumed_cfg, resume=tmp_path / "pre" / "last.pt", progress=False)
    assert resumed.step == 2
    resumed.fit()
    assert resumed.step == 3


def test_top1_comes_with_the_interval_its_test_set_size_allows():
    from actnet.demo import noise_lines, parse_methods
    from actnet.evaluate import wilson_interval

    assert wilson_interval(0, 10) == pytest.approx((0.0, 1.96**2 / (10 + 1.96**2)))
    assert wilson_interval(96, 96)[0] == pytest.approx(96 / (96 + 1.96**2))
    lo, hi = wilson_interval(43, 48)
    assert lo < 43 / 48 < hi and hi - lo > 0.15  # 48 test videos leave ~17 points open at 90%
    assert wilson_interval(430, 480)[1] - wilson_interval(430, 480)[0] < 0.06

    def report(k, n=48):
        return {"videos": n, "models": {"primary": {"top1": k / n, "top1_interval": list(wilson_interval(k, n))}}}

    lines = noise_lines({"actnetformer": report(39), "supervised": report(40)})
    assert lines[0].startswith("48 test videos: one video is 2.1 points")
    assert lines[1] == "actnetformer vs supervised, primary: -2.1 points, " + (
        "within the test set's noise (the intervals overlap): not a finding"
    )
    assert noise_lines({"actnetformer": report(47), "supervised": report(20)})[1].endswith(
        "beyond the test set's noise"
    )
    assert parse_methods("supervised, actnetformer") == ("supervised", "actnetformer")
    with pytest.raises(ActnetError, match="--methods 'mixmatch': expected names among actnetformer, supervised"):
        parse_methods("mixmatch")
