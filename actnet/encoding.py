"""Encoding one shard set (one part of it) into shards, as ``actnet prepare`` runs it.

Videos are encoded in the set's seeded order by ``--workers`` parallel jobs, each encoding a few consecutive
videos and then verifying them in one ffmpeg run. Each shard is assembled in a staging folder, moved into place
(a rename, or an S3 upload), and only then is its ``_done/<shard>.json`` marker written (its rows and rejects). A
rerun keeps every finished shard that still passes the quick checks of ``actnet verify`` (``--rehash``: also
its sha256), encodes a damaged one again under the same name, and continues with the videos not yet done.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from functools import partial
from itertools import islice
from pathlib import Path

from actnet.config import EncodeConfig, PrepareOptions
from actnet.data.manifest import Candidate, manifest_row
from actnet.data.media import MediaError, SourceInfo, accept, encode, verify_many
from actnet.data.shards import (
    ShardDamaged,
    ShardRecord,
    ShardRoller,
    ShardWriter,
    check_shards,
    sample_members,
    sha256_file,
    sha256_stream,
    shard_name,
)
from actnet.data.storage import Storage
from actnet.errors import ActnetError, RunFailed
from actnet.progress import ProgressSink


def _ordered_map(submit: Callable[[object], Future], items: list, window: int) -> Iterator[tuple]:
    """``(item, result)`` in input order with at most ``window`` jobs in flight; ``submit(item)`` starts one."""
    pending: deque = deque()
    it = iter(items)
    for item in islice(it, window):
        pending.append((item, submit(item)))
    while pending:
        item, future = pending.popleft()
        result = future.result()
        for nxt in islice(it, 1):
            pending.append((nxt, submit(nxt)))
        yield item, result


def done_markers(storage: Storage) -> dict[str, dict]:
    """The ``_done`` markers by stem; one that cannot be read is deleted (its videos are then simply not done)."""
    markers = {}
    for name in storage.list("_done"):
        try:
            markers[Path(name).stem] = json.loads(storage.read_bytes(name))
        except ValueError:
            storage.delete(name)
    return markers


def damaged_shards(storage: Storage, records: dict[str, ShardRecord], extension: str, rehash: bool) -> dict[str, str]:
    """``{stem: problem}`` of finished shards that are no longer what was recorded: missing, another size, a
    missing or disagreeing index (the quick checks of ``actnet verify``), and with ``rehash`` another sha256."""
    stems = sorted(records)
    problems = {}
    for stem, found in zip(stems, check_shards(storage, [records[s] for s in stems], extension)):
        record = records[stem]
        if not isinstance(found, ShardDamaged) and rehash:
            if sha256_stream(storage.open_read(record.name)) != record.sha256:
                found = ShardDamaged(f"{storage.url(record.name)}: sha256 differs from the one recorded")
        if isinstance(found, ShardDamaged):
            problems[stem] = str(found)
    return problems


def _encode_chunk(chunk: list[Candidate], staging: Path, cfg: EncodeConfig) -> list[dict]:
    """Encode a few videos one after another, then verify them all in one ffmpeg run; an outcome per video."""
    encoded: dict[int, tuple[Path, SourceInfo, int]] = {}  # position in the chunk -> (file, probe, frames)
    outcomes: list[dict] = [{} for _ in chunk]
    for i, candidate in enumerate(chunk):
        dst = staging / f"{candidate.key}.{cfg.extension}"
        try:
            encoded[i] = (dst, *encode(candidate.path, dst, cfg))
        except MediaError as err:
            outcomes[i] = {"reject": str(err)}
            dst.unlink(missing_ok=True)
    counts = verify_many([dst for dst, _, _ in encoded.values()], cfg) if encoded else []
    for (i, (dst, source, frames)), decoded in zip(encoded.items(), counts):
        try:
            if isinstance(decoded, MediaError):
                raise decoded
            video = accept(source, frames, decoded, cfg)
        except MediaError as err:
            outcomes[i] = {"reject": str(err)}
            dst.unlink(missing_ok=True)
            continue
        row = manifest_row(chunk[i], source.manifest_fields())
        outcomes[i] = {"file": str(dst), "row": row, "video": video.as_dict()}
    return outcomes


def _encode_chunk_bytes(chunk: list[Candidate], cfg: EncodeConfig) -> list[dict]:
    """:func:`_encode_chunk` where the caller's disk is not this process's (a Ray task on another node): encoded
    in a private temporary folder, and each video's bytes returned in its outcome (``data``) instead of a path."""
    staging = Path(tempfile.mkdtemp(prefix="actnet-encode-"))
    try:
        outcomes = _encode_chunk(chunk, staging, cfg)
        for outcome in outcomes:
            if "file" in outcome:
                outcome["data"] = Path(outcome.pop("file")).read_bytes()
        return outcomes
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class _RayRunner:
    """Encoding chunks as Ray tasks (``--engine ray``): one CPU each, retried by Ray if a node dies; the driver
    assembles the shards in the same order as a local run, so the output is byte-identical. Joins the cluster at
    ``address`` (or the one this process is already connected to; None with none: a local one)."""

    def __init__(self, address: str | None, workers: int):
        try:
            import ray
        except ImportError:
            raise ActnetError("--engine ray needs Ray: pip install 'actnet[ray]'") from None
        self.ray, self.started = ray, False
        if not ray.is_initialized():
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
            except ConnectionError as err:
                raise ActnetError(f"--address {address}: no Ray cluster there ({err})") from None
            self.started = True
        self.task = ray.remote(num_cpus=1, max_retries=3)(_encode_chunk_bytes)
        self.workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))

    def submit(self, chunk: list[Candidate], cfg: EncodeConfig) -> Future:
        return self.task.remote(chunk, cfg).future()

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()


