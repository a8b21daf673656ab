"""Old names of config keys and values, read with a warning naming the new one (`schema.apply_deprecated`).

`old.dotted.key: new.dotted.key` renames a key (the old key's value wins when both are set, as
base.yaml sets every new key), `key=old_value: key=new_value` renames a value (after the keys).
`current_value` gives readers of old run folders a value under its current name.
"""

from __future__ import annotations

from typing import Any

DEPRECATED = {
    "distill.on": "distill.target",
    "distill.is_clip_c": "distill.is_clip_cap",
    "distill.target=correct": "distill.target=all_correct",
    "distill.proximal=clip": "distill.proximal=ratio_clip",
    "distill.teacher=forward": "distill.teacher=hidden",
    "train.method=hybrid": "train.method=luffy",
    "experiment.methods=hybrid": "experiment.methods=luffy",
    "experiment.scaling_methods=hybrid": "experiment.scaling_methods=luffy",
}


def current_value(key: str, value: Any) -> Any:
    """`value` of `key` under its current name when `DEPRECATED` renames it (`hybrid` -> `luffy`
    for `train.method`), else `value` itself; for readers of old run folders."""
    return DEPRECATED.get(f"{key}={value}", f"={value}").split("=", 1)[1] if isinstance(value, str) else value
