"""Typed, frozen dataclasses from plain mappings, and params files read with `extends:` chains.

The generic half of `sgpo_lib.config.run` (which holds the run schema itself): `build` checks a
mapping against a dataclass's type hints (unknown keys with "did you mean", Literal choices,
optional values, lists as tuples, ints accepted as floats) and raises `ConfigError` naming the
dotted key; `read_yaml` reads a params file (YAML 1.2 scalars, duplicate keys refused) and
deep-merges its `extends:` parent; `apply_overrides` sets dotted keys; `apply_deprecated` reads
old names as new ones (the table is `config.deprecated.DEPRECATED`).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import types
import typing
from pathlib import Path
from typing import Any, Collection, Literal

import yaml

from ..core.checks import ConfigError
from ..core.paths import REPO_ROOT
from .yaml12 import yaml_load

log = logging.getLogger(__name__)


def plain(obj: Any) -> Any:
    """Tuples to lists, recursively, for YAML/JSON output."""
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against type hint `tp`; return it (lists as tuples, ints as floats)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:  # a field that checks its own shape in __post_init__
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"key '{key}': expected a mapping (section {tp.__name__}), got {value!r}")
        return build(tp, value, key + ".")
    if origin is Literal:
        if value not in args:
            hint = difflib.get_close_matches(str(value), [str(a) for a in args], n=1)
            fix = f" (did you mean '{hint[0]}'?)" if hint else ""
            raise ConfigError(f"key '{key}': {value!r} is not one of {list(args)}{fix}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"key '{key}': expected a list, got {value!r}")
        return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float) and isinstance(value, bool) or not isinstance(value, tp):
        raise ConfigError(f"key '{key}': expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
    return value


def build(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """Instantiate dataclass `cls` from `data`, rejecting unknown keys with a suggestion."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in names:
            hint = difflib.get_close_matches(key, names, n=1)
            fix = f" (did you mean '{prefix}{hint[0]}'?)" if hint else f"; known keys: {names}"
            raise ConfigError(f"unknown key '{prefix}{key}'{fix}")
    kwargs = {k: _coerce(v, hints[k], prefix + k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as e:
        raise ConfigError(str(e)) from None
    except (TypeError, ValueError) as e:
        raise ConfigError(f"section '{prefix.rstrip('.') or 'top'}': {e}") from None


def differing_keys(a: dict, b: dict, prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two nested mappings (a key on one side only differs).

    Example:
        >>> differing_keys({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3}, "d": 0})
        ['a.c', 'd']
    """
    out = []
    for key in sorted(set(a) | set(b), key=str):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += differing_keys(va, vb, f"{prefix}{key}.")
        elif key not in a or key not in b or va != vb:
            out.append(f"{prefix}{key}")
    return out


def dotted_get(data: dict, dotted: str) -> Any:
    """The value at a dotted key of a nested mapping, None where a part is missing."""
    node, leaf = _section(data, dotted)
    return node.get(leaf) if node is not None else None


def deep_merge(base: dict, over: dict) -> dict:
    """`over` merged into a copy of `base`; nested mappings merge, everything else replaces."""
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_yaml(path: Path, chain: tuple[Path, ...] = (), sections: Collection[str] | None = None) -> dict:
    """Read a params file and resolve its `extends:` chain (deep merge, child wins). `sections`:
    the top-level keys a params file may hold. A file reached by `extends` that lies outside the
    repository is never quoted in an error (path and reason only): `extends: /etc/shadow` must not
    print its first line."""
    private = bool(chain) and REPO_ROOT not in path.parents
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found")
    if path in chain:
        raise ConfigError(f"{path}: circular 'extends' chain {[str(p) for p in chain]}")
    try:
        data = yaml_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        reason = getattr(e, "strerror", None) or type(e).__name__
        raise ConfigError(f"{path}: cannot be read as a params file ({reason})") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: malformed YAML{_where(e) if private else f': {e}'}") from None
    if data is None:
        raise ConfigError(f"{path}: the params file is empty; write the keys to change, e.g. 'extends: base.yaml' "
                          "(an empty file would silently run every default)")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    unknown = [k for k in data if sections is not None and k not in sections and k != "extends"]
    if private and unknown:
        raise ConfigError(f"{path}: not a params file: {len(unknown)} top-level keys are not config sections (a "
                          "file outside the repository reached by 'extends'; its content is not shown)")
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str) or not parent.strip():
        raise ConfigError(f"{path}: 'extends' must name one params file (a string, relative to this file), "
                          f"got {type(parent).__name__}")
    return deep_merge(read_yaml((path.parent / parent).resolve(), chain + (path,), sections), data)


def _where(e: yaml.YAMLError) -> str:
    """` at line L, column C` of a YAML error: where, without the file's text (which the error quotes)."""
    mark = getattr(e, "problem_mark", None)
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""


def apply_overrides(data: dict, overrides: dict[str, Any]) -> dict:
    """Set dotted keys (`{"distill.coef": 0.5}`) in a copy of `data`."""
    out = json.loads(json.dumps(data))
    for dotted, value in (overrides or {}).items():
        node = out
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{dotted}': '{p}' is not a section")
        node[leaf] = value
    return out


def _section(data: dict, dotted: str) -> tuple[dict | None, str]:
    """The mapping holding the leaf of `dotted` in `data` (None when a parent is missing), and the leaf."""
    *parents, leaf = dotted.split(".")
    for p in parents:
        data = data.get(p) if isinstance(data, dict) else None
    return (data if isinstance(data, dict) else None), leaf


def apply_deprecated(table: dict[str, str], data: dict) -> dict:
    """Read deprecated names as the new ones, in place (returned), with a warning naming the new one.

    `table`: `old.dotted.key: new.dotted.key` renames a key (the old key's value wins when both are
    set); `key=old_value: key=new_value` renames a value, or the items equal to it of a list value
    (applied after every key rename).
    """
    for old, new in table.items():
        node, leaf = _section(data, old)
        if "=" not in old and node is not None and leaf in node:
            target, new_leaf = _section(data, new)
            target[new_leaf] = node.pop(leaf)
            log.warning("params key '%s' is deprecated: write '%s' (read as such)", old, new)
    for old, new in table.items():
        if "=" not in old:
            continue
        (key, old_value), new_value = old.split("=", 1), new.split("=", 1)[1]
        node, leaf = _section(data, key)
        value = node.get(leaf) if node is not None else None
        if value == old_value or (isinstance(value, list) and old_value in value):  # a list: its items
            node[leaf] = [new_value if v == old_value else v for v in value] if isinstance(value, list) else new_value
            log.warning("params value %s is deprecated: write %s (read as such)", old, new)
    return data
