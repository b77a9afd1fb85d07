"""The Python half of the input pipeline: which samples each rank reads, which frames, and their bytes.

No DALI here (``actnet/data/dali.py`` decodes and augments); everything in this module is plain Python and
numpy, so the choices it makes are easy to test and identical on every machine.

- A :class:`ShardSet` is opened from its ``<set>.info.json`` and the DALI index files beside its tars. The
  epoch length comes from ``info.json``; the index gives each sample's byte range, so one ranged read (a
  ``pread`` locally, a ranged GET on S3) fetches a sample's ``.cls``, ``.json`` and video together.
- Reads: up to ``fetch_threads`` are in flight, ahead of the consumer. A stream that visits neighbouring
  samples of a shard one after the other (evaluation, in shard order) reads runs of them with one ranged read
  of up to ``coalesce_kib``: on object storage one request then serves many samples. Which samples, frames and
  order a stream gives never depend on how its bytes were read.
- Training streams are endless. Epoch ``e`` is a seeded permutation of the whole set, cycled to
  ``steps_per_epoch * batch * world`` positions and dealt round robin to the ranks: within an epoch the ranks'
  samples are disjoint (apart from the cycled tail) and every rank runs the same number of steps.
- Evaluation streams visit sample ``i`` on rank ``i % world``, once, without padding.
- Frames: each model's clip is T frames at a stride drawn per sample from its set; the clips of the models
  share a centre, so they see the same moment at different rates. The decoder is asked for the union of the
  models' frames once; each model's clip is a reordering of that union.
- Randomness is drawn from ``(seed, stream, epoch, position)``, never from the order threads finish in.
"""

from __future__ import annotations

import json
import math
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from actnet.config import ClipConfig
from actnet.data.shards import IndexEntry, ShardDamaged, check_shards, info_name, read_set_info
from actnet.data.storage import Storage, open_storage
from actnet.errors import ActnetError

STREAM_TAGS = {"labeled": 1, "unlabeled": 2, "eval": 3}


@dataclass(frozen=True)
class SampleRef:
    """Where one sample of a shard set lives."""

    id: int  # position in the set (shard order, then tar order)
    key: str
    shard: str  # the tar's name relative to the set's folder
    offset: int  # byte range holding every member of the sample
    length: int
    members: dict[str, tuple[int, int]]  # extension -> (offset, size) relative to ``offset``


class ShardSet:
    """A shard set (``train``, ``test``, ``labeled-1pct-seed0`` ...) opened for random access."""

    def __init__(self, url: str, set_name: str):
        self.url, self.name = str(url), set_name
        self.storage: Storage = open_storage(url)
        if not self.storage.exists(info_name(set_name)):
            where = self.storage.url(info_name(set_name))
            raise ActnetError(f"{where}: no such shard set (was `actnet prepare` run, and did it finish?)")
        self.info = read_set_info(self.storage, set_name)
        self.samples: list[SampleRef] = []
        for shard, entries in zip(self.info.shards, check_shards(self.storage, self.info.shards, self.extension)):
            if isinstance(entries, ShardDamaged):
                raise ActnetError(
                    f"{entries}; `actnet verify {self.url}` checks the whole output, a rerun of prepare repairs it"
                )
            base = len(self.samples)
            self.samples += [self._ref(base + i, shard.name, e) for i, e in enumerate(entries)]
        if len(self.samples) != self.info.num_samples:
            raise ActnetError(f"{self.storage.url(info_name(set_name))}: shard counts do not add up to num_samples")

    @staticmethod
    def _ref(i: int, shard: str, entry: IndexEntry) -> SampleRef:
        offset, length = entry.span
        members = {ext: (off - offset, size) for ext, (off, size) in entry.members.items()}
        return SampleRef(i, entry.key, shard, offset, length, members)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def extension(self) -> str:
        return self.info.extension

    @property
    def codec(self) -> str:
        return self.info.codec

    def fetch(self, i: int) -> dict[str, bytes]:
        """The members of sample ``i``, by extension, from one ranged read."""
        return self.fetch_many([i])[0]

    def fetch_many(self, ids: list[int]) -> list[dict[str, bytes]]:
        """The members of samples ``ids`` (neighbours in one shard, in byte order) from one ranged read of the
        span that holds them all (see :func:`coalesce`)."""
        refs = [self.samples[i] for i in ids]
        start, end = refs[0].offset, refs[-1].offset + refs[-1].length
        blob = memoryview(self.storage.read_range(refs[0].shard, start, end - start))
        return [
            {
                ext: bytes(blob[ref.offset - start + off : ref.offset - start + off + size])
                for ext, (off, size) in ref.members.items()
            }
            for ref in refs
        ]


