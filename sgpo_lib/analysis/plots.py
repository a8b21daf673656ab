"""Matplotlib figures for the notebooks and the report; each is also saved as a PNG.

Every function takes plain pandas data (metrics rows, stats, result tables), draws one
figure and returns it closed (so a notebook shows it once, where it is the cell's value);
`save(fig, path)` writes the PNG (atomically) for `figures/`. Methods keep one colour in every
figure of the notebooks and the report (`METHOD_COLORS`, `color`); runs of one method are drawn as
their mean over seeds with a band (± std), and legends sit outside the axes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..core import fileio
from .report_format import seeds_text

# engine-vs-trainer mismatch (sgpo_lib.engine_checks) beside the reward groups and the guided branch's share
ROLLOUT_HEALTH_KEYS = ("mismatch/auto/mean", "mismatch/guided/mean", "frac_reward_zero_std", "guided_share")
# The one palette: a method's display name (results.METHOD_LABELS) -> its colour, in every figure
METHOD_COLORS = {"base": "#7f7f7f", "SFT": "#1f77b4", "SFT+GRPO": "#ff7f0e", "HPT": "#9467bd", "LUFFY": "#8c564b",
                 "SGPO": "#d62728", "GRPO (from base)": "#2ca02c"}
OTHER_COLORS = ("#17becf", "#bcbd22", "#e377c2", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173")  # not methods
LEGEND_OUTSIDE = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "borderaxespad": 0.0, "frameon": False}


def color(name: str) -> str:
    """The colour of method `name` (`METHOD_COLORS`); any other name gets a fixed one from its hash.

    Example:
        >>> color("SGPO"), color("w/o KL clipping") == color("w/o KL clipping")
        ('#d62728', True)
    """
    if name in METHOD_COLORS:
        return METHOD_COLORS[name]
    return OTHER_COLORS[int(hashlib.sha1(name.encode()).hexdigest(), 16) % len(OTHER_COLORS)]


def save(fig, path: str | Path) -> Path:
    """Write `fig` as a PNG atomically; returns the path."""
    path = Path(path)
    with fileio.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    return path


def mean_band(runs: list[pd.DataFrame], key: str, smooth: int = 1, scale: float = 1.0) -> pd.DataFrame:
    """Per `step`: mean and std of `key` × `scale` over the runs that logged it there (`n` of them),
    each run first smoothed by a trailing mean over `smooth` steps; empty when no run has the key."""
    parts = [r[["step", key]].dropna().set_index("step")[key].rolling(smooth, min_periods=1).mean() * scale
             for r in runs if key in r]
    if not parts:
        return pd.DataFrame(columns=["mean", "std", "n"])
    wide = pd.concat(parts, axis=1)
    return pd.DataFrame({"mean": wide.mean(axis=1), "std": wide.std(axis=1).fillna(0.0), "n": wide.count(axis=1)}).sort_index()


def _draw_band(ax, band: pd.DataFrame, name: str, n_runs: int, marker: str | None = "o") -> None:
    ax.plot(band.index, band["mean"], color=color(name), marker=marker, ms=3, label=f"{name} ({seeds_text(n_runs)})")
    if n_runs > 1:
        ax.fill_between(band.index, band["mean"] - band["std"], band["mean"] + band["std"], color=color(name), alpha=0.2, lw=0)


def curves(groups: dict[str, list[pd.DataFrame]], key: str, title: str, ylabel: str | None = None, smooth: int = 1,
           scale: float = 1.0):
    """Per method (`groups`: name -> its runs' metrics rows) the mean of `key` × `scale` over `step`
    across its runs, with a ± std band; with `smooth > 1` (noisy per-batch metrics) each run is
    first smoothed by a trailing mean over `smooth` steps (said in the y label)."""
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    for name, runs in groups.items():
        band = mean_band(runs, key, smooth, scale)
        if len(band):
            _draw_band(ax, band, name, sum(key in r for r in runs), marker="o" if smooth == 1 else None)
    label = ylabel or key
    ax.set(title=title, xlabel="step", ylabel=label if smooth == 1 else f"{label} ({smooth}-step mean)")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=8, **LEGEND_OUTSIDE)
    fig.tight_layout()
    plt.close(fig)
    return fig


def panels(groups: dict[str, list[pd.DataFrame]], keys: tuple[str, ...], title: str, why_absent: dict[str, str] | None = None):
    """One panel per metric of `keys` that some run logged a value of, side by side, each method's
    mean over its runs (± std band) in its colour, the legend right of the last panel. A metric with
    no value gets no empty panel: a line under the figure names it and why (`why_absent[key]`, or
    "no run logged a value"). None when no metric has a value."""
    drawn = [k for k in keys if any(k in r and r[k].notna().any() for runs in groups.values() for r in runs)]
    if not drawn:
        return None
    fig, axes = plt.subplots(1, len(drawn), figsize=(3.6 * len(drawn) + 1.5, 3.4), squeeze=False)
    for ax, key in zip(axes[0], drawn):
        for name, runs in groups.items():
            band = mean_band(runs, key)
            if len(band):
                _draw_band(ax, band, name, sum(key in r for r in runs))
        ax.set(title=key, xlabel="step")
        ax.grid(alpha=0.3)
    handles = {h.get_label(): h for ax in axes[0] for h in ax.lines}  # every method, whichever panels it is in
    axes[0][-1].legend(list(handles.values()), list(handles), fontsize=7, **LEGEND_OUTSIDE)
    fig.suptitle(title)
    absent = [f"{k}: {(why_absent or {}).get(k, 'no run logged a value')}" for k in keys if k not in drawn]
    if absent:
        fig.text(0.01, -0.02, "Panel left out: " + "; ".join(absent), fontsize=8, va="top", wrap=True)
    fig.tight_layout()
    plt.close(fig)
    return fig


def guided_vs_auto(stats: pd.DataFrame):
    """Per problem p_guided against p_auto, one colour per family: where strategies help.

    Rates take few values, so points are counted: marker area grows with the number of problems.
    """
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for i, (source, g) in enumerate(stats.groupby("source")):  # families take colours no method has
        counts = g.groupby(["p_auto", "p_guided"]).size().reset_index(name="n")
        ax.scatter(counts["p_auto"], counts["p_guided"], alpha=0.5, s=18 * counts["n"], label=source.split("/")[-1],
                   color=OTHER_COLORS[i % len(OTHER_COLORS)])
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--")
    ax.set(xlim=(-0.05, 1.05), ylim=(-0.05, 1.05), xlabel="p_auto (alone)", ylabel="p_guided (with strategy)",
           title="Where strategies help")
    ax.legend(fontsize=8, **LEGEND_OUTSIDE)
    fig.tight_layout()
    plt.close(fig)
    return fig


def bars(numeric: pd.DataFrame, title: str, split: str = "test", baseline: float | None = None, metric: str = "avg@k"):
    """Macro accuracy per row of `results.numeric_table` with std error bars; `baseline`
    (the untrained student's accuracy, in points) as a dashed line."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    means, stds = numeric[("mean", split)], numeric[("std", split)]
    ax.bar(range(len(means)), means, yerr=stds.where(stds > 0), capsize=4, color=[color(str(i)) for i in means.index], alpha=0.85)
    if baseline is not None:
        ax.axhline(baseline, color=color("base"), linestyle="--", label=f"base student ({baseline:.1f})")
        ax.legend(**LEGEND_OUTSIDE)
    ax.set_xticks(range(len(means)), [str(i) for i in means.index], rotation=20, ha="right")
    ax.set(title=title, ylabel=f"{split} macro {metric} (points)")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    plt.close(fig)
    return fig


def first_last(table: pd.DataFrame, title: str):
    """One line per problem (`table` index) from its `first` to its `last` value (e.g. α at the first
    and last visit, `results.alpha_first_last`); the legend gives the number of visits."""
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    for i, (pid, row) in enumerate(table.iterrows()):  # problems take colours no method has
        ax.plot([0, 1], [row["first"], row["last"]], marker="o", color=OTHER_COLORS[i % len(OTHER_COLORS)],
                label=f"{pid} ({int(row['visits'])} visits)")
    ax.set_xticks([0, 1], ["first visit", "last visit"])
    ax.set(title=title, ylabel="α", xlim=(-0.2, 1.2))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, **LEGEND_OUTSIDE)
    fig.tight_layout()
    plt.close(fig)
    return fig


def scaling(table: pd.DataFrame, x: str, group: str, title: str = "Gain over base-model size", metric: str = "avg@k"):
    """Accuracy (`mean`, `std`) against `x` (e.g. parameters), one line per `group` value."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, g in table.groupby(group):
        g = g.sort_values(x)
        ax.errorbar(g[x], g["mean"], yerr=pd.to_numeric(g["std"], errors="coerce"), marker="o", capsize=3, color=color(str(name)), label=str(name))
    ax.set(title=title, xlabel=x, ylabel=f"test macro {metric} (points)")
    ax.set_xscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, **LEGEND_OUTSIDE)
    fig.tight_layout()
    plt.close(fig)
    return fig


def heat_strip(rows: list[dict], key: str = "kl", title: str = "Per-token KL(q‖p): where the strategy moved the student",
               max_tokens: int = 48):
    """A row per rollout (`stages.measure_signal` rows), its first `max_tokens` decoded tokens written in cells
    coloured by `row[key]` (one colour scale for all rows, capped at the 99th percentile)."""
    n = max(len(rows), 1)
    grid = np.full((n, max_tokens), np.nan)
    for i, r in enumerate(rows):
        vals = r[key][:max_tokens]
        grid[i, : len(vals)] = vals
    finite = grid[np.isfinite(grid)]
    vmax = float(np.percentile(finite, 99)) if finite.size and np.percentile(finite, 99) > 0 else 1.0
    fig, ax = plt.subplots(figsize=(min(0.32 * max_tokens, 18), 0.5 * n + 1.2))
    image = ax.imshow(grid, aspect="auto", cmap="magma_r", vmin=0.0, vmax=vmax)
    for i, r in enumerate(rows):
        for j, token in enumerate(r["tokens"][:max_tokens]):
            ax.text(j, i, repr(token)[1:-1][:4], ha="center", va="center", fontsize=6,
                    color="white" if grid[i, j] > vmax / 2 else "black")
    ax.set_yticks(range(len(rows)), [f"{r['source'].split('/')[-1]} {r['problem_id']}" for r in rows], fontsize=7)
    ax.set(title=title, xlabel="completion token")
    fig.colorbar(image, ax=ax, fraction=0.02, label=key)
    fig.tight_layout()
    plt.close(fig)
    return fig
