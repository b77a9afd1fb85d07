"""WebDataset tar shards, their DALI index files and the ``info.json`` of a shard set.

A sample is three tar members sharing a key: ``<key>.cls`` (the label as decimal text), ``<key>.json`` (the
manifest row plus the encoded video's properties) and ``<key>.<ext>`` (the encoded video: webm, mp4 or avi).
Tars are written deterministically (USTAR headers, mtime 0, root owner, sorted members), so the same samples
give byte-identical shards.

Next to every ``name.tar`` lies ``name.idx``, the index DALI's ``fn.readers.webdataset`` takes as
``index_paths``, in its format v1.2 (the format of DALI's own ``wds2idx``): a line ``v1.2 <num_samples>``,
then one line per sample listing ``<ext> <data offset> <size> <member name>`` for each of its members. We
record the offsets while writing the tar, so no second pass over the data is needed.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO

from actnet.config import ShardConfig
from actnet.errors import ActnetError

INDEX_VERSION = "v1.2"
INFO_FORMAT = "actnet.shards/1"
MAX_KEY_LENGTH = 90  # USTAR names hold 100 bytes; the longest extension is ".json"


def sample_members(key: str, label: int, row: dict, video: bytes, ext: str) -> dict[str, bytes]:
    """The tar members of one sample, keyed by extension."""
    return {
        "cls": str(label).encode(),
        "json": json.dumps(row, sort_keys=True, separators=(",", ":")).encode(),
        ext: video,
    }


class ShardWriter:
    """Writes one tar shard and, on :meth:`close`, its DALI index next to it."""

    def __init__(self, tar_path: str | Path, index_path: str | Path):
        self.tar_path, self.index_path = Path(tar_path), Path(index_path)
        self._file = open(self.tar_path, "wb")
        self._tar = tarfile.open(fileobj=self._file, mode="w", format=tarfile.USTAR_FORMAT)
        self._index_lines: list[str] = []
        self.keys: list[str] = []

    def add(self, key: str, members: dict[str, bytes]) -> None:
        if "." in key or "/" in key or len(key) > MAX_KEY_LENGTH:
            raise ValueError(f"invalid sample key {key!r}")
        components = []
        for ext in sorted(members):
            data = members[ext]
            info = tarfile.TarInfo(f"{key}.{ext}")
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            header_size = len(info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape"))
            data_offset = self._tar.offset + header_size
            self._tar.addfile(info, io.BytesIO(data))
            components.append(f"{ext} {data_offset} {len(data)} {info.name}")
        self._index_lines.append(" ".join(components))
        self.keys.append(key)

    @property
    def num_samples(self) -> int:
        return len(self.keys)

    @property
    def bytes_written(self) -> int:
        return self._tar.offset

    def close(self) -> None:
        if self._file.closed:
            return
        self._tar.close()
        self._file.flush()
        self._file.close()
        text = f"{INDEX_VERSION} {len(self._index_lines)}\n" + "".join(line + "\n" for line in self._index_lines)
        self.index_path.write_text(text)


class ShardRoller:
    """Samples in, consecutive shards of one set out: what encoding a set and copying a labeled subset share.

    A sample goes into the open shard unless its group (:meth:`ShardConfig.group_of` of its position among
    ``total``) differs from the shard's, in which case that shard is closed first; a shard is also closed once it
    reaches ``shard_size`` bytes. Each closed shard is handed to ``on_flush(writer, stem, notes)`` with its name
    ``name(index)`` and the notes given with its samples (``writer`` is ``None`` when :meth:`flush` is called
    with no shard open); the next shard takes the next index.
    """

    def __init__(
        self,
        staging: Path,
        cfg: ShardConfig,
        total: int,
        name: Callable[[int], str],
        on_flush: Callable[[ShardWriter | None, str, list], None],
        first_index: int = 0,
    ):
        self.staging, self.cfg, self.total, self.name, self.on_flush = Path(staging), cfg, total, name, on_flush
        self.index = first_index
        self.writer: ShardWriter | None = None
        self.group, self.notes = -1, []

    def add(self, key: str, members: dict[str, bytes], position: int, note=None) -> None:
        group = self.cfg.group_of(position, self.total)
        if self.writer is not None and group != self.group:
            self.flush()
        if self.writer is None:
            stem = self.name(self.index)
            self.writer, self.group = ShardWriter(self.staging / f"{stem}.tar", self.staging / f"{stem}.idx"), group
        self.writer.add(key, members)
        if note is not None:
            self.notes.append(note)
        if self.writer.bytes_written >= self.cfg.shard_size:
            self.flush()

    @property
    def is_open(self) -> bool:
        return self.writer is not None

    def flush(self) -> None:
        """Close the open shard (if any) and hand it over with its name and notes."""
        writer, stem, notes = self.writer, self.name(self.index), self.notes
        if writer is not None:
            writer.close()
        self.writer, self.index, self.notes = None, self.index + 1, []
        self.on_flush(writer, stem, notes)


def iter_samples(stream: BinaryIO, where: str = "tar") -> Iterator[tuple[str, dict[str, bytes]]]:
    """Samples of a tar read front to back as ``(key, {extension: bytes})``, by webdataset's tar iterators
    (streaming: a non-seekable S3 body works); ``where`` names the tar in errors."""
    from webdataset.tariterators import group_by_keys, tar_file_expander

    samples = group_by_keys(tar_file_expander([{"url": where, "stream": stream}]))
    while True:
        try:
            sample = next(samples)
        except StopIteration:
            return
        except (tarfile.TarError, EOFError, ValueError, KeyError) as err:  # webdataset re-raises what tarfile met
            message = next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)
            raise ShardDamaged(f"{where}: not a readable tar ({message[:200]})") from None
        key = sample.pop("__key__")
        sample.pop("__url__", None)
        yield key.rsplit("/", 1)[-1], sample


@dataclass(frozen=True)
class IndexEntry:
    """One sample of a tar as its index file lists it: where each member's data lies."""

    key: str
    members: dict[str, tuple[int, int]]  # extension -> (data offset, size) in the tar

    @property
    def span(self) -> tuple[int, int]:
        """(offset, length) of the smallest byte range holding every member (members of a sample are adjacent)."""
        start = min(off for off, _ in self.members.values())
        end = max(off + size for off, size in self.members.values())
        return start, end - start


