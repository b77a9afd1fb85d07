"""Data set sources: turn the layout a data set has on disk into a list of candidate videos with labels and splits.

Each ``list_<source>`` function reads only file names and split files (no video is opened here) and returns a
:class:`SourceListing`. Missing files and videos the protocol cannot place are :class:`Skipped` (reported in
``rejects.jsonl``, never fatal); a wrong root or a missing split file is an :class:`ActnetError` naming it.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from actnet.config import HmdbPool
from actnet.data.manifest import Candidate, Skipped, disambiguate, make_key
from actnet.data.splits import split_by_fraction
from actnet.errors import ActnetError

VIDEO_EXTENSIONS = frozenset("avi mp4 mkv webm mov m4v mpg mpeg flv wmv 3gp ts mts m2ts ogv vob asf divx".split())
_UCF_GROUP = re.compile(r"_g(\d+)_c(\d+)", re.IGNORECASE)


@dataclass
class SourceListing:
    dataset: str  # "ucf101", "hmdb51", "kinetics400", a folder's name, "synthetic"
    split: str  # "split1", ...
    root: str
    classes: list[str]
    candidates: list[Candidate]
    skipped: list[Skipped] = field(default_factory=list)

    def of_split(self, split: str) -> list[Candidate]:
        return [c for c in self.candidates if c.split == split]


def _class_order(names) -> list[str]:
    """Case-insensitive order, as UCF-101's classInd.txt has it (JumpingJack before JumpRope)."""
    return sorted(names, key=lambda n: (n.lower(), n))


def _require_dir(path: Path, flag: str) -> Path:
    path = Path(path).expanduser()
    if not path.is_dir():
        raise ActnetError(f"{flag} {path}: not a folder")
    return path


def _require_file(path: Path, flag: str) -> Path:
    if not path.is_file():
        raise ActnetError(f"{flag}: missing split file {path}")
    return path


class _Walker:
    """Lists the videos under a root by one policy for links and unreadable folders, shared by every source.

    - Links (to files or folders) are followed when their target lies inside the root; one that leads outside it,
      or nowhere, is reported (a :class:`Skipped` with the reason) and not followed.
    - A folder is listed once: a link cycle (``loop -> .``) or a second link to a listed folder adds nothing.
    - A file is counted once: a second path to the same file (a link, a hard link) is reported and left out.
    - A folder that cannot be read is reported; a class folder that cannot be read is an error.
    Hidden files and folders (a leading dot) are ignored.
    """

    def __init__(self, root: Path):
        self.root = root
        self.real_root = root.resolve()
        self.skipped: list[Skipped] = []
        self._dirs: set[Path] = set()
        self._files: dict[Path, str] = {}

    def _rel(self, path: Path) -> str:
        return str(path.relative_to(self.root))

    def _skip(self, path: Path, reason: str) -> None:
        self.skipped.append(Skipped(make_key(self._rel(path).replace("/", "__")), self._rel(path), "train", reason))

    def _inside(self, path: Path) -> bool:
        """Whether a link's target is inside the root (reported when not)."""
        target = path.resolve()
        if not target.exists():
            self._skip(path, "broken link")
            return False
        if target != self.real_root and self.real_root not in target.parents:
            self._skip(path, f"link leads outside --root (to {target})")
            return False
        return True

    def entries(self, folder: Path, required: bool = False) -> list[os.DirEntry] | None:
        """The visible entries of ``folder`` by name; None when it was listed already (a cycle, a second link)."""
        real = folder.resolve()
        if real in self._dirs:
            self._skip(folder, "a folder listed already (a link cycle, or a second link to it)")
            return None
        self._dirs.add(real)
        try:
            with os.scandir(folder) as it:
                return sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
        except OSError as err:
            if required:
                raise ActnetError(
                    f"--root {self.root}: cannot read the class folder {folder.name} ({err.strerror})"
                ) from None
            self._skip(folder, f"cannot read folder ({err.strerror})")
            return []

    def class_folders(self) -> list[Path]:
        self._dirs.add(self.real_root)  # the root itself: a link back to it is a cycle, not a class
        found = []
        for entry in self.entries_of_root():
            path = Path(entry.path)
            if entry.is_symlink() and not self._inside(path):
                continue
            if not entry.is_dir():
                continue
            if path.resolve() in self._dirs:
                self._skip(path, "a folder listed already (a link cycle, or a second link to it)")
            else:
                found.append(path)
        return found

    def entries_of_root(self) -> list[os.DirEntry]:
        try:
            with os.scandir(self.root) as it:
                return sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
        except OSError as err:
            raise ActnetError(f"--root {self.root}: cannot read it ({err.strerror})") from None

    def videos(self, folder: Path, required: bool = False) -> list[Path]:
        """Video files under ``folder`` (searched recursively), sorted, by the policy above."""
        entries = self.entries(folder, required)
        found: list[Path] = []
        for entry in entries or []:
            path = Path(entry.path)
            if entry.is_symlink() and not self._inside(path):
                continue
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                found += self.videos(path)
            elif entry.is_file() and path.suffix[1:].lower() in VIDEO_EXTENSIONS:
                real = path.resolve()
                if real in self._files:
                    self._skip(path, f"the same file as {self._files[real]}")
                    continue
                self._files[real] = self._rel(path)
                found.append(path)
        return found


