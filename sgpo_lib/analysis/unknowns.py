"""The study of the choices the paper leaves open (issue 25, item 4; notebook 06, `make study`).

The rows are full SGPO with one choice changed (`experiment.unknowns`), the paper's matching
ablations (`experiment.ablations`) and the reference row, the main table's SGPO runs (`FULL_SGPO`,
the defaults); all of one run's seeds (`ablation_seeds`), each read from whichever sweep trained it
(`main/`, `ablate/`, `unknowns/`: a row is found by its run folder name). Each unknown (`UNKNOWNS`)
groups its rows by the keys they override: a *choice* sets only the unknown's keys (the reference
row is a choice of every unknown), and is compared with its *without* row, the paper's ablation of
that part of SGPO (with the choice's `carried` keys, e.g. the mini-batch count). The paper reports
full SGPO above each of those ablations (§7), so for each choice the paired difference choice −
without over (seed, problem) cells (`paired`) decides whether that direction holds, is reversed or
is inconclusive here (`paper.verdict`); `read_line` says it in one sentence per unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..config.experiment import ablation_seeds
from ..core.paths import run_name
from . import paired, paper
from .results import FULL_SGPO, METRIC, collected, wide_table


@dataclass(frozen=True)
class Unknown:
    """One open choice: the overrides that make its choices (`keys`), the paper's ablation it is read
    against (`paper`, a name of `paper.ABLATIONS`), that ablation's overrides (`without`), the paper's
    claim in words (`claim`) and the keys of a choice its without row keeps (`carried`)."""
    title: str
    keys: tuple[str, ...]
    paper: str
    without: dict = field(hash=False)
    claim: str = ""
    carried: tuple[str, ...] = ()

    def is_choice(self, overrides: dict) -> bool:
        return set(overrides) <= set(self.keys) and dict(overrides) != self.without

    def without_of(self, overrides: dict) -> dict:
        """The overrides of the paper's ablation matching choice `overrides`."""
        return {**{k: overrides[k] for k in self.carried if k in overrides}, **self.without}


UNKNOWNS = {
    "kl_clip": Unknown("KL clip form and δ", ("distill.kl_clip_mode", "distill.kl_clip"), "w/o KL clipping",
                       {"distill.kl_clip": None}, "full > w/o KL clipping"),
    "alpha_rule": Unknown("α rule", ("distill.weighting",), "w/o adaptive weighting", {"distill.weighting": "constant"},
                          "pass-gap α > constant α"),
    "target_score": Unknown("target score", ("distill.target_score",), "w/o target selection",
                            {"distill.target": "all_correct"}, "full > w/o target selection"),
    "mini_batches": Unknown("mini-batches (the proximal constraints acting or not)", ("train.mini_batches",),
                            "w/o proximal constraints", {"distill.kl_clip": None, "distill.target": "all_correct"},
                            "full > w/o proximal constraints", carried=("train.mini_batches",)),
}
COLUMNS = ["avg", "seeds", "compared with", "Δ avg (95% CI)", "paper's direction here"]


def row_overrides(cfg) -> dict[str, dict]:
    """Every row of the study by name: the reference row (no override), the ablations, the unknowns."""
    rows = {FULL_SGPO: {}}
    for entry in cfg.experiment.ablations + cfg.experiment.unknowns:
        rows.update({name: dict(o) for name, o in entry.items()})
    return rows


def study_frame(cfg, run_dir: Path) -> pd.DataFrame:
    """`results.collect` rows of every study row's runs (main/, ablate/, unknowns/), `label` = the row name."""
    rows = row_overrides(cfg)
    label_of = {run_name({"train.method": "sgpo", **o, "seed": s}): name
                for name, o in rows.items() for s in ablation_seeds(cfg.experiment)}
    parts = [d for d in (collected(Path(run_dir) / sweep) for sweep in ("main", "ablate", "unknowns")) if len(d)]
    if not parts:
        return pd.DataFrame()
    df = pd.concat(parts, ignore_index=True)
    return df[df["run"].isin(label_of)].assign(label=lambda d: d["run"].map(label_of))


def unknown_table(df: pd.DataFrame, rows: dict[str, dict], unknown: Unknown, metric: str = METRIC) -> pd.DataFrame:
    """One unknown's table: its choices that ran (the reference first), each with avg (mean ± std over
    seeds), the paper's ablation it is compared with, the paired Δ with its 95% interval and the
    verdict on the paper's direction (full > ablation); then those ablation rows. Empty when none ran."""
    ran = set(df["label"]) if len(df) and "phase" in df else set()
    choices = [n for n, o in rows.items() if n in ran and unknown.is_choice(o)]
    pairs = {n: next((w for w, o in rows.items() if w in ran and o == unknown.without_of(rows[n])), None) for n in choices}
    order = choices + [w for w in dict.fromkeys(pairs.values()) if w is not None]
    if not order:
        return pd.DataFrame(columns=COLUMNS)
    table = wide_table(df[df["label"].isin(order)], "label", metric, with_base=False).reindex(order)
    out = table[["avg", "seeds"]].copy()
    direction = -paper.ablation_delta(unknown.paper)  # the paper's choice − ablation, > 0
    cells = {n: paired.paired_cells(df, "label", n, w, metric) for n, w in pairs.items() if w is not None}
    intervals = {n: paired.paired_interval(c) for n, c in cells.items()}
    out["compared with"] = [pairs.get(n) or "" for n in order]
    out["Δ avg (95% CI)"] = [f"{intervals[n][0]:+.1f} {paired.interval_text(intervals[n], paired.unit_of(cells[n]))}"
                             if n in intervals else "" for n in order]
    out["paper's direction here"] = [paper.verdict(intervals[n], direction) if n in intervals else "" for n in order]
    return out.rename_axis(f"{unknown.title} ({metric})")


def read_line(table: pd.DataFrame, unknown: Unknown) -> str:
    """The "Read:" sentence of one unknown: which choices reproduce the paper's direction for its
    ablation (full > `unknown.paper`), which reverse it and which are inconclusive."""
    claim = unknown.claim
    judged = table[table["paper's direction here"] != ""] if len(table) else table
    if not len(judged):
        return f"Read ({unknown.title}): not run, or no choice has its {unknown.paper} row; the paper's {claim} is not tested."
    groups = {v: [n for n in judged.index if judged.loc[n, "paper's direction here"] == v] for v in paper.VERDICTS}
    words = {"holds": "holds for", "reversed": "is reversed for", "inconclusive": "is inconclusive for"}
    parts = [f"{words[v]} {', '.join(groups[v])}" for v in paper.VERDICTS if groups[v]]
    return f"Read ({unknown.title}): the paper's {claim} " + "; ".join(parts) + " (paired 95% intervals)."


def study(cfg, run_dir: Path, metric: str = METRIC) -> dict:
    """The run's study: one table per unknown under its key of `UNKNOWNS`, and `read`, the "Read:"
    lines of all four (Markdown paragraphs)."""
    df, rows = study_frame(cfg, run_dir), row_overrides(cfg)
    tables = {k: unknown_table(df, rows, u, metric) for k, u in UNKNOWNS.items()}
    return {**tables, "read": "\n\n".join(read_line(tables[k], u) for k, u in UNKNOWNS.items())}


def reads_frame(found: dict) -> pd.DataFrame:
    """The "Read:" line of each unknown of `study`'s result as a table (one row per unknown), for the report."""
    return pd.DataFrame({"unknown": [u.title for u in UNKNOWNS.values()],
                         "read": [read_line(found[k], u) for k, u in UNKNOWNS.items()]})