def read_index(text: str, where: str = "index") -> list[IndexEntry]:
    """Parse a DALI v1.2 webdataset index (ours or ``wds2idx``'s); errors name ``where``."""
    lines = text.splitlines()
    head = lines[0].split() if lines else []
    if len(head) != 2 or head[0] != INDEX_VERSION or not head[1].isdigit():
        raise ShardDamaged(f"{where}: not a {INDEX_VERSION} webdataset index")
    entries = []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split()
        if not fields or len(fields) % 4 or not all(f.isdigit() for f in fields[1::4] + fields[2::4]):
            raise ShardDamaged(f"{where}: line {number} is malformed")
        members, key = {}, None
        for ext, off, size, name in zip(*[iter(fields)] * 4):
            members[ext] = (int(off), int(size))
            key = name.rsplit("/", 1)[-1].partition(".")[0]
        entries.append(IndexEntry(key, members))
    if len(entries) != int(head[1]):
        raise ShardDamaged(f"{where}: header says {head[1]} samples, lists {len(entries)}")
    return entries


class ShardDamaged(ActnetError, ValueError):
    """A shard or its index is not what the set's ``info.json`` (or a prepare marker) records, or a tar that does
    not read; the message names the file."""


def check_shard(
    record: ShardRecord, size: int | None, index_text: str | None, extension: str, where
) -> list[IndexEntry]:
    """The index entries of a shard, after checking what can be checked without reading the tar: the tar exists
    with the recorded size, its index exists, parses, lists the recorded number of samples, each with its
    ``.cls``, ``.json`` and video member, all lying inside the tar. ``size`` and ``index_text`` are None when
    the file is missing; ``where(name)`` gives a file's URL for messages. Raises :class:`ShardDamaged`."""
    tar, idx = where(record.name), where(record.index)
    if size is None:
        raise ShardDamaged(f"{tar}: missing")
    if size != record.bytes:
        raise ShardDamaged(
            f"{tar}: {size} bytes, {record.bytes} recorded ({'truncated' if size < record.bytes else 'grown'})"
        )
    if index_text is None:
        raise ShardDamaged(f"{idx}: missing index file")
    entries = read_index(index_text, idx)
    if len(entries) != record.num_samples:
        raise ShardDamaged(f"{idx}: lists {len(entries)} samples, {record.num_samples} recorded")
    for entry in entries:
        for ext in ("cls", "json", extension):
            if ext not in entry.members:
                raise ShardDamaged(f"{idx}: sample {entry.key} has no .{ext} member")
        start, length = entry.span
        if start + length > size:
            raise ShardDamaged(f"{idx}: sample {entry.key} lies past the end of {record.name}")
    return entries


