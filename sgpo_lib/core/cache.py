"""The content-addressed cache under the outputs root: `<root>/cache/<kind>/<sha1(key)[:12]>`.

Students, warm-ups, step-0 evaluations and strategy libraries are cached here by the config
fields they depend on (`sgpo_lib.workflow.assets`, `train.warmup`, `method.evaluate`). `cfg` is a
`RunConfig`; only its `output.root` is read.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .paths import output_root


def cache_root(cfg) -> Path:
    """`<outputs root>/cache`: under the run's configured root (`output.root`, `SGPO_OUTPUTS`), so
    nothing a run makes lands outside it; runs that share the root share the cache."""
    return output_root(cfg.output.root) / "cache"


def cache_dir(cfg, kind: str, key: dict) -> Path:
    """`<outputs root>/cache/<kind>/<sha1(key)[:12]>`."""
    digest = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return cache_root(cfg) / kind / digest
