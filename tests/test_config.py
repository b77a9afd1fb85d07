"""Config: the layers (defaults < recipe < --set < options), errors that name the key, the recipes that ship
inside the package, closed choices declared once."""

import pytest

from actnet.config import RunConfig
from actnet.errors import ActnetError
from actnet.recipes import from_dict, recipe_names, resolve_run_config, to_dict


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
    names = recipe_names()
    assert len(names) >= 8 and "demo" in names and "ucf101_1pct" in names
    for name in names:
        cfg = resolve_run_config(name)
        assert cfg.name == name or name.startswith(cfg.name), name


def test_recipes_are_read_from_the_package_wherever_the_command_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no recipes/ folder here: the recipe comes from the installed package
    assert resolve_run_config("demo").model.primary == "r3d_tiny"
    mine = tmp_path / "mine.yaml"
    mine.write_text("name: mine\ntrain: {epochs: 3}\n")
    assert resolve_run_config(str(mine)).train.epochs == 3  # a file path is read as it is
    with pytest.raises(ActnetError, match=r"--recipe nope: no such file and no such recipe \(recipes: demo, "):
        resolve_run_config("nope")


def test_closed_choices_are_declared_once():
    """The CLI offers the config's own enums; the config checks its fields against the same values."""
    from actnet.cli.prepare import PREPARE_OPTIONS
    from actnet.config import Codec, EncodeConfig, LoaderConfig

    codec = next(p for p in PREPARE_OPTIONS if p.name == "codec")
    assert codec.annotation.__origin__ is Codec
    assert [c.value for c in Codec] == ["vp9", "h264", "mjpeg"]
    with pytest.raises(ActnetError, match="--codec must be one of vp9, h264, mjpeg, not 'av1'"):
        EncodeConfig(codec="av1")
    with pytest.raises(ActnetError, match="--device must be one of auto, cpu, gpu, not 'tpu'"):
        LoaderConfig(device="tpu")


PAPER = ["ucf101_1pct", "ucf101_10pct", "hmdb51_40pct", "hmdb51_50pct", "hmdb51_60pct"]
PAPER += ["kinetics400_1pct", "kinetics400_10pct"]


@pytest.mark.parametrize("name", PAPER)
def test_paper_recipes_draw_frame_rates_per_sample(name):
    """Each model draws its rate per sample from a set of several; the 3D-CNN's are all slower than the ViT's;
    Kinetics (24-60 fps videos) samples by time."""
    cfg = resolve_run_config(name)
    primary, auxiliary = cfg.loader.primary, cfg.loader.auxiliary
    if name.startswith("kinetics"):
        assert len(primary.fps) >= 2 and len(auxiliary.fps) >= 2
        assert max(primary.fps) < min(auxiliary.fps)  # clips per second: the CNN's span more time
        assert primary.stride_for(30.0) != primary.stride_for(60.0)  # the stride follows each video's own rate
    else:
        assert not primary.fps and not auxiliary.fps
        assert len(primary.strides) >= 2 and len(auxiliary.strides) >= 2
        assert min(primary.strides) > max(auxiliary.strides)
        assert primary.test_stride == 8 and auxiliary.test_stride == 4  # evaluation at LTG's strides
    assert primary.test_scale == auxiliary.test_scale == 224  # the documented test protocol
    assert cfg.objective.contrastive_epochs == 0 and cfg.objective.teacher_mode == "train"


@pytest.mark.parametrize("name", PAPER)
def test_learning_rates_scale_with_the_global_batch(name):
    from actnet.config import OptimConfig

    cfg = resolve_run_config(name)
    sgd, adamw = cfg.optim.primary, cfg.optim.auxiliary
    assert (sgd.name, sgd.lr_batch, adamw.name, adamw.lr_batch) == ("sgd", 64, "adamw", 512)
    assert sgd.scaled_lr(64) == pytest.approx(0.1) and sgd.scaled_lr(8) == pytest.approx(0.0125)
    assert adamw.scaled_lr(64) == pytest.approx(5e-4 * 64 / 512)  # DeiT's rule, not 8x it
    assert OptimConfig(lr=0.3).scaled_lr(1024) == 0.3  # lr_batch 0: as given
    with pytest.raises(ActnetError, match="optim lr_batch"):
        OptimConfig(lr_batch=-1)


@pytest.mark.parametrize("data", ["ucf101_1pct", "ucf101_10pct", "kinetics400_1pct", "kinetics400_10pct"])
def test_baselines_have_their_own_recipes(data):
    method = resolve_run_config(data)
    cmpl = resolve_run_config(f"{data}_cmpl")
    assert cmpl.name == f"{data}_cmpl" and cmpl.data == method.data and cmpl.train == method.train
    assert (cmpl.model.primary, cmpl.model.auxiliary) == ("r3d50", "r3d18")
    assert cmpl.objective.teaching == "cross" and cmpl.objective.beta == 0
    assert cmpl.optim.primary.name == cmpl.optim.auxiliary.name == "sgd"  # two CNNs: SGD for both
    assert cmpl.optim.auxiliary == cmpl.optim.primary == method.optim.primary
    assert cmpl.loader.primary == cmpl.loader.auxiliary  # the same clips for both models
    fixmatch = resolve_run_config(f"{data}_fixmatch")
    assert fixmatch.model.auxiliary is None and fixmatch.loader.auxiliary is None
    assert fixmatch.objective.teaching == "self" and fixmatch.objective.beta == 0
    assert fixmatch.optim.primary == method.optim.primary and fixmatch.train == method.train


def test_a_recipe_can_start_from_another(tmp_path):
    (tmp_path / "a.yaml").write_text("name: a\nobjective: {beta: 0.25, threshold: 0.9}\ntrain: {epochs: 7}\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\nname: b\nobjective: {beta: 0}\n")
    b = resolve_run_config(str(tmp_path / "b.yaml"), ["train.epochs=8"])
    assert (b.name, b.objective.beta, b.objective.threshold, b.train.epochs) == ("b", 0, 0.9, 8)
    packaged = tmp_path / "c.yaml"
    packaged.write_text("base: demo\nname: c\n")  # a shipped recipe by name
    assert resolve_run_config(str(packaged)).model.primary == "r3d_tiny"
    (tmp_path / "a.yaml").write_text("base: b.yaml\nname: a\n")
    with pytest.raises(ActnetError, match="makes a cycle"):
        resolve_run_config(str(tmp_path / "b.yaml"))
    (tmp_path / "d.yaml").write_text("base: 3\n")
    with pytest.raises(ActnetError, match="base must be the name or path of a recipe"):
        resolve_run_config(str(tmp_path / "d.yaml"))


def test_new_objective_and_clip_fields_are_checked():
    from actnet.config import ClipConfig, ObjectiveConfig

    with pytest.raises(ActnetError, match="objective.teacher_mode must be one of train, eval"):
        ObjectiveConfig(teacher_mode="ema")
    with pytest.raises(ActnetError, match="objective.contrastive_epochs"):
        ObjectiveConfig(contrastive_epochs=-1)
    with pytest.raises(ActnetError, match="test_short_side"):
        ClipConfig(size=224, test_short_side=200)
    assert ClipConfig(size=224).test_scale == 224 and ClipConfig(size=224, test_short_side=256).test_scale == 256
