"""The training task: the run's models and the objective, from a step's batches to a dict of loss parts.

One step (METHOD.md section 2): each model runs once, in train mode, on the concatenation of its labeled weak view,
its unlabeled weak view and (once the pseudo-label warm-up, ``objective.supervised_epochs``, is over) its unlabeled
strong view; the loss is ``objectives.actnetformer_loss``. The contrastive term runs from
``objective.contrastive_epochs`` (0 by default, so the warm-up is supervised + contrastive, as METHOD.md has it).
``objective.teacher_mode`` says where pseudo-labels come from: ``train`` (the default, FixMatch) reads them from the
weak view's logits of that one pass, drop-path and batch-norm batch statistics included; ``eval`` runs the weak view
once more, without gradients, in eval mode (no drop-path or dropout, batch-norm running statistics), which costs one
more forward of the weak view per model. ``objective.teaching`` picks who teaches whom (``cross``: ActNetFormer and
CMPL, ``self``: FixMatch, ``none``: supervised only) and ``objective.beta`` 0 drops the contrastive term, so every
baseline is a setting of this one task.

The task knows nothing of optimizers, schedules, checkpoints or logging: the :class:`~actnet.train.Trainer` calls
it, backpropagates ``out["loss"]`` and logs the rest.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from actnet.config import ModelConfig, ObjectiveConfig
from actnet.models import ProjectionHead, create_model
from actnet.objectives import actnetformer_loss
from actnet.runtime import dist_info, gather_with_grad

log = logging.getLogger("actnet.train")


class Student(nn.Module):
    """A model and (for the contrastive term) its projection head: ``forward(x, project) -> (logits, z)``.

    ``project`` is the (start, stop) slice of the batch whose features are projected (the unlabeled weak
    views), so DDP sees one forward per model and step.
    """

    def __init__(self, backbone: nn.Module, head: ProjectionHead | None):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x: torch.Tensor, project: tuple[int, int] | None = None):
        features = self.backbone.forward_features(x)
        logits = self.backbone.forward_head(features)
        z = None
        if project is not None and self.head is not None:
            z = self.head(features[project[0] : project[1]])
        return logits, z


def build_students(cfg: ModelConfig, num_classes: int, projection: bool, pretrained: bool = True) -> dict[str, Student]:
    """The run's models by role (primary first), pretrained weights loaded from local files if configured and
    ``pretrained``: models about to receive a checkpoint's weights (evaluate, predict, export, a resumed run)
    skip them, so a checkpoint needs nothing else, on any machine."""
    from actnet.models.pretrained import load_pretrained

    students = {}
    for role, name in cfg.presets().items():
        backbone = create_model(name, num_classes, drop_rate=cfg.drop_rate, drop_path_rate=cfg.drop_path_rate)
        weights = cfg.pretrained_primary if role == "primary" else cfg.pretrained_auxiliary
        if weights and pretrained:
            report = load_pretrained(backbone, weights, strict=False)
            log.info("%s: %s", role, report.summary())
        head = ProjectionHead(backbone.num_features, cfg.projection_dim, cfg.projection_hidden) if projection else None
        students[role] = Student(backbone, head)
    return students


def teachers_for(objective: ObjectiveConfig, roles: list[str]) -> dict[str, str]:
    """Student -> teacher: the other model (cross), itself (self, FixMatch), or nobody (none)."""
    if objective.teaching == "cross":
        return {roles[0]: roles[-1], roles[-1]: roles[0]}
    if objective.teaching == "self":
        return {r: r for r in roles}
    return {}


class ActNetFormerTask:
    """``task(batches, step)``: every model's forward on the step's views and the objective's loss parts.

    ``models`` are what runs forward (the students, or their DDP / compiled wrappers), by role; ``warm_steps`` is
    the step at which pseudo-labels start, ``contrast_steps`` the one at which the contrastive term starts. Under
    DDP the contrastive term's negatives are every rank's videos (``objective.negatives=global``: the projections
    are gathered with gradients, so 8 GPUs x 8 clips compute what one GPU with 64 clips would) or this rank's only
    (``local``).

    Returns ``loss`` (with its graph, to backpropagate) and, detached, the parts (``sup``, ``pseudo``,
    ``contrastive``, ``mask_rate``) and diagnostics: ``train_acc`` on the labeled clips, and ``pl_hits`` /
    ``pl_count``, how many kept pseudo-labels match the unlabeled clips' true labels (which never reach the
    loss). No host sync happens here.
    """

    def __init__(
        self,
        models: dict[str, nn.Module],
        objective: ObjectiveConfig,
        *,
        warm_steps: int,
        contrast_steps: int = 0,
        device: torch.device,
        autocast,
        channels_last: bool = False,
    ):
        self.models, self.ocfg, self.warm_steps, self.contrast_steps = models, objective, warm_steps, contrast_steps
        self.device, self.autocast, self.channels_last = device, autocast, channels_last
        self.teachers = teachers_for(objective, list(models))
        rank, world = dist_info()
        distributed = world > 1 and torch.distributed.is_available() and torch.distributed.is_initialized()
        self.rank = rank if distributed and objective.negatives == "global" else None  # None: this rank's negatives

    def __call__(self, batches: dict, step: int) -> dict[str, torch.Tensor]:
        lab, unl = batches["labeled"], batches.get("unlabeled")
        pseudo_on = unl is not None and bool(self.teachers) and self.ocfg.gamma > 0 and step >= self.warm_steps
        contrast = unl is not None and self.ocfg.beta > 0 and step >= self.contrast_steps
        separate_teacher = pseudo_on and self.ocfg.teacher_mode == "eval"
        n_lab = len(lab)
        n_unl = len(unl) if ((pseudo_on and not separate_teacher) or contrast) else 0
        labels = lab.label.to(self.device, non_blocking=True)
        teacher_logits = self._teacher_forward(unl) if separate_teacher else {}
        logits, projections = {}, {}
        for model in self.models.values():
            model.train()
        with self.autocast():
            for role, model in self.models.items():
                parts = [lab[role, "weak"]]
                if n_unl:
                    parts.append(unl[role, "weak"])
                if pseudo_on:
                    parts.append(unl[role, "strong"])
                x = self._input(parts)
                logits[role], projections[role] = model(x, (n_lab, n_lab + n_unl) if contrast else None)
        labeled = {r: x[:n_lab] for r, x in logits.items()}
        weak = {r: x[n_lab : n_lab + n_unl] for r, x in logits.items()} if pseudo_on else {}
        strong = {r: x[n_lab + n_unl :] for r, x in logits.items()} if pseudo_on else {}
        if separate_teacher:
            weak = {r: teacher_logits[r] for r in self.models if r in set(self.teachers.values())}
        gathered = None
        if contrast and self.rank is not None:  # every rank's projections, this rank's at rows rank * n_unl on
            gathered = {role: gather_with_grad(z) for role, z in projections.items()}
        out = actnetformer_loss(
            labeled,
            labels,
            weak,
            strong,
            projections if contrast else None,
            threshold=self.ocfg.threshold,
            gamma=self.ocfg.gamma if pseudo_on else 0.0,
            beta=self.ocfg.beta if contrast else 0.0,
            temperature=self.ocfg.temperature,
            symmetric=self.ocfg.symmetric,
            teachers=self.teachers,
            gathered=gathered,
            offset=(self.rank or 0) * n_unl,
        )
        with torch.no_grad():  # diagnostics only: labels of unlabeled clips are never used for training
            out["train_acc"] = torch.stack([(x.argmax(-1) == labels).float().mean() for x in labeled.values()]).mean()
            hits, count = out["sup"].new_zeros(()), out["sup"].new_zeros(())
            if pseudo_on:
                truth = unl.label.to(self.device, non_blocking=True)
                for teacher in set(self.teachers.values()):
                    confidence, guess = weak[teacher].float().softmax(-1).max(-1)
                    kept = confidence >= self.ocfg.threshold
                    hits = hits + ((guess == truth) & kept).sum()
                    count = count + kept.sum()
            out["pl_hits"], out["pl_count"] = hits, count
        return out

    def _input(self, parts: list[torch.Tensor]) -> torch.Tensor:
        x = torch.cat([p.to(self.device, non_blocking=True) for p in parts])
        return x.contiguous(memory_format=torch.channels_last_3d) if self.channels_last else x

    @torch.no_grad()
    def _teacher_forward(self, unl) -> dict[str, torch.Tensor]:
        """``teacher_mode=eval``: each teacher's logits on the unlabeled weak view, in eval mode, without gradients
        (through the students themselves, not their DDP wrappers: nothing here is to be synchronised)."""
        out = {}
        for role in dict.fromkeys(self.teachers.values()):
            model = self.models[role]
            model = getattr(model, "_orig_mod", model)  # torch.compile's wrapper
            model = getattr(model, "module", model)  # DDP's wrapper
            model.eval()
            with self.autocast():
                out[role] = model(self._input([unl[role, "weak"]]))[0]
        return out