# Neighbouring samples of one shard are read together when what lies between them is at most this (tar headers
# and padding: a few KiB; another rank's samples are not read for nothing).
COALESCE_GAP = 64 << 10


def joins(last: SampleRef, ref: SampleRef, first: SampleRef, most_bytes: int) -> bool:
    """Whether ``ref`` can join a read that spans ``first`` .. ``last``: same shard, after ``last`` and close to
    it, and the span stays within ``most_bytes``."""
    end = last.offset + last.length
    return (
        ref.shard == last.shard
        and 0 <= ref.offset - end <= COALESCE_GAP
        and ref.offset + ref.length - first.offset <= most_bytes
    )


# ---------------------------------------------------------------------------------------------- which samples


def steps_per_epoch(num_samples: int, batch_size: int, world: int = 1) -> int:
    """Steps every rank runs per training epoch: each sample at least once, the last step topped up."""
    return max(1, math.ceil(num_samples / (batch_size * world)))


def epoch_permutation(num_samples: int, seed: int, stream: str, epoch: int) -> np.ndarray:
    rng = np.random.default_rng([seed, STREAM_TAGS[stream], epoch])
    return rng.permutation(num_samples)


def train_positions(num_samples: int, batch_size: int, rank: int, world: int, seed: int, stream: str, epoch: int):
    """Sample ids rank ``rank`` reads in training epoch ``epoch``, in order (``steps * batch_size`` of them)."""
    steps = steps_per_epoch(num_samples, batch_size, world)
    order = np.resize(epoch_permutation(num_samples, seed, stream, epoch), steps * batch_size * world)
    return order[rank::world]


def eval_positions(num_samples: int, rank: int, world: int) -> range:
    """Sample ids rank ``rank`` evaluates: every ``world``-th, so all ranks together see each sample once."""
    return range(rank, num_samples, world)


# ----------------------------------------------------------------------------------------------- which frames


def clip_span(frames: int, stride: int) -> int:
    return (frames - 1) * stride + 1


def clip_indices(start: int, frames: int, stride: int, num_frames: int) -> list[int]:
    """``frames`` indices from ``start`` every ``stride``; past the end the last frame repeats."""
    return [min(start + j * stride, num_frames - 1) for j in range(frames)]


