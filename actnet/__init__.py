"""actnet: semi-supervised video action recognition (ActNetFormer, ICPR 2024).

Data flows one way: ``prepare`` (videos -> manifests + WebDataset shards) -> loader -> trainer -> evaluate.
Importing the package is cheap: no torch, DALI or ffmpeg at import time.
"""

import functools

__version__ = "0.1.0"


@functools.cache
def code_version() -> str:
    """What a result was measured with: the version, and in a git checkout the commit (``+dirty`` when files
    differ from it), e.g. ``0.1.0+g1a2b3c4d`` or ``0.1.0+g1a2b3c4d.dirty``; an installed wheel gives the version."""
    import subprocess
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    if not (repo / ".git").exists():
        return __version__
    try:
        git = ["git", "-C", str(repo)]
        commit = subprocess.run([*git, "rev-parse", "--short=8", "HEAD"], capture_output=True, text=True, timeout=10)
        status = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no", "--", "actnet"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return __version__
    if commit.returncode != 0:
        return __version__
    return f"{__version__}+g{commit.stdout.strip()}" + (".dirty" if status.stdout.strip() else "")
