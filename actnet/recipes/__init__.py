"""Recipes and overrides: how a run's :class:`~actnet.config.RunConfig` is resolved.

A run's config is layered: the dataclass defaults (``actnet/config/``, the only place defaults live) < a YAML
recipe (one of the files beside this module, by name, or any file) < ``--set key.path=value`` overrides < the
first-class options of ``actnet train`` (``--data --name --epochs ...``). Every layer is plain data (nested dicts,
as YAML gives), merged key by key and turned into the frozen dataclasses once, by :func:`from_dict`, whose
errors name the key (``unknown config key 'loader.bach_size'; did you mean 'batch_size'?``).

The recipes ship inside the package (``importlib.resources``), so ``--recipe demo`` works from a wheel as well
as from a source tree.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from importlib import resources
from pathlib import Path

from actnet.config import RunConfig
from actnet.errors import ActnetError


def recipe_names() -> list[str]:
    """The recipes that ship with actnet (``ucf101_1pct``, ``demo`` ...)."""
    return sorted(p.name[: -len(".yaml")] for p in resources.files(__name__).iterdir() if p.name.endswith(".yaml"))


def read_recipe(recipe: str, _seen: tuple[str, ...] = ()) -> dict:
    """A YAML recipe as plain data: a file path, or the name of a recipe that ships with actnet.

    ``base: <recipe>`` at the top of a recipe starts it from another one (by name, or a path relative to the
    recipe's folder), which it then overrides key by key: a baseline states only what differs from the method."""
    data, where, folder = _load_recipe(recipe)
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str) or not base:
        raise ActnetError(f"--recipe {where}: base must be the name or path of a recipe, not {base!r}")
    if folder is not None and (folder / base).is_file():
        base = str(folder / base)
    if base in _seen or base == recipe:
        raise ActnetError(f"--recipe {where}: base {base} makes a cycle ({' -> '.join((*_seen, recipe, base))})")
    return merge(read_recipe(base, (*_seen, recipe)), data)


def _load_recipe(recipe: str) -> tuple[dict, str, Path | None]:
    import yaml

    file = Path(recipe)
    if file.is_file():
        text, where = file.read_text(), str(file)
    elif not file.suffix and recipe in recipe_names():
        text, where = resources.files(__name__).joinpath(f"{recipe}.yaml").read_text(), f"{recipe}.yaml"
    else:
        raise ActnetError(f"--recipe {recipe}: no such file and no such recipe (recipes: {', '.join(recipe_names())})")
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ActnetError(f"--recipe {where}: not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ActnetError(f"--recipe {where}: expected a mapping at the top level")
    return data, where, file.parent if file.is_file() else None


def parse_set(items: list[str] | tuple[str, ...]) -> dict:
    """``["a.b=c", ...]`` as a nested mapping; values are YAML (``0.5``, ``null``, ``[4, 8]``, ``true``)."""
    import yaml

    out: dict = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ActnetError(f"--set {item!r}: expected key.path=value")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError as err:
            raise ActnetError(f"--set {item!r}: the value is not valid YAML ({err.__class__.__name__})") from None
        node = out
        *parents, leaf = key.strip().split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ActnetError(f"--set {item!r}: {part} was already given a value")
        node[leaf] = value
    return out


def resolve_run_config(
    recipe: str | None = None, sets=(), options: dict | None = None, base: dict | None = None
) -> RunConfig:
    """Defaults < recipe < ``--set`` < first-class options (a nested mapping, ``None`` values ignored).

    ``base`` (a resumed checkpoint's config, as plain data) takes the place of the defaults and the recipe."""
    data = base if base is not None else to_dict(RunConfig())
    if recipe and base is None:
        data = merge(data, read_recipe(recipe))
    data = merge(data, parse_set(sets))
    data = merge(data, drop_none(options or {}))
    return from_dict(RunConfig, data)


# ---------------------------------------------------------------------------------------- plain data


def to_dict(cfg) -> dict:
    """A config as plain data (tuples become lists), the form recipes and checkpoints hold."""

    def plain(value):
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        return value

    return plain(cfg)


def from_dict(cls, data: dict, where: str = ""):
    """Build dataclass ``cls`` from plain data; unknown keys are errors that name the key."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            raise ActnetError(f"unknown config key {path!r}" + (f"; did you mean {close[0]!r}?" if close else ""))
        kwargs[key] = _coerce(hints[key], value, path)
    return cls(**kwargs)


def _coerce(kind, value, where: str):
    """``value`` (plain data) as the annotated type ``kind``; ``where`` names the key in errors."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(inner, value, where)
    if dataclasses.is_dataclass(kind):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise ActnetError(f"{where}: expected a mapping, not {value!r}")
        return from_dict(kind, value, where)
    if origin is tuple:
        items = value if isinstance(value, (list, tuple)) else [value]
        inner = args[0] if args else str
        if len(args) == 2 and args[1] is Ellipsis or len(args) == 1:
            return tuple(_coerce(inner, v, where) for v in items)
        if len(items) != len(args):
            raise ActnetError(f"{where}: expected {len(args)} values, not {value!r}")
        return tuple(_coerce(a, v, where) for a, v in zip(args, items))
    if kind is float:
        return _number(value, where)
    if kind in (int, str, bool) and type(value) is not kind:
        raise ActnetError(f"{where}: expected {kind.__name__}, not {value!r}")
    return value


def _number(value, where: str) -> float:
    """A float field's value: a number, or text YAML left as a string (YAML 1.1 reads ``1e-3`` and ``9e-1`` as
    strings; they are numbers here). Anything else, and NaN, is an error naming the key."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise ActnetError(f"{where}: expected a number, not {value!r}") from None
    else:
        raise ActnetError(f"{where}: expected a number, not {value!r}")
    if math.isnan(number):
        raise ActnetError(f"{where}: expected a number, not {value!r}")
    return number


def merge(base: dict, update: dict) -> dict:
    """Deep merge of plain-data configs: mappings merge key by key, anything else replaces."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        elif isinstance(value, dict) and out.get(key) is None:
            out[key] = merge({}, value)
        else:
            out[key] = value
    return out


def drop_none(tree: dict) -> dict:
    """A nested mapping without its ``None`` values (options the user did not give)."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            if value := drop_none(value):
                out[key] = value
        elif value is not None:
            out[key] = value
    return out
