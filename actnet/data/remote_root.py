"""A data set whose videos are in object storage (``prepare <source> --root s3://bucket/UCF-101``).

The source listings read names and small split files from a folder. For an ``s3://`` root, one paginated LIST
gives every object under the prefix, and :func:`remote_root` lays that listing out in a private local folder: an
empty placeholder per video file, and the small text files (split lists, CSVs inside the root) downloaded. The
listing functions read that folder exactly as they read a local root (the same links policy does not arise: S3 has
no links), and :func:`as_remote` points every candidate back at its object. The videos themselves are never
copied: ffmpeg reads each one through a presigned URL (:func:`actnet.data.storage.readable_url`), streaming it
into the encoder.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from actnet.data.sources import VIDEO_EXTENSIONS, SourceListing
from actnet.data.storage import S3Storage
from actnet.errors import ActnetError
from actnet.files import inside

SMALL_FILE = 16 * 2**20  # text files up to this size are fetched (split lists, annotation CSVs)


@contextlib.contextmanager
def remote_root(url: str, work_dir: str | Path | None = None) -> Iterator[Path]:
    """A local folder laid out as the objects under ``url`` (see the module); removed when the block ends."""
    storage = S3Storage(url.rstrip("/"))
    sizes = storage.sizes()
    if not sizes:
        raise ActnetError(f"--root {url}: no objects under this prefix")
    base = Path(work_dir or Path.home() / ".cache" / "actnet" / "staging").expanduser()
    base.mkdir(parents=True, exist_ok=True)
    private = Path(tempfile.mkdtemp(prefix=f"root-{hashlib.sha256(url.encode()).hexdigest()[:8]}-", dir=base))
    shadow = private / (storage.prefix.rsplit("/", 1)[-1] or storage.bucket)  # the data set's name, as locally
    try:
        for rel, size in sorted(sizes.items()):
            if rel.endswith("/") or Path(rel).is_absolute() or ".." in Path(rel).parts:
                continue  # a "folder" marker object, or a key that is no path inside the root
            path = inside(shadow, rel, "object")
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.suffix[1:].lower() in VIDEO_EXTENSIONS:
                path.touch()
            elif size <= SMALL_FILE:
                path.write_bytes(storage.read_bytes(rel))
        yield shadow
    finally:
        shutil.rmtree(private, ignore_errors=True)


def as_remote(listing: SourceListing, shadow: Path, url: str) -> SourceListing:
    """``listing`` (made from :func:`remote_root`'s folder) with every candidate pointing at its object."""
    url = url.rstrip("/")
    candidates = [replace(c, path=f"{url}/{Path(c.path).relative_to(shadow).as_posix()}") for c in listing.candidates]
    return replace(listing, root=url, candidates=candidates)
