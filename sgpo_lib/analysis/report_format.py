"""Tables for reading: the report's frames as a person would write them.

`readable(table)` turns a frame of `report.tables` into one with its index as a first, named
column, column names a person writes (`COLUMN_NAMES`), shares as percentages with one decimal
(`PERCENT_COLUMNS`), other numbers with one decimal (three significant digits when small) and no
missing-value markers. `styled(table)` is the HTML form: no index column, long labels wrapped
(never cut); `as_text(table)` the terminal's. Cells the tables already hold as text ("12.5 ± 3.1",
"12.5 (1 seed)") are kept as they are.
"""

from __future__ import annotations

import math

import pandas as pd

COLUMN_NAMES = {
    "frac_reward_zero_std": "groups with one reward value",
    "frac_all_wrong": "all-wrong groups",
    "guided_share": "guided share",
    "guided_share_all_wrong": "guided share on all-wrong groups",
    "mismatch/auto/mean": "log-prob gap, autonomous (mean)",
    "mismatch/guided/mean": "log-prob gap, guided (mean)",
    "mismatch/auto/max": "log-prob gap, autonomous (max)",
    "mismatch/guided/max": "log-prob gap, guided (max)",
    "p_auto": "solved alone",
    "p_guided": "solved with strategy",
    "w": "mean weight w",
    "KL top-10% share": "KL on top 10% of tokens",
    "SFT grad top-10% share": "SFT push on top 10% of tokens",
    "problem_id": "problem",
    "source": "family",
    "student.size": "student size",
    "train.method": "method",
    "n": "problems",
    "gap": "guided − unguided",
    "size": "student",
    "paper": "paper (avg)",
    "paper Δ": "paper Δ",
    "Δ avg": "Δ avg",
    "count": "count",
}
# Columns holding shares in [0, 1], shown as percentages
PERCENT_COLUMNS = {"frac_reward_zero_std", "frac_all_wrong", "guided_share", "guided_share_all_wrong", "p_auto",
                   "p_guided", "KL top-10% share", "SFT grad top-10% share", "unguided", "guided", "gap"}
WRAP_STYLE = [{"selector": "th, td", "props": [("white-space", "normal"), ("max-width", "26em"),
                                               ("overflow-wrap", "break-word"), ("text-align", "left")]}]


def seeds_text(n: int) -> str:
    """How many seeds a row averages: "1 seed" (no spread to show, rather than a std of 0) or "N seeds"."""
    return "1 seed" if n == 1 else f"{n} seeds"


def number(value, percent: bool = False) -> str:
    """One cell: a share as a percentage with one decimal, another number with one decimal (three
    significant digits below 1, so a weight of 0.42 or a gap of 0.001 does not read 0.4 or 0.0),
    text as it is, "" for missing.

    Example:
        >>> number(0.0703125, percent=True), number(52.1), number(0.415625), number(0.00123), number(3), number(float("nan"))
        ('7.0%', '52.1', '0.416', '0.00123', '3', '')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if percent:
        return f"{100 * value:.1f}%"
    if float(value).is_integer():
        return f"{int(value)}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.1f}"


def readable(table: pd.DataFrame) -> pd.DataFrame:
    """`table` with its index as the first column (named after the index, "" for a plain 0, 1, …
    index, which is dropped), every cell as text (`number`) and its columns renamed (`COLUMN_NAMES`)."""
    if isinstance(table.index, pd.RangeIndex) and table.index.name is None:
        out = table.reset_index(drop=True)
    else:
        out = table.reset_index(names=table.index.name or "")
    out = out.astype(object).apply(lambda col: col.map(lambda v: number(v, col.name in PERCENT_COLUMNS)))
    out.columns = [COLUMN_NAMES.get(str(c), str(c)) for c in out.columns]
    return out


def styled(table: pd.DataFrame):
    """The HTML form of `readable(table)`: no index column, long labels wrapped."""
    return readable(table).style.hide(axis="index").set_table_styles(WRAP_STYLE)


def as_text(table: pd.DataFrame) -> str:
    """The terminal form of `readable(table)`: no index column, whole labels."""
    with pd.option_context("display.width", 250, "display.max_columns", None, "display.max_colwidth", None):
        return readable(table).to_string(index=False)
