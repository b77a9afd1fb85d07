"""actnet demo reuses only what the same settings and code made: a changed option re-runs, an identical rerun
reuses, and the comparison names the code it was measured with."""

import json

import pytest

from actnet import code_version
from actnet.demo import run_demo

pytestmark = pytest.mark.slow
TINY_DEMO = {"epochs": 1, "labeled": "1/class", "workers": 2, "echo": lambda *_: None}


def _made(out):
    return {p: p.stat().st_mtime_ns for p in sorted(out.rglob("*.tar")) + sorted(out.rglob("last.pt"))}


def test_the_demo_reuses_only_what_the_same_options_made(tmp_path):
    run_demo(tmp_path, videos_per_class=3, **TINY_DEMO)
    first = _made(tmp_path)
    comparison = json.loads((tmp_path / "comparison.json").read_text())
    assert comparison["code"] == code_version() and comparison["options"]["videos_per_class"] == 3
    assert set(comparison["top1"]) == {"actnetformer", "supervised"}

    run_demo(tmp_path, videos_per_class=3, **TINY_DEMO)  # the same: everything reused
    assert _made(tmp_path) == first

    run_demo(tmp_path, videos_per_class=4, **TINY_DEMO)  # another option: data and runs made again
    info = json.loads(next(tmp_path.rglob("train.info.json")).read_text())
    assert info["num_samples"] == 8 * 4 - json.loads(next(tmp_path.rglob("test.info.json")).read_text())["num_samples"]
    again = _made(tmp_path)
    runs = [p for p in again if p.name == "last.pt"]
    assert len(runs) == 2 and all(p not in first or again[p] != first[p] for p in runs)
    assert json.loads((tmp_path / "comparison.json").read_text())["options"]["videos_per_class"] == 4


def test_the_demo_default_is_the_recipe_and_a_setting_of_the_results():
    import importlib.util
    from pathlib import Path

    from actnet.demo import DEFAULT_METHODS, DEMO_EPOCHS, METHODS
    from actnet.recipes import resolve_run_config

    assert resolve_run_config("demo", [], {}).train.epochs == DEMO_EPOCHS
    spec = importlib.util.spec_from_file_location("results", Path(__file__).parent.parent / "tools" / "results.py")
    results = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(results)
    assert results.SETTINGS["demo"]["epochs"] == DEMO_EPOCHS and results.SETTINGS["main"]["epochs"] == 16
    assert results.setting_methods("demo", tuple(METHODS)) == DEFAULT_METHODS  # the demo's own two methods
    assert results.setting_methods("main", ("fixmatch", "supervised")) == ("fixmatch", "supervised")
