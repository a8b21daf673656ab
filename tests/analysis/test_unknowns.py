"""The study of the unknowns (issue 25, item 4): rows grouped by the keys they override, each choice
read against its paper ablation (mini-batches keep their count), found in whichever sweep trained
it, with a "Read:" line that names the choices by verdict; notebook 06 and the report show the same."""

import pandas as pd

from sgpo_lib.analysis import paper, results, unknowns
from sgpo_lib.config.run import config_to_yaml, load_config
from sgpo_lib.core import fileio
from sgpo_lib.core.paths import run_name
from sgpo_lib.core.run_folder import write_status

PARAMS = """experiment:
  methods: [sgpo]
  seeds: [0, 1]
  ablations:
    - w/o KL clipping: {distill.kl_clip: null}
    - w/o proximal constraints: {distill.kl_clip: null, distill.target: all_correct}
  unknowns:
    - token_scale, delta 1: {distill.kl_clip_mode: token_scale, distill.kl_clip: 1.0}
    - token_mask, delta 4: {distill.kl_clip_mode: token_mask, distill.kl_clip: 4.0}
    - mini-batches 4: {train.mini_batches: 4}
    - mini-batches 4, w/o proximal constraints: {train.mini_batches: 4, distill.kl_clip: null, distill.target: all_correct}
"""
# per row: the avg@k of problems p0..p7 on seeds 0 and 1 (a problem-level effect shared by both seeds)
SHAPE = [0.0, 0.25, 0.5, 0.5, 0.75, 1.0, 1.0, 0.0]
SHIFT = {results.FULL_SGPO: 0.0, "w/o KL clipping": -0.25,
         "token_scale, delta 1": -0.5, "token_mask, delta 4": None, "w/o proximal constraints": -0.25,
         "mini-batches 4": 0.0, "mini-batches 4, w/o proximal constraints": 0.25}


def _run(out_dir, cfg_path, overrides, accs):
    """A finished run folder with per-problem outcomes (k = 4) on test family toy/add (and its macro row) at steps 0 and 2."""
    write_status(out_dir, "done")
    fileio.write_text(out_dir / "config.yaml", config_to_yaml(load_config(cfg_path, overrides)))
    mean = sum(accs) / len(accs)
    table = {s: [{"split": "test", "source": src, "avg@k": mean, "greedy": mean, "pass@k": 1.0, "k": 4, "step": s}
                 for src in ("toy/add", "macro")] for s in (0, 2)}
    fileio.write_json(out_dir / "results.json", {"base_eval": table[0], "final_eval": table[2]})
    fileio.write_jsonl(out_dir / "eval_problems.jsonl", [
        {"step": s, "split": "test", "source": "toy/add", "problem_id": f"p{i}", "k": 4, "greedy": 0.0, "correct": round(4 * a)}
        for s in (0, 2) for i, a in enumerate(accs)])


def _study(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(PARAMS)
    cfg = load_config(path)
    rows = unknowns.row_overrides(cfg)
    for name, overrides in rows.items():
        shift = SHIFT[name]
        if shift is None:
            continue  # a row that did not run
        sweep = "main" if name == results.FULL_SGPO else "ablate" if name.startswith("w/o") else "unknowns"
        for seed in (0, 1):
            v = {"train.method": "sgpo", **overrides, "seed": seed}
            accs = [min(1.0, max(0.0, a + shift + (0.25 if seed and i == 0 else 0.0))) for i, a in enumerate(SHAPE)]
            _run(tmp_path / sweep / run_name(v), path, v, accs)
    return cfg


def test_each_choice_is_read_against_its_paper_ablation_from_whichever_sweep_trained_it(tmp_path):
    cfg = _study(tmp_path)
    found = unknowns.study(cfg, tmp_path)
    clip = found["kl_clip"]
    assert list(clip.index) == [results.FULL_SGPO, "token_scale, delta 1", "w/o KL clipping"]  # token_mask did not run
    assert clip.loc["token_scale, delta 1", "compared with"] == "w/o KL clipping" and clip.loc["w/o KL clipping", "compared with"] == ""
    assert clip.loc[results.FULL_SGPO, "paper's direction here"] == "holds"  # +25 on 6 of 8 problems, 0 on the rest
    assert clip.loc["token_scale, delta 1", "paper's direction here"] == "reversed"
    cells = [c for c in clip["Δ avg (95% CI)"] if c]
    assert cells[0].startswith("+") and "no per-problem rows" not in cells[0]
    mb = found["mini_batches"]
    assert list(mb.index) == [results.FULL_SGPO, "mini-batches 4", "w/o proximal constraints",
                              "mini-batches 4, w/o proximal constraints"]
    assert mb["compared with"].tolist()[:2] == ["w/o proximal constraints", "mini-batches 4, w/o proximal constraints"]
    assert mb["paper's direction here"].tolist()[:2] == ["holds", "reversed"]
    for key in ("alpha_rule", "target_score"):  # only the reference ran: nothing to compare it with
        assert found[key].index.tolist() == [results.FULL_SGPO] and found[key]["compared with"].tolist() == [""]
    read = found["read"].split("\n\n")
    assert read[0] == ("Read (KL clip form and δ): the paper's full > w/o KL clipping holds for full SGPO; "
                       "is reversed for token_scale, delta 1 (paired 95% intervals).")
    assert read[1].startswith("Read (α rule): not run") and len(read) == len(unknowns.UNKNOWNS)
    assert paper.ablation_delta(unknowns.UNKNOWNS["kl_clip"].paper) < 0  # the paper's full > ablation


def test_notebook_06_and_the_report_show_the_same_study(tmp_path, monkeypatch):
    from sgpo_lib.analysis import report
    from sgpo_lib.workflow import stages

    cfg = _study(tmp_path)
    fileio.write_text(tmp_path / "config.yaml", config_to_yaml(cfg))
    fileio.write_json(tmp_path / "env.json", {})
    monkeypatch.setattr(stages, "train_variant", lambda *a: (_ for _ in ()).throw(AssertionError("trained again")))
    trained = []
    monkeypatch.setattr(stages, "_sweep", lambda cfg, run_dir, name, variants: trained.append((name, variants)))
    shown = stages.study(cfg, tmp_path)
    (name, variants), = trained
    assert name == "unknowns" and {v["seed"] for v in variants} == {0, 1} and len(variants) == 2 * 4
    assert fileio.read_json(tmp_path / "unknowns" / results.LABELS_FILE)[
        run_name({"train.method": "sgpo", "train.mini_batches": 4, "seed": 1})] == "mini-batches 4"
    tables = report.tables(cfg, tmp_path)
    pd.testing.assert_frame_equal(shown["kl_clip"], tables["unknown_kl_clip"])
    assert tables["unknowns_read"]["read"].tolist() == shown["read"].split("\n\n")
