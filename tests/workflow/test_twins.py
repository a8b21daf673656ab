"""Finished runs of another run folder copied in instead of trained again (`workflow.twins`): only a
done run of the same training config and code; the pipeline's own sections do not count."""

from sgpo_lib.config.run import config_to_yaml, load_config
from sgpo_lib.core import fileio
from sgpo_lib.core.run_folder import read_status, write_status
from sgpo_lib.workflow import twins
from sgpo_lib.workflow.runs import check_folder
from sgpo_lib.workflow.sweep import run_name

SGPO = {"train.method": "sgpo", "seed": 0}


def _params(tmp_path, extra: str = "", reuse: str = "code") -> str:
    path = tmp_path / f"params{len(list(tmp_path.glob('params*.yaml')))}.yaml"
    path.write_text(f"seed: 0\noutput:\n  root: {tmp_path / 'outputs'}\n  reuse: {reuse}\n{extra}")
    return str(path)


def _finished(folder, params: str, overrides: dict, status: str = "done") -> None:
    """A run folder as the trainer leaves it: config, results, STATUS (with this code's fingerprint)."""
    folder.mkdir(parents=True)
    fileio.write_text(folder / "config.yaml", config_to_yaml(load_config(params, overrides)))
    fileio.write_json(folder / "results.json", {"final_eval": [{"avg@k": 0.5}]})
    write_status(folder, status)


def test_a_done_twin_of_another_pipeline_is_copied_with_its_source(tmp_path):
    params = _params(tmp_path)
    demo = tmp_path / "outputs" / "demo" / "main" / run_name(SGPO)
    _finished(demo, params, {**SGPO, "experiment.methods": ["sft", "sgpo"], "experiment.parallel": 2})
    study = tmp_path / "outputs" / "study"
    cfg = load_config(params)
    assert twins.copy_finished(cfg, params, [SGPO], study / "ablate") == [run_name(SGPO)]
    copied = study / "ablate" / run_name(SGPO)
    assert read_status(copied) == "done"
    assert fileio.read_json(copied / "results.json") == {"final_eval": [{"avg@k": 0.5}]}
    assert (copied / twins.SOURCE_FILE).read_text().strip() == str(demo)
    check_folder(copied, load_config(params, SGPO))  # the sweep's own check accepts it: this pipeline's config
    assert not (study / ".copying").exists()


def test_no_copy_of_other_training_unfinished_runs_other_code_or_when_off(tmp_path):
    params = _params(tmp_path)
    runs = tmp_path / "outputs" / "demo" / "main"
    _finished(runs / "other", params, {**SGPO, "train.lr": 0.5})  # another training config
    _finished(runs / "failed", params, SGPO, status="failed")
    _finished(runs / "old", params, SGPO)
    fileio.write_text(runs / "old" / "STATUS", "done\ncode: 0000000000000000\n")  # made by other code
    cfg = load_config(params)
    assert twins.copy_finished(cfg, params, [SGPO], tmp_path / "outputs" / "study" / "main") == []
    _finished(runs / "twin", params, SGPO)
    off = load_config(_params(tmp_path, "experiment:\n  reuse_finished_runs: false\n"))
    assert twins.copy_finished(off, params, [SGPO], tmp_path / "outputs" / "study" / "main") == []
    on_purpose = load_config(_params(tmp_path, reuse="config"))  # other code's folders reused on purpose
    assert twins.copy_finished(on_purpose, params, [SGPO], tmp_path / "outputs" / "any" / "main") == [run_name(SGPO)]
    assert (tmp_path / "outputs" / "any" / "main" / run_name(SGPO) / twins.SOURCE_FILE).read_text().strip() == str(runs / "old")
    assert twins.copy_finished(cfg, params, [SGPO], tmp_path / "outputs" / "study" / "main") == [run_name(SGPO)]


def test_a_folder_already_there_and_the_pipelines_own_runs_are_left_alone(tmp_path):
    params = _params(tmp_path)
    study = tmp_path / "outputs" / "study"
    _finished(study / "main" / run_name(SGPO), params, SGPO)  # the same pipeline: its sweep reads it itself
    cfg = load_config(params)
    assert twins.copy_finished(cfg, params, [SGPO], study / "ablate") == []
    _finished(tmp_path / "outputs" / "demo" / "main" / run_name(SGPO), params, SGPO)
    partial = study / "ablate" / run_name(SGPO)
    partial.mkdir(parents=True)  # a run of its own that was killed: it resumes, it is not replaced
    assert twins.copy_finished(cfg, params, [SGPO], study / "ablate") == []
    assert not any(partial.iterdir())
