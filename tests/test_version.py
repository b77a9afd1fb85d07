"""``code_version``: results name the last commit that changed the package, not the last commit of the repository."""

import shutil
import subprocess
import sys
from pathlib import Path

import actnet


def _git(repo: Path, *args: str) -> str:
    env = ["-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    return subprocess.run(["git", *env, "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def _version(repo: Path) -> str:
    code = "import actnet; print(actnet.code_version())"
    done = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_a_commit_outside_the_package_keeps_the_code_version(tmp_path):
    repo = tmp_path / "repo"
    (repo / "actnet").mkdir(parents=True)
    shutil.copy(Path(actnet.__file__), repo / "actnet" / "__init__.py")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "package")
    first = _git(repo, "rev-parse", "--short=8", "HEAD").strip()
    assert _version(repo) == f"{actnet.__version__}+g{first}"
    (repo / "docs.md").write_text("results\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "docs")
    assert _version(repo) == f"{actnet.__version__}+g{first}"  # docs only: the same code
    with open(repo / "actnet" / "__init__.py", "a") as f:
        f.write("\n# changed\n")
    assert _version(repo) == f"{actnet.__version__}+g{first}.dirty"
    _git(repo, "commit", "-q", "-am", "code")
    second = _git(repo, "rev-parse", "--short=8", "HEAD").strip()
    assert second != first and _version(repo) == f"{actnet.__version__}+g{second}"
