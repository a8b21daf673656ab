"""sgpo_lib — the library behind the SGPO workbook (Strategy-Guided Policy Optimization).

Everything that computes lives here; the numbered notebooks only call it. The method and
its equations are in `docs/sgpo-method.md` of the project's shared docs; each module's
docstring says which section it implements.

Tensor names carry their dimensions as suffixes (tinker's convention), with these letters:

    P  problems in a batch              G  autonomous rollouts per problem
    S  guided rollouts per problem      B  flattened batch of sequences
    T  tokens (time)                    V  vocabulary
    K  top-k entries                    H  hidden size
    N  flattened (masked) tokens

e.g. `rewards_P_G`, `logprobs_B_T`, `teacher_topk_logprobs_N_K`.

Importing this package has no side effects: submodules load on first attribute access.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {"start_run": "workflow.runs", "load_config": "config.run", "RunConfig": "config.run", "ConfigError": "config.run"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'sgpo_lib' has no attribute {name!r}")
