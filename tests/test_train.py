"""actnet train: the task's baselines, optimizers and schedule, the loop, resume equality, NaN stop, atomic
checkpoints, DDP with 2 gloo processes and the train/evaluate commands end to end, on a tiny synthetic set
(3 classes, 12 videos) on the CPU."""

import copy
import json
import os
import socket
import subprocess
import sys
from dataclasses import replace

import pytest
import torch
from conftest import TINY, tiny_config
from typer.testing import CliRunner

from actnet import optim
from actnet import task as task_mod
from actnet.checkpoint import load_checkpoint, newest_checkpoint
from actnet.cli import app
from actnet.errors import ActnetError
from actnet.train import Trainer, TrainingDiverged


def losses(trainer: Trainer) -> list[tuple[int, float, float, float]]:
    return [(r["step"], r["loss"], r["pseudo"], r["contrastive"]) for r in trainer.history]


# ------------------------------------------------------------------------------------ task and optimizers


def test_baselines_are_settings(shards, tmp_path):
    """Supervised, FixMatch and CMPL come from config alone: who teaches whom, which terms are on."""
    sup = tiny_config(shards, tmp_path, "sup", "objective.teaching=none", "objective.beta=0")
    fixmatch = tiny_config(
        shards,
        tmp_path,
        "fm",
        "model.auxiliary=null",
        "loader.auxiliary=null",
        "objective.teaching=self",
        "objective.beta=0",
    )
    cmpl = tiny_config(shards, tmp_path, "cmpl", "model.auxiliary=r3d_tiny", "objective.beta=0")
    assert task_mod.teachers_for(sup.objective, ["primary", "auxiliary"]) == {}
    assert task_mod.teachers_for(fixmatch.objective, ["primary"]) == {"primary": "primary"}
    assert task_mod.teachers_for(cmpl.objective, ["primary", "auxiliary"]) == {
        "primary": "auxiliary",
        "auxiliary": "primary",
    }
    assert not sup.objective.uses_unlabeled and fixmatch.objective.uses_unlabeled
    t = Trainer(replace(fixmatch, train=replace(fixmatch.train, max_steps=2)), progress=False)
    assert list(t.students) == ["primary"] and t.students["primary"].head is None
    t.fit()
    assert [r["step"] for r in t.history] == [1, 2] and all(r["contrastive"] == 0 for r in t.history)
    assert all(r["mask_rate"] == 1.0 for r in t.history)  # threshold 0: every pseudo-label is kept


def test_lr_schedule_warms_up_then_decays():
    f = [optim.lr_factor(s, 4, 20, 0.1) for s in range(20)]
    assert f[:4] == [0.25, 0.5, 0.75, 1.0]
    assert all(a >= b for a, b in zip(f[3:], f[4:]))
    assert f[-1] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * 15 / 16)).item()))


