"""Sweeps: grids as data, one folder per run, a failure recorded while the others go on,
finished runs skipped on a re-run, results collected into one table; result tables."""

import logging

import pytest

from sgpo_lib.analysis import results
from sgpo_lib.analysis.results import collect
from sgpo_lib.config.run import config_to_yaml, load_config
from sgpo_lib.config.yaml12 import parse_assignment
from sgpo_lib.core import fileio
from sgpo_lib.core.run_folder import write_status
from sgpo_lib.workflow.sweep import grid, run_name, run_sweep


def fake_train(calls):
    """A stand-in for one training run: writes config, results and STATUS like the trainer."""

    def train(params_file, overrides, out_dir):
        calls.append(run_name(overrides))
        if overrides.get("distill.coef") == 0.5:
            raise RuntimeError("boom")
        cfg = load_config(params_file, overrides)
        out_dir.mkdir(parents=True, exist_ok=True)
        fileio.write_text(out_dir / "config.yaml", config_to_yaml(cfg))
        row = {"split": "test", "source": "macro", "n": 4, "avg@k": 0.5, "pass@k": 0.75, "step": 2}
        fileio.write_json(out_dir / "results.json", {"base_eval": [{**row, "greedy": 0.1}],
                                                  "final_eval": [{**row, "greedy": cfg.distill.coef / 2 + cfg.seed / 10}]})
        write_status(out_dir, "done")

    return train


def test_grid_and_names():
    variants = grid(**{"distill.coef": [0, 1], "seed": [0, 1]})
    assert len(variants) == 4 and variants[1] == {"distill.coef": 0, "seed": 1}
    assert run_name(variants[1]) == "distill.coef=0_seed=1"
    assert parse_assignment("distill.estimator=sampled") == ("distill.estimator", "sampled")
    assert parse_assignment("distill.on=all") == ("distill.on", "all")
    with pytest.raises(ValueError, match="key=value"):
        parse_assignment("nonsense")


def test_failure_is_recorded_others_go_on_and_rerun_skips_done(tmp_path, caplog):
    params = tmp_path / "p.yaml"
    params.write_text("seed: 0\n")
    calls = []
    variants = grid(**{"distill.coef": [0.0, 0.5, 1.0], "seed": [0, 1]})
    df = run_sweep(params, variants, tmp_path / "sweep", train_fn=fake_train(calls))
    assert len(calls) == 6
    status = df.groupby("run")["status"].first()
    assert (status == "failed").sum() == 2 and (status == "done").sum() == 4
    assert "boom" in (tmp_path / "sweep" / "distill.coef=0.5_seed=0" / "STATUS").read_text()
    calls.clear()
    with caplog.at_level(logging.INFO, logger="sgpo_lib.workflow.sweep"):
        run_sweep(params, variants, tmp_path / "sweep", train_fn=fake_train(calls))
    assert sorted(calls) == ["distill.coef=0.5_seed=0", "distill.coef=0.5_seed=1"]  # only the failed ones again
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]  # one line, not one per skipped run
    assert said == ["sweep: 4 of 6 runs already done, read from their folders"]
    with pytest.raises(RuntimeError, match="not done"):
        collect(tmp_path / "sweep", require_complete=True)


def test_wide_table_mean_and_std_over_seeds(tmp_path):
    params = tmp_path / "p.yaml"
    params.write_text("seed: 0\n")
    df = run_sweep(params, grid(**{"distill.coef": [0.0, 1.0], "seed": [0, 1]}), tmp_path / "s", train_fn=fake_train([]))
    table = results.wide_table(df, "distill.coef", "greedy")
    # coef 1: greedy 0.5 and 0.6 over seeds -> 55.0 ± 7.1 points; the start row from the step-0 eval (SGPO
    # runs start from the SFT warm-up)
    assert table.loc[1.0, "avg"] == "55.0 ± 7.1"
    assert table.loc[results.WARMUP_ROW, "avg"].startswith("10.0")


def test_parallel_runs_are_subprocesses_sharing_the_cpu_cores(tmp_path, monkeypatch):
    from sgpo_lib.workflow import sweep

    params = tmp_path / "p.yaml"
    params.write_text("seed: 0\n")
    seen, train = [], fake_train([])

    def fake_spawn(cmd, env, log_path):
        overrides = dict(parse_assignment(a) for a in cmd[cmd.index("--set") + 1 :: 2])
        seen.append((overrides["distill.coef"], env["OMP_NUM_THREADS"]))
        out_dir = sweep.Path(cmd[cmd.index("--out-dir") + 1])
        try:
            train(str(params), overrides, out_dir)
        except RuntimeError:
            return 1
        return 0

    monkeypatch.setattr(sweep, "_spawn", fake_spawn)
    monkeypatch.setattr(sweep, "_gpu_ids", lambda: [])
    monkeypatch.setattr(sweep.os, "cpu_count", lambda: 8)
    df = run_sweep(params, grid(**{"distill.coef": [0.0, 0.5, 1.0]}), tmp_path / "sweep", parallel=2)
    assert sorted(seen) == [(0.0, "4"), (0.5, "4"), (1.0, "4")]
    status = df.groupby("run")["status"].first()
    assert status["distill.coef=0.5"] == "failed" and (status == "done").sum() == 2
    assert "exited 1" in (tmp_path / "sweep" / "distill.coef=0.5" / "STATUS").read_text()


