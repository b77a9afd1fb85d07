"""actnet: semi-supervised video action recognition (ActNetFormer, ICPR 2024).

Data flows one way: ``prepare`` (videos -> manifests + WebDataset shards) -> loader -> trainer -> evaluate.
Importing the package is cheap: no torch, DALI or ffmpeg at import time.
"""

import functools

__version__ = "0.1.0"


@functools.cache
def code_version() -> str:
    """What a result was measured with: the version, and in a git checkout the last commit that changed the package
    (``actnet/``: code, recipes; ``.dirty`` when its files differ from HEAD), e.g. ``0.1.0+g1a2b3c4d`` or
    ``0.1.0+g1a2b3c4d.dirty``; an installed wheel gives the version. A commit of docs, tests or tools alone leaves it
    as it was, so results measured before such a commit still name the code they were measured with."""
    import subprocess
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    if not (repo / ".git").exists():
        return __version__
    try:
        git = ["git", "-C", str(repo)]
        commit = subprocess.run(
            [*git, "log", "-1", "--format=%h", "--abbrev=8", "HEAD", "--", "actnet"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        status = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no", "--", "actnet"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return __version__
    if commit.returncode != 0 or not commit.stdout.strip():
        return __version__
    return f"{__version__}+g{commit.stdout.strip()}" + (".dirty" if status.stdout.strip() else "")
