"""``actnet verify``: is a prepared output what its ``info.json`` files say it is?

Quick (``--quick``, and what ``train`` and ``evaluate`` do when they open a set): every shard exists with its
recorded size, its index exists and agrees (sample count, members, byte ranges inside the tar). Full: also every
shard's sha256, the tar's own members against the index (names, offsets, sizes), each label against its manifest
row, and every video decoded by ffmpeg to its recorded number of frames.

A problem is one line naming the file. Nothing here repairs: a rerun of ``actnet prepare`` redoes damaged shards.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from actnet.config import EncodeConfig
from actnet.data.media import verify_many
from actnet.data.shards import ShardDamaged, ShardRecord, ShardSetInfo, check_shards, read_set_info
from actnet.data.storage import Storage, open_storage
from actnet.errors import ActnetError
from actnet.progress import ProgressSink

DECODE_BATCH = 16  # videos per ffmpeg process


@dataclass
class SetCheck:
    """What verifying one shard set found."""

    set: str
    shards: int
    samples: int
    bytes: int
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def set_names(storage: Storage) -> list[str]:
    """The shard sets of an output folder: every ``<set>.info.json`` at its top level."""
    return sorted(n[: -len(".info.json")] for n in storage.list() if "/" not in n and n.endswith(".info.json"))


def verify_output(
    url: str, sets: list[str] | None = None, quick: bool = False, progress: ProgressSink | None = None
) -> list[SetCheck]:
    """Verify the shard sets of ``url`` (all of them, or ``sets``); one :class:`SetCheck` per set."""
    progress = progress or ProgressSink()
    storage = open_storage(url)
    names = sets or set_names(storage)
    if not names:
        raise ActnetError(f"{storage.url()}: no shard sets here (no <set>.info.json; is this <out>/<dataset>/<split>?)")
    sizes = storage.sizes()
    return [verify_set(storage, name, sizes, quick, progress) for name in names]


def verify_set(storage: Storage, name: str, sizes: dict[str, int], quick: bool, progress: ProgressSink) -> SetCheck:
    if f"{name}.info.json" not in sizes:
        raise ActnetError(f"{storage.url(name + '.info.json')}: no such shard set")
    info = read_set_info(storage, name)
    check = SetCheck(name, len(info.shards), info.num_samples, sum(s.bytes for s in info.shards))
    if sum(s.num_samples for s in info.shards) != info.num_samples:
        check.problems.append(f"{storage.url(name + '.info.json')}: shard counts do not add up to num_samples")
    labels = _manifest_labels(storage, info, check.problems)
    progress.start(f"{name}: verifying{' (quick)' if quick else ''}", info.num_samples)
    for record, entries in zip(info.shards, check_shards(storage, info.shards, info.extension, sizes)):
        try:
            if isinstance(entries, ShardDamaged):
                raise entries
            if not quick:
                _check_contents(storage, record, entries, info, labels)
        except ShardDamaged as err:
            check.problems.append(str(err))
        progress.advance(record.num_samples)
    return check


def _manifest_labels(storage: Storage, info: ShardSetInfo, problems: list[str]) -> dict[str, int] | None:
    """``{key: label}`` of the set's manifest (None for a key list, whose labels live in the train manifest)."""
    if not storage.exists(info.manifest):
        problems.append(f"{storage.url(info.manifest)}: missing manifest")
        return None
    data = storage.read_bytes(info.manifest)
    if hashlib.sha256(data).hexdigest() != info.manifest_sha256:
        problems.append(f"{storage.url(info.manifest)}: sha256 differs from the one recorded in {info.set}.info.json")
        return None
    if not info.manifest.endswith(".jsonl"):
        return None
    return {row["key"]: row["label"] for row in map(json.loads, data.splitlines())}


def _check_contents(storage: Storage, record: ShardRecord, entries, info: ShardSetInfo, labels) -> None:
    """Read the tar once: its hash, its members against the index, labels, and every video decoded."""
    tar_url = storage.url(record.name)
    expected = {(e.key, ext): span for e in entries for ext, span in e.members.items()}
    digest, seen = hashlib.sha256(), {}
    encode = EncodeConfig(**{**info.encode, "verify": "full"})
    with tempfile.TemporaryDirectory(prefix="actnet-verify-") as tmp, storage.open_read(record.name) as body:
        stream = _Hashing(body, digest)
        videos: list[tuple[str, Path]] = []
        members: dict[str, dict[str, bytes]] = {}
        try:
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                for member in tar:
                    key, _, ext = member.name.rsplit("/", 1)[-1].partition(".")
                    seen[key, ext] = (member.offset_data, member.size)
                    data = tar.extractfile(member).read() if member.isfile() else b""
                    if ext == info.extension:
                        path = Path(tmp) / f"{len(videos)}.{ext}"
                        path.write_bytes(data)
                        videos.append((key, path))
                    else:
                        members.setdefault(key, {})[ext] = data
            stream.drain()
        except (tarfile.TarError, EOFError, OSError) as err:
            raise ShardDamaged(f"{tar_url}: not a readable tar ({err})") from None
        if digest.hexdigest() != record.sha256:
            raise ShardDamaged(f"{tar_url}: sha256 differs from the one recorded (the bytes were changed)")
        if seen != expected:
            odd = sorted(set(seen.items()) ^ set(expected.items()))[0][0]
            raise ShardDamaged(f"{tar_url}: members differ from {record.index} (first: {odd[0]}.{odd[1]})")
        frames = {}
        for key, parts in members.items():
            meta = json.loads(parts["json"])
            label = int(parts["cls"])
            if label != meta["label"] or (labels is not None and labels.get(key) != label):
                raise ShardDamaged(f"{tar_url}: sample {key}: label {label} differs from its manifest row")
            frames[key] = int(meta["video"]["num_frames"])
        for start in range(0, len(videos), DECODE_BATCH):
            batch = videos[start : start + DECODE_BATCH]
            for (key, _), decoded in zip(batch, verify_many([p for _, p in batch], encode)):
                if not isinstance(decoded, int):
                    raise ShardDamaged(f"{tar_url}: sample {key}: {decoded}")
                if decoded != frames[key]:
                    raise ShardDamaged(f"{tar_url}: sample {key}: decodes to {decoded} frames, {frames[key]} recorded")


class _Hashing:
    """A read-only stream that hashes what passes through it (so the tar is read once)."""

    def __init__(self, body, digest):
        self.body, self.digest = body, digest

    def read(self, size: int = -1) -> bytes:
        data = self.body.read(size)
        self.digest.update(data)
        return data

    def drain(self) -> None:
        """Hash what the tar reader left unread (the end-of-archive padding)."""
        while self.read(1 << 20):
            pass
