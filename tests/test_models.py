"""The two architectures: sizes, shapes, gradients, the divided attention's wiring, weights from files."""

import pytest
import torch
from timm.models.vision_transformer import VisionTransformer

from actnet.errors import ActnetError
from actnet.models import PRESETS, ProjectionHead, create_model
from actnet.models.pretrained import inflate_resnet_2d, load_pretrained, load_vit_2d
from actnet.models.timesformer import TimeSformer


def count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_parameter_counts_at_101_classes():
    assert count(create_model("r3d50", 101)) == 31_841_445  # the paper's 31.8 M (SlowOnly inflation)
    vit = count(create_model("timesformer_s", 101))
    assert vit == 30_587_237  # ViT-S 21.7 M + temporal attention, fc and norm per block: METHOD.md's ~30.6 M
    assert 100_000 < count(create_model("r3d_tiny", 101)) < 1_000_000
    assert 100_000 < count(create_model("timesformer_tiny", 101)) < 1_000_000


@pytest.mark.parametrize("name", ["r3d_tiny", "timesformer_tiny"])
@pytest.mark.parametrize("shape", [(8, 64, 64), (4, 48, 80), (16, 32, 32), (1, 64, 64)])
def test_output_shapes_for_several_clip_sizes(name, shape):
    model = create_model(name, 7).eval()
    x = torch.randn(2, 3, *shape)
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape == (2, model.num_features)
        assert model.forward_head(feats).shape == (2, 7)
        assert torch.allclose(model(x), model.forward_head(feats))


def test_full_size_models_run_small_clips():
    x = torch.randn(1, 3, 4, 64, 64)
    with torch.no_grad():
        assert create_model("r3d50", 101).eval()(x).shape == (1, 101)
        assert create_model("timesformer_s", 101).eval()(x).shape == (1, 101)


@pytest.mark.parametrize("name", ["r3d_tiny", "timesformer_tiny", "r3d50_w4"])
def test_every_parameter_gets_a_gradient(name):
    torch.manual_seed(0)
    model = create_model(name, 5)
    with torch.no_grad():  # switch on what starts switched off (zero-init residual BN, temporal_fc)
        for n, p in model.named_parameters():
            if n.endswith("weight") and not p.any():
                p.normal_(1.0 if p.ndim == 1 else 0.0, 0.1)
    head = ProjectionHead(model.num_features)
    feats = model.forward_features(torch.randn(2, 3, 4, 64, 64))
    (model.forward_head(feats).logsumexp(-1).sum() + head(feats).sum()).backward()
    params = list(model.named_parameters()) + list(head.named_parameters())
    assert [n for n, p in params if p.grad is None or not p.grad.abs().sum() > 0] == []


def plain_tiny(num_classes=5, img_size=64) -> TimeSformer:
    """timesformer_tiny's body with TimeSformer's own linear patches (the preset has a convolutional stem)."""
    return TimeSformer(num_classes, img_size=img_size, num_frames=8, patch_size=8, embed_dim=64, depth=4, num_heads=4)


def tiny_vit_2d(num_classes=5, img_size=64) -> VisionTransformer:
    return VisionTransformer(
        img_size=img_size, patch_size=8, embed_dim=64, depth=4, num_heads=4, num_classes=num_classes
    ).eval()


def test_fresh_transformer_is_the_per_frame_vit_and_2d_weights_load(tmp_path):
    """Temporal parts at their initial values + identical frames: exactly the 2D ViT on one frame."""
    torch.manual_seed(0)
    vit = tiny_vit_2d()
    path = tmp_path / "vit.pth"
    torch.save({"model": vit.state_dict()}, path)
    model = plain_tiny().eval()
    report = load_pretrained(model, path)
    assert not report.missing and not report.mismatched and not report.unexpected
    frame = torch.randn(2, 3, 64, 64)
    clip = frame[:, :, None].expand(2, 3, 8, 64, 64)
    with torch.no_grad():
        expected = vit.forward_features(frame)[:, 0]
        got = model.forward_features(clip)
        assert torch.allclose(got, expected, atol=1e-5)
        assert torch.allclose(model(clip), vit(frame), atol=1e-5)


