"""YAML as people write params: YAML 1.2 booleans and floats, duplicate keys refused.

PyYAML implements YAML 1.1, where `on`/`no` are booleans and `1e-4` is a string; params
files and `--set` values are read with 1.2 rules instead. A key written twice in one mapping
is an error naming both lines (1.1 parsers silently keep the last).
"""

from __future__ import annotations

import re
from typing import Any

import yaml


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans: only true/false, so `on:` and `no` stay strings."""


_Yaml12Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
# YAML 1.2 floats without a dot (`1e-4`, `5E+3`), which YAML 1.1 reads as strings
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"), list("-+0123456789."))


def _no_duplicate_keys(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    """Construct a mapping, refusing a key written twice (YAML would silently keep the last)."""
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first on line {seen[key] + 1}); keep one of them", key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


_Yaml12Loader.add_constructor("tag:yaml.org,2002:map", lambda loader, node: _no_duplicate_keys(loader, node))


def yaml_load(text: str) -> Any:
    """Parse YAML with YAML 1.2 booleans and floats, refusing duplicate keys (see `_Yaml12Loader`)."""
    return yaml.load(text, Loader=_Yaml12Loader)


def parse_assignment(text: str) -> tuple[str, Any]:
    """`"distill.coef=0.5"` -> `("distill.coef", 0.5)` (the value is parsed as YAML)."""
    if "=" not in text:
        raise ValueError(f"expected key=value, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), yaml_load(value)
