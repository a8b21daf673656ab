"""Stable seeds derived from a run position (conventions.md, point 13).

`derive_seed(seed, step, problem_id, guided, k)` gives the same integer in every process and
on every machine (SHA-256 of the parts' `repr`s), unlike Python's salted `hash()` on strings,
so a resumed run redraws exactly the same rollouts.

Example:
    >>> derive_seed(0, 3, "toy/modmul-7", True, 1) == derive_seed(0, 3, "toy/modmul-7", True, 1)
    True
    >>> derive_seed(0, 3, "p", True) != derive_seed(0, 3, "p", False)
    True
"""

from __future__ import annotations

import hashlib

SEED_BITS = 63  # fits a signed 64-bit integer (torch.Generator.manual_seed, vLLM seeds)


def derive_seed(*parts: object) -> int:
    """A non-negative 63-bit integer determined only by `parts` (ints, strings, bools).

    Parts are joined by their `repr`, so `("1",)` and `(1,)` give different seeds.
    """
    for part in parts:
        if not isinstance(part, (int, str, bool)):
            raise TypeError(f"derive_seed: part {part!r} is a {type(part).__name__}; use int, str or bool")
    key = "\x1f".join(repr(p) for p in parts).encode("utf-8")
    digest = hashlib.sha256(key).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - SEED_BITS)
