"""Finished training runs found in other run folders, copied in instead of trained again.

`make study` trains full SGPO and four of the demo's ablations as its reference rows, and every
other pipeline whose sweeps share runs with an earlier one does the same: the same training config
and the same code give the same run (the study's and the demo's SGPO runs match to the byte here).
Before a sweep trains, `copy_finished` looks, under the outputs root, for each run it would train:
a folder `<run>/<stage>/<variant>` of another pipeline run whose STATUS is `done`, whose code is
this code (`code_fingerprint`) and whose `config.yaml` equals the run's config in every key but the
pipeline's own (`experiment`, `output`: which rows a pipeline runs and where, not how one run
trains); with `output.reuse: config`, which reuses folders of other code on purpose, a twin of other
code too. Such a twin is copied into the sweep's folder, its `config.yaml` replaced by this
pipeline's (equal in training) and `REUSED_FROM` naming its source; the sweep then reads it as
done. `experiment.reuse_finished_runs: false` trains every run anew.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import yaml

from ..config.run import RunConfig, config_to_yaml, load_config
from ..config.schema import differing_keys
from ..core.code_fingerprint import fingerprint, recorded
from ..core.fileio import write_text
from ..core.paths import output_root, run_name
from ..core.run_folder import read_status

log = logging.getLogger(__name__)

PIPELINE_SECTIONS = ("experiment", "output")  # a pipeline's choices, not one training run's
SOURCE_FILE = "REUSED_FROM"


def finished_runs(root: Path, skip: Path, any_code: bool = False) -> list[tuple[Path, dict]]:
    """`(folder, config)` of every `<run>/<stage>/<variant>` under `root`, outside `skip`, that is done
    and was made by this code (by any code with `any_code`)."""
    code, out = fingerprint(), []
    for status in sorted(Path(root).glob("*/*/*/STATUS")):
        run = status.parent
        if skip in run.parents or read_status(run) != "done" or not (any_code or recorded(run) == code):
            continue
        try:
            held = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(held, dict):
            out.append((run, held))
    return out


def same_training(held: dict, cfg: RunConfig) -> bool:
    """Whether a run folder's config trains as `cfg` does: equal in every key outside `PIPELINE_SECTIONS`."""
    return all(k.split(".", 1)[0] in PIPELINE_SECTIONS for k in differing_keys(held, cfg.identity()))


def copy_finished(cfg: RunConfig, params_file: str, variants: list[dict], stage_dir: Path) -> list[str]:
    """Copy into `stage_dir/<run name>` a finished twin (module docstring) of each variant that has no
    folder there yet; returns the run names copied. `params_file` is the pipeline's resolved config."""
    if not cfg.experiment.reuse_finished_runs:
        return []
    todo = [v for v in variants if not (stage_dir / run_name(v)).exists()]
    any_code = cfg.output.reuse == "config"  # folders of other code reused on purpose, as `runs.check_folder` does
    candidates = finished_runs(output_root(cfg.output.root), stage_dir.parent, any_code) if todo else []
    copied = []
    for variant in todo:
        run_cfg = load_config(params_file, variant)
        twin = next((run for run, held in candidates if same_training(held, run_cfg)), None)
        if twin is None:
            continue
        target = stage_dir / run_name(variant)
        partial = stage_dir.parent / ".copying" / target.name  # out of the stage's folder until complete
        shutil.rmtree(partial, ignore_errors=True)  # a copy cut short by a kill starts again
        shutil.copytree(twin, partial)
        write_text(partial / "config.yaml", config_to_yaml(run_cfg))  # this pipeline's, equal in training
        write_text(partial / SOURCE_FILE, f"{twin}\n")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial.rename(target)
        same_code = recorded(twin) == fingerprint()
        log.info("reused %s: the finished run %s has the same training config and %s", target.name, twin,
                 "code" if same_code else "other code (output.reuse: config)")
        copied.append(target.name)
    shutil.rmtree(stage_dir.parent / ".copying", ignore_errors=True)  # with any copy a kill cut short
    return copied
