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

from actnet.errors import ActnetError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()  # mkstemp creates 0600 files; finished outputs get the usual permissions


def plain_name(text, what: str) -> str:
    """``text`` when it is a plain file or folder name (no separators, not ``.``/``..``, no NUL), else one line
    naming ``what``: names read from files (a plan's data set and split) never choose where things are written."""
    if not isinstance(text, str) or text in ("", ".", "..") or any(c in text for c in "/\\\0") or len(text) > 255:
        raise ActnetError(f"{what} {text!r}: not a plain name (no folders, no '..')")
    return text


def inside(root: Path, rel: str, what: str) -> Path:
    """``root / rel``, refusing (one line naming ``what``) a ``rel`` that is absolute or climbs out of ``root``."""
    if Path(rel).is_absolute() or ".." in Path(rel).parts:
        raise ActnetError(f"{what} {rel!r}: not a path inside {root}")
    return root / rel


def require_folder(path: str | Path, flag: str) -> Path:
    """``path`` as a folder actnet may create and write in: fails with one line naming ``flag`` when it, or the
    nearest part of it that exists, is a file or cannot be written. Checked before work starts, not after."""
    path = Path(path).expanduser()
    for existing in (path, *path.parents):
        if existing.exists():
            if not existing.is_dir():
                what = "is a file" if existing == path else f"lies under the file {existing}"
                raise ActnetError(f"{flag} {path}: {what}, not a folder")
            if not os.access(existing, os.W_OK | os.X_OK):
                raise ActnetError(f"{flag} {path}: {existing} is not writable")
            break
    return path


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
