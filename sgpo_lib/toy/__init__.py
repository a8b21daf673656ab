"""The toy strategy world: SGPO's setting in miniature, fully offline (toy-world.md).

Four procedurally generated problem families stand in for the paper's four math benchmarks:

| family      | example                                  | analog          | OOD split                 |
|-------------|------------------------------------------|-----------------|---------------------------|
| `sum`       | `Evaluate 58-7-1+4.`                     | GSM8K           | 6-8 terms instead of 2-4  |
| `remainder` | `Remainder of 4738 divided by 9?`        | number theory   | 7-9 digits instead of 3-4 |
| `mul`       | `Compute 487*6.`                         | arithmetic      | 5-6 digits instead of 2-3 |
| `linear`    | `Find x: x -> *3 -> +7 -> -2 -> 23.`     | algebra         | 4-5 operations, not 2-3   |

Each has train / held-out test / OOD splits drawn from a seed (`generate_world`) and an
exact answer (`answer_kind="exact"`, graded by the last `\\boxed{}`).

**Strong solver.** Its response is correct but compressed: it names its approach in a few
words and jumps straight to large intermediate results ("Column by column, 487*6 = 2922.",
"4738 has digit sum 22, so it leaves 4."). A small student that imitates it must produce
those numbers in one step, which it cannot do reliably: imitation teaches what to answer.

**Strategies.** Each family has two reusable procedures a small student *can* execute one
small operation per line (a running total; gains first then losses; a digit sum; folding
the sum as you go; column multiplication with carries; digit products then carries; undoing
the chain from the end; writing the inverse chain first). Each is a `Strategy` with 3
abstract steps and no digits (`family_strategies()`); each strong response leaves a trace
of the strategy it used, and `OfflineExtractor` recovers it, worded with seeded paraphrases,
as raw JSON for the same validation as a real extractor LLM's output.

**Students.** A byte-level BPE tokenizer in Qwen2's format (digits one token each) and
Qwen2 models of three sizes (head dim 64, for vLLM), pretrained briefly on CPU on a mixture:
guided examples (strategy in the prompt) show the full step-by-step execution; unguided
examples mostly show the strong style (and sometimes a step-by-step one); drills teach the
one-step arithmetic facts the strategies are made of (a real base model's background
knowledge). Prompts are exactly the trainer's (`sgpo_lib.data.prompts`). `prepare_student` caches the model folder by
content hash; `premise_table` measures the premise (guided greedy accuracy above unguided,
unguided above zero) on held-out problems. See README.md in this folder for the measured table.

API: `ToyWorldConfig`, `StudentConfig`, `PretrainConfig`, `generate_world`,
`family_strategies`, `OfflineExtractor`, `build_tokenizer`, `prepare_student`,
`prepare_all_sizes`, `premise_table`. CLI: `python -m sgpo_lib.toy --preset demo`.

Importing this package loads nothing else: each name loads its module on first access, so that
`sgpo_lib.toy.config` (which the run config reads) stays free of torch.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "PretrainConfig": "config", "StudentConfig": "config", "ToyWorldConfig": "config",
    "OfflineExtractor": "extractor", "premise_table": "premise", "prepare_all_sizes": "students",
    "prepare_student": "students", "build_tokenizer": "tokenizer", "family_strategies": "wording",
    "generate_world": "world",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'sgpo_lib.toy' has no attribute {name!r}")
