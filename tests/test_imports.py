"""The architecture, enforced by parsing imports: data flows one way, only one module imports DALI, the packages
used at run time are declared, and nothing in the package is an import cycle."""

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

import pytest
import tomllib

PACKAGE = Path(__file__).resolve().parent.parent / "actnet"
PYPROJECT = PACKAGE.parent / "pyproject.toml"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, wherever the import statement is (module level or inside a function)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}  # submodules imported by name
    return found


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
IMPORTS = {name: imports_of(path) for name, path in MODULES.items()}


def actnet_imports(name: str) -> set[str]:
    """The actnet modules ``name`` imports (a name that is not a module, such as a function, is dropped)."""
    return {m for m in IMPORTS[name] if m in MODULES and m != name}


def users_of(prefix: str) -> list[str]:
    return sorted(n for n, mods in IMPORTS.items() if any(m == prefix or m.startswith(prefix + ".") for m in mods))


def in_package(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_only_one_module_imports_dali():
    assert users_of("nvidia.dali") == ["actnet.data.dali"]


def test_models_and_data_never_import_each_other():
    for name in MODULES:
        if in_package(name, "actnet.models"):
            assert not any(in_package(m, "actnet.data") for m in actnet_imports(name)), name
        if in_package(name, "actnet.data"):
            assert not any(in_package(m, "actnet.models") for m in actnet_imports(name)), name


def test_config_imports_nothing_of_actnet_but_its_errors():
    config = {n for n in MODULES if in_package(n, "actnet.config")}
    assert {"actnet.config", "actnet.config.run", "actnet.config.prepare"} <= config
    for name in config:
        assert actnet_imports(name) <= config | {"actnet.errors"}, name
    assert actnet_imports("actnet.errors") == set()


def test_data_flows_one_way():
    """The layers below import nothing from the layers above: data and models know nothing of training,
    evaluation, the benchmarks or the command line; only the command line imports the command line."""
    upper = ("actnet.train", "actnet.task", "actnet.evaluate", "actnet.predict", "actnet.export", "actnet.demo")
    upper += ("actnet.checkpoint", "actnet.bench", "actnet.cli", "actnet.prepare", "actnet.encoding", "actnet.verify")
    for name in MODULES:
        if in_package(name, "actnet.data") or in_package(name, "actnet.models") or name == "actnet.objectives":
            wrong = [m for m in actnet_imports(name) if any(in_package(m, u) for u in upper)]
            assert not wrong, (name, wrong)
    assert [n for n in users_of("actnet.cli") if not in_package(n, "actnet.cli")] == ["actnet.__main__"]
    assert all(in_package(n, "actnet.bench") or in_package(n, "actnet.cli") for n in users_of("actnet.bench"))


def test_no_import_cycles():
    graph = {name: actnet_imports(name) for name in MODULES}
    # a package's __init__ runs before its modules: an edge from a module to its own package is not a cycle
    graph = {n: {m for m in deps if not n.startswith(m + ".")} for n, deps in graph.items()}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt) :] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_no_module_is_longer_than_about_500_lines():
    long = {name: n for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) > 520}
    assert not long


# Import names that differ from their distribution's name.
DISTRIBUTION = {"yaml": "pyyaml", "PIL": "pillow", "ffmpeg": "ffmpeg-python", "nvidia": "nvidia-dali-cuda130"}
DISTRIBUTION |= {"botocore": "boto3"}  # boto3 pins its botocore; botocore.exceptions is part of how boto3 is used


def declared() -> tuple[set[str], dict[str, set[str]]]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]

    def names(requirements):
        return {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].strip().lower() for r in requirements}

    extras = {extra: names(reqs) for extra, reqs in project["optional-dependencies"].items()}
    return names(project["dependencies"]), extras


def third_party(name: str) -> set[str]:
    tops = {m.split(".")[0] for m in IMPORTS[name]}
    return {t for t in tops if t != "actnet" and t not in sys.stdlib_module_names}


def test_every_package_used_at_run_time_is_declared():
    """Outside the benchmarks every third-party import is a dependency; the benchmarks may also use the bench
    extra, export the export extra and prepare's encoding the ray extra (each checked for where it is imported)."""
    required, extras = declared()
    for name in MODULES:
        allowed = set(required)
        if in_package(name, "actnet.bench"):
            allowed |= extras["bench"]
        if name == "actnet.export":
            allowed |= extras["export"]
        if name == "actnet.encoding":
            allowed |= extras["ray"]
        missing = {t for t in third_party(name) if DISTRIBUTION.get(t, t).lower() not in allowed}
        assert not missing, (name, missing)


def test_declared_dependencies_are_installed_and_used():
    required, extras = declared()
    used = {DISTRIBUTION.get(t, t).lower() for name in MODULES for t in third_party(name)}
    # psutil, tensorboard and matplotlib are imported lazily by name; boto3 is imported by storage and doctor
    assert required <= used | {"boto3", "tensorboard"}, required - used
    for dist in required | extras["bench"]:
        metadata.version(dist)  # raises when a declared package is not installed here
