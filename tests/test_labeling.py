"""actnet suggest and actnet pseudo-label on a tiny trained run: what each strategy picks and why, files that feed
back into prepare, pseudo-labels with their confidences, agreement and precision against the stored labels."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import prepare_options, tiny_config
from typer.testing import CliRunner

from actnet.cli import app
from actnet.data.sampling import ShardSet
from actnet.data.sources import list_folder
from actnet.labeling import Scores, js_divergence, precision_table, pseudo_label_rows, rank_videos, score_unlabeled
from actnet.prepare import prepare
from actnet.train import Trainer

runner = CliRunner()


@pytest.fixture(scope="module")
def run_dir(shards, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("labeling")
    Trainer(tiny_config(shards, out, "tiny", "train.max_steps=2"), progress=False).fit()
    return out / "tiny"


@pytest.fixture(scope="module")
def scores(run_dir) -> Scores:
    return score_unlabeled(run_dir, features=True)


def stored_labels(shards: Path, set_name: str) -> dict[str, int]:
    found = {}
    s = ShardSet(str(shards), set_name)
    for i, ref in enumerate(s.samples):
        found[ref.key] = int(s.fetch(i)["cls"])
    return found


def test_the_unlabeled_videos_are_scored_without_the_labeled_ones(scores, shards, run_dir):
    labeled = {r.key for r in ShardSet(str(shards), "labeled-1perclass-seed0").samples}
    train = stored_labels(shards, "train")
    assert set(scores.keys) == set(train) - labeled and len(scores.keys) == len(train) - 3
    assert set(scores.probs) == {"primary", "auxiliary", "ensemble"}
    np.testing.assert_allclose(scores.probs["ensemble"], (scores.probs["primary"] + scores.probs["auxiliary"]) / 2)
    np.testing.assert_allclose(scores.probs["primary"].sum(1), 1, atol=1e-5)
    assert scores.hidden.tolist() == [train[k] for k in scores.keys]  # kept apart, for measuring only
    assert scores.labeled_features["primary"].shape[0] == 3 and scores.features["primary"].shape[0] == len(scores.keys)


def test_each_strategy_ranks_by_its_own_signal(scores):
    n = len(scores.keys)
    for strategy in ("random", "least-confidence", "disagreement", "coverage"):
        picked = rank_videos(scores, strategy, 4)
        assert len(picked) == 4 and len({i for i, _ in picked}) == 4, strategy
    assert rank_videos(scores, "random", 4, seed=1) == rank_videos(scores, "random", 4, seed=1)
    assert rank_videos(scores, "random", n, seed=1) != rank_videos(scores, "random", n, seed=2)
    least = rank_videos(scores, "least-confidence", n)
    confidence = scores.probs["ensemble"].max(1)
    assert [s for _, s in least] == sorted((1 - confidence).tolist(), reverse=True)
    p, q = scores.probs["primary"], scores.probs["auxiliary"]
    disagree = rank_videos(scores, "disagreement", n)
    differ = [bool(p[i].argmax() != q[i].argmax()) for i, _ in disagree]
    assert differ == sorted(differ, reverse=True)  # every video the models disagree on comes first
    assert [s for _, s in disagree] == sorted([s for _, s in disagree], reverse=True)
    assert js_divergence(p, p) == pytest.approx(np.zeros(n), abs=1e-9)
    assert np.all(js_divergence(p, q) <= np.log(2) + 1e-9)
    cover = rank_videos(scores, "coverage", n)
    distances = [s for _, s in cover]
    assert distances == sorted(distances, reverse=True)  # k-center: each pick is farther than the next


def test_suggest_writes_what_prepare_reads_back(run_dir, shards, synthetic_tree, tmp_path):
    result = runner.invoke(
        app, ["suggest", str(run_dir), "--budget", "3", "--strategy", "coverage", "--out", str(tmp_path / "s")]
    )
    assert result.exit_code == 0, result.output
    chosen = (tmp_path / "s" / "next.txt").read_text().split()
    labeled = [r.key for r in ShardSet(str(shards), "labeled-1perclass-seed0").samples]
    assert len(chosen) == 3 and not set(chosen) & set(labeled)
    assert (tmp_path / "s" / "labeled-next.txt").read_text().split() == labeled + chosen
    rows = [json.loads(x) for x in (tmp_path / "s" / "suggestions.jsonl").read_text().splitlines()]
    assert [r["key"] for r in rows] == chosen and [r["rank"] for r in rows] == [1, 2, 3]
    assert {"primary", "auxiliary", "ensemble"} <= set(rows[0]) and rows[0]["strategy"] == "coverage"
    assert (tmp_path / "s" / "suggestions.png").read_bytes()[:4] == b"\x89PNG"
    # the bigger labeled set, made by prepare from the list suggest wrote
    out = tmp_path / "again"
    opts = prepare_options(out, labeled_lists=(str(tmp_path / "s" / "labeled-next.txt"),))
    prepare(list_folder(synthetic_tree, 0.25, name="synthetic"), opts)
    [made] = (out / "shards" / "synthetic" / "split1").glob("labeled-list-*.info.json")
    bigger = ShardSet(str(made.parent), made.name[: -len(".info.json")])
    assert sorted(r.key for r in bigger.samples) == sorted(labeled + chosen)
    bad = runner.invoke(app, ["suggest", str(run_dir), "--strategy", "badge"])
    assert bad.exit_code == 2 and "--strategy must be one of random, least-confidence" in bad.output


def test_pseudo_labels_with_confidence_agreement_and_precision(run_dir, scores, tmp_path):
    rows = pseudo_label_rows(scores, 0.0)
    assert all(r["accepted"] for r in rows) and len(rows) == len(scores.keys)
    for r, p in zip(rows, scores.probs["ensemble"]):
        assert r["label"] == int(p.argmax()) and r["confidence"] == pytest.approx(float(p.max()), abs=1e-6)
        assert r["agree"] == (r["primary"]["class"] == r["auxiliary"]["class"])
    strict = pseudo_label_rows(scores, 0.0, agree=True)
    assert [r["accepted"] for r in strict] == [r["agree"] for r in rows]
    table = precision_table(scores, [0.0, 1.0])
    everything = next(t for t in table if t["threshold"] == 0.0 and not t["agree"])
    right = sum(int(r["label"] == h) for r, h in zip(rows, scores.hidden))
    assert everything["kept"] == len(rows) and everything["precision"] == pytest.approx(right / len(rows))
    assert next(t for t in table if t["threshold"] == 1.0 and not t["agree"])["kept"] == 0

    result = runner.invoke(app, ["pseudo-label", str(run_dir), "--threshold", "0", "--score", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "precision against the stored labels" in result.output and "pseudo-labels:" in result.output
    written = [json.loads(x) for x in (tmp_path / "pseudo-labels.jsonl").read_text().splitlines()]
    assert [w["key"] for w in written] == scores.keys
    assert (tmp_path / "accepted.txt").read_text().split() == scores.keys
    assert (tmp_path / "pseudo-labels.png").read_bytes()[:4] == b"\x89PNG"
    bad = runner.invoke(app, ["pseudo-label", str(run_dir), "--threshold", "1.5"])
    assert bad.exit_code == 2 and "--threshold must be within [0, 1], not 1.5" in bad.output