def sha256_file(path: str | Path) -> str:
    return sha256_stream(open(path, "rb"))


def sha256_stream(stream: BinaryIO) -> str:
    """The sha256 of what ``stream`` holds (read in 1 MiB blocks, then closed)."""
    digest = hashlib.sha256()
    with stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class ShardRecord:
    """One finished shard of a set."""

    name: str  # "train-000003.tar", relative to the set's folder
    index: str  # "train-000003.idx"
    num_samples: int
    bytes: int
    sha256: str


@dataclass
class ShardSetInfo:
    """The ``<set>.info.json`` of a shard set: everything a loader needs without opening a tar."""

    dataset: str
    split: str
    set: str  # "train", "test" or "labeled-<spec>"
    num_samples: int
    classes: list[str]
    class_counts: list[int]
    extension: str  # the video member's extension: webm, mp4 or avi
    codec: str
    encode: dict  # the EncodeConfig the videos were made with
    video: dict  # summary: fps values, size ranges, frames, duration
    shards: list[ShardRecord]
    manifest: str  # the manifest these samples come from, relative to the set's folder
    manifest_sha256: str
    labeled: dict | None = None  # for labeled sets: spec, seed, number of keys
    actnet_version: str = ""
    devices: list[str] | None = None  # DALI decoders that read every video: cpu and/or gpu (None: not recorded)
    format: str = INFO_FORMAT
    extra: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to_json(self) -> bytes:
        data = asdict(self)
        data["num_classes"] = self.num_classes
        return (json.dumps(data, indent=1, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> ShardSetInfo:
        raw = json.loads(data)
        raw.pop("num_classes", None)
        raw["shards"] = [ShardRecord(**s) for s in raw["shards"]]
        return cls(**raw)


def read_set_info(storage, set_name: str) -> ShardSetInfo:
    """The ``info.json`` of a set in ``storage``; one line naming it when it is not an actnet shard set's."""
    where = storage.url(info_name(set_name))
    try:
        return ShardSetInfo.from_json(storage.read_bytes(info_name(set_name)))
    except (ValueError, TypeError, KeyError) as err:  # JSON, missing or unknown fields
        raise ActnetError(f"{where}: not a readable shard set description ({str(err).splitlines()[0][:120]})") from None


def check_shards(storage, records: list, extension: str, sizes: dict[str, int] | None = None) -> list:
    """:func:`check_shard` for each record of ``storage`` (its index files read 16 at a time: on object storage
    each is a request); per record, its index entries or the :class:`ShardDamaged` that says what is wrong."""
    from concurrent.futures import ThreadPoolExecutor

    sizes = storage.sizes() if sizes is None else sizes

    def one(record):
        try:
            text = read_text(storage, record.index, sizes)
            return check_shard(record, sizes.get(record.name), text, extension, storage.url)
        except ShardDamaged as err:
            return err

    if len(records) < 2:
        return [one(r) for r in records]
    with ThreadPoolExecutor(min(16, len(records)), thread_name_prefix="actnet-index") as pool:
        return list(pool.map(one, records))


def read_text(storage, rel: str, sizes: dict[str, int] | None = None) -> str | None:
    """A small text file of ``storage`` (an index), or None when it is missing."""
    if sizes is not None and rel not in sizes:
        return None
    try:
        return storage.read_bytes(rel).decode(errors="replace")
    except FileNotFoundError:
        return None


def info_name(set_name: str) -> str:
    return f"{set_name}.info.json"


def shard_name(set_name: str, index: int, part: tuple[int, int] = (1, 1)) -> str:
    """``train-000003`` for a single-part run, ``train-p2of4-000003`` for part 2 of 4 (no extension)."""
    i, k = part
    return f"{set_name}-{index:06d}" if k == 1 else f"{set_name}-p{i}of{k}-{index:06d}"
