"""Labeled-subset rules: spec parsing, per-class rounding, nesting, determinism, published lists."""

import pytest

from actnet.data.splits import list_spec, parse_labeled, select_labeled
from actnet.errors import ActnetError


def rows(per_class: dict[int, int]) -> list[dict]:
    return [
        {"key": f"c{label}_v{i:03d}", "label": label, "path": f"Class{label}/c{label}_v{i:03d}.avi"}
        for label, n in per_class.items()
        for i in range(n)
    ]


def count_by_class(keys, table) -> dict[int, int]:
    label_of = {r["key"]: r["label"] for r in table}
    counts: dict[int, int] = {}
    for k in keys:
        counts[label_of[k]] = counts.get(label_of[k], 0) + 1
    return counts


def test_parse_specs_and_names():
    assert parse_labeled("1%").set_name(0) == "labeled-1pct-seed0"
    assert parse_labeled("0.5%").set_name(3) == "labeled-0p5pct-seed3"
    assert parse_labeled("10/class").set_name(1) == "labeled-10perclass-seed1"
    assert parse_labeled("5%-random").set_name(0) == "labeled-5pct-random-seed0"
    for bad in ("1", "abc", "0%", "150%", "0/class", "1%%"):
        with pytest.raises(ActnetError, match="--labeled"):
            parse_labeled(bad)


def test_percent_is_per_class_with_round_half_up_and_at_least_one():
    table = rows({0: 95, 1: 150, 2: 250, 3: 40})
    keys = select_labeled(table, parse_labeled("1%"), seed=0)
    # UCF-101 1% = one video per class (0.95 -> 1, 1.5 -> 2, 2.5 -> 3, 0.4 -> at least 1).
    assert count_by_class(keys, table) == {0: 1, 1: 2, 2: 3, 3: 1}
    assert keys == sorted(keys)


def test_per_class_count_caps_at_class_size():
    table = rows({0: 12, 1: 3})
    keys = select_labeled(table, parse_labeled("10/class"), seed=0)
    assert count_by_class(keys, table) == {0: 10, 1: 3}


def test_random_draw_ignores_classes():
    table = rows({0: 100, 1: 100})
    keys = select_labeled(table, parse_labeled("5%-random"), seed=0)
    assert len(keys) == 10
    assert select_labeled(table, parse_labeled("5%-random"), seed=1) != keys


def test_deterministic_nested_and_seed_dependent():
    table = rows({0: 60, 1: 60, 2: 60})
    small = select_labeled(table, parse_labeled("5%"), seed=7)
    large = select_labeled(table, parse_labeled("10/class"), seed=7)
    assert small == select_labeled(list(reversed(table)), parse_labeled("5%"), seed=7)  # order of rows irrelevant
    assert set(small) < set(large)  # a smaller subset is inside a larger one for the same seed
    assert select_labeled(table, parse_labeled("5%"), seed=8) != small


def test_published_list_by_key_path_or_name(tmp_path):
    table = rows({0: 5, 1: 5})
    published = tmp_path / "ucf101_1percent.txt"
    published.write_text("# a published list\nClass0/c0_v001.avi 1\nc1_v004\nc0_v002.avi\n\n")
    spec = list_spec(published)
    assert spec.set_name(0) == "labeled-list-ucf101_1percent"
    assert select_labeled(table, spec, seed=0) == ["c0_v001", "c0_v002", "c1_v004"]
    published.write_text("Class0/c0_v001.avi\nClass9/nope.avi\n")
    with pytest.raises(ActnetError, match="--labeled-list .*1 entries are not in the training manifest.*nope"):
        select_labeled(table, spec, seed=0)
    with pytest.raises(ActnetError, match="--labeled-list .*no such file"):
        list_spec(tmp_path / "missing.txt")
