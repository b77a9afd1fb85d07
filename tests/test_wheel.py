"""``pip install actnet`` works outside the source tree: build the wheel, install it into a fresh virtual
environment in a temporary folder, and run the commands a new user runs first from there.

The fresh environment gets actnet from the wheel alone (``--no-deps --no-index``); its dependencies come from
this environment, made visible through a ``.pth`` overlay that leaves this checkout's own (editable) actnet out,
so the test needs no network and no second multi-GB PyTorch. ``pip check`` then verifies, from the wheel's own
metadata, that every dependency it declares is installed at a version it accepts.
"""

import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def run(cmd: list, cwd: Path, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{cmd}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def dependency_overlay(folder: Path) -> Path:
    """A folder of links to everything in this environment's site-packages except actnet itself."""
    folder.mkdir()
    for packages in site.getsitepackages():
        if not Path(packages).is_dir():  # Debian's Python also names a local/.../dist-packages that may not exist
            continue
        for entry in Path(packages).iterdir():
            own = entry.name.startswith(("actnet", "__editable__", "_actnet")) or entry.suffix == ".pth"
            if not own and not (folder / entry.name).exists():
                (folder / entry.name).symlink_to(entry)
    return folder


@pytest.mark.slow
def test_the_wheel_installs_and_runs_outside_the_source_tree(tmp_path):
    source = tmp_path / "source"  # what the build reads, copied: building writes build/ and egg-info beside it
    shutil.copytree(REPO / "actnet", source / "actnet", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    dist = tmp_path / "dist"
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", dist, source]
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    run(build, tmp_path, env)
    (wheel,) = dist.glob("actnet-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "actnet/recipes/demo.yaml" in names and "actnet/recipes/ucf101_1pct.yaml" in names
    assert not [n for n in names if n.startswith(("tests/", "recipes/", "tools/"))]

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], tmp_path, env)  # pip too comes from the overlay
    python, actnet = venv / "bin" / "python", venv / "bin" / "actnet"
    purelib = run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], tmp_path, env).stdout
    Path(purelib.strip(), "dependencies.pth").write_text(f"{dependency_overlay(tmp_path / 'deps')}\n")
    run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel], tmp_path, env)
    run([python, "-m", "pip", "check"], tmp_path, env)

    work = tmp_path / "work"  # no recipes/, no actnet/ source here
    (work / "home").mkdir(parents=True)
    user = {**env, "HOME": str(work / "home"), "PATH": f"{venv / 'bin'}:{env['PATH']}"}
    user.pop("PYTHONPATH", None)
    where = run([python, "-c", "import actnet.recipes as r; print(r.__file__)"], work, user).stdout.strip()
    assert Path(where).is_relative_to(venv), where  # the installed package, not this checkout
    assert run([actnet, "--version"], work, user).stdout.strip() == "actnet 0.1.0"
    doctor = run([actnet, "doctor"], work, user).stdout
    assert "decode vp9 (cpu)" in doctor

    prepare = [actnet, "prepare", "synthetic", "--classes", "3", "--videos-per-class", "4", "--frames", "16"]
    prepare += ["--size", "64x48", "--out", "shards", "--labeled", "1/class", "--short-side", "48", "--speed", "8"]
    prepare += ["--min-shards", "2", "-j", "2", "--manifests", "", "--cache", "cache"]
    run(prepare, work, user)
    assert (work / "shards" / "synthetic" / "split1" / "labeled-1perclass-seed0.info.json").exists()
    train = [actnet, "train", "--recipe", "demo", "--data", "shards/synthetic/split1", "--labeled", "1/class"]
    train += ["--out", "runs", "--name", "wheel"]
    sets = ["train.max_steps=2", "loader.batch_size=2", "loader.eval_batch_size=2", "train.eval_every=0"]
    sets += ["loader.num_threads=1", "loader.fetch_threads=1"]
    train += [x for s in sets for x in ("--set", s)]
    run(train, work, user)
    assert (work / "runs" / "wheel" / "last.pt").stat().st_size > 0
