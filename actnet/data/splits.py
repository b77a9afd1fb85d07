"""Labeled subsets of a training manifest: which keys keep their labels.

Specs (``--labeled``), following the two conventions of the literature (METHOD.md section 4):

- ``1%``: per class, ``max(1, round(p * n_class))`` videos (SVFormer/CMPL; UCF-101 1% is one video per class);
- ``10/class``: that many videos per class (all of a class that has fewer);
- ``5%-random``: ``max(1, round(p * N))`` videos drawn over the whole list, classes ignored (VideoSSL/LTG);
- ``--labeled-list FILE``: a published list, one key or video path per line (extra columns ignored).

Selection ranks keys by ``sha256(seed, key)``, so it is the same on every machine, and for one seed a smaller
subset is always contained in a larger one (the 1% videos are among the 10% ones).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from actnet.data.manifest import make_key, stable_rank
from actnet.errors import ActnetError

_PERCENT = re.compile(r"^(\d+(?:\.\d+)?)%(-random)?$")
_PER_CLASS = re.compile(r"^(\d+)/class$")


@dataclass(frozen=True)
class LabeledSpec:
    kind: str  # "percent", "per_class", "random" or "list"
    value: float  # percent, or videos per class; unused for lists
    tag: str  # file-name form: "1pct", "10perclass", "5pct-random", "list-<name>"
    text: str  # as the user wrote it
    list_path: str | None = None

    def set_name(self, seed: int) -> str:
        """Shard-set and key-list name: ``labeled-1pct-seed0``; imported lists carry no seed."""
        return f"labeled-{self.tag}" if self.kind == "list" else f"labeled-{self.tag}-seed{seed}"


def _number_tag(value: float) -> str:
    return f"{value:g}".replace(".", "p")


def parse_labeled(text: str) -> LabeledSpec:
    spec = text.strip()
    if m := _PERCENT.match(spec):
        value = float(m.group(1))
        if not 0 < value <= 100:
            raise ActnetError(f"--labeled {text!r}: a percentage must be in (0, 100]")
        if m.group(2):
            return LabeledSpec("random", value, f"{_number_tag(value)}pct-random", spec)
        return LabeledSpec("percent", value, f"{_number_tag(value)}pct", spec)
    if m := _PER_CLASS.match(spec):
        value = int(m.group(1))
        if value < 1:
            raise ActnetError(f"--labeled {text!r}: at least 1 video per class")
        return LabeledSpec("per_class", value, f"{value}perclass", spec)
    raise ActnetError(f"--labeled {text!r}: expected a form like 1%, 10/class or 5%-random")


def list_spec(path: str | Path) -> LabeledSpec:
    path = Path(path)
    if not path.is_file():
        raise ActnetError(f"--labeled-list {path}: no such file")
    return LabeledSpec("list", 0.0, f"list-{make_key(path.stem)}", str(path), str(path))


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def select_labeled(rows: list[dict], spec: LabeledSpec, seed: int) -> list[str]:
    """Keys of the labeled subset of ``rows`` (the training manifest), sorted."""
    if spec.kind == "list":
        return read_labeled_list(spec.list_path, rows)

    def rank(row: dict) -> str:
        return stable_rank("labeled", seed, row["key"])

    if spec.kind == "random":
        count = min(len(rows), max(1, _round_half_up(spec.value / 100 * len(rows))))
        return sorted(r["key"] for r in sorted(rows, key=rank)[:count])
    by_class: dict[int, list[dict]] = {}
    for row in rows:
        by_class.setdefault(row["label"], []).append(row)
    keys = []
    for members in by_class.values():
        n = len(members)
        count = min(n, int(spec.value)) if spec.kind == "per_class" else max(1, _round_half_up(spec.value / 100 * n))
        keys += [r["key"] for r in sorted(members, key=rank)[: min(n, count)]]
    return sorted(keys)


def read_labeled_list(path: str | Path, rows: list[dict]) -> list[str]:
    """Resolve a published list (keys, file names or relative paths, first column) to manifest keys."""
    lookup: dict[str, str] = {}
    for row in rows:
        rel = PurePosixPath(row["path"])
        for form in (row["key"], rel.name, rel.stem, str(rel), str(rel.with_suffix(""))):
            lookup.setdefault(form, row["key"])
            lookup.setdefault(form.lower(), row["key"])
    keys, unknown = set(), []
    for line in Path(path).read_text().splitlines():
        token = line.strip().split()[0] if line.strip() and not line.lstrip().startswith("#") else ""
        if not token:
            continue
        token = token.replace("\\", "/")
        key = lookup.get(token) or lookup.get(token.lower()) or lookup.get(make_key(PurePosixPath(token).stem))
        if key is None:
            unknown.append(token)
        else:
            keys.add(key)
    if unknown:
        raise ActnetError(
            f"--labeled-list {path}: {len(unknown)} entries are not in the training manifest, e.g. {unknown[0]!r}"
        )
    if not keys:
        raise ActnetError(f"--labeled-list {path}: the file lists no videos")
    return sorted(keys)


def split_by_fraction(keys_by_class: dict[int, list[str]], test_fraction: float) -> set[str]:
    """Test keys: per class ``round(f * n)`` (at least 1, at most n - 1 when n >= 2) by a fixed hash rank."""
    test = set()
    for keys in keys_by_class.values():
        n = len(keys)
        if n < 2:
            continue
        count = min(n - 1, max(1, _round_half_up(test_fraction * n)))
        test.update(sorted(keys, key=lambda k: stable_rank("test-split", k))[:count])
    return test
