"""``actnet inspect``: what is in a folder of shard sets, as tables and (on request) a contact sheet PNG.

Reads only ``*.info.json`` for the tables (``actnet.tables.shard_set_tables`` draws them); the contact sheet
decodes a few clips with ffmpeg so a person can see them: one row per clip (one per class first), frames spaced
evenly over the video, labelled with the key and class.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from actnet.data.media import MediaError, decode_frames_at
from actnet.data.shards import ShardDamaged, ShardSetInfo, check_shards, iter_samples, read_set_info
from actnet.data.storage import open_storage
from actnet.errors import ActnetError


def load_sets(url: str) -> list[ShardSetInfo]:
    """Every complete shard set under ``url``, train and test first."""
    storage = open_storage(url)
    names = [n for n in storage.list() if n.endswith(".info.json") and "/" not in n]
    if not names:
        raise ActnetError(f"{url}: no shard sets here (no *.info.json); point at <out>/<dataset>/<split>")
    infos = [read_set_info(storage, n[: -len(".info.json")]) for n in names]
    order = {"train": 0, "test": 1}
    return sorted(infos, key=lambda i: (order.get(i.set, 2), i.set))


def _decode(video: bytes, suffix: str, indices: list[int]) -> np.ndarray:
    with tempfile.NamedTemporaryFile(suffix=f".{suffix}") as f:
        f.write(video)
        f.flush()
        return decode_frames_at(f.name, indices)


def contact_sheet(
    url: str,
    set_name: str,
    out_png: str | Path,
    clips: int = 8,
    frames: int = 8,
    keys: list[str] | None = None,
    captions: dict[str, str] | None = None,
) -> Path:
    """A PNG grid: ``clips`` rows (classes covered first), ``frames`` evenly spaced frames per row. With ``keys``,
    the rows are those samples in that order (``clips`` is then ignored), captioned by ``captions[key]`` (default:
    the stored class and the key)."""
    from PIL import Image, ImageDraw

    infos = {i.set: i for i in load_sets(url)}
    if set_name not in infos:
        raise ActnetError(f"--set {set_name!r}: not among the sets of {url} ({', '.join(infos)})")
    info = infos[set_name]
    storage = open_storage(url)
    for problem in check_shards(storage, info.shards, info.extension):  # named now, not halfway through a tar
        if isinstance(problem, ShardDamaged):
            raise ActnetError(f"{problem}; `actnet verify {url}` checks the whole output")
    chosen, seen_classes = [], set()
    wanted = None if keys is None else set(keys)
    clips = clips if keys is None else len(wanted)
    for shard in info.shards:  # first pass: one clip per class, in shard order (or the keys asked for)
        with storage.open_read(shard.name) as stream:
            for key, members in iter_samples(stream, storage.url(shard.name)):
                label = int(members["cls"])
                if wanted is not None:
                    if key in wanted:
                        chosen.append((key, label, members))
                elif label not in seen_classes or len(seen_classes) >= info.num_classes:
                    seen_classes.add(label)
                    chosen.append((key, label, members))
                if len(chosen) >= clips:
                    break
        if len(chosen) >= clips:
            break
    if keys is not None:
        order = {k: i for i, k in enumerate(keys)}
        chosen.sort(key=lambda row: order[row[0]])
    rows = []
    for key, label, members in chosen:
        meta = json.loads(members["json"])["video"]
        indices = np.linspace(0, meta["num_frames"] - 1, frames).round().astype(int).tolist()
        try:
            clip = _decode(members[info.extension], info.extension, indices)
        except MediaError as err:
            raise ActnetError(f"{url}: sample {key} of set {set_name} does not decode ({err})") from None
        if len(clip) == 0:
            raise ActnetError(f"{url}: sample {key} of set {set_name} decodes to no frames")
        rows.append((key, label, clip))
    if not rows:
        raise ActnetError(f"{url}: shard set {set_name!r} holds no samples")
    tile_h = max(r[2].shape[1] for r in rows)
    tile_w = max(r[2].shape[2] for r in rows)
    label_h = 14
    sheet = Image.new("RGB", (tile_w * frames, (tile_h + label_h) * len(rows)), (20, 20, 20))
    draw = ImageDraw.Draw(sheet)
    for r, (key, label, clip) in enumerate(rows):
        y = r * (tile_h + label_h)
        caption = (captions or {}).get(key) or f"{info.classes[label]}  ({key})"
        draw.text((2, y + 1), caption, fill=(230, 230, 230))
        for c, frame in enumerate(clip[:frames]):
            sheet.paste(Image.fromarray(frame), (c * tile_w, y + label_h))
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out_png)
    return out_png
