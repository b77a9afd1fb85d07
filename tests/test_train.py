"""actnet train / evaluate: config layering, the loop, resume equality, NaN stop, DDP with 2 gloo processes,
evaluation counting and the commands end to end, on a tiny synthetic set (3 classes, 12 videos) on the CPU."""

import json
import os
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import prepare_options
from typer.testing import CliRunner

from actnet import train as train_mod
from actnet.cli import app
from actnet.config import RunConfig, from_dict, resolve_run_config, to_dict
from actnet.data.sources import list_folder
from actnet.errors import ActnetError
from actnet.evaluate import metrics
from actnet.prepare import prepare
from actnet.train import Trainer, TrainingDiverged, load_checkpoint

REPO = Path(__file__).resolve().parent.parent

# A run small enough for a test: 4-frame 32-px clips, tiny models, pseudo-labels from the first step
# (threshold 0 keeps every prediction, so the pseudo-label term is exercised), 3 steps per epoch.
TINY = [
    "loader.batch_size=2",
    "loader.mu=1",
    "loader.eval_batch_size=2",
    "loader.primary={frames: 4, strides: [2], size: 32}",
    "loader.auxiliary={frames: 4, strides: [1, 2], size: 32}",
    "loader.augment.flip=false",
    "loader.eval_clips=1",
    "loader.eval_crops=1",
    "loader.num_threads=1",
    "loader.fetch_threads=1",
    "loader.device=cpu",
    "model.primary=r3d_tiny",
    "model.auxiliary=timesformer_tiny",
    "model.drop_path_rate=0.1",
    "objective.threshold=0.0",
    "objective.supervised_epochs=0",
    "optim.primary={name: sgd, lr: 0.05}",
    "optim.auxiliary={name: adamw, lr: 0.001, weight_decay: 0.05}",
    "train.epochs=4",
    "train.steps_per_epoch=3",
    "train.warmup_epochs=1",
    "train.log_every=1",
    "train.eval_every=0",
    "eval.clips=2",
    "eval.crops=3",
    "eval.batch_size=2",
]


@pytest.fixture(scope="module")
def shards(synthetic_tree, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("train-data")
    prepare(list_folder(synthetic_tree, 0.25, name="synthetic"), prepare_options(out, labeled=("1/class",)))
    return out / "shards" / "synthetic" / "split1"


def tiny_config(shards: Path, out: Path, name: str, *sets: str) -> RunConfig:
    options = {"data": {"url": str(shards), "labeled": "labeled-1perclass-seed0"}, "out": str(out), "name": name}
    return resolve_run_config(None, [*TINY, *sets], options)


def losses(trainer: Trainer) -> list[tuple[int, float, float, float]]:
    return [(r["step"], r["loss"], r["pseudo"], r["contrastive"]) for r in trainer.history]


# ----------------------------------------------------------------------------------------------- config


def test_config_layers_defaults_recipe_set_options(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: from-recipe\nobjective: {beta: 0.25, threshold: 0.9}\ntrain: {epochs: 7}\n")
    cfg = resolve_run_config(str(recipe), ["objective.beta=0.125", "train.epochs=9"], {"train": {"epochs": 11}})
    assert cfg.name == "from-recipe"  # recipe over default
    assert cfg.objective.threshold == 0.9  # recipe
    assert cfg.objective.beta == 0.125  # --set over recipe
    assert cfg.train.epochs == 11  # first-class option over --set
    assert cfg.objective.temperature == RunConfig().objective.temperature  # untouched default
    assert from_dict(RunConfig, to_dict(cfg)) == cfg


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["loader.bach_size=3"], "did you mean 'batch_size'"),
        (["objective.teaching=mutual"], "objective.teaching must be one of"),
        (["model.auxiliary=null"], "model.auxiliary and loader.auxiliary"),
        (["train.epochs=three"], "train.epochs: expected int"),
        (["objective.beta"], "expected key.path=value"),
    ],
)
def test_config_errors_name_the_key(sets, message):
    with pytest.raises(ActnetError, match=message):
        resolve_run_config(None, sets)


def test_every_recipe_resolves():
    recipes = sorted((REPO / "recipes").glob("*.yaml"))
    assert len(recipes) >= 8
    for path in recipes:
        cfg = resolve_run_config(str(path))
        assert cfg.name == path.stem or path.stem.startswith(cfg.name), path


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
    assert train_mod.teachers_for(sup.objective, ["primary", "auxiliary"]) == {}
    assert train_mod.teachers_for(fixmatch.objective, ["primary"]) == {"primary": "primary"}
    assert train_mod.teachers_for(cmpl.objective, ["primary", "auxiliary"]) == {
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
    f = [train_mod.lr_factor(s, 4, 20, 0.1) for s in range(20)]
    assert f[:4] == [0.25, 0.5, 0.75, 1.0]
    assert all(a >= b for a, b in zip(f[3:], f[4:]))
    assert f[-1] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * 15 / 16)).item()))