# ---------------------------------------------------------------------------------------------------------------
# UCF-101


def _ucf_split_dir(root: Path, splits: Path | None) -> Path | None:
    if splits is not None:
        return _require_dir(splits, "--splits")
    for guess in (root / "ucfTrainTestlist", root.parent / "ucfTrainTestlist"):
        if (guess / "classInd.txt").is_file():
            return guess
    return None


def list_ucf101(root: str | Path, splits: str | Path | None = None, split: int = 1) -> SourceListing:
    """UCF-101: ``<root>/<Class>/v_<Class>_gXX_cYY.avi`` plus the official ``ucfTrainTestlist/`` files.

    Without the split files, classes are the folders in classInd order and split k tests on groups
    7(k-1)+1 .. 7k (split 1: g01-g07).
    """
    if split not in (1, 2, 3):
        raise ActnetError(f"--split must be 1, 2 or 3 for UCF-101, not {split}")
    root = _require_dir(Path(root), "--root")
    walker = _Walker(root)
    videos_of = {folder.name: walker.videos(folder, required=True) for folder in walker.class_folders()}
    # The real quirk: HandstandPushups/ holds v_HandStandPushups_*.avi; resolve list paths case-insensitively.
    on_disk = {str(p.relative_to(root)).lower(): p for videos in videos_of.values() for p in videos}
    if not on_disk:
        raise ActnetError(f"--root {root}: no class folders of videos (expected <root>/<Class>/v_<Class>_gXX_cYY.avi)")
    split_dir = _ucf_split_dir(root, Path(splits).expanduser() if splits else None)
    candidates, skipped = [], walker.skipped

    def add(relpath: str, label: int, class_name: str, which: str) -> None:
        name = relpath.rsplit("/", 1)[-1]
        key = make_key(name.rsplit(".", 1)[0])
        m = _UCF_GROUP.search(name)
        group = int(m.group(1)) if m else None
        path = on_disk.get(relpath.lower())
        if path is None:
            skipped.append(Skipped(key, relpath, which, "missing file"))
        else:
            candidates.append(Candidate(key, str(path), str(path.relative_to(root)), label, class_name, which, group))

    if split_dir is not None:
        class_ind = _require_file(split_dir / "classInd.txt", "--splits")
        classes = [line.split()[1] for line in class_ind.read_text().splitlines() if line.strip()]
        by_lower = {c.lower(): i for i, c in enumerate(classes)}
        train_list = _require_file(split_dir / f"trainlist0{split}.txt", "--splits")
        test_list = _require_file(split_dir / f"testlist0{split}.txt", "--splits")
        for which, list_file in (("train", train_list), ("test", test_list)):
            for line in list_file.read_text().splitlines():
                parts = line.strip().replace("\\", "/").split()
                if not parts:
                    continue
                relpath = parts[0]
                folder = relpath.split("/", 1)[0].lower()
                if len(parts) > 1:  # trainlists carry a 1-based label; testlists do not
                    label = int(parts[1]) - 1
                elif folder in by_lower:
                    label = by_lower[folder]
                else:
                    raise ActnetError(f"{list_file}: class folder of {relpath!r} is not in {class_ind}")
                add(relpath, label, classes[label], which)
    else:
        classes = _class_order(name for name, videos in videos_of.items() if videos)
        test_groups = range(7 * (split - 1) + 1, 7 * split + 1)
        for label, class_name in enumerate(classes):
            for path in videos_of[class_name]:
                relpath = str(path.relative_to(root))
                m = _UCF_GROUP.search(path.name)
                if m is None:
                    skipped.append(Skipped(make_key(path.stem), relpath, "train", "no group number (_gNN_) in name"))
                    continue
                add(relpath, label, class_name, "test" if int(m.group(1)) in test_groups else "train")
    return SourceListing("ucf101", f"split{split}", str(root), classes, disambiguate(candidates), skipped)


