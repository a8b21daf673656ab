"""Matplotlib figures for the notebooks and the report; each is also saved as a PNG.

Every function takes plain pandas data (metrics rows, stats, result tables), draws one
figure and returns it closed (so a notebook shows it once, where it is the cell's value);
`save(fig, path)` writes the PNG (atomically) for `figures/`.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from ..core import fileio

# engine-vs-trainer mismatch (sgpo_lib.train.engine_checks) beside the reward groups and the guided branch's share
ROLLOUT_HEALTH_KEYS = ("mismatch/auto/mean", "mismatch/guided/mean", "frac_reward_zero_std", "guided_share")


def save(fig, path: str | Path) -> Path:
    """Write `fig` as a PNG atomically; returns the path."""
    path = Path(path)
    with fileio.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    return path


def curves(series: dict[str, pd.DataFrame], key: str, title: str, ylabel: str | None = None, smooth: int = 1):
    """One line per run of `key` over `step` (rows without the key are skipped).

    With `smooth > 1` (per-batch metrics, noisy because each step sees other problems) the
    raw values are drawn faint and a trailing mean over `smooth` steps on top.
    """
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, rows in series.items():
        if key in rows:
            part = rows[["step", key]].dropna()
            if smooth > 1:
                raw, = ax.plot(part["step"], part[key], alpha=0.25, lw=1)
                ax.plot(part["step"], part[key].rolling(smooth, min_periods=1).mean(), color=raw.get_color(),
                        label=f"{name} ({smooth}-step mean)")
            else:
                ax.plot(part["step"], part[key], marker="o", ms=2, label=name)
    ax.set(title=title, xlabel="step", ylabel=ylabel or key)
    ax.grid(alpha=0.3)
    if series:
        ax.legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig


def panels(series: dict[str, pd.DataFrame], keys: tuple[str, ...], title: str):
    """One panel per metric of `keys`, side by side, one line per run in one colour across the
    panels (runs without a metric are skipped there); the legend is in the first panel."""
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for i, (name, rows) in enumerate(series.items()):
            if key in rows:
                part = rows[["step", key]].dropna()
                ax.plot(part["step"], part[key], marker="o", ms=2, color=f"C{i % 10}", label=name)
        ax.set(title=key, xlabel="step")
        ax.grid(alpha=0.3)
    if series:
        axes[0][0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    plt.close(fig)
    return fig


def guided_vs_auto(stats: pd.DataFrame):
    """Per problem p_guided against p_auto, one colour per family: where strategies help.

    Rates take few values, so points are counted: marker area grows with the number of problems.
    """
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for source, g in stats.groupby("source"):
        counts = g.groupby(["p_auto", "p_guided"]).size().reset_index(name="n")
        ax.scatter(counts["p_auto"], counts["p_guided"], alpha=0.5, s=18 * counts["n"], label=source.split("/")[-1])
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--")
    ax.set(xlim=(-0.05, 1.05), ylim=(-0.05, 1.05), xlabel="p_auto (alone)", ylabel="p_guided (with strategy)",
           title="Where strategies help")
    ax.legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig


def bars(numeric: pd.DataFrame, title: str, split: str = "test", baseline: float | None = None, metric: str = "avg@k"):
    """Macro accuracy per row of `results.numeric_table` with std error bars; `baseline`
    (the untrained student's accuracy, in points) as a dashed line."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    means, stds = numeric[("mean", split)], numeric[("std", split)]
    ax.bar(range(len(means)), means, yerr=stds, capsize=4, color="tab:blue", alpha=0.8)
    if baseline is not None:
        ax.axhline(baseline, color="gray", linestyle="--", label=f"base student ({baseline:.1f})")
        ax.legend(loc="upper left", frameon=False)
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
    for pid, row in table.iterrows():
        ax.plot([0, 1], [row["first"], row["last"]], marker="o", label=f"{pid} ({int(row['visits'])} visits)")
    ax.set_xticks([0, 1], ["first visit", "last visit"])
    ax.set(title=title, ylabel="α", xlim=(-0.2, 1.2))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    plt.close(fig)
    return fig


def scaling(table: pd.DataFrame, x: str, group: str, title: str = "Gain over base-model size", metric: str = "avg@k"):
    """Accuracy (`mean`, `std`) against `x` (e.g. parameters), one line per `group` value."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, g in table.groupby(group):
        g = g.sort_values(x)
        ax.errorbar(g[x], g["mean"], yerr=g["std"], marker="o", capsize=3, label=str(name))
    ax.set(title=title, xlabel=x, ylabel=f"test macro {metric} (points)")
    ax.set_xscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig


def heat_strip(rows: list[dict], key: str = "kl", title: str = "Per-token KL(q‖p): where the strategy moved the student",
               max_tokens: int = 48):
    """A row per rollout (`signal.measure` rows), its first `max_tokens` decoded tokens written in cells
    coloured by `row[key]` (one colour scale for all rows, capped at the 99th percentile)."""
    import numpy as np

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