def test_scaling_reuses_the_main_tables_runs_of_the_default_size(tmp_path, monkeypatch):
    from sgpo_lib.workflow import stages

    params = tmp_path / "p.yaml"
    params.write_text("experiment: {scaling_sizes: [tiny, small], scaling_methods: [grpo, sgpo], scaling_seeds: [0]}\n"
                      "train: {warmup_sft_fraction: 0}\n")  # no SFT warm-up to build before the fake runs
    cfg = load_config(params)
    fileio.write_text(tmp_path / "config.yaml", config_to_yaml(cfg))
    train = fake_train([])
    for method in ("grpo", "sgpo"):  # the main table's runs of the default student (small)
        train(str(params), {"train.method": method, "seed": 0}, tmp_path / "main" / f"train.method={method}_seed=0")
    swept = []
    monkeypatch.setattr(stages, "run_sweep", lambda params_file, variants, root, parallel, train_fn, gpus_per_run: swept.extend(variants) or
                        [train(str(params), v, root / run_name(v)) for v in variants])
    table = stages.scaling(cfg, tmp_path)
    assert swept == [{"student.size": "tiny", "train.method": m, "seed": 0} for m in ("grpo", "sgpo")]
    assert set(zip(table["student.size"], table["train.method"])) == {(z, m) for z in ("tiny", "small") for m in ("grpo", "sgpo")}


def test_scaling_over_the_default_size_alone_reads_the_main_table_and_runs_nothing(tmp_path):
    from sgpo_lib.workflow import stages

    params = tmp_path / "p.yaml"
    params.write_text("experiment: {scaling_sizes: [small], scaling_methods: [grpo], scaling_seeds: [0]}\n"
                      "train: {warmup_sft_fraction: 0}\n")
    cfg = load_config(params)
    fileio.write_text(tmp_path / "config.yaml", config_to_yaml(cfg))
    fake_train([])(str(params), {"train.method": "grpo", "seed": 0}, tmp_path / "main" / "train.method=grpo_seed=0")
    table = stages.scaling(cfg, tmp_path)  # no run to sweep: the scaling folder is made, not missing
    assert set(zip(table["student.size"], table["train.method"])) == {("small", "grpo")}
    assert (tmp_path / "scaling").is_dir() and not any(p.is_dir() for p in (tmp_path / "scaling").iterdir())


def test_gpus_per_run_launches_each_run_on_its_own_group_of_gpus(tmp_path, monkeypatch):
    """`experiment.gpus_per_run` 4 on 8 GPUs: two runs at a time under `accelerate launch
    --num_processes 4`, each on its own four GPUs and rendezvous port; too few GPUs fails naming the key."""
    import threading

    from sgpo_lib.workflow import sweep

    params = tmp_path / "p.yaml"
    params.write_text("seed: 0\n")
    seen, running, lock, train = [], set(), threading.Lock(), fake_train([])

    def fake_spawn(cmd, env, log_path):
        group = env["CUDA_VISIBLE_DEVICES"]
        with lock:
            assert group not in running, "two runs on the same GPUs"
            running.add(group)
        seen.append((group, cmd[cmd.index("--num_processes") + 1], cmd[cmd.index("--main_process_port") + 1]))
        assert cmd[cmd.index("--log_dir") + 1] == cmd[cmd.index("--out-dir") + 1] + "/launch"  # not /tmp
        overrides = dict(parse_assignment(a) for a in cmd[cmd.index("--set") + 1 :: 2])
        sweep.time.sleep(0.2)
        train(str(params), {**overrides, "distill.coef": 0.0}, sweep.Path(cmd[cmd.index("--out-dir") + 1]))
        with lock:
            running.discard(group)
        return 0

    monkeypatch.setattr(sweep, "_spawn", fake_spawn)
    monkeypatch.setattr(sweep, "_gpu_ids", lambda: [str(i) for i in range(8)])
    run_sweep(params, grid(seed=[0, 1, 2, 3]), tmp_path / "sweep", gpus_per_run=4)
    assert sorted({s[:2] for s in seen}) == [("0,1,2,3", "4"), ("4,5,6,7", "4")] and len(seen) == 4
    assert {s[2] for s in seen} == {"29500", "29501"}
    with pytest.raises(ValueError, match="experiment.gpus_per_run = 16, but 8 GPUs"):
        run_sweep(params, grid(seed=[0]), tmp_path / "sweep2", gpus_per_run=16)
