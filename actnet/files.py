"""Files that appear whole or not at all.

Everything actnet finishes (checkpoints, reports, exported models, shard-set files) is written under a hidden
temporary name in the destination's own folder, flushed to disk, and renamed over the destination: a reader never
sees half a file, and a kill leaves at most a hidden ``.<name>.<pid>.<random>.tmp`` beside it, which the next run
in that folder removes (:func:`clean_orphans`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
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
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
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


_TEMP = re.compile(r"^\..+?(?:\.(\d+))?\.[A-Za-z0-9_]+\.tmp$")
LEGACY_TEMP_AGE_S = 600  # temporaries from before the pid was in the name: removed once this old


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def clean_orphans(folder: str | Path) -> list[Path]:
    """Remove the temporaries :func:`atomic_path` left in ``folder`` when a process was killed mid-write (their
    process is gone); returns what was removed. Temporaries of live processes on this machine are left alone."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in folder.iterdir():
        m = _TEMP.match(path.name)
        if m is None or not path.is_file():
            continue
        pid = m.group(1)
        stale = not _alive(int(pid)) if pid else time.time() - path.stat().st_mtime > LEGACY_TEMP_AGE_S
        if stale:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
