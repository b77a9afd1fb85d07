"""``actnet prepare``: a source listing -> validated, re-encoded WebDataset shards, manifests and index files.

Output layout, under ``<out>/<dataset>/<split>/`` (a local folder or ``s3://bucket/prefix/...``)::

    plan.json                          settings the shards were made with (a rerun must match them)
    train-000000.tar  train-000000.idx ... train.info.json          every training video (the unlabeled stream)
    test-000000.tar   test-000000.idx  ... test.info.json
    labeled-1pct-seed0-000000.tar ...  labeled-1pct-seed0.info.json  copied from train shards, not re-encoded
    manifests/train.jsonl test.jsonl labeled-1pct-seed0.txt
    rejects.jsonl                      videos that could not be made valid, and listed files that are missing
    _done/                             one marker per finished shard (its rows and rejects) and per finished part

How a run stays safe to interrupt: videos are encoded in a fixed, seeded order (so shards mix classes) by
``--workers`` parallel jobs, each encoding a few consecutive videos and then verifying them in one ffmpeg run.
Each shard is assembled in a staging folder, moved into place (a rename, or an S3 upload), and only then is
its ``_done`` marker written (:mod:`actnet.encoding`). A rerun keeps every finished shard that still checks out
(size and index; with ``--rehash`` also its sha256), encodes a damaged one again under its own name, and continues
with the videos not yet done, so nothing half-written or damaged is ever taken for complete. A shard set is
complete when its ``info.json`` exists; it is written last. Temporaries of a killed run are removed.

With ``--part i/k`` each machine encodes every k-th video into its own shards (``train-p2of4-000000.tar``),
and ``actnet prepare merge`` writes the manifests, labeled subsets and info files once all parts are done.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from actnet import __version__
from actnet.config import EncodeConfig, PrepareOptions, ShardConfig
from actnet.data.codecs import decoders_for
from actnet.data.manifest import Candidate, Skipped, dump_jsonl, sha256_bytes, stable_rank
from actnet.data.shards import (
    ShardRecord,
    ShardRoller,
    ShardSetInfo,
    ShardWriter,
    info_name,
    iter_samples,
    read_set_info,
    shard_name,
)
from actnet.data.sources import SourceListing
from actnet.data.splits import LabeledSpec, list_spec, parse_labeled, select_labeled
from actnet.data.storage import LocalStorage, Storage, is_remote, open_storage
from actnet.encoding import damaged_shards, done_markers, encode_set, publish
from actnet.errors import ActnetError
from actnet.files import clean_orphans, plain_name, require_folder
from actnet.progress import ProgressSink

PLAN_FORMAT = "actnet.prepare/1"
SETS = ("train", "test")


@dataclass
class PrepareSummary:
    """What a run did, for the CLI's table and for tests."""

    url: str
    dataset: str
    split: str
    complete: bool  # False for a part of a --part run, until the merge
    sets: dict[str, dict] = field(default_factory=dict)  # set -> {"samples", "shards", "bytes"}
    encoded_now: int = 0  # videos encoded by this run (0 when everything was already done)
    rejected: int = 0
    skipped: int = 0  # listed but missing (or unplaceable) videos
    candidates: int = 0
    seconds: float = 0.0
    reject_reasons: dict[str, int] = field(default_factory=dict)

    @property
    def reject_fraction(self) -> float:
        return self.rejected / self.candidates if self.candidates else 0.0

    def reject_error(self, max_reject_fraction: float) -> str | None:
        """The error line when more videos were rejected than ``--max-reject-fraction`` allows, else None."""
        if self.reject_fraction <= max_reject_fraction:
            return None
        return (
            f"{self.reject_fraction:.1%} of the videos were rejected, above --max-reject-fraction "
            f"{max_reject_fraction:g}; the shards hold the rest (see rejects.jsonl)"
        )


def order_for_shards(candidates: Iterable[Candidate], seed: int) -> list[Candidate]:
    """The seeded order videos are written in: classes mixed, the same on every machine."""
    return sorted(candidates, key=lambda c: stable_rank("shard-order", seed, c.key))


