"""Clean committed notebooks: no outputs, no execution counts, tags kept.

`python -m sgpo_lib.workflow.nbclean notebooks/` rewrites each notebook in place keeping only
`kernelspec`/`language_info` notebook metadata and each cell's `tags` (nbdev-clean and
nbconvert's ClearMetadataPreprocessor would drop the `parameters` tag papermill needs).
`is_clean(nb)` is what the hygiene test checks.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

KEPT_NOTEBOOK_METADATA = ("kernelspec", "language_info")


def clean(nb):
    """Return `nb` with outputs, execution counts and non-tag metadata removed."""
    nb.metadata = {k: v for k, v in nb.metadata.items() if k in KEPT_NOTEBOOK_METADATA}
    for cell in nb.cells:
        tags = cell.metadata.get("tags")
        cell.metadata = {"tags": tags} if tags else {}
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb


def is_clean(nb) -> bool:
    return nbformat.writes(clean(nbformat.from_dict(nb))) == nbformat.writes(nb)


def main(argv: list[str] | None = None) -> int:
    paths = [Path(a) for a in (argv if argv is not None else sys.argv[1:])] or [Path("notebooks")]
    for root in paths:
        for path in sorted(root.glob("*.ipynb")) if root.is_dir() else [root]:
            nb = nbformat.read(path, as_version=4)
            nbformat.write(clean(nb), path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
