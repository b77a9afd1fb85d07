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