def test_no_weight_decay_on_norms_biases_and_embeddings():
    from actnet.models import create_model

    model = create_model("timesformer_tiny", 3)
    decay, no_decay = train_mod.param_groups(model, 0.05)
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
        train_mod.make_optimizer(cfg, models[0]),
        train_mod.make_optimizer(replace(cfg, fused=False), models[1]),
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
    real = train_mod.actnetformer_loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        out = real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] > 4:  # step 5 on: the loss (and so every weight after the update) is NaN
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(train_mod, "actnetformer_loss", poisoned)
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


# ---------------------------------------------------------------------------------------------- evaluate


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
    from actnet.evaluate import evaluate_checkpoint

    Trainer(tiny_config(shards, tmp_path, "ev", "train.max_steps=2"), progress=False).fit()
    report = evaluate_checkpoint(tmp_path / "ev" / "last.pt")
    test_count = json.loads((shards / "test.info.json").read_text())["num_samples"]
    assert report["videos"] == test_count == sum(sum(r) for r in report["models"]["ensemble"]["confusion"])
    assert report["views"] == "2x3" and set(report["models"]) == {"primary", "auxiliary", "ensemble"}
    assert Path(report["confusion_png"]).stat().st_size > 0
    saved = json.loads((tmp_path / "ev" / "eval-test-2x3.json").read_text())
    assert saved["models"]["ensemble"]["top1"] == report["models"]["ensemble"]["top1"]


# ------------------------------------------------------------------------------------------------- DDP

DDP_SCRIPT = """
import json, os, sys
import torch
from actnet.config import resolve_run_config
from actnet.data.sampling import train_positions
from actnet.evaluate import evaluate_checkpoint
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
       "videos": report["videos"], "top1": report["models"]["ensemble"]["top1"], "steps": t.step}
with open(os.path.join(t.run_dir, f"rank{t.rank}.json"), "w") as f:
    json.dump(out, f)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_gloo_processes_split_as_the_loader_predicts(shards, tmp_path):
    script = tmp_path / "ddp_run.py"
    script.write_text(DDP_SCRIPT)
    options = {"data": {"url": str(shards), "labeled": "labeled-1perclass-seed0"}, "out": str(tmp_path), "name": "ddp"}
    sets = [*TINY, "train.steps_per_epoch=0", "train.epochs=1"]
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
    test_count = json.loads((shards / "test.info.json").read_text())["num_samples"]
    assert [r["videos"] for r in ranks] == [test_count, test_count]  # each test video once, gathered
    # and the same numbers as evaluating the same checkpoint in one process
    from actnet.evaluate import evaluate_checkpoint

    single = evaluate_checkpoint(tmp_path / "ddp" / "last.pt", out=tmp_path / "single")
    assert single["models"]["ensemble"]["top1"] == ranks[0]["top1"]
    assert not list((tmp_path / "ddp").glob(".*.tmp"))


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
    assert train_mod.newest_checkpoint(tmp_path / "auto") == tmp_path / "auto" / "step-00000002.pt"
    again = runner.invoke(app, [*base, "--resume", "auto", "--set", "train.max_steps=3"])
    assert again.exit_code == 0, again.output
    assert "resuming from" in again.output and "step-00000002.pt" in again.output
    assert load_checkpoint(tmp_path / "auto")["step"] == 3
    record = json.loads((tmp_path / "auto" / "metrics.jsonl").read_text().splitlines()[-1])
    assert 0 <= record["data_share"] <= 1 and record["host_rss_gib"] > 0.1  # long-run health in every log line


def test_training_benchmark_and_soak_give_plausible_figures(shards, tmp_path):
    from torch.utils.flop_counter import FlopCounterMode

    from actnet.benchmark import benchmark_soak, benchmark_training, training_markdown
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
    from actnet.benchmark import benchmark_optimizer_step, benchmark_step_options, step_options_markdown
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
    from actnet.benchmark import machine_description

    result = {"rows": ladder, "config": "tiny", "device": "CPU", "optimizer": opt, "optimizer_models": "tiny"}
    text = step_options_markdown(result | {"machine": machine_description()})
    assert "| before |" in text and "| + cl |" in text and "| 1.00 |" in text and "| r3d_tiny | sgd |" in text
