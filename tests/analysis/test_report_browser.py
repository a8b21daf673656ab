"""The smoke run's report as a person sees it, and its notebooks as JupyterLab shows them.

`make smoke` runs as a subprocess in the notebook suite's outputs root (after that suite it only
executes the notebooks: the students, strategies and training runs are reused), then headless
Chromium renders `report.html` to a PNG (`outputs/<run>/report.png`) and dumps its DOM: no
console error, the summary, the table of contents and every section heading of notebook 07 are
there. The pipeline's terminal has no "TCP without encryption" line (the kernels talk over IPC),
and the executed notebooks hold no stderr output box but real warnings. Skipped, with the reason,
when no Chromium can be found (`make test` installs the Debian package when it can).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sgpo_lib.core.code_fingerprint import remove_runs_of_other_code
from sgpo_lib.core.paths import OUTPUTS_ENV, REPO_ROOT, nbval_outputs_dir

pytestmark = [pytest.mark.integration, pytest.mark.browser]

PARAMS = "params/toy-smoke.yaml"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars")


def chromium() -> str:
    """The path of a Chromium binary, or skip the test saying why."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("no Chromium on this machine (Debian: apt-get install -y chromium; `make test` does it as root)")


@pytest.fixture(scope="module")
def smoke_run():
    """`make smoke` in the notebook suite's outputs root: after that suite it trains nothing (its runs
    are reused) and executes the seven notebooks; folders of other code are removed first, so the
    report is rendered by the code under test. Its run folder and stderr."""
    root = nbval_outputs_dir()
    remove_runs_of_other_code(root)
    proc = subprocess.run([sys.executable, "-m", "sgpo_lib", "pipeline", "--params", PARAMS], cwd=REPO_ROOT,
                          env={**os.environ, OUTPUTS_ENV: str(root)}, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = Path(proc.stdout.strip().splitlines()[-1].split()[-1])
    assert report.name == "report.html", proc.stdout[-2000:]
    return report.parent, proc.stderr


def browse(report: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """Chromium on `report` with a fresh profile, console messages logged to stderr."""
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    command = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args,
               report.as_uri()]
    return subprocess.run(command, capture_output=True, text=True, timeout=180)


def section_titles() -> list[str]:
    cells = json.loads((REPO_ROOT / "notebooks" / "07_report.ipynb").read_text())["cells"]
    return [("".join(c["source"]).splitlines()[0])[3:] for c in cells
            if c["cell_type"] == "markdown" and "".join(c["source"]).startswith("## ")]


def test_the_report_renders_in_chromium_with_its_summary_contents_and_sections(smoke_run, tmp_path):
    run_dir, _ = smoke_run
    report = run_dir / "report.html"
    dom = browse(report, tmp_path, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom.stdout))
    assert "Summary." in text and "the best method is" in text
    assert 'id="contents"' in dom.stdout and "Figure 1." in text and "Table 1." in text
    for number, title in enumerate(section_titles(), 1):
        assert f"{number}. {title}" in text, title
    png = run_dir / "report.png"
    shot = browse(report, tmp_path, f"--screenshot={png}", "--window-size=1280,16000")
    assert shot.returncode == 0 and png.stat().st_size > 50_000, shot.stderr[-2000:]


def test_kernels_start_without_the_tcp_warning(smoke_run):
    _, stderr = smoke_run
    assert "without encryption" not in stderr


def test_executed_notebooks_hold_no_stderr_box_but_real_warnings(smoke_run):
    run_dir, _ = smoke_run
    boxes = []
    for path in sorted(run_dir.glob("0*.ipynb")):
        for i, cell in enumerate(json.loads(path.read_text())["cells"]):
            for out in cell.get("outputs", []):
                text = "".join(out.get("text", ""))
                if out.get("name") == "stderr" and not re.search(r"Warning\b|WARNING", text):
                    boxes.append(f"{path.name} cell {i}: {text[:200]!r}")
    assert boxes == []
    noise = [path.name for path in run_dir.glob("0*.ipynb") if "IProgress not found" in path.read_text()]
    assert noise == []  # tqdm's note on ipywidgets is filtered before the first import of transformers
    stdout = "".join("".join(o.get("text", "")) for c in json.loads((run_dir / "03_train_sgpo.ipynb").read_text())["cells"]
                     for o in c.get("outputs", []) if o.get("name") == "stdout")
    assert "INFO" in stdout and str(run_dir) not in stdout and "cached at" not in stdout
    assert os.fspath(run_dir.parent) not in stdout