def test_no_weight_decay_on_norms_biases_and_embeddings():
    from actnet.models import create_model

    model = create_model("timesformer_tiny", 3)
    decay, no_decay = optim.param_groups(model, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(p.ndim > 1 for p in decay["params"])
    skipped = {names[id(p)] for p in no_decay["params"]}
    assert {"pos_embed", "time_embed", "cls_token"} <= skipped and "head.weight" not in skipped


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_fused_optimizers_are_the_default_and_step_like_foreach(name):
    from actnet.config import OptimConfig
    from actnet.models import create_model

    torch.manual_seed(0)
    models = [create_model("r3d_tiny", 3) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    cfg = OptimConfig(name=name, lr=0.01, weight_decay=0.05, nesterov=name == "sgd")
    fused, foreach = (
        optim.make_optimizer(cfg, models[0]),
        optim.make_optimizer(replace(cfg, fused=False), models[1]),
    )
    assert fused.defaults["fused"] and foreach.defaults["foreach"] and not foreach.defaults["fused"]
    for _ in range(3):
        grads = [torch.randn_like(p) for p in models[0].parameters()]
        for model, opt in ((models[0], fused), (models[1], foreach)):
            for p, g in zip(model.parameters(), grads):
                p.grad = g.clone()
            opt.step()
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        assert torch.allclose(a, b, atol=1e-6)


# ------------------------------------------------------------------------------------------------- loop


def test_training_reduces_the_loss(shards, tmp_path):
    """Supervised steps on the 3 labeled videos drive their loss down."""
    cfg = tiny_config(
        shards,
        tmp_path,
        "fit",
        "objective.teaching=none",
        "objective.beta=0",
        "train.epochs=12",
        "loader.augment.rand_augment_n=0",
        "loader.augment.scale=[1.0, 1.0]",
        "optim.primary.lr=0.02",
        "train.warmup_epochs=0",
    )
    t = Trainer(cfg, progress=False)
    t.fit()
    sup = [r["sup"] for r in t.history]
    assert len(sup) == 36
    assert sum(sup[-6:]) / 6 < 0.6 * sum(sup[:6]) / 6, sup
    assert (tmp_path / "fit" / "last.pt").exists() and (tmp_path / "fit" / "curves.png").stat().st_size > 0
    lines = [json.loads(x) for x in (tmp_path / "fit" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "loss" in x] == list(range(1, 37))
    assert list((tmp_path / "fit" / "tb").glob("events.out.tfevents.*"))


def test_resume_repeats_the_uninterrupted_run(shards, tmp_path):
    """6 steps straight == 3 steps, a new process-like Trainer from the checkpoint, 3 more steps."""
    straight = Trainer(tiny_config(shards, tmp_path, "straight", "train.max_steps=6"), progress=False)
    straight.fit()
    first = Trainer(tiny_config(shards, tmp_path, "split", "train.max_steps=3"), progress=False)
    first.fit()
    assert load_checkpoint(tmp_path / "split")["step"] == 3
    torch.manual_seed(12345)  # whatever the process did in between must not matter
    resumed_cfg = tiny_config(shards, tmp_path, "split", "train.max_steps=6")
    resumed = Trainer(resumed_cfg, resume=tmp_path / "split" / "last.pt", progress=False)
    assert resumed.step == 3
    resumed.fit()
    assert losses(first) + losses(resumed) == losses(straight)
    assert all(r[2] > 0 and r[3] > 0 for r in losses(straight))  # every term took part
    a = load_checkpoint(tmp_path / "straight")["models"]
    b = load_checkpoint(tmp_path / "split")["models"]
    for role in a:
        for key in a[role]:
            assert torch.equal(a[role][key], b[role][key]), (role, key)


def test_channels_last_3d_trains_the_same_steps(shards, tmp_path):
    """train.channels_last reformats the 3-D convolutions only (the ViT has 4-D weights) and changes no result."""
    plain = Trainer(tiny_config(shards, tmp_path, "plain", "train.max_steps=2"), progress=False)
    plain.fit()
    fast = Trainer(tiny_config(shards, tmp_path, "cl", "train.max_steps=2", "train.channels_last=true"), progress=False)
    conv = next(m for m in fast.students["primary"].modules() if isinstance(m, torch.nn.Conv3d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last_3d)
    assert not conv.weight.is_contiguous()
    fast.fit()
    assert [r[0] for r in losses(fast)] == [r[0] for r in losses(plain)]
    for a, b in zip(losses(fast), losses(plain)):
        assert a[1:] == pytest.approx(b[1:], rel=1e-4, abs=1e-5)


def test_an_existing_run_is_not_overwritten(shards, tmp_path):
    Trainer(tiny_config(shards, tmp_path, "once", "train.max_steps=1"), progress=False).fit()
    with pytest.raises(ActnetError, match="already holds a checkpoint; resume it with --resume"):
        Trainer(tiny_config(shards, tmp_path, "once", "train.max_steps=1"), progress=False)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(shards, tmp_path, monkeypatch):
    real = task_mod.actnetformer_loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        out = real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] > 4:  # step 5 on: the loss (and so every weight after the update) is NaN
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(task_mod, "actnetformer_loss", poisoned)
    cfg = tiny_config(shards, tmp_path, "nan", "train.log_every=2", "train.ckpt_every=3")
    t = Trainer(cfg, progress=False)
    with pytest.raises(TrainingDiverged, match=r"step 6 .*the loss is nan.*last good checkpoint is .*last\.pt"):
        t.fit()
    ckpt = load_checkpoint(tmp_path / "nan")
    assert ckpt["step"] == 3
    assert all(torch.isfinite(v).all() for v in ckpt["models"]["primary"].values() if v.is_floating_point())


def test_checkpoint_writes_are_atomic(shards, tmp_path, monkeypatch):
    cfg = tiny_config(shards, tmp_path, "atomic", "train.max_steps=3")
    t = Trainer(cfg, progress=False)
    t.fit()
    before = (tmp_path / "atomic" / "last.pt").read_bytes()
    real_save = torch.save

    def dies_halfway(obj, f, *a, **k):
        real_save({"partial": torch.zeros(10)}, f)
        raise KeyboardInterrupt  # a kill in the middle of writing

    monkeypatch.setattr(torch, "save", dies_halfway)
    t.step = 4
    with pytest.raises(KeyboardInterrupt):
        t.save()
    assert (tmp_path / "atomic" / "last.pt").read_bytes() == before
    assert load_checkpoint(tmp_path / "atomic")["step"] == 3


# ------------------------------------------------------------------------------------------------- DDP

DDP_SCRIPT = """
import json, os, sys
import torch
from actnet.data.sampling import train_positions
from actnet.evaluate import evaluate_checkpoint
from actnet.recipes import resolve_run_config
from actnet.train import Trainer

sets, options = json.loads(sys.argv[1]), json.loads(sys.argv[2])
t = Trainer(resolve_run_config(None, sets, options), progress=False)
seen = {}
step = t.train_step
def recording(batches, i):
    for name, b in batches.items():
        seen.setdefault(name, []).extend(b.ids.tolist())
    return step(batches, i)
t.train_step = recording
t.fit()
flat = torch.cat([p.detach().flatten() for s in t.students.values() for p in s.parameters()])
report = evaluate_checkpoint(os.path.join(t.run_dir, "last.pt"))
expected = {}
for name, loader in t.loaders.items():
    s = loader.stream
    expected[name] = [i for e in range(8) for i in train_positions(len(s.shards), s.batch_size, t.rank, t.world,
                                                                  s.seed, s.kind, e).tolist()]
out = {"rank": t.rank, "world": t.world, "seen": seen, "expected": expected, "checksum": flat.double().sum().item(),
       "videos": report["videos"], "top1": report["models"]["ensemble"]["top1"], "steps": t.step,
       "lr": t.peak_lr, "optimizer_lr": {r: o.param_groups[0]["initial_lr"] for r, o in t.optimizers.items()}}
with open(os.path.join(t.run_dir, f"rank{t.rank}.json"), "w") as f:
    json.dump(out, f)
torch.distributed.barrier()
torch.distributed.destroy_process_group()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_gloo_processes_split_as_the_loader_predicts(shards, tmp_path):
    script = tmp_path / "ddp_run.py"
    script.write_text(DDP_SCRIPT)
    options = {"data": {"url": str(shards), "labeled": "labeled-1perclass-seed0"}, "out": str(tmp_path), "name": "ddp"}
    # the primary's lr is stated for 2 labeled clips per step; 2 ranks of 2 make 4: twice the rate, on both ranks
    sets = [*TINY, "train.steps_per_epoch=0", "train.epochs=1", "optim.primary.lr_batch=2"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}"]
    cmd += [str(script), json.dumps(sets), json.dumps(options)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=400, env=env)
    assert proc.returncode == 0, proc.stderr[-6000:]
    ranks = [json.loads((tmp_path / "ddp" / f"rank{r}.json").read_text()) for r in (0, 1)]
    train_count = json.loads((shards / "train.info.json").read_text())["num_samples"]
    # one epoch of the unlabeled set at 2 clips per rank and step: ceil(9 / 4) = 3 steps on both ranks
    assert [r["steps"] for r in ranks] == [3, 3] and train_count == 9
    for r in ranks:
        for name in ("labeled", "unlabeled"):
            assert r["seen"][name] == r["expected"][name][: len(r["seen"][name])], (r["rank"], name)
    unl = [set(r["seen"]["unlabeled"]) for r in ranks]
    assert not (unl[0] & unl[1]) or train_count < 2 * 2 * 3  # disjoint within the epoch, wrapping only to fill
    assert unl[0] | unl[1] == set(range(train_count))
    assert ranks[0]["checksum"] == ranks[1]["checksum"]  # DDP kept the replicas identical
    for r in ranks:  # linear scaling by the global batch; the auxiliary (lr_batch 0) keeps its rate as given
        assert r["lr"] == r["optimizer_lr"] == pytest.approx({"primary": 0.1, "auxiliary": 0.001})
    test_count = json.loads((shards / "test.info.json").read_text())["num_samples"]
    assert [r["videos"] for r in ranks] == [test_count, test_count]  # each test video once, gathered
    # and the same numbers as evaluating the same checkpoint in one process
    from actnet.evaluate import evaluate_checkpoint

    single = evaluate_checkpoint(tmp_path / "ddp" / "last.pt", out=tmp_path / "single")
    assert single["models"]["ensemble"]["top1"] == ranks[0]["top1"]
    assert not list((tmp_path / "ddp").glob(".*.tmp"))


# Two ranks of B clips against one process of 2B clips (the same clips, the same initial weights), through the
# training task: the tiny transformers have no batch norm and no drop path, so only the objective's composition
# across ranks can make them differ. (timesformer_tiny's conv stem has batch norm, whose statistics are per rank:
# the script registers the same transformer with TimeSformer's linear patches.)
EQUIVALENCE_SCRIPT = """
import contextlib, json, os, sys
import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from actnet.config import ModelConfig, ObjectiveConfig
from actnet.data.batch import Batch
from actnet.models import PRESETS, Preset, TimeSformer
from actnet.runtime import mean_across_ranks, setup_distributed
from actnet.task import ActNetFormerTask, build_students

negatives, out_dir = sys.argv[1], sys.argv[2]
rank, world = setup_distributed(torch.device("cpu"))
B, CLASSES = 3, 4
plain = lambda num_classes, **_: TimeSformer(num_classes, 64, 8, 8, 64, 4, 4)  # no batch norm anywhere
PRESETS["plain_tiny"] = Preset("plain_tiny", "timesformer", plain, 8, 64, "timesformer_tiny with linear patches")
MODELS = ModelConfig(primary="plain_tiny", auxiliary="plain_tiny", drop_path_rate=0.0)


def batches(lo, hi):
    gen = torch.Generator().manual_seed(0)  # every process draws the same 2B clips and keeps rows lo..hi
    def stream(views):
        clips = {(m, v): torch.randn(B * world, 3, 4, 32, 32, generator=gen)[lo:hi] for m in MODELS.presets()
                 for v in views}
        labels = torch.randint(0, CLASSES, (B * world,), generator=gen)[lo:hi]
        return Batch(clips, labels, torch.arange(lo, hi), [str(i) for i in range(lo, hi)])
    return {"labeled": stream(["weak"]), "unlabeled": stream(["weak", "strong"])}


def step(forward, students, objective, lo, hi):
    cpu, fp32 = torch.device("cpu"), contextlib.nullcontext
    task = ActNetFormerTask(forward, objective, warm_steps=0, device=cpu, autocast=fp32)
    out = task(batches(lo, hi), 0)
    out["loss"].backward()
    grads = torch.cat([p.grad.flatten() for s in students.values() for p in s.parameters()])
    return out, grads


objective = ObjectiveConfig(threshold=0.0, supervised_epochs=0, negatives=negatives)
torch.manual_seed(0)
students = build_students(MODELS, CLASSES, projection=True)
out, grads = step({r: DDP(s) for r, s in students.items()}, students, objective, rank * B, (rank + 1) * B)
logged = {k: mean_across_ranks(v.detach().float()).item() for k, v in out.items()}
if rank == 0:  # the same step in one process on all 2B clips
    torch.manual_seed(0)
    alone = build_students(MODELS, CLASSES, projection=True)
    one = ObjectiveConfig(threshold=0.0, supervised_epochs=0, negatives="local")  # 1 process: no other rank
    ref, ref_grads = step(alone, alone, one, 0, B * world)
    report = {
        "logged": logged,
        "reference": {k: v.detach().float().item() for k, v in ref.items()},
        "max_grad_diff": (grads - ref_grads).abs().max().item(),
        "max_grad": ref_grads.abs().max().item(),
    }
    with open(os.path.join(out_dir, f"{negatives}.json"), "w") as f:
        json.dump(report, f)
torch.distributed.barrier()  # rank 1 waits for rank 0's reference before the group goes away
torch.distributed.destroy_process_group()
"""


def test_two_ranks_compute_the_objective_and_gradients_of_one_big_batch(tmp_path):
    script = tmp_path / "equivalence.py"
    script.write_text(EQUIVALENCE_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    reports = {}
    for negatives in ("global", "local"):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}"]
        cmd += [str(script), negatives, str(tmp_path)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
        assert proc.returncode == 0, proc.stderr[-6000:]
        reports[negatives] = json.loads((tmp_path / f"{negatives}.json").read_text())
    same = reports["global"]
    for key in ("loss", "sup", "pseudo", "contrastive", "mask_rate", "train_acc"):
        assert same["logged"][key] == pytest.approx(same["reference"][key], rel=1e-5, abs=1e-6), key
    ratio = same["logged"]["pl_hits"] / same["logged"]["pl_count"]
    assert ratio == pytest.approx(same["reference"]["pl_hits"] / same["reference"]["pl_count"])
    assert same["max_grad_diff"] < 1e-5 * max(1.0, same["max_grad"])  # DDP's averaged gradients are the big batch's
    # per-rank negatives (objective.negatives=local) are another objective: its contrastive term and gradients differ
    apart = reports["local"]
    assert apart["logged"]["contrastive"] != pytest.approx(apart["reference"]["contrastive"], rel=1e-3)
    assert apart["max_grad_diff"] > 1e-3 * apart["max_grad"]
    assert apart["logged"]["sup"] == pytest.approx(apart["reference"]["sup"], rel=1e-5)  # the other terms agree


# -------------------------------------------------------------------------------------------------- CLI


def test_train_and_evaluate_commands_end_to_end(shards, tmp_path):
    runner = CliRunner()
    args = ["train", "--data", str(shards), "--labeled", "1/class", "--out", str(tmp_path), "--name", "cli"]
    args += [x for s in [*TINY, "train.max_steps=3", "train.eval_every=1"] for x in ("--set", s)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "quick eval top-1" in result.output and (tmp_path / "cli" / "config.yaml").exists()
    result = runner.invoke(app, ["evaluate", str(tmp_path / "cli"), "--clips", "1", "--crops", "3"])
    assert result.exit_code == 0, result.output
    assert "ensemble" in result.output and (tmp_path / "cli" / "eval-test-1x3.json").exists()
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "already holds a checkpoint" in again.output
    resumed = runner.invoke(app, ["train", "--resume", str(tmp_path / "cli"), "--set", "train.max_steps=4"])
    assert resumed.exit_code == 0, resumed.output
    assert load_checkpoint(tmp_path / "cli")["step"] == 4


def test_train_command_errors_are_one_line(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["train", "--set", "loader.bach_size=2", "--data", str(tmp_path)])
    assert result.exit_code == 2 and "did you mean 'batch_size'" in result.output
    result = runner.invoke(app, ["train", "--data", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "no such shard set" in result.output
    missing = tmp_path / ("a-long-folder-name-" * 4) / "missing.pt"  # longer than the 80 columns of the runner
    result = runner.invoke(app, ["evaluate", str(missing)])
    assert result.exit_code == 2 and f"{missing}: no such checkpoint" in result.output
    assert result.output.strip().count("\n") == 0, result.output


def test_resume_auto_takes_the_newest_complete_checkpoint(shards, tmp_path):
    runner = CliRunner()
    base = ["train", "--data", str(shards), "--labeled", "1/class", "--out", str(tmp_path), "--name", "auto"]
    base += [x for s in [*TINY, "train.ckpt_every=1", "train.keep=2"] for x in ("--set", s)]
    first = runner.invoke(app, [*base, "--resume", "auto", "--set", "train.max_steps=2"])
    assert first.exit_code == 0, first.output
    assert "no checkpoint in" in first.output and load_checkpoint(tmp_path / "auto")["step"] == 2
    assert sorted(p.name for p in (tmp_path / "auto").glob("step-*.pt")) == ["step-00000001.pt", "step-00000002.pt"]
    (tmp_path / "auto" / "last.pt").write_bytes(b"cut short")  # damaged: passed over for the newest whole one
    assert newest_checkpoint(tmp_path / "auto") == tmp_path / "auto" / "step-00000002.pt"
    again = runner.invoke(app, [*base, "--resume", "auto", "--set", "train.max_steps=3"])
    assert again.exit_code == 0, again.output
    assert "resuming from" in again.output and "step-00000002.pt" in again.output
    assert load_checkpoint(tmp_path / "auto")["step"] == 3
    record = json.loads((tmp_path / "auto" / "metrics.jsonl").read_text().splitlines()[-1])
    assert 0 <= record["data_share"] <= 1 and record["host_rss_gib"] > 0.1  # long-run health in every log line


# ------------------------------------------------------------------------------ when terms start, teacher mode


def _task_batches(models, classes=3, b=4, seed=0):
    from actnet.data.batch import Batch

    gen = torch.Generator().manual_seed(seed)

    def stream(views):
        clips = {(m, v): torch.randn(b, 3, 4, 32, 32, generator=gen) for m in models for v in views}
        return Batch(clips, torch.randint(0, classes, (b,), generator=gen), torch.arange(b), [str(i) for i in range(b)])

    return {"labeled": stream(["weak"]), "unlabeled": stream(["weak", "strong"])}


def _tiny_task(objective, **kwargs):
    import contextlib

    from actnet.config import ModelConfig

    models = ModelConfig(primary="r3d_tiny", auxiliary="timesformer_tiny", drop_path_rate=0.5)
    torch.manual_seed(0)
    students = task_mod.build_students(models, 3, projection=True)
    task = task_mod.ActNetFormerTask(
        students, objective, device=torch.device("cpu"), autocast=contextlib.nullcontext, **kwargs
    )
    return task, students


def test_the_contrastive_term_starts_when_configured():
    from actnet.config import ObjectiveConfig

    assert ObjectiveConfig().contrastive_epochs == 0  # METHOD.md: only the pseudo-labels wait for the warm-up
    objective = ObjectiveConfig(threshold=0.0, contrastive_epochs=1.0)
    task, _ = _tiny_task(objective, warm_steps=3, contrast_steps=5)
    batches = _task_batches(["primary", "auxiliary"])
    before, pseudo, both = task(batches, 0), task(batches, 3), task(batches, 5)
    assert before["contrastive"] == 0 and before["pseudo"] == 0  # supervised alone
    assert pseudo["contrastive"] == 0 and pseudo["pseudo"] > 0  # pseudo-labels from step 3
    assert both["contrastive"] > 0 and both["pseudo"] > 0  # and the contrastive term from step 5
    default, _ = _tiny_task(ObjectiveConfig(threshold=0.0), warm_steps=3)
    assert default(batches, 0)["contrastive"] > 0  # the default warm-up is supervised + contrastive


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_teacher_mode_says_which_forward_gives_the_pseudo_labels(mode, monkeypatch):
    """train: the weak view's logits of the training pass (drop-path on); eval: a no-grad pass in eval mode."""
    from actnet.config import ObjectiveConfig

    task, students = _tiny_task(ObjectiveConfig(threshold=0.0, teacher_mode=mode), warm_steps=0)
    batches = _task_batches(["primary", "auxiliary"])
    seen = {}
    real = task_mod.actnetformer_loss

    def spy(labeled, labels, weak, strong, *args, **kwargs):
        seen["weak"] = {r: x.detach().clone() for r, x in weak.items()}
        seen["grad"] = {r: x.requires_grad for r, x in weak.items()}
        return real(labeled, labels, weak, strong, *args, **kwargs)

    monkeypatch.setattr(task_mod, "actnetformer_loss", spy)
    before = copy.deepcopy(students)  # the training pass moves batch-norm running statistics
    out = task(batches, 0)
    out["loss"].backward()
    assert all(s.training for s in students.values())  # the students train on, whatever ran in eval mode
    with torch.no_grad():
        for s in before.values():
            s.eval()
        in_eval = {r: s(batches["unlabeled"][r, "weak"])[0] for r, s in before.items()}
    for role in students:
        same = torch.allclose(seen["weak"][role], in_eval[role], atol=1e-5)
        assert same == (mode == "eval"), role  # drop-path 0.5 and batch statistics make the train pass differ
        assert seen["grad"][role] == (mode == "train")
