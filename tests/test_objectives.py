"""The loss terms against values computed by hand from METHOD.md's formulas."""

import math

import pytest
import torch
import torch.nn.functional as F

from actnet.objectives import (
    actnetformer_loss,
    cross_arch_contrastive_loss,
    pseudo_label_loss,
    supervised_loss,
)


def test_supervised_loss_sums_both_models():
    labels = torch.tensor([0, 1])
    z = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    a = torch.tensor([[0.0, 0.0], [0.0, 3.0]])
    ce = lambda logits, y: -math.log(math.exp(logits[y]) / sum(math.exp(v) for v in logits))  # noqa: E731
    expected = (ce([2, 0], 0) + ce([0, 0], 1)) / 2 + (ce([0, 0], 0) + ce([0, 3], 1)) / 2
    assert supervised_loss([z, a], labels).item() == pytest.approx(expected, rel=1e-6)


def test_pseudo_labels_mask_by_threshold_and_average_over_the_whole_batch():
    # teacher confidences: softmax([log 9, 0]) = 0.9 (below 0.95), softmax([0, log 99]) = 0.99 (kept)
    teacher = torch.tensor([[math.log(9), 0.0], [0.0, math.log(99)], [math.log(19), 0.0]])
    student = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.5, 0.0]])
    loss, mask = pseudo_label_loss(student, teacher, threshold=0.95)
    assert mask.tolist() == [False, True, True]  # 0.9 < 0.95 <= 0.99, and 0.95 itself is kept
    ce1 = -math.log(math.exp(0.0) / (math.exp(1.0) + math.exp(0.0)))  # student 1 against label 1
    ce2 = -math.log(math.exp(0.5) / (math.exp(0.5) + 1.0))  # student 2 against label 0
    assert loss.item() == pytest.approx((0 + ce1 + ce2) / 3, rel=1e-6)  # masked samples count as zero
    assert pseudo_label_loss(student, teacher, threshold=0.999)[0].item() == 0.0


def test_no_gradient_flows_into_the_teacher():
    teacher = torch.tensor([[5.0, 0.0]], requires_grad=True)
    student = torch.tensor([[0.0, 0.0]], requires_grad=True)
    pseudo_label_loss(student, teacher, 0.5)[0].backward()
    assert teacher.grad is None and student.grad.abs().sum() > 0


def test_contrastive_loss_by_hand():
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # anchor z_0: positive exp(1/T); negatives z_1 and a_1, both orthogonal: exp(0) each
    for t in (0.5, 0.1):
        expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 2))
        assert cross_arch_contrastive_loss(z, a, t).item() == pytest.approx(expected, rel=1e-5, abs=1e-6)  # float32


def test_contrastive_negatives_come_from_both_architectures():
    z = F.normalize(torch.tensor([[1.0, 0.0], [0.6, 0.8]]), dim=-1)
    a = F.normalize(torch.tensor([[0.8, 0.6], [0.0, 1.0]]), dim=-1)
    t = 0.5
    h = lambda u, v: math.exp(float(u @ v) / t)  # noqa: E731
    expected = 0.0
    for i in range(2):
        k = 1 - i
        expected += -math.log(h(z[i], a[i]) / (h(z[i], a[i]) + h(z[i], z[k]) + h(z[i], a[k])))
    assert cross_arch_contrastive_loss(z, a, t).item() == pytest.approx(expected / 2, rel=1e-5)
    # symmetric: the same with A as the anchor, averaged
    back = sum(-math.log(h(a[i], z[i]) / (h(a[i], z[i]) + h(a[i], a[1 - i]) + h(a[i], z[1 - i]))) for i in range(2))
    assert cross_arch_contrastive_loss(z, a, t, symmetric=True).item() == pytest.approx((expected + back) / 4, rel=1e-5)
    # unnormalised inputs are normalised first
    assert cross_arch_contrastive_loss(3 * z, 2 * a, t).item() == pytest.approx(expected / 2, rel=1e-5)


def test_total_loss_combines_the_parts_and_teaches_across():
    torch.manual_seed(0)
    labels = torch.tensor([0, 2])
    lab = {"primary": torch.randn(2, 3), "auxiliary": torch.randn(2, 3)}
    weak = {"primary": torch.tensor([[9.0, 0, 0], [0, 0, 0]]), "auxiliary": torch.tensor([[0, 0, 0], [0, 9.0, 0]])}
    strong = {"primary": torch.randn(2, 3), "auxiliary": torch.randn(2, 3)}
    proj = {"primary": torch.randn(2, 8), "auxiliary": torch.randn(2, 8)}
    out = actnetformer_loss(lab, labels, weak, strong, proj, threshold=0.95, gamma=0.7, beta=0.5, temperature=0.5)
    # primary learns from the auxiliary's confident sample 1 (label 1); auxiliary from primary's sample 0 (label 0)
    pz = F.cross_entropy(strong["primary"][1:], torch.tensor([1]), reduction="sum") / 2
    pa = F.cross_entropy(strong["auxiliary"][:1], torch.tensor([0]), reduction="sum") / 2
    sup = supervised_loss(list(lab.values()), labels)
    con = cross_arch_contrastive_loss(proj["primary"], proj["auxiliary"], 0.5)
    assert out["pseudo"].item() == pytest.approx((pz + pa).item(), rel=1e-6)
    assert out["loss"].item() == pytest.approx((sup + 0.7 * (pz + pa) + 0.5 * con).item(), rel=1e-6)
    assert out["mask_rate"].item() == pytest.approx(0.5)
    fixmatch = actnetformer_loss(
        {"primary": lab["primary"]},
        labels,
        weak,
        strong,
        None,
        threshold=0.95,
        gamma=1.0,
        beta=0.0,
        temperature=0.5,
        teachers={"primary": "primary"},
    )
    own = F.cross_entropy(strong["primary"][:1], torch.tensor([0]), reduction="sum") / 2
    assert fixmatch["pseudo"].item() == pytest.approx(own.item(), rel=1e-6) and fixmatch["contrastive"] == 0


def test_contrastive_negatives_from_every_rank_give_the_big_batch_loss():
    """Two ranks of 3 videos whose anchors see all 6 videos' projections average to the loss of one batch of 6;
    with only their own 3 as negatives they do not."""
    torch.manual_seed(3)
    z, a = torch.randn(6, 8), torch.randn(6, 8)
    for symmetric in (False, True):
        whole = cross_arch_contrastive_loss(z, a, 0.5, symmetric)
        halves = [
            cross_arch_contrastive_loss(
                z[r * 3 : r * 3 + 3], a[r * 3 : r * 3 + 3], 0.5, symmetric, z_all=z, a_all=a, offset=r * 3
            )
            for r in (0, 1)
        ]
        assert torch.allclose((halves[0] + halves[1]) / 2, whole, atol=1e-6)
        alone = [
            cross_arch_contrastive_loss(z[r * 3 : r * 3 + 3], a[r * 3 : r * 3 + 3], 0.5, symmetric) for r in (0, 1)
        ]
        assert not torch.allclose((alone[0] + alone[1]) / 2, whole, atol=1e-3)
