"""The top of the report: what the run found in a few sentences, and a numbered table of contents.

`summary(cfg, run_dir)` writes three to five sentences from the run's own results: the best
method on held-out unguided avg@k, SGPO's rank and its paired difference to SFT+GRPO with a 95%
interval (`paired.paired_cells`: the same seeds and problems), how many of the paper's
orderings hold, are reversed or are inconclusive (`paper.verdict`), and the main-table runs that
failed or are missing. `numbered(nb, captions)` numbers the sections, figures and tables of the
executed report notebook (figures and tables are the outputs `report.show` marked with their
name) and puts a table of contents after the summary cell (tagged `SUMMARY_TAG`).
"""

from __future__ import annotations

import html
from pathlib import Path

import nbformat
import pandas as pd
from IPython.display import Markdown

from ..config.run import RunConfig
from . import paired, paper, results
from .report_format import seeds_text

SUMMARY_TAG = "report-summary"  # the 07_report cell whose output is the summary; the contents follow it
ITEM_KEY = "sgpo"  # output metadata key holding {"item": name} for a numbered figure or table


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def ranking(main: pd.DataFrame) -> pd.Series:
    """Test macro avg@k (points) per method and the base student, best first."""
    means = results.numeric_table(results.with_method(main), "method")[("mean", "test")]
    base = results.base_accuracy(main, "train.method")
    if base is not None:
        means["base student"] = base
    return means.sort_values(ascending=False)


def sgpo_vs_sft_grpo(main: pd.DataFrame) -> str:
    """The sentence on SGPO minus SFT+GRPO, paired over seeds and problems, with its 95% interval."""
    methods = set(results.with_method(main[main["status"] == "done"])["method"])
    missing = [m for m in ("SGPO", "SFT+GRPO") if m not in methods]
    if missing:
        return f"{' and '.join(missing)} has no finished run, so SGPO is not compared with SFT+GRPO."
    diffs = paired.paired_cells(results.with_method(main), "method", "SGPO", "SFT+GRPO")
    if not len(diffs):
        return "SGPO and SFT+GRPO share no seed, so they are not compared."
    mean, low, high = paired.paired_interval(diffs)
    if low != low:
        return f"SGPO minus SFT+GRPO is {mean:+.1f} points on a single cell: no interval."
    word = paper.verdict((mean, low, high), paper.main_delta("SGPO", "SFT+GRPO"))
    unit = paired.unit_of(diffs)
    cells = "seed × problem cells" if unit == paired.PROBLEM else f"cells{paired.UNIT_NOTES[unit]}"
    return (f"SGPO minus SFT+GRPO is {mean:+.1f} points (95% interval {low:+.1f} to {high:+.1f}, paired over "
            f"{len(diffs)} {cells}): the paper's SGPO > SFT+GRPO {word} here.")


def orderings_sentence(ablation: pd.DataFrame) -> str:
    """How many of the paper's ablation orderings hold, are reversed, are inconclusive."""
    found = paper.orderings(ablation)
    if not len(found):
        return "No ablation the paper reports has run, so none of its orderings is tested."
    counts = found["here"].value_counts()
    words = {"holds": "hold", "reversed": "are reversed", "inconclusive": "are inconclusive"}
    parts = ", ".join(f"{counts.get(v, 0)} {words[v]}" for v in paper.VERDICTS)
    return f"Of the paper's {len(found)} ablation orderings tested: {parts} (paired 95% intervals)."


def missing_runs(cfg: RunConfig, main: pd.DataFrame) -> str:
    """The sentence on main-table runs (`experiment.methods` × `experiment.seeds`) not done."""
    status = dict(zip(zip(main["train.method"], main["seed"]), main["status"])) if "train.method" in main else {}
    bad = [f"{results.METHOD_LABELS.get(m, m)} seed {s} ({status.get((m, s)) or 'missing'})"
           for m in cfg.experiment.methods for s in cfg.experiment.seeds if status.get((m, s)) != "done"]
    if not bad:
        n = len(cfg.experiment.methods) * len(cfg.experiment.seeds)
        return f"All {n} main-table runs finished."
    return f"Main-table runs not finished: {', '.join(bad)}; their rows are missing or partial."


def summary(cfg: RunConfig, run_dir: Path):
    """Three to five sentences on what this run found (Markdown for the report's first cell)."""
    run_dir = Path(run_dir)
    main = results.collected(run_dir / "main")
    if not len(main) or "phase" not in main:
        return Markdown(f"**Summary.** No main-table run has finished yet. {missing_runs(cfg, main)}")
    ranked = ranking(main)
    seeds = main[main["status"] == "done"]["seed"].nunique()
    best = ranked.drop("base student", errors="ignore")
    sentences = [f"On held-out unguided avg@k ({seeds_text(seeds)}), the best method is {best.index[0]} with {best.iloc[0]:.1f} "
                 f"points (base student {ranked.get('base student', float('nan')):.1f})."]
    if "SGPO" in ranked:
        sentences.append(f"SGPO ranks {_ordinal(list(ranked.index).index('SGPO') + 1)} of {len(ranked)} rows "
                         f"(base student included) with {ranked['SGPO']:.1f}.")
    sentences.append(sgpo_vs_sft_grpo(main))
    sentences.append(orderings_sentence(results.ablation_results(cfg, run_dir)))
    sentences.append(missing_runs(cfg, main))
    return Markdown("**Summary.** " + " ".join(sentences))


def numbered(nb, captions: dict[str, str]):
    """`nb` (the executed report notebook) with numbered sections (`## N. title`), a caption cell
    after each marked figure and table ("Figure N." / "Table N." and `captions[name]`), and the
    table of contents after the summary cell. Changes `nb` in place and returns it."""
    cells, sections, counts = [], [], {"Figure": 0, "Table": 0}
    for cell in nb.cells:
        cells.append(cell)
        if cell.cell_type == "markdown" and cell.source.startswith("## "):
            title, _, rest = cell.source[3:].partition("\n")
            sections.append((f"section-{len(sections) + 1}", f"{len(sections) + 1}. {title}", []))
            cell.source = f'<a id="{sections[-1][0]}"></a>\n\n## {sections[-1][1]}\n{rest}'
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            name = out.get("metadata", {}).get(ITEM_KEY, {}).get("item")
            if name is None:
                continue
            kind = "Figure" if "image/png" in out.get("data", {}) else "Table"
            counts[kind] += 1
            anchor, label = f"{kind.lower()}-{counts[kind]}", f"{kind} {counts[kind]}"
            caption = html.escape(captions.get(name, name))
            cells.append(nbformat.v4.new_markdown_cell(f'<p id="{anchor}" class="caption"><b>{label}.</b> {caption}</p>'))
            if sections:
                sections[-1][2].append((anchor, f"{label}. {caption}"))
    contents = nbformat.v4.new_markdown_cell(contents_html(sections))
    at = next((i + 1 for i, c in enumerate(cells) if SUMMARY_TAG in c.get("metadata", {}).get("tags", [])), 0)
    nb.cells = cells[:at] + [contents] + cells[at:]
    return nb


def contents_html(sections: list[tuple[str, str, list[tuple[str, str]]]]) -> str:
    """The table of contents: each section linked, its numbered figures and tables under it."""
    items = []
    for anchor, title, entries in sections:
        sub = "".join(f'<li><a href="#{a}">{t}</a></li>' for a, t in entries)
        items.append(f'<li><a href="#{anchor}">{html.escape(title)}</a>{f"<ul>{sub}</ul>" if sub else ""}</li>')
    return f'<nav id="contents"><h2>Contents</h2><ol style="list-style: none">{"".join(items)}</ol></nav>'