def test_divided_attention_mixes_time_per_position_then_space():
    torch.manual_seed(0)
    model = create_model("timesformer_tiny", 5).eval()
    block = model.blocks[0].double()
    torch.nn.init.normal_(block.temporal_fc.weight, std=0.1)
    x = torch.randn(1, 4, 16, 64, dtype=torch.float64)  # (B, T, N, D) patch tokens
    bumped = x.clone()
    bumped[0, 1, 3] += torch.randn(64, dtype=torch.float64)  # one patch of frame 1 (not a constant: LayerNorm)
    with torch.no_grad():
        delta = (block.temporal(bumped) - block.temporal(x)).abs().sum(-1)[0]  # (T, N)
        assert delta[:, 3].min() > 1e-6  # every frame at that position sees it ...
        assert delta[:, [n for n in range(16) if n != 3]].max() == 0  # ... and no other position
        cls = torch.randn(1, 1, 64, dtype=torch.float64)
        _, out = block(cls, x)
        _, out_bumped = block(cls, bumped)
        moved = (out_bumped - out).abs().sum(-1)[0]
        assert (moved > 1e-6).all()  # after spatial attention it reaches every token of every frame
    # attention over time is order-blind; with 2-D patches the temporal position embedding (zero at init) is all
    # that makes frame order matter
    model = plain_tiny().eval()
    for b in model.blocks:
        torch.nn.init.normal_(b.temporal_fc.weight, std=0.2)
    clip = torch.randn(1, 3, 8, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(clip), model(clip.flip(2)), atol=1e-5)
        torch.nn.init.normal_(model.time_embed, std=0.5)
        assert not torch.allclose(model(clip), model(clip.flip(2)), atol=1e-4)
        # the tiny preset's convolutional stem sees neighbouring frames: order matters from the first step
        tiny = create_model("timesformer_tiny", 5).eval()
        assert tiny.conv_stem and tiny.patch_embed.conv.weight.shape[2] == 5
        assert not torch.allclose(tiny(clip), tiny(clip.flip(2)), atol=1e-4)


def test_the_tiny_3d_resnet_sees_frame_order_from_its_stem():
    torch.manual_seed(0)
    model = create_model("r3d_tiny", 5).eval()
    assert model.conv1.weight.shape[2] == 5  # 5x7x7
    clip = torch.randn(1, 3, 8, 64, 64)
    with torch.no_grad():  # zero-initialised residual branches: the stem is what sees order at first
        stem = model.bn1(model.conv1(clip))
        assert not torch.allclose(stem, model.bn1(model.conv1(clip.flip(2))).flip(2), atol=1e-4)
    with pytest.raises(ValueError, match="stem_frames must be odd"):
        from actnet.models.r3d import ResNet3d

        ResNet3d("basic", (1, 1, 1, 1), 5, 16, stem_frames=2)


def test_vit_weights_resize_to_another_grid_and_foreign_heads_are_reported(tmp_path):
    vit = tiny_vit_2d(num_classes=1000)
    path = tmp_path / "vit.safetensors"
    from safetensors.torch import save_file

    save_file(vit.state_dict(), str(path))
    model = plain_tiny()
    report = load_vit_2d(model, path)
    assert not report.unexpected and any("head.weight" in u and "1000-class" in u for u in report.skipped)
    hybrid = load_vit_2d(create_model("timesformer_tiny", 5), path, strict=False)  # the preset's conv stem
    assert "patch_embed.proj.weight" in " ".join(hybrid.unexpected + hybrid.mismatched)
    assert any(m.startswith("patch_embed.conv") for m in hybrid.missing) and "blocks.0.attn.qkv.weight" in hybrid.loaded

    bigger = TimeSformer(5, img_size=96, num_frames=8, patch_size=8, embed_dim=64, depth=4, num_heads=4)
    load_vit_2d(bigger, path)
    assert bigger.pos_embed.shape == (1, 1 + 12 * 12, 64)
    assert torch.equal(bigger.pos_embed[:, 0], vit.pos_embed[:, 0])


