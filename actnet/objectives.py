"""The ActNetFormer objective as pure functions (METHOD.md section 2).

    L = L_s + gamma * (L_u^Z + L_u^A) + beta * L_ca

- ``supervised_loss``: cross-entropy of each model on its weak view of the labeled clips, summed.
- ``pseudo_label_loss``: a student's cross-entropy on its strong view against the teacher's confident
  weak-view prediction; the mean runs over the whole unlabeled batch, masked samples counting as zero
  (FixMatch). In ActNetFormer each model is the other's teacher.
- ``cross_arch_contrastive_loss``: NT-Xent on the weak views' projections: the positive of video i seen by
  Z is the same video seen by A; its negatives are every other video of the batch from both architectures.
  ``symmetric`` also anchors on A (the paper's form anchors on Z only).

Everything here is a function of tensors, so each term is tested against hand-computed values.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def supervised_loss(logits: list[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    """Sum over models of the mean cross-entropy on the labeled batch."""
    return sum(F.cross_entropy(x.float(), labels) for x in logits)


def pseudo_labels(teacher_logits: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(hard labels, mask of predictions whose softmax confidence reaches ``threshold``), without gradient."""
    with torch.no_grad():
        confidence, labels = teacher_logits.detach().float().softmax(dim=-1).max(dim=-1)
    return labels, confidence >= threshold


def pseudo_label_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, threshold: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, mask): mean over the batch of mask_i * CE(student_i, argmax teacher_i)."""
    labels, mask = pseudo_labels(teacher_logits, threshold)
    per_sample = F.cross_entropy(student_logits.float(), labels, reduction="none")
    return (per_sample * mask).mean(), mask


def cross_arch_contrastive_loss(
    z: torch.Tensor,
    a: torch.Tensor,
    temperature: float,
    symmetric: bool = False,
    *,
    z_all: torch.Tensor | None = None,
    a_all: torch.Tensor | None = None,
    offset: int = 0,
) -> torch.Tensor:
    """NT-Xent between the projections ``z`` (primary) and ``a`` (auxiliary) of the same B videos, (B, d).

    For anchor z_i: -log( h(z_i, a_i) / (h(z_i, a_i) + sum_{k != i} [h(z_i, z_k) + h(z_i, a_k)]) ) with
    h(u, v) = exp(cos(u, v) / T); averaged over i (and over both anchorings when ``symmetric``).

    The k run over ``z_all`` / ``a_all`` when given: the projections of every rank's videos, concatenated in rank
    order, this rank's at rows ``offset .. offset + B``. The anchors stay this rank's own; averaged over the ranks
    (as DDP averages gradients), the loss is that of one batch of all the ranks' videos.
    """
    z, a = F.normalize(z.float(), dim=-1), F.normalize(a.float(), dim=-1)
    z_all = z if z_all is None else F.normalize(z_all.float(), dim=-1)
    a_all = a if a_all is None else F.normalize(a_all.float(), dim=-1)
    rows = torch.arange(len(z), device=z.device)
    own = rows + offset  # each anchor's own column among all the videos

    def anchored(anchor: torch.Tensor, other: torch.Tensor, same_arch: torch.Tensor) -> torch.Tensor:
        cross = anchor @ other.T / temperature  # column own[i]: the positive
        same = anchor @ same_arch.T / temperature
        same = same.index_put((rows, own), torch.tensor(float("-inf"), device=same.device))  # not its own negative
        return (torch.logsumexp(torch.cat([cross, same], dim=1), dim=1) - cross[rows, own]).mean()

    loss = anchored(z, a_all, z_all)
    return (loss + anchored(a, z_all, a_all)) / 2 if symmetric else loss


def actnetformer_loss(
    labeled_logits: dict[str, torch.Tensor],
    labels: torch.Tensor,
    weak_logits: dict[str, torch.Tensor],
    strong_logits: dict[str, torch.Tensor],
    projections: dict[str, torch.Tensor] | None,
    *,
    threshold: float,
    gamma: float,
    beta: float,
    temperature: float,
    symmetric: bool = False,
    teachers: dict[str, str] | None = None,
    gathered: dict[str, torch.Tensor] | None = None,
    offset: int = 0,
) -> dict[str, torch.Tensor]:
    """The total loss and its parts for one step.

    ``teachers`` maps each student to the model whose weak view teaches it: by default each of two models
    teaches the other (cross-architecture); ``{"primary": "primary"}`` is FixMatch with one model. ``gamma``
    0 (e.g. during the supervised warm-up) or ``beta`` 0 switch a term off; ``projections`` (weak views,
    keyed by model) are needed only when ``beta`` > 0; ``gathered`` holds every rank's projections (the
    contrastive negatives across ranks, see :func:`cross_arch_contrastive_loss`), this rank's at ``offset``.
    """
    models = list(labeled_logits)
    if teachers is None:
        teachers = {models[0]: models[-1], models[-1]: models[0]}
    sup = supervised_loss([labeled_logits[m] for m in models], labels)
    zero = sup.new_zeros(())
    pseudo, masks = zero, []
    if weak_logits and strong_logits:
        for student, teacher in teachers.items():
            part, mask = pseudo_label_loss(strong_logits[student], weak_logits[teacher], threshold)
            pseudo = pseudo + part
            masks.append(mask.float())
    contrastive = zero
    if beta > 0 and projections is not None and len(models) == 2:
        everyone = {"z_all": gathered[models[0]], "a_all": gathered[models[1]]} if gathered else {}
        contrastive = cross_arch_contrastive_loss(
            projections[models[0]], projections[models[1]], temperature, symmetric, **everyone, offset=offset
        )
    loss = sup + gamma * pseudo + beta * contrastive
    mask_rate = torch.stack([m.mean() for m in masks]).mean() if masks else zero
    return {
        "loss": loss,
        "sup": sup.detach(),
        "pseudo": pseudo.detach(),
        "contrastive": contrastive.detach(),
        "mask_rate": mask_rate,
    }
