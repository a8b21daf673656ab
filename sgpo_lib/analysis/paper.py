"""The paper's numbers as data (sgpo-method.md §7 and §9, from the reading notes) and the
comparison of a run's ablation deltas with them.

`MAIN` is the main table (average of the 4 benchmarks, avg@k, in points) per model, `ABLATIONS`
the ablation table (Qwen2.5-7B-Instruct average), `ABLATION_OVERRIDES` each ablation as the
params overrides that make it (the names and overrides CONTRACT fixes). The toy world cannot
reproduce the paper's values; what it can reproduce is the *direction* of each ablation, the sign
of Δ = ablation − full SGPO, which `signs_match` checks row by row.
"""

from __future__ import annotations

import math

import pandas as pd

# §9: rows = models, columns = methods; None where the notes report no number ("–")
MAIN_COLUMNS = ("base", "SFT", "SFT+GRPO", "HPT", "LUFFY", "SGPO")
MAIN = {
    "Qwen2.5-1.5B-Instruct": (23.2, 22.2, 26.9, 28.2, 28.5, 29.9),
    "Qwen2.5-7B-Instruct": (42.2, 42.7, 49.9, 49.6, 48.8, 52.1),
    "Llama ~8B-Instruct": (20.4, None, None, None, None, 27.6),
}
SGPO_7B_PER_BENCHMARK = {"MATH500": 82.7, "AMC23": 55.9, "OlympiadBench": 50.0, "AIME24": 19.7}
SCALING_GAIN = {"Qwen2.5-1.5B-Instruct": 6.7, "Qwen2.5-7B-Instruct": 9.9}

# §7 (Qwen2.5-7B-Instruct, average of the 4 benchmarks)
ABLATION_MODEL = "Qwen2.5-7B-Instruct"
FULL = 52.1
ABLATIONS = {
    "w/o strategy distillation": 49.9,
    "w/o autonomous GRPO": 48.6,
    "w/o proximal constraints": 45.3,
    "w/o KL clipping": 48.7,
    "w/o target selection": 48.1,
    "w/o adaptive weighting": 50.9,
    "direct SFT on guided rollouts": 49.3,
    "reverse KL": 50.9,
}
ABLATION_OVERRIDES = {
    "w/o strategy distillation": {"train.method": "sft_grpo"},  # the paper's "= SFT+GRPO": the main table's runs
    "w/o autonomous GRPO": {"train.rl_coef": 0},
    "w/o proximal constraints": {"distill.kl_clip": None, "distill.target": "all_correct"},
    "w/o KL clipping": {"distill.kl_clip": None},
    "w/o target selection": {"distill.target": "all_correct"},
    "w/o adaptive weighting": {"distill.weighting": "constant"},
    "direct SFT on guided rollouts": {"distill.estimator": "sampled"},
    "reverse KL": {"distill.direction": "reverse"},
}


def main_table() -> pd.DataFrame:
    """§9 as a frame: one row per model, one column per method (NaN where not reported).

    Example:
        >>> float(main_table().loc["Qwen2.5-7B-Instruct", "SGPO"])
        52.1
    """
    rows = {m: [math.nan if v is None else v for v in vals] for m, vals in MAIN.items()}
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(MAIN_COLUMNS))


def ablation_delta(name: str) -> float:
    """The paper's Δ (ablation − full SGPO, points) of ablation `name`; NaN for a name the paper has not.

    Example:
        >>> round(ablation_delta("w/o KL clipping"), 1), ablation_delta("my own ablation")
        (-3.4, nan)
    """
    return ABLATIONS[name] - FULL if name in ABLATIONS else math.nan


def sign(delta: float, tol: float = 0.0) -> int:
    """-1, 0 or +1: the direction of `delta`, 0 within `tol` of zero (or NaN: no direction).

    Example:
        >>> sign(-1.2), sign(0.05, tol=0.1), sign(2.0), sign(float("nan"))
        (-1, 0, 1, 0)
    """
    if math.isnan(delta) or abs(delta) <= tol:
        return 0
    return 1 if delta > 0 else -1


def signs_match(toy_delta: pd.Series, tol: float = 0.0) -> pd.Series:
    """Per ablation name (the index of `toy_delta`, Δ vs full SGPO in points): True where the
    toy's Δ has the paper's sign, False where not, NA for a name the paper does not report. A toy
    Δ within `tol` of 0 has no sign and matches nothing (every paper Δ is negative).

    Example:
        >>> signs_match(pd.Series({"reverse KL": -0.4, "w/o KL clipping": 0.3, "mine": -1.0})).tolist()
        [True, False, <NA>]
    """
    out = {name: (pd.NA if name not in ABLATIONS else sign(d, tol) == sign(ablation_delta(name)) != 0)
           for name, d in toy_delta.items()}
    return pd.Series(out, dtype="boolean", name="sign matches paper")


def orderings(toy_delta: pd.Series, tol: float = 0.0) -> dict[str, list[str]]:
    """The paper's orderings ("full SGPO > ablation") that this run's Δs reproduce and those they do
    not, as sentences: `{"hold": [...], "do not hold": [...]}` (names the paper lacks are left out).

    Example:
        >>> orderings(pd.Series({"reverse KL": -0.4, "w/o KL clipping": 0.3}))["do not hold"]
        ['full SGPO > w/o KL clipping (paper Δ -3.4, here +0.3)']
    """
    match = signs_match(toy_delta, tol)
    out: dict[str, list[str]] = {"hold": [], "do not hold": []}
    for name, d in toy_delta.items():
        if name in ABLATIONS:
            paper = ablation_delta(name)
            rel = ">" if paper < 0 else "<"
            out["hold" if match[name] else "do not hold"].append(f"full SGPO {rel} {name} (paper Δ {paper:+.1f}, here {d:+.1f})")
    return out
