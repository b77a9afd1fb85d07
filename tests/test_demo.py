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
    from actnet.demo import DEFAULT_METHODS, DEMO_EPOCHS, METHODS
    from actnet.recipes import resolve_run_config

    assert resolve_run_config("demo", [], {}).train.epochs == DEMO_EPOCHS
    results = _results_tool()
    assert results.SETTINGS["demo"]["epochs"] == DEMO_EPOCHS and results.SETTINGS["main"]["epochs"] == 16
    assert results.setting_methods("demo", tuple(METHODS)) == DEFAULT_METHODS  # the demo's own two methods
    assert results.setting_methods("main", ("fixmatch", "supervised")) == ("fixmatch", "supervised")


def _results_tool():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("results", Path(__file__).parent.parent / "tools" / "results.py")
    results = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(results)
    return results


def test_the_active_labeling_table_calls_a_strategy_better_only_beyond_random_seeds():
    results = _results_tool()

    def top1(value):
        return {"primary": value, "auxiliary": value, "ensemble": value}

    per_seed = {  # seed -> strategy -> top-1: disagreement above random on every seed, least-confidence below
        "0": {"random": 0.80, "least-confidence": 0.70, "disagreement": 0.90, "coverage": 0.82},
        "1": {"random": 0.84, "least-confidence": 0.75, "disagreement": 0.88, "coverage": 0.78},
    }
    measured = {"from": "demo", "budget": 16, "seeds": {}}
    for seed, got in per_seed.items():
        strategies = {
            s: {"top1": top1(v), "code": "0.1.0+gabc", "picked": 16, "start_wrong": 4, "classes": 6, "seconds": 300}
            for s, v in got.items()
        }
        measured["seeds"][seed] = {"start": top1(0.7), "strategies": strategies}
    text = "\n".join(results.active_markdown(measured, results.SETTINGS["demo"]))
    assert "| 32 | disagreement | 89.0 / 90 88 |" in text and "| 16 | (start) | 70.0 / 70 70 |" in text
    assert "- disagreement: primary +7.0 (beats random)" in text
    assert "- least-confidence: primary -9.5 (is beaten by random)" in text
    assert "- coverage: primary -2.0 (does not clearly beat random)" in text
    assert "- disagreement: primary +19.0 (+20 +18);" in text  # against the start's 70, seed by seed
    assert "4.0 of 16 | 6.0 of 8 |" in text and "Wall minutes per retraining: 5.0 on average" in text
    assert "Not measured yet: `tools/results.py --labeling`" in results.markdown(
        {"settings": {}, "machine": _machine()}
    )


def _machine():
    return {"cores": 2, "host_cpu": "test"}


def test_the_ablation_table_calls_a_method_better_or_worse_only_beyond_seeds_and_test_noise():
    results = _results_tool()

    def seed(**top1):  # method -> top-1 on every model
        methods = {m: {"primary": v, "auxiliary": v, "ensemble": v} for m, v in top1.items()}
        return {"methods": methods, "videos": 48, "views": "1x1", "code": "0.1.0+gabc", "seconds": 600}

    runs = {
        "0": seed(supervised=0.70, fixmatch=0.50, **{"cross-pl": 0.72}, actnetformer=0.90),
        "1": seed(supervised=0.72, fixmatch=0.52, **{"cross-pl": 0.80}, actnetformer=0.92),
    }
    text = "\n".join(results.table("small", runs))
    assert "- actnetformer, primary: beats supervised-only (mean gap +20.0" in text
    assert "- fixmatch, primary: is beaten by supervised-only (mean gap -20.0" in text
    assert "- cross-pl, primary: does not clearly beat supervised-only (mean gap +5.0" in text
    assert "Best mean on the primary: actnetformer (91.0), every seed above the runner-up cross-pl's" in text

    one = "\n".join(results.table("small", {"0": runs["0"]}))  # one seed: no verdict either way
    assert "- fixmatch, primary: does not clearly beat" in one and "beats supervised" not in one
    assert "Best mean on the primary: actnetformer (90.0), one seed, so not yet comparable" in one


def test_a_seed_whose_runs_were_reused_keeps_the_wall_time_of_its_training():
    results = _results_tool()
    top1 = {"actnetformer": {"primary": 0.9}}
    recorded = {"code": "0.1.0+gabc", "methods": top1, "seconds": 2000.0}

    def found(reused, code="0.1.0+gabc", methods=top1):
        return {"code": code, "methods": methods, "seconds": 20.0, "reused": reused}

    assert results.keep_wall_time(found(True), recorded) == {"code": "0.1.0+gabc", "methods": top1, "seconds": 2000.0}
    assert results.keep_wall_time(found(False), recorded)["seconds"] == 20.0  # trained again: its own time
    assert results.keep_wall_time(found(True, code="0.1.0+gdef"), recorded)["seconds"] == 20.0
    assert results.keep_wall_time(found(True, methods={"supervised": {"primary": 0.8}}), recorded)["seconds"] == 20.0
    assert results.keep_wall_time(found(True), None) == {"code": "0.1.0+gabc", "methods": top1, "seconds": 20.0}
