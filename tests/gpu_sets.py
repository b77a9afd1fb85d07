"""The shard sets the ``gpu`` tests read, made with ffmpeg where there is one (a lent GPU machine has none:
``tools/gpu_check.sh pack`` makes them here and carries them there, pointed at by ``ACTNET_GPU_SETS``).

8 videos of 2 classes at 256x144 (NVDEC decodes that size in every codec on every GPU generation), 24 to 43 frames,
whose pixels say which frame and which video they are (red 20 + 5 i, green 30 + 25 v, as conftest.index_frames),
prepared once per codec: VP9 at speed 6 (realtime, no alt-ref frames) and at speed 4 (good deadline: hidden
alt-ref frames), H.264 and MJPEG.

    python tests/gpu_sets.py <folder>       # writes <folder>/<name>/videos/split1 for every name of SETS
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from conftest import FRAME_COUNTS, index_frames, write_raw_video

from actnet.config import EncodeConfig, PrepareOptions, ShardConfig
from actnet.data.sources import list_folder
from actnet.prepare import prepare

SIZE = (256, 144)  # width, height
SETS = {
    "vp9": EncodeConfig(codec="vp9", speed=6),
    "vp9-speed4": EncodeConfig(codec="vp9", speed=4),
    "h264": EncodeConfig(codec="h264", speed=8),
    "mjpeg": EncodeConfig(codec="mjpeg"),
}


def set_folder(base: Path, name: str) -> Path:
    return Path(base) / name / "videos" / "split1"


def make_sets(base: Path, workers: int = 2) -> Path:
    """Every set of SETS under ``base`` (kept when already there); returns ``base``."""
    base = Path(base)
    with tempfile.TemporaryDirectory(prefix="actnet-gpu-sets-") as tmp:
        root = Path(tmp) / "videos"
        for v, n in enumerate(FRAME_COUNTS):
            write_raw_video(root / "ab"[v % 2] / f"v{v}.mkv", index_frames(v, n, size=(SIZE[1], SIZE[0])))
        listing = list_folder(root, test_fraction=0.25, name="videos")
        for name, encode in SETS.items():
            opts = PrepareOptions(
                out=str(base / name),
                manifests=None,
                labeled=("1/class",),
                workers=workers,
                encode=encode,
                shards=ShardConfig(min_shards=3),
            )
            prepare(listing, opts)
    return base


if __name__ == "__main__":
    print(make_sets(Path(sys.argv[1])))