def part_of(candidates: list[Candidate], part: tuple[int, int]) -> list[Candidate]:
    """Every k-th video of the seeded order, starting at i - 1 (the split of ``--part i/k``)."""
    i, k = part
    return candidates[i - 1 :: k]


# ---------------------------------------------------------------------------------------------------------------
# Plan


def _plan(listing: SourceListing, opts: PrepareOptions) -> dict:
    return {
        "format": PLAN_FORMAT,
        "dataset": listing.dataset,
        "split": listing.split,
        "classes": listing.classes,
        "source_root": listing.root,
        "seed": opts.seed,
        "parts": opts.part[1],
        "encode": asdict(opts.encode),
        "shards": asdict(opts.shards),
    }


def _read_plan(storage: Storage) -> dict:
    """An output's plan.json; settings added since it was written get the values it was made with. Its data set
    and split must be plain names: they choose folders (a crafted plan must not write elsewhere)."""
    where = storage.url("plan.json")
    try:
        plan = json.loads(storage.read_bytes("plan.json"))
        for key in ("dataset", "split"):
            plain_name(plan[key], f"{where}: {key}")
        _ = plan["encode"], plan["classes"], plan["parts"], plan["seed"]
    except (ValueError, KeyError, TypeError) as err:
        raise ActnetError(f"{where}: not a readable actnet plan ({type(err).__name__}: {err})") from None
    plan["encode"] = {"small_videos": "keep", **plan["encode"]}  # before the option, small videos were kept
    return plan


def _check_plan(storage: Storage, plan: dict) -> None:
    if storage.exists("plan.json"):
        old = _read_plan(storage)
        for key in ("dataset", "split", "classes", "seed", "parts", "encode", "shards"):
            if old.get(key) != plan[key]:
                raise ActnetError(
                    f"--out {storage.url()} already holds shards made with other settings ({key}: "
                    f"{old.get(key)!r} there, {plan[key]!r} now); use another --out or delete it"
                )
    else:
        storage.write_bytes("plan.json", (json.dumps(plan, indent=1, sort_keys=True) + "\n").encode())


# ---------------------------------------------------------------------------------------------------------------
# Finishing: manifests, rejects, info files, labeled subsets


def _video_summary(rows: list[dict]) -> dict:
    if not rows:
        return {}
    videos = [r["video"] for r in rows]
    return {
        "fps": sorted({v["fps"] for v in videos})[:16],
        "width": [min(v["width"] for v in videos), max(v["width"] for v in videos)],
        "height": [min(v["height"] for v in videos), max(v["height"] for v in videos)],
        "num_frames": {
            "min": min(v["num_frames"] for v in videos),
            "max": max(v["num_frames"] for v in videos),
            "total": sum(v["num_frames"] for v in videos),
        },
        "duration_s": round(sum(v["num_frames"] / v["fps"] for v in videos), 3),
    }


def _set_info(
    plan: dict,
    set_name: str,
    rows: list[dict],
    shards: list[ShardRecord],
    manifest: str,
    manifest_bytes: bytes,
    labeled: dict | None = None,
) -> ShardSetInfo:
    counts = [0] * len(plan["classes"])
    for r in rows:
        counts[r["label"]] += 1
    encode = EncodeConfig(**plan["encode"])
    video = _video_summary(rows)
    smallest = (video["width"][0], video["height"][0]) if video else (1 << 16, 1 << 16)
    return ShardSetInfo(
        dataset=plan["dataset"],
        split=plan["split"],
        set=set_name,
        num_samples=len(rows),
        classes=plan["classes"],
        class_counts=counts,
        extension=encode.extension,
        codec=encode.codec,
        encode=plan["encode"],
        video=video,
        shards=shards,
        manifest=manifest,
        manifest_sha256=sha256_bytes(manifest_bytes),
        labeled=labeled,
        actnet_version=__version__,
        devices=decoders_for(encode.codec, *smallest),
    )