def shared_centre_starts(num_frames: int, spans: list[int], u: float) -> list[int]:
    """Start frames of clips of the given spans that share one centre, placed by ``u`` in [0, 1).

    The longest clip's start is uniform over its valid range; the others are centred on the frames it covers
    and kept inside the video.
    """
    longest = max(spans)
    first = min(int(u * (max(0, num_frames - longest) + 1)), max(0, num_frames - longest))
    twice_centre = first + min(first + longest - 1, num_frames - 1)  # of the frames the longest clip covers
    return [min(max(0, (twice_centre - span + 1) // 2), max(0, num_frames - span)) for span in spans]


def uniform_starts(num_frames: int, span: int, k: int) -> list[int]:
    """``k`` evenly spaced clip starts covering the video (the centre one when ``k`` is 1)."""
    room = max(0, num_frames - span)
    if k == 1:
        return [room // 2]
    return [round(i * room / (k - 1)) for i in range(k)]


def crop_positions(width: int, height: int, crops: int) -> list[tuple[float, float]]:
    """Relative (x, y) positions of the evaluation crops: along the long side for 3, the centre for 1."""
    if crops == 1:
        return [(0.5, 0.5)]
    if width >= height:
        return [(0.0, 0.5), (0.5, 0.5), (1.0, 0.5)]
    return [(0.5, 0.0), (0.5, 0.5), (0.5, 1.0)]


@dataclass
class Job:
    """One sample, read and planned: its bytes, label and the frames each model gets."""

    id: int
    key: str
    label: int
    video: bytes
    meta: dict  # the sample's .json member (manifest row + encoded video properties)
    frames: dict[str, list[int]]  # model -> frame indices (T, or K*T for evaluation)
    strides: dict[str, int] = field(default_factory=dict)
    crops: list[tuple[float, float]] = field(default_factory=list)  # evaluation crop positions
    epoch: int = 0  # where in the stream the job was planned (training draws depend on it)
    position: int = 0

    def union(self) -> tuple[list[int], dict[str, list[int]]]:
        """The sorted union of every model's frames, and each model's clip as positions into it."""
        union = sorted({f for frames in self.frames.values() for f in frames})
        where = {f: i for i, f in enumerate(union)}
        return union, {m: [where[f] for f in frames] for m, frames in self.frames.items()}


def plan_train(ref: SampleRef, members: dict[str, bytes], ext: str, clips: dict[str, ClipConfig], rng) -> Job:
    meta = json.loads(members["json"])
    n = int(meta["video"]["num_frames"])
    fps = float(meta["video"].get("fps") or 0)
    strides = {
        m: c.stride_for(fps, float(rng.choice(c.fps))) if c.fps else int(rng.choice(c.strides))
        for m, c in clips.items()
    }
    spans = [clip_span(c.frames, strides[m]) for m, c in clips.items()]
    starts = shared_centre_starts(n, spans, float(rng.random()))
    frames = {m: clip_indices(s, c.frames, strides[m], n) for (m, c), s in zip(clips.items(), starts)}
    return Job(ref.id, ref.key, int(members["cls"]), members[ext], meta, frames, strides)


def plan_eval(ref: SampleRef, members: dict[str, bytes], ext: str, clips: dict[str, ClipConfig], k: int, crops: int):
    meta = json.loads(members["json"])
    video = meta["video"]
    n = int(video["num_frames"])
    frames, strides = {}, {}
    for m, c in clips.items():
        stride = strides[m] = c.stride_for(float(video.get("fps") or 0))
        starts = uniform_starts(n, clip_span(c.frames, stride), k)
        frames[m] = [f for s in starts for f in clip_indices(s, c.frames, stride, n)]
    positions = crop_positions(int(video["width"]), int(video["height"]), crops)
    return Job(ref.id, ref.key, int(members["cls"]), members[ext], meta, frames, strides, positions)


# --------------------------------------------------------------------------------------------------- streams


class SampleStream:
    """Batches of planned jobs for one rank: ``labeled`` and ``unlabeled`` (endless) or ``eval`` (one pass).

    Bytes are fetched ``fetch_threads`` reads at a time, ``max(lookahead batches, fetch_threads)`` samples ahead
    of the consumer; neighbours in one shard share a read of up to ``coalesce_kib`` (0: one read per sample).
    Samples marked bad (see
    :meth:`mark_bad`) are replaced in training by the next good sample of the same epoch order, and left out
    of evaluation.
    """

    def __init__(
        self,
        shards: ShardSet,
        kind: str,
        clips: dict[str, ClipConfig],
        batch_size: int,
        *,
        rank: int = 0,
        world: int = 1,
        seed: int = 0,
        eval_clips: int = 1,
        eval_crops: int = 1,
        fetch_threads: int = 64,
        lookahead: int = 2,
        coalesce_kib: int = 4096,
    ):
        if kind not in STREAM_TAGS:
            raise ValueError(f"unknown stream kind {kind!r}")
        if not 0 <= rank < world:
            raise ActnetError(f"rank {rank} is not within a world of {world}")
        if len(shards) == 0:
            raise ActnetError(f"{shards.storage.url(info_name(shards.name))}: the set is empty")
        self.shards, self.kind, self.clips = shards, kind, clips
        self.batch_size, self.rank, self.world, self.seed = batch_size, rank, world, seed
        self.eval_clips, self.eval_crops = eval_clips, eval_crops
        self.bad: set[int] = set()
        self._pool = ThreadPoolExecutor(fetch_threads, thread_name_prefix="actnet-fetch") if fetch_threads else None
        # samples read ahead: enough to keep every fetch thread busy (on object storage a read waits a round trip)
        self._window = max(max(1, lookahead) * batch_size, fetch_threads)
        self._read_bytes = coalesce_kib << 10
        self.reads = self.samples_read = 0  # ranged reads done and the samples they held (benchmarks report them)
        self._count_lock = threading.Lock()

    @property
    def steps_per_epoch(self) -> int:
        """Training: equal on every rank. Evaluation: this rank's batches (ranks may differ by one)."""
        if self.kind == "eval":
            return math.ceil(len(eval_positions(len(self.shards), self.rank, self.world)) / self.batch_size)
        return steps_per_epoch(len(self.shards), self.batch_size, self.world)

    def positions(self, epoch: int) -> list[int]:
        if self.kind == "eval":
            return list(eval_positions(len(self.shards), self.rank, self.world))
        n = len(self.shards)
        return train_positions(n, self.batch_size, self.rank, self.world, self.seed, self.kind, epoch).tolist()

    def mark_bad(self, sample_id: int) -> None:
        self.bad.add(sample_id)
        if self.kind != "eval" and len(self.bad) >= len(self.shards):
            raise ActnetError(f"{self.shards.url}: every sample of set {self.shards.name} failed to decode")

    def _substitute(self, sample_id: int, epoch: int) -> int | None:
        if sample_id not in self.bad:
            return sample_id
        if self.kind == "eval":
            return None
        order = epoch_permutation(len(self.shards), self.seed, self.kind, epoch)
        at = int(np.flatnonzero(order == sample_id)[0])
        for step in range(1, len(order)):
            candidate = int(order[(at + step) % len(order)])
            if candidate not in self.bad:
                return candidate
        return None

    def plan(self, sample_id: int, epoch: int, position: int) -> Job:
        """Read sample ``sample_id`` and choose its frames as position ``position`` of ``epoch``."""
        return self._plan(sample_id, epoch, position, self.shards.fetch(sample_id))

    def _plan(self, sample_id: int, epoch: int, position: int, members: dict[str, bytes]) -> Job:
        ref = self.shards.samples[sample_id]
        if self.kind == "eval":
            job = plan_eval(ref, members, self.shards.extension, self.clips, self.eval_clips, self.eval_crops)
        else:
            rng = np.random.default_rng([self.seed, STREAM_TAGS[self.kind], epoch, self.rank, position])
            job = plan_train(ref, members, self.shards.extension, self.clips, rng)
        job.epoch, job.position = epoch, position
        return job

    def replacement(self, job: Job) -> Job | None:
        """After ``job``'s sample was marked bad: the sample training reads in its place (evaluation: None)."""
        return self._plan_checked(job.id, job.epoch, job.position)

    def batches(self, epoch: int = 0, skip: int = 0) -> Iterator[list[Job]]:
        """Lists of ``batch_size`` jobs (the last evaluation batch may be shorter), from batch ``skip`` of
        ``epoch`` on: a training run resumed at step s of an epoch reads exactly what it would have read."""
        batch: list[Job] = []
        for job in self._prefetched(epoch, skip * self.batch_size):
            batch.append(job)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def _prefetched(self, epoch: int, skip: int) -> Iterator[Job]:
        """Planned jobs in order; with a pool, up to ``self._window`` samples are read ahead."""
        if self._pool is None:
            for read in self._reads(epoch, skip):
                yield from self._read(read)
            return
        futures: deque = deque()  # (future of a read's jobs, how many samples it reads)
        ahead = 0
        for read in self._reads(epoch, skip):
            futures.append((self._pool.submit(self._read, read), len(read)))
            ahead += len(read)
            while ahead > self._window:
                future, n = futures.popleft()
                ahead -= n
                yield from future.result()
        while futures:
            yield from futures.popleft()[0].result()

    def _reads(self, epoch: int, skip: int) -> Iterator[list[tuple[int, int, int]]]:
        """The stream's (sample, epoch, position) items, bad samples already replaced, grouped into reads: runs
        of neighbours in one shard (:func:`joins`) of at most half the read-ahead window, else single samples."""
        samples, most = self.shards.samples, max(1, self._window // 2)
        read: list[tuple[int, int, int]] = []
        for sample_id, e, position in self._ids(epoch, skip):
            sample_id = self._substitute(sample_id, e)
            if sample_id is None:
                continue
            item = (sample_id, e, position)
            if read and (
                not self._read_bytes
                or len(read) >= most
                or not joins(samples[read[-1][0]], samples[sample_id], samples[read[0][0]], self._read_bytes)
            ):
                yield read
                read = []
            read.append(item)
        if read:
            yield read

    def _read(self, read: list[tuple[int, int, int]]) -> list[Job]:
        members = self.shards.fetch_many([sample_id for sample_id, _, _ in read])
        with self._count_lock:
            self.reads += 1
            self.samples_read += len(read)
        return [self._plan(*item, m) for item, m in zip(read, members)]

    def _ids(self, epoch: int, skip: int = 0) -> Iterator[tuple[int, int, int]]:
        while True:
            for position, sample_id in enumerate(self.positions(epoch)):
                if position >= skip:
                    yield sample_id, epoch, position
            skip = 0
            if self.kind == "eval":
                return
            epoch += 1

    def _plan_checked(self, sample_id: int, epoch: int, position: int) -> Job | None:
        sample_id = self._substitute(sample_id, epoch)
        return None if sample_id is None else self.plan(sample_id, epoch, position)

    def close(self, wait: bool = False) -> None:
        """Stop reading ahead (``wait``: until the reads under way have finished)."""
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=True)
