"""Split manifests and stable keys.

A manifest (``train.jsonl``, ``test.jsonl``) has one JSON object a line, sorted by key, with the fields of
:data:`MANIFEST_FIELDS`; sizes, frame counts and rates describe the *source* video as ffprobe saw it (the
encoded video's properties are in each shard sample's json, under ``video``). The same inputs always give
byte-identical manifests.

Keys are the sample names inside the shards: unique, stable, and made only of ``[A-Za-z0-9_-]`` (webdataset and
DALI split member names at the first dot, so a key never holds one).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

from actnet.data.shards import MAX_KEY_LENGTH

MANIFEST_FIELDS = ("key", "path", "label", "class_name", "group", "num_frames", "fps", "width", "height", "duration")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Candidate:
    """A video a source listing found on disk, before it is probed."""

    key: str
    path: str  # where to read it
    relpath: str  # relative to the data set root: what the manifest records
    label: int
    class_name: str
    split: str  # "train" or "test"
    group: int | None = None  # UCF-101 group number (videos of one group share actors and scenes)


@dataclass(frozen=True)
class Skipped:
    """A listed video that is not processed (missing file, no split assignment); reported, not fatal."""

    key: str
    relpath: str
    split: str
    reason: str


def make_key(text: str) -> str:
    """A shard-safe key: unsafe characters become ``_``; very long names keep a hash of the whole."""
    key = _UNSAFE.sub("_", text).strip("_") or "video"
    if len(key) > MAX_KEY_LENGTH - 10:
        key = f"{key[:64]}_{hashlib.sha256(text.encode()).hexdigest()[:12]}"
    return key


def stable_rank(*parts: object) -> str:
    """A deterministic pseudo-random rank (same on every machine and Python version)."""
    return hashlib.sha256(":".join(str(p) for p in parts).encode()).hexdigest()


def disambiguate(candidates: list[Candidate]) -> list[Candidate]:
    """Give candidates whose keys collide (after sanitising) a suffix from their path, deterministically."""
    counts: dict[str, int] = {}
    for c in candidates:
        counts[c.key] = counts.get(c.key, 0) + 1
    out = []
    for c in candidates:
        if counts[c.key] > 1:
            suffix = hashlib.sha256(c.relpath.encode()).hexdigest()[:8]
            c = replace(c, key=f"{c.key[: MAX_KEY_LENGTH - 9]}_{suffix}")
        out.append(c)
    return out


def manifest_row(candidate: Candidate, source_fields: dict) -> dict:
    row = {
        "key": candidate.key,
        "path": candidate.relpath,
        "label": candidate.label,
        "class_name": candidate.class_name,
        "group": candidate.group,
    }
    row.update({name: source_fields.get(name) for name in MANIFEST_FIELDS[5:]})
    return row


def dump_jsonl(rows: Iterable[dict]) -> bytes:
    """Rows sorted by key, fields in MANIFEST_FIELDS order, one compact JSON object a line."""
    ordered = sorted(rows, key=lambda r: r["key"])
    lines = [json.dumps({f: r.get(f) for f in MANIFEST_FIELDS}, separators=(",", ":")) for r in ordered]
    return ("\n".join(lines) + "\n").encode() if lines else b""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