def _copy_labeled(
    storage: Storage,
    set_name: str,
    keys: set[str],
    train_shards: list[ShardRecord],
    plan: dict,
    progress: ProgressSink,
) -> list[ShardRecord]:
    """Copy the samples of ``keys`` out of the train shards into a new shard set (no re-encoding)."""
    staging = storage.staging_dir() / set_name
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    records: list[ShardRecord] = []

    def flush(writer: ShardWriter, stem: str, _) -> None:
        records.append(publish(storage, writer, stem))

    roller = ShardRoller(staging, ShardConfig(**plan["shards"]), len(keys), lambda i: shard_name(set_name, i), flush)
    copied = 0
    progress.start(f"{set_name}: copying", len(keys))
    try:
        for shard in train_shards:
            with storage.open_read(shard.name) as stream:
                for key, members in iter_samples(stream, storage.url(shard.name)):
                    if key in keys:
                        roller.add(key, members, copied)
                        copied += 1
                        progress.advance()
        if roller.is_open:
            roller.flush()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if copied != len(keys):
        raise ActnetError(f"{storage.url()}: found {copied} of {len(keys)} labeled videos in the train shards")
    return records


def finalize(
    storage: Storage,
    labeled: list[LabeledSpec],
    seed: int,
    manifests_dir: str | None,
    progress: ProgressSink | None = None,
    rehash: bool = False,
) -> PrepareSummary:
    """Write manifests, rejects, info files and labeled subsets once every part of every set is encoded."""
    progress = progress or ProgressSink()
    if not storage.exists("plan.json"):
        raise ActnetError(f"{storage.url()}: no plan.json here; is this a folder written by actnet prepare?")
    plan = _read_plan(storage)
    markers = done_markers(storage)
    parts = plan["parts"]
    missing_parts = [i for i in range(1, parts + 1) if f"part-{i}of{parts}" not in markers]
    if missing_parts:
        raise ActnetError(f"{storage.url()}: part(s) {', '.join(map(str, missing_parts))} of {parts} not finished")
    summary = PrepareSummary(storage.url(), plan["dataset"], plan["split"], complete=True)
    skipped = {s["key"]: s for i in range(1, parts + 1) for s in markers[f"part-{i}of{parts}"]["skipped"]}
    all_rejects: list[dict] = list(skipped.values())
    rows_by_set: dict[str, list[dict]] = {}
    for set_name in SETS:
        set_markers = [m for s, m in sorted(markers.items()) if s.startswith(f"{set_name}-")]
        rows = [r for m in set_markers for r in m["rows"]]
        rejects = [r for m in set_markers for r in m["rejects"]]
        shards = [ShardRecord(**m["shard"]) for m in set_markers if m["shard"]]
        manifest_bytes = dump_jsonl(rows)
        manifest = f"manifests/{set_name}.jsonl"
        storage.write_bytes(manifest, manifest_bytes)
        info = _set_info(plan, set_name, rows, shards, manifest, manifest_bytes)
        storage.write_bytes(info_name(set_name), info.to_json())
        rows_by_set[set_name] = rows
        all_rejects += rejects
        summary.sets[set_name] = {"samples": len(rows), "shards": len(shards), "bytes": sum(s.bytes for s in shards)}
        summary.candidates += len(rows) + len(rejects)
        summary.rejected += len(rejects)
        for r in rejects:
            reason = r["reason"].split(":")[0]
            summary.reject_reasons[reason] = summary.reject_reasons.get(reason, 0) + 1
    summary.skipped = len(skipped)
    storage.write_bytes(
        "rejects.jsonl",
        b"".join((json.dumps(r, sort_keys=True) + "\n").encode() for r in sorted(all_rejects, key=lambda r: r["key"])),
    )

    train_rows = rows_by_set["train"]
    train_info = ShardSetInfo.from_json(storage.read_bytes(info_name("train")))
    rows_by_key = {r["key"]: r for r in train_rows}
    for spec in labeled:
        set_name = spec.set_name(seed)
        keys = select_labeled(train_rows, spec, seed)
        key_list = ("\n".join(keys) + "\n").encode()
        list_name = f"manifests/{set_name}.txt"
        if storage.exists(info_name(set_name)):
            old = read_set_info(storage, set_name)
            kept = {Path(r.name).stem: r for r in old.shards}
            damaged = damaged_shards(storage, kept, old.extension, rehash)
            for problem in damaged.values():
                progress.note(f"{problem}: copying {set_name} again")
            if old.manifest_sha256 == sha256_bytes(key_list) and not damaged:
                summary.sets[set_name] = {
                    "samples": old.num_samples,
                    "shards": len(old.shards),
                    "bytes": sum(s.bytes for s in old.shards),
                }
                continue
        storage.write_bytes(list_name, key_list)
        records = _copy_labeled(storage, set_name, set(keys), train_info.shards, plan, progress)
        sub_rows = [rows_by_key[k] for k in keys]
        meta = {"spec": spec.text, "seed": None if spec.kind == "list" else seed, "num_keys": len(keys)}
        info = _set_info(plan, set_name, sub_rows, records, list_name, key_list, labeled=meta)
        storage.write_bytes(info_name(set_name), info.to_json())
        summary.sets[set_name] = {"samples": len(keys), "shards": len(records), "bytes": sum(r.bytes for r in records)}

    if manifests_dir:
        local = Path(manifests_dir) / plan["dataset"] / plan["split"]
        local.mkdir(parents=True, exist_ok=True)
        for name in storage.list("manifests"):
            (local / Path(name).name).write_bytes(storage.read_bytes(name))
    return summary