# ---------------------------------------------------------------------------------------------------------------
# HMDB-51


def list_hmdb51(root: str | Path, splits: str | Path, split: int = 1, pool: str = "all-non-test") -> SourceListing:
    """HMDB-51: ``<root>/<class>/<video>.avi`` and 51 files ``<class>_test_split<k>.txt`` of ``<video> <tag>``.

    Tag 1 is train, 2 test, 0 unused. ``pool="all-non-test"`` (the semi-supervised protocol of VideoSSL, LTG and
    SVFormer) trains on tags 0 and 1; ``pool="train"`` on tag 1 only.
    """
    if split not in (1, 2, 3):
        raise ActnetError(f"--split must be 1, 2 or 3 for HMDB-51, not {split}")
    HmdbPool.check(pool, "--pool")
    root = _require_dir(Path(root), "--root")
    split_dir = _require_dir(Path(splits), "--splits")
    suffix = f"_test_split{split}.txt"
    split_files = sorted(p for p in split_dir.iterdir() if p.name.endswith(suffix))
    if not split_files:
        raise ActnetError(f"--splits {split_dir}: no <class>{suffix} files")
    classes = _class_order(p.name[: -len(suffix)] for p in split_files)
    train_tags = {"1"} if pool == "train" else {"0", "1"}
    candidates, skipped = [], []
    for label, class_name in enumerate(classes):
        for line in (split_dir / f"{class_name}{suffix}").read_text().splitlines():
            parts = line.split()
            if len(parts) < 2:
                continue
            name, tag = parts[0], parts[1]
            if tag == "2":
                which = "test"
            elif tag in train_tags:
                which = "train"
            else:
                continue
            key = make_key(Path(name).stem)
            path = next((p for p in (root / class_name / name, root / name) if p.is_file()), None)
            relpath = f"{class_name}/{name}"
            if path is None:
                skipped.append(Skipped(key, relpath, which, "missing file"))
            else:
                candidates.append(Candidate(key, str(path), str(path.relative_to(root)), label, class_name, which))
    return SourceListing("hmdb51", f"split{split}", str(root), classes, disambiguate(candidates), skipped)


# ---------------------------------------------------------------------------------------------------------------
# Kinetics

_KINETICS_COLUMNS = {"label", "youtube_id", "time_start", "time_end", "split"}
_KINETICS_SPLITS = {"train": "train", "val": "test", "validate": "test", "validation": "test"}


def list_kinetics(root: str | Path, annotations: list[str | Path], name: str = "kinetics400") -> SourceListing:
    """Kinetics: CSVs ``label,youtube_id,time_start,time_end,split`` and files ``<id>_<start:06d>_<end:06d>.mp4``.

    Files may sit anywhere under the root (flat, or in split and class folders). ``train`` rows train, ``val``
    rows test (the standard evaluation protocol); rows of the unlabeled ``test`` split are ignored. Missing
    files (videos taken off YouTube) are reported, not fatal.
    """
    root = _require_dir(Path(root), "--root")
    if not annotations:
        raise ActnetError("--annotations: give at least one Kinetics CSV file")
    on_disk: dict[str, Path] = {}
    walker = _Walker(root)
    for path in walker.videos(root):
        on_disk.setdefault(path.stem, path)
    rows, skipped = [], walker.skipped
    for csv_path in map(Path, annotations):
        found, bad = _kinetics_rows(csv_path)
        rows += found
        skipped += bad
    classes = _class_order({r["label"].strip() for r in rows})
    label_of = {c: i for i, c in enumerate(classes)}
    candidates = []
    for r in rows:
        youtube_id = r["youtube_id"].strip()
        stem = f"{youtube_id}_{r['start']:06d}_{r['end']:06d}"
        which = _KINETICS_SPLITS[r["split"].strip().lower()]
        class_name = r["label"].strip()
        path = on_disk.get(stem) or on_disk.get(youtube_id)
        if path is None:
            skipped.append(Skipped(make_key(stem), f"{stem}.mp4", which, "missing file"))
        else:
            rel = str(path.relative_to(root))
            candidates.append(Candidate(make_key(stem), str(path), rel, label_of[class_name], class_name, which))
    return SourceListing(name, "split1", str(root), classes, disambiguate(candidates), skipped)