def test_mismatched_or_missing_weights_are_named(tmp_path):
    vit = VisionTransformer(img_size=64, patch_size=16, embed_dim=64, depth=4, num_heads=4, num_classes=5)
    path = tmp_path / "wrong_patch.pth"
    torch.save(vit.state_dict(), path)
    with pytest.raises(ActnetError, match=r"wrong_patch.pth.*mismatched: patch_embed.proj.weight"):
        load_vit_2d(plain_tiny(), path)
    with pytest.raises(ActnetError, match="nothing.pth: no such checkpoint file"):
        load_vit_2d(plain_tiny(), tmp_path / "nothing.pth")
    state = tiny_vit_2d().state_dict()
    del state["blocks.2.mlp.fc1.weight"]
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(ActnetError, match=r"missing: blocks.2.mlp.fc1.weight"):
        load_vit_2d(plain_tiny(), tmp_path / "partial.pth")


def test_resnet_2d_checkpoint_inflates(tmp_path):
    import torchvision

    torch.manual_seed(0)
    resnet = torchvision.models.resnet18(num_classes=5).eval()
    for m in resnet.modules():  # non-trivial batch-norm statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    path = tmp_path / "resnet18.pth"
    torch.save(resnet.state_dict(), path)
    model = create_model("r3d18", 5).eval()
    report = inflate_resnet_2d(model, path)
    assert not report.missing and not report.unexpected and not report.mismatched
    w2d = resnet.layer3[0].conv1.weight
    w3d = model.layer3[0].conv1.weight  # temporal kernel 3: the 2D kernel over 3
    assert w3d.shape[2] == 3 and all(torch.allclose(w3d[:, :, k], w2d / 3) for k in range(3))
    frame = torch.randn(2, 3, 64, 64)
    clip = frame[:, :, None].expand(2, 3, 4, 64, 64)
    with torch.no_grad():  # up to res3 every conv is 2D-shaped: each frame gives the 2D network's maps
        x2 = resnet.layer2(resnet.layer1(resnet.maxpool(resnet.relu(resnet.bn1(resnet.conv1(frame))))))
        x3 = model.layer2(model.layer1(model.maxpool(model.relu(model.bn1(model.conv1(clip))))))
        for t in range(4):
            assert torch.allclose(x3[:, :, t], x2, atol=1e-5)
        assert torch.allclose(model.fc.weight, resnet.fc.weight)


def test_projection_head_is_unit_length():
    z = ProjectionHead(64)(torch.randn(5, 64))
    assert z.shape == (5, 128) and torch.allclose(z.norm(dim=-1), torch.ones(5), atol=1e-5)


@pytest.mark.slow  # about a minute per model on 2 cores with a cold inductor cache
@pytest.mark.parametrize("name", ["r3d_tiny", "timesformer_tiny"])
def test_torch_compile_matches_eager(name):
    torch.manual_seed(0)
    model = create_model(name, 5).eval()
    compiled = torch.compile(model)
    x = torch.randn(2, 3, 8, 64, 64)
    with torch.no_grad():
        assert torch.allclose(compiled(x), model(x), atol=1e-4)
    model.train()
    compiled(x).sum().backward()  # the backward graph compiles too
    assert all(p.grad is not None for n, p in model.named_parameters() if "temporal_fc" not in n)


def test_presets_are_listed():
    assert {"r3d50", "r3d18", "r3d50_w4", "timesformer_s", "r3d_tiny", "timesformer_tiny"} <= set(PRESETS)
    with pytest.raises(ActnetError, match="unknown model 'r3d101'"):
        create_model("r3d101", 5)


@pytest.mark.parametrize("name", ["r3d_tiny", "timesformer_tiny"])
def test_bf16_autocast_and_channels_last_3d(name):
    torch.manual_seed(0)
    model = create_model(name, 5).eval()
    x = torch.randn(2, 3, 8, 64, 64)
    with torch.no_grad():
        reference = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x)
        assert torch.isfinite(low).all() and (low.float() - reference).abs().max() < 0.05
        if name.startswith("r3d"):
            fast = model.to(memory_format=torch.channels_last_3d)(x.to(memory_format=torch.channels_last_3d))
            assert torch.allclose(fast, reference, atol=1e-4)
        else:
            assert all(block.attn.fused_attn and block.temporal_attn.fused_attn for block in model.blocks)