def _chunks(items: list, workers: int, most: int) -> list[list]:
    """Consecutive runs of at most ``most`` items, at least two per worker when there are enough."""
    size = max(1, min(most, -(-len(items) // (2 * workers))))
    return [items[i : i + size] for i in range(0, len(items), size)]


def publish(storage: Storage, writer: ShardWriter, stem: str) -> ShardRecord:
    """Move a closed, staged shard's tar and index into place; the caller writes the marker after."""
    record = ShardRecord(
        name=f"{stem}.tar",
        index=f"{stem}.idx",
        num_samples=writer.num_samples,
        bytes=writer.tar_path.stat().st_size,
        sha256=sha256_file(writer.tar_path),
    )
    storage.put_file(writer.tar_path, record.name)
    storage.put_file(writer.index_path, record.index)
    return record


def _reject_row(candidate: Candidate, reason: str) -> dict:
    return {"key": candidate.key, "path": candidate.relpath, "split": candidate.split, "reason": reason}


def encode_set(
    storage: Storage,
    set_name: str,
    candidates: list[Candidate],
    opts: PrepareOptions,
    progress: ProgressSink,
) -> int:
    """Encode the videos of one set (this part's share) into shards; returns how many were encoded now.

    Finished shards are kept when they pass the quick checks; a damaged one is deleted and its videos encoded
    again into a shard of the same name (encoding is deterministic, so it comes back byte-identical)."""
    part = opts.part
    stem_prefix = shard_name(set_name, 0, part)[: -len("000000")]
    markers = {s: m for s, m in done_markers(storage).items() if s.startswith(stem_prefix) and s[-6:].isdigit()}
    records = {stem: ShardRecord(**m["shard"]) for stem, m in markers.items() if m.get("shard")}
    damaged = damaged_shards(storage, records, opts.encode.extension, opts.rehash)
    redo = {}
    for stem, problem in damaged.items():
        progress.note(f"{problem}: encoding {stem} again")
        marker = markers.pop(stem)
        redo[stem] = {r["key"] for r in marker["rows"] + marker["rejects"]}
        storage.delete(f"_done/{stem}.json")  # first: without it the shard is not done, whatever else is left
        storage.delete(marker["shard"]["name"])
        storage.delete(marker["shard"]["index"])
    finished = {r["key"] for m in markers.values() for r in m["rows"] + m["rejects"]}
    todo = [c for c in candidates if c.key not in finished and not any(c.key in keys for keys in redo.values())]
    progress.start(f"{set_name}: encoding", len(candidates))
    progress.advance(len(candidates) - len(todo) - sum(map(len, redo.values())))
    encoder = _SetEncoder(storage, set_name, candidates, opts, progress)
    try:
        for stem, keys in sorted(redo.items()):
            encoder.run([c for c in candidates if c.key in keys], int(stem[-6:]), only_one=True)
        if todo:
            first = 1 + max((int(s[-6:]) for s in [*markers, *redo]), default=-1)
            encoder.run(todo, first)
    finally:
        encoder.close()
    return len(todo) + sum(map(len, redo.values()))


class _SetEncoder:
    """Encodes runs of a set's videos into consecutive shards, publishing each with its ``_done`` marker."""

    def __init__(self, storage: Storage, set_name: str, candidates: list[Candidate], opts, progress: ProgressSink):
        self.storage, self.set_name, self.opts, self.progress = storage, set_name, opts, progress
        self.total = len(candidates)
        self.position = {c.key: p for p, c in enumerate(candidates)}
        self.staging = storage.staging_dir() / shard_name(set_name, 0, opts.part)[: -len("-000000")]
        shutil.rmtree(self.staging, ignore_errors=True)  # leftovers of an interrupted run are never trusted
        self.staging.mkdir(parents=True)
        if opts.engine == "ray":
            self.ray: _RayRunner | None = _RayRunner(opts.ray_address, opts.workers)
            self.workers, self.pool = self.ray.workers, None
        else:
            self.ray = None
            self.workers = opts.workers or os.cpu_count() or 1
            self.pool = ThreadPoolExecutor(max_workers=self.workers)

    def run(self, todo: list[Candidate], first: int, only_one: bool = False) -> None:
        opts, rejects = self.opts, []

        def name(i: int) -> str:
            if only_one and i != first:
                raise RunFailed(
                    f"{self.storage.url()}: encoding the videos of {shard_name(self.set_name, first, opts.part)} "
                    "again did not give one shard (made with another ffmpeg?); prepare into a new --out"
                )
            return shard_name(self.set_name, i, opts.part)

        def flush(writer: ShardWriter | None, stem: str, rows: list[dict]) -> None:
            record = publish(self.storage, writer, stem) if writer is not None else None
            marker = {"shard": asdict(record) if record else None, "rows": rows, "rejects": list(rejects)}
            self.storage.write_bytes(f"_done/{stem}.json", json.dumps(marker, sort_keys=True).encode())  # last
            rejects.clear()

        roller = ShardRoller(self.staging, opts.shards, self.total, name, flush, first)
        if self.ray is not None:
            submit = partial(self.ray.submit, cfg=opts.encode)
        else:
            submit = partial(self.pool.submit, _encode_chunk, staging=self.staging, cfg=opts.encode)
        done = _ordered_map(submit, _chunks(todo, self.workers, opts.verify_batch), window=2 * self.workers)
        for candidate, outcome in ((c, o) for chunk, outcomes in done for c, o in zip(chunk, outcomes)):
            self.progress.advance()
            if "reject" in outcome:
                rejects.append(_reject_row(candidate, outcome["reject"]))
                continue
            row = outcome["row"] | {"video": outcome["video"]}
            if "data" in outcome:  # encoded elsewhere (Ray)
                data = outcome["data"]
            else:
                video = Path(outcome["file"])
                data = video.read_bytes()
                video.unlink()
            members = sample_members(candidate.key, candidate.label, row, data, opts.encode.extension)
            roller.add(candidate.key, members, self.position[candidate.key], note=row)
        if roller.is_open or rejects:
            roller.flush()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        if self.ray is not None:
            self.ray.close()
        shutil.rmtree(self.staging, ignore_errors=True)