# ---------------------------------------------------------------------------------------------------------------
# The whole command


def prepare(listing: SourceListing, opts: PrepareOptions, progress: ProgressSink | None = None) -> PrepareSummary:
    """Encode ``listing`` into shards under ``<opts.out>/<dataset>/<split>/``; finish unless this is one part."""
    progress = progress or ProgressSink()
    started = time.monotonic()
    labeled = [parse_labeled(s) for s in opts.labeled] + [list_spec(p) for p in opts.labeled_lists]
    if not listing.candidates:
        raise ActnetError(f"--root {listing.root}: no videos found to prepare")
    for flag, folder in (("--out", opts.out), ("--manifests", opts.manifests), ("--work-dir", opts.work_dir)):
        if folder and not is_remote(folder):
            require_folder(folder, flag)
    plain_name(listing.dataset, "data set name")
    plain_name(listing.split, "split name")
    storage = open_storage(opts.out, opts.work_dir).child(f"{listing.dataset}/{listing.split}")
    _check_plan(storage, _plan(listing, opts))
    _clean_orphans(storage, progress)
    i, k = opts.part
    encoded = 0
    for set_name in SETS:
        mine = part_of(order_for_shards(listing.of_split(set_name), opts.seed), opts.part)
        encoded += encode_set(storage, set_name, mine, opts, progress)
    marker = {"skipped": [_skipped_row(s) for s in listing.skipped]}
    storage.write_bytes(f"_done/part-{i}of{k}.json", json.dumps(marker, sort_keys=True).encode())
    if k > 1:
        summary = PrepareSummary(storage.url(), listing.dataset, listing.split, complete=False)
        summary.encoded_now = encoded
    else:
        summary = finalize(storage, labeled, opts.seed, opts.manifests, progress, opts.rehash)
        summary.encoded_now = encoded
    summary.seconds = time.monotonic() - started
    _remove_if_empty(storage.staging_dir())
    return summary


def _clean_orphans(storage: Storage, progress: ProgressSink) -> None:
    """Temporaries an earlier run left when it was killed mid-write (local outputs; S3 has none)."""
    if isinstance(storage, LocalStorage):
        removed = [p for sub in ("", "manifests", "_done") for p in clean_orphans(storage.root / sub)]
        if removed:
            progress.note(f"{storage.url()}: removed {len(removed)} temporary file(s) of an interrupted run")


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


def _skipped_row(s: Skipped) -> dict:
    return {"key": s.key, "path": s.relpath, "split": s.split, "reason": s.reason}