def _kinetics_rows(csv_path: Path) -> tuple[list[dict], list[Skipped]]:
    """The train and val rows of one annotation CSV, with integer ``start`` and ``end``; a row that is not UTF-8
    text or whose times are not numbers is skipped with its file and line named (the rest of the file is used)."""
    if not csv_path.is_file():
        raise ActnetError(f"--annotations {csv_path}: no such file")
    lines, bad = [], []
    for number, raw in enumerate(csv_path.read_bytes().splitlines(keepends=True), start=1):
        try:
            lines.append((number, raw.decode("utf-8-sig" if number == 1 else "utf-8")))
        except UnicodeDecodeError:
            bad.append(
                Skipped(make_key(f"{csv_path.stem}-line{number}"), f"{csv_path}:{number}", "train", "not UTF-8 text")
            )
    if not lines:
        raise ActnetError(f"--annotations {csv_path}: no readable lines")
    reader = csv.DictReader(text for _, text in lines)
    missing_columns = _KINETICS_COLUMNS - set(reader.fieldnames or [])
    if missing_columns:
        raise ActnetError(f"--annotations {csv_path}: missing columns {', '.join(sorted(missing_columns))}")
    rows = []
    for r in reader:
        number = lines[reader.line_num - 1][0] if reader.line_num <= len(lines) else reader.line_num
        if any(r.get(c) is None for c in _KINETICS_COLUMNS):
            bad.append(
                Skipped(make_key(f"{csv_path.stem}-line{number}"), f"{csv_path}:{number}", "train", "too few columns")
            )
            continue
        if r["split"].strip().lower() not in _KINETICS_SPLITS:
            continue
        try:
            start, end = (float(r[c]) for c in ("time_start", "time_end"))
            if not (0 <= start <= end < 10**6):
                raise ValueError
        except ValueError:
            reason = f"time_start/time_end not times: {r['time_start']!r}, {r['time_end']!r}"
            bad.append(Skipped(make_key(f"{csv_path.stem}-line{number}"), f"{csv_path}:{number}", "train", reason))
            continue
        rows.append({**r, "start": int(start), "end": int(end)})
    return rows, bad


# ---------------------------------------------------------------------------------------------------------------
# Any class-per-folder set


def list_folder(root: str | Path, test_fraction: float = 0.2, name: str | None = None) -> SourceListing:
    """One sub-folder per class holding videos in any container ffmpeg reads (searched recursively).

    The test split takes ``round(test_fraction * n)`` videos of each class by a fixed hash of the key, so it
    does not change with ``--seed`` or with videos added to other classes.
    """
    if not 0.0 <= test_fraction < 1.0:
        raise ActnetError(f"--test-fraction must be in [0, 1), not {test_fraction}")
    root = _require_dir(Path(root), "--root")
    walker = _Walker(root)
    found = [(f.name, walker.videos(f, required=True)) for f in walker.class_folders()]
    found = [(c, videos) for c, videos in found if videos]
    if not found:
        raise ActnetError(f"--root {root}: no class folders holding videos")
    classes = _class_order(c for c, _ in found)
    candidates = []
    for class_name, videos in found:
        label = classes.index(class_name)
        for path in videos:
            rel = path.relative_to(root)
            key = make_key(str(rel.with_suffix("")).replace("/", "__"))
            candidates.append(Candidate(key, str(path), str(rel), label, class_name, "train"))
    candidates = disambiguate(candidates)
    keys_by_class: dict[int, list[str]] = {}
    for c in candidates:
        keys_by_class.setdefault(c.label, []).append(c.key)
    test = split_by_fraction(keys_by_class, test_fraction) if test_fraction > 0 else set()
    candidates = [replace(c, split="test" if c.key in test else "train") for c in candidates]
    return SourceListing(name or make_key(root.name).lower(), "split1", str(root), classes, candidates, walker.skipped)
