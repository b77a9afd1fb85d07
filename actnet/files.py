"""Files that appear whole or not at all.

Everything actnet finishes (checkpoints, reports, exported models, shard-set files) is written under a hidden
temporary name in the destination's own folder, flushed to disk, and renamed over the destination: a reader never
sees half a file, and a kill leaves at most a hidden ``.<name>.*.tmp`` beside it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()  # mkstemp creates 0600 files; finished outputs get the usual permissions


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to. When the block ends it is flushed to disk and renamed over
    ``path``; when the block raises, it is removed and ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, FILE_MODE)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: str | Path, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` through :func:`atomic_path`."""
    with atomic_path(path) as tmp:
        if isinstance(data, str):
            tmp.write_text(data)
        else:
            tmp.write_bytes(data)
    return Path(path)


def move_into_place(src: str | Path, dest: str | Path) -> None:
    """Move a finished file to ``dest``: a rename on the same file system, else a copy through
    :func:`atomic_path` and the source removed."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(src, dest)
    except OSError:  # another file system
        with atomic_path(dest) as tmp:
            shutil.copyfile(src, tmp)
        os.unlink(src)
