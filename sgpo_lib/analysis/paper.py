"""The paper's numbers as data (sgpo-method.md §7 and §9, from the reading notes) and the
comparison of a run's ablation deltas with them.

`MAIN` is the main table (average of the 4 benchmarks, avg@k, in points) per model, `ABLATIONS`
the ablation table (Qwen2.5-7B-Instruct average) by the names CONTRACT fixes; the params
overrides that make each ablation are written once, in `params/toy-demo.yaml`'s
`experiment.ablations` under the same names (a run's own ablations may differ). The toy world cannot
reproduce the paper's values; what it can reproduce is the *direction* of each ablation, the sign
of Δ = ablation − full SGPO, and of the main table's orderings (`MAIN_ORDERINGS`), which `verdict`
decides from a paired interval over (seed, problem) cells (`paired`): holds, reversed or inconclusive.
"""

from __future__ import annotations

import math

import pandas as pd

from . import paired

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


def main_table() -> pd.DataFrame:
    """§9 as a frame: one row per model, one column per method (NaN where not reported).

    Example:
        >>> float(main_table().loc["Qwen2.5-7B-Instruct", "SGPO"])
        52.1
    """
    rows = {m: [math.nan if v is None else v for v in vals] for m, vals in MAIN.items()}
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(MAIN_COLUMNS)).rename_axis("model")


def main_delta(a: str, b: str, model: str = ABLATION_MODEL) -> float:
    """The paper's main-table difference `a` minus `b` (methods of `MAIN_COLUMNS`) on `model`, in points.

    Example:
        >>> round(main_delta("SGPO", "SFT+GRPO"), 1)
        2.2
    """
    row = dict(zip(MAIN_COLUMNS, MAIN[model]))
    return row[a] - row[b]


def ablation_delta(name: str) -> float:
    """The paper's Δ (ablation − full SGPO, points) of ablation `name`; NaN for a name the paper has not.

    Example:
        >>> round(ablation_delta("w/o KL clipping"), 1), ablation_delta("my own ablation")
        (-3.4, nan)
    """
    return ABLATIONS[name] - FULL if name in ABLATIONS else math.nan


VERDICTS = ("holds", "reversed", "inconclusive")


def verdict(interval: tuple[float, float, float], paper_delta: float) -> str:
    """Whether the paper's ordering holds here: `interval` is this run's paired difference
    `(mean, low, high)` (`paired.paired_interval`, 95%) of the same comparison whose paper value is
    `paper_delta`. "holds" when the interval lies wholly on the paper's side of 0, "reversed" when
    wholly on the other side, "inconclusive" otherwise (it holds 0, or cannot be computed).

    Example:
        >>> verdict((-3.0, -5.0, -1.0), -3.4), verdict((2.0, 0.5, 3.5), -3.4), verdict((-1.0, -3.0, 1.0), -3.4)
        ('holds', 'reversed', 'inconclusive')
    """
    _, low, high = interval
    if math.isnan(low) or math.isnan(paper_delta) or paper_delta == 0:
        return "inconclusive"
    if low > 0 or high < 0:
        return "holds" if (low > 0) == (paper_delta > 0) else "reversed"
    return "inconclusive"


# §9: the main table's orderings the paper reports on Qwen2.5-7B (a > b), SGPO against each baseline, and RL after SFT
MAIN_ORDERINGS = (("SGPO", "SFT+GRPO"), ("SGPO", "HPT"), ("SGPO", "LUFFY"), ("SGPO", "SFT"), ("SFT+GRPO", "SFT"))


def main_orderings(main: pd.DataFrame, metric: str = "avg@k") -> pd.DataFrame:
    """The paper's main-table orderings (`MAIN_ORDERINGS`) on a run's main-table frame (`results.collect`
    with a `method` column, `results.with_method`): the paper's Δ, this run's paired Δ over (seed,
    problem) cells with its 95% interval (`paired`) and the verdict; orderings whose methods did not
    both run are left out."""
    rows = []
    for a, b in MAIN_ORDERINGS:
        cells = paired.paired_cells(main, "method", a, b, metric)
        if not len(cells):
            continue
        interval = paired.paired_interval(cells)
        rows.append({"ordering": f"{a} > {b}", "paper Δ": f"{main_delta(a, b):+.1f}",
                     "Δ here (95% CI)": f"{interval[0]:+.1f} {paired.interval_text(interval, paired.unit_of(cells))}",
                     "here": verdict(interval, main_delta(a, b))})
    return pd.DataFrame(rows, columns=["ordering", "paper Δ", "Δ here (95% CI)", "here"])


def orderings(ablation: pd.DataFrame) -> pd.DataFrame:
    """The paper's orderings "ablation < full SGPO" for the rows of `results.ablation_table` the paper
    reports: the ordering, the paper's Δ, this run's Δ with its paired 95% interval and the verdict
    (`verdict`); empty without such rows. Δ is left − right, as in `main_orderings`: ablation − full SGPO."""
    named = [n for n in ablation.index if n in ABLATIONS] if "paper's ordering here" in ablation else []
    return pd.DataFrame([{"ordering": f"{n} {'<' if ablation_delta(n) < 0 else '>'} full SGPO",
                          "paper Δ": f"{ablation_delta(n):+.1f}",
                          "Δ here (95% CI)": f"{ablation.loc[n, 'Δ avg']} {ablation.loc[n, 'Δ 95% CI']}",
                          "here": ablation.loc[n, "paper's ordering here"]} for n in named],
                        columns=["ordering", "paper Δ", "Δ here (95% CI)", "here"])
