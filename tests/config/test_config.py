"""Params: every file validates; each kind of bad params fails early with a clear message."""

import dataclasses
import re
from pathlib import Path

import pytest

from sgpo_lib.config.run import ConfigError, RunConfig, apply_overrides, config_to_yaml, load_config
from sgpo_lib.config.schema import deep_merge
from sgpo_lib.core.paths import PARAMS_DIR

PARAMS = sorted(PARAMS_DIR.glob("*.yaml"))


@pytest.mark.parametrize("path", PARAMS, ids=[p.name for p in PARAMS])
def test_every_params_file_validates(path):
    from sgpo_lib.config.run import check_variants

    cfg = load_config(path)
    assert isinstance(cfg, RunConfig) and check_variants(cfg) is cfg  # and every run of its experiment


@pytest.mark.parametrize("path", PARAMS, ids=[p.name for p in PARAMS])
def test_every_key_has_a_comment(path):
    """Each `key:` line has a `#` comment on the line above (or is the extends line)."""
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)([A-Za-z_][\w.]*)\s*:", line)
        if not m or line.lstrip().startswith("#"):
            continue
        prev = lines[i - 1].strip() if i else ""
        assert prev.startswith("#"), f"{path.name}:{i + 1}: key '{m.group(2)}' has no comment line above"


def _write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_every_config_field_is_documented_in_base_yaml():
    """Each field of every section dataclass is a key of base.yaml, so the comment above that key
    (`test_every_key_has_a_comment`) is its documentation, written once."""
    import dataclasses
    import typing

    from sgpo_lib.config.schema import read_yaml

    def undocumented(cls, node, prefix):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            sub = node.get(f.name) if isinstance(node, dict) else None
            if dataclasses.is_dataclass(hints[f.name]):
                yield from undocumented(hints[f.name], sub, f"{prefix}{f.name}.")
            elif not isinstance(node, dict) or f.name not in node:
                yield prefix + f.name

    assert list(undocumented(RunConfig, read_yaml(PARAMS_DIR / "base.yaml"), "")) == []


def test_unknown_key_suggests_fix(tmp_path):
    p = _write(tmp_path, "distill:\n  cof: 0.5\n")
    with pytest.raises(ConfigError, match=r"p\.yaml.*unknown key 'distill.cof'.*did you mean 'distill.coef'"):
        load_config(p)


def test_unknown_section(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'distil'.*did you mean 'distill'"):
        load_config(_write(tmp_path, "distil:\n  coef: 1\n"))


def test_wrong_type_names_key(tmp_path):
    with pytest.raises(ConfigError, match=r"key 'train.steps': expected int, got str"):
        load_config(_write(tmp_path, "train:\n  steps: many\n"))
    with pytest.raises(ConfigError, match=r"key 'train.scale_rewards': expected bool"):
        load_config(_write(tmp_path, "train:\n  scale_rewards: 1\n"))


def test_bad_literal_suggests(tmp_path):
    with pytest.raises(ConfigError, match=r"'distill.estimator': 'ful' is not one of .*did you mean 'full'"):
        load_config(_write(tmp_path, "distill:\n  estimator: ful\n"))
    with pytest.raises(ConfigError, match=r"'distill.kl_clip_mode': 'token_max' is not one of .*did you mean 'token_m"):
        load_config(_write(tmp_path, "distill:\n  kl_clip_mode: token_max\n"))


def test_bad_combination_names_fix(tmp_path):
    text = "rollout:\n  backend: vllm\nmodel:\n  lora:\n    enabled: false\n"
    with pytest.raises(ConfigError, match=r"rollout.backend.*set model.lora.enabled: true"):
        load_config(_write(tmp_path, text))
    with pytest.raises(ConfigError, match=r"distill.teacher"):
        load_config(_write(tmp_path, "distill:\n  teacher: engine\n  estimator: full\n"))
    with pytest.raises(ConfigError, match=r"rollout.n_guided"):
        load_config(_write(tmp_path, "rollout:\n  n_guided: 0\ntrain:\n  method: sgpo\n"))


def test_missing_file():
    with pytest.raises(ConfigError, match=r"no_such\.yaml: params file not found"):
        load_config("params/no_such.yaml")


def test_malformed_yaml(tmp_path):
    with pytest.raises(ConfigError, match=r"p\.yaml: malformed YAML"):
        load_config(_write(tmp_path, "train:\n  steps: [1, 2\n"))


def test_extends_deep_merges(tmp_path):
    _write(tmp_path, "train:\n  steps: 7\n  lr: 0.5\n", "base.yaml")
    cfg = load_config(_write(tmp_path, "extends: base.yaml\ntrain:\n  lr: 0.25\n"))
    assert (cfg.train.steps, cfg.train.lr) == (7, 0.25)


def test_circular_extends(tmp_path):
    _write(tmp_path, "extends: b.yaml\n", "a.yaml")
    _write(tmp_path, "extends: a.yaml\n", "b.yaml")
    with pytest.raises(ConfigError, match="circular"):
        load_config(tmp_path / "a.yaml")


def test_overrides_and_their_errors(tmp_path):
    p = _write(tmp_path, "seed: 1\n")
    assert load_config(p, {"distill.coef": 0.5, "seed": 3}).distill.coef == 0.5
    with pytest.raises(ConfigError, match=r"overrides .*unknown key 'distill.cof'"):
        load_config(p, {"distill.cof": 0.5})


def test_lists_become_tuples_and_config_is_frozen(tmp_path):
    cfg = load_config(_write(tmp_path, "eval:\n  splits: [test]\n"))
    assert cfg.eval.splits == ("test",)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 3
    hash(cfg)


def test_digest_changes_with_any_setting(tmp_path):
    p = _write(tmp_path, "seed: 1\n")
    assert load_config(p).digest() == load_config(p).digest()
    assert load_config(p).digest() != load_config(p, {"distill.gamma": 2.0}).digest()


def test_merge_helpers():
    assert deep_merge({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}}) == {"a": {"b": 1, "c": 3}}
    assert apply_overrides({}, {"a.b": 1}) == {"a": {"b": 1}}


def test_yaml_12_booleans(tmp_path):
    """`on:` (distill.on) and `no` (mixed_precision) must not turn into booleans (YAML 1.1 trap)."""
    cfg = load_config(_write(tmp_path, "distill:\n  on: all\ntrain:\n  mixed_precision: no\n"))
    assert (cfg.distill.target, cfg.train.mixed_precision) == ("all", "no")  # distill.on: deprecated alias


def test_yaml_12_floats_in_files_and_overrides(tmp_path):
    """`lr: 1e-4` is how people write a learning rate: YAML 1.2 reads it as a float (1.1 as a string)."""
    from sgpo_lib.config.yaml12 import parse_assignment

    cfg = load_config(_write(tmp_path, "train:\n  lr: 1e-4\n  max_grad_norm: 5E+0\n  steps: 3\n"))
    assert (cfg.train.lr, cfg.train.max_grad_norm, cfg.train.steps) == (1e-4, 5.0, 3)
    assert parse_assignment("train.lr=3e-5") == ("train.lr", 3e-5)
    assert load_config(_write(tmp_path, "seed: 1\n"), dict([parse_assignment("train.lr=2e-3")])).train.lr == 2e-3


def test_empty_params_file_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"p\.yaml: the params file is empty"):
        load_config(_write(tmp_path, "# only a comment\n"))


def test_duplicate_keys_are_refused_with_both_lines(tmp_path):
    with pytest.raises(ConfigError, match=r"p\.yaml: malformed YAML: duplicate key 'lr' \(first on line 2\)(.|\n)*line 3"):
        load_config(_write(tmp_path, "train:\n  lr: 0.1\n  lr: 0.2\n"))
    with pytest.raises(ConfigError, match=r"duplicate key 'train'"):
        load_config(_write(tmp_path, "train:\n  lr: 0.1\ntrain:\n  steps: 2\n"))


@pytest.mark.parametrize("text, match", [
    ("experiment:\n  methods: []\n", r"'experiment.methods': must name at least one method"),
    ("eval:\n  max_problems: 0\n", r"'eval.max_problems': must be >= 1, or null"),
    ("experiment:\n  scaling_sizes: [tiny, huge]\n", r"'experiment.scaling_sizes': unknown sizes \['huge'\]"),
    ("experiment:\n  ablations: [distill.estimater=sampled]\n",
     r"experiment.ablate run .*unknown key 'distill.estimater' \(did you mean 'distill.estimator'"),
    ("experiment:\n  ablations: [distill.estimator=sampeld]\n", r"experiment.ablate run .*'sampeld' is not one of"),
    ("experiment:\n  ablation_seeds: [0]\n  ablations: [rollout.n_guided=0]\n",
     r"experiment.ablate run .*'rollout.n_guided': train.method 'sgpo' needs guided rollouts"),
])
def test_every_planned_run_is_validated_before_any_starts(tmp_path, text, match):
    from sgpo_lib.config.run import check_variants

    with pytest.raises(ConfigError, match=match):
        check_variants(load_config(_write(tmp_path, text)))


def test_a_sweep_points_config_is_not_checked_against_its_own_ablations(tmp_path):
    """The ablation `distill.estimator=sampled` is valid; its config must not be re-ablated with
    `distill.direction=reverse` (sampled + reverse is invalid, and is no run of the experiment)."""
    from sgpo_lib.config.run import check_variants

    p = _write(tmp_path, "experiment:\n  ablations: [distill.estimator=sampled, distill.direction=reverse]\n")
    check_variants(load_config(p))
    assert load_config(p, {"distill.estimator": "sampled"}).distill.estimator == "sampled"


def test_start_run_and_the_pipeline_check_every_planned_run(tmp_path):
    from sgpo_lib.workflow import pipeline
    from sgpo_lib.workflow.runs import start_run

    p = _write(tmp_path, f"output:\n  root: {tmp_path / 'out'}\nexperiment:\n  ablations: [distill.estimater=sampled]\n")
    for call in (lambda: start_run(p), lambda: pipeline.run_pipeline(p)):
        with pytest.raises(ConfigError, match=r"p\.yaml: experiment.ablate run .*did you mean 'distill.estimator'"):
            call()
    assert not (tmp_path / "out").exists()


def test_experiment_variants_cover_every_run(tmp_path):
    from sgpo_lib.config.run import experiment_variants

    cfg = load_config(_write(tmp_path, "experiment:\n  methods: [grpo, sgpo]\n  seeds: [0, 1]\n"
                                       "  ablations: [distill.coef=0]\n  scaling_sizes: [tiny]\n  scaling_seeds: [2]\n"))
    v = experiment_variants(cfg)
    assert v["main"] == [{"train.method": m, "seed": s} for m in ("grpo", "sgpo") for s in (0, 1)]
    assert v["ablate"] == [{"train.method": "sgpo", "distill.coef": 0, "seed": s} for s in (0, 1)]  # the main seeds
    assert len(v["scaling"]) == 2 and {r["student.size"] for r in v["scaling"]} == {"tiny"}
    assert v["unknowns"] == []  # no study unless experiment.unknowns names rows


def test_unknowns_rows_are_checked_like_ablations(tmp_path):
    from sgpo_lib.config.run import check_variants, experiment_variants

    cfg = load_config(_write(tmp_path, "experiment:\n  seeds: [0, 1]\n  ablations: [{x: {distill.coef: 0}}]\n"
                                       "  unknowns: [{x: {distill.coef: 0}}, {y: {train.mini_batches: 2}}]\n"))
    assert experiment_variants(cfg)["unknowns"][-1] == {"train.method": "sgpo", "train.mini_batches": 2, "seed": 1}
    with pytest.raises(ConfigError, match=r"experiment.unknowns.*rows \['x'\] are also ablations with other overrides"):
        load_config(_write(tmp_path, "experiment:\n  ablations: [{x: {distill.coef: 0}}]\n  unknowns: [{x: {distill.coef: 1}}]\n"))
    with pytest.raises(ConfigError, match=r"experiment.unknowns run .*unknown key 'distill.coeff'"):
        check_variants(load_config(_write(tmp_path, "experiment:\n  unknowns: [{z: {distill.coeff: 0}}]\n")))


def test_deprecated_names_are_read_as_the_new_ones_with_a_warning(tmp_path, caplog):
    text = "distill:\n  on: correct\n  is_clip_c: 3.0\n  proximal: clip\n  teacher: forward\ntrain:\n  method: hybrid\n"
    with caplog.at_level("WARNING", logger="sgpo_lib.config.schema"):
        cfg = load_config(_write(tmp_path, text))
    d = cfg.distill
    assert (d.target, d.is_clip_cap, d.proximal, d.teacher, cfg.train.method) == ("all_correct", 3.0, "ratio_clip",
                                                                                  "hidden", "luffy")
    said = caplog.text
    for new in ("distill.target", "distill.is_clip_cap", "distill.proximal=ratio_clip", "distill.teacher=hidden",
                "train.method=luffy"):
        assert new in said, new
    assert load_config(_write(tmp_path, "seed: 1\n"), {"distill.on": "all"}).distill.target == "all"
    methods = load_config(_write(tmp_path, "experiment:\n  methods: [sgpo, hybrid]\n")).experiment.methods
    assert methods == ("sgpo", "luffy")  # the old name inside a list too


def test_methods_are_the_literal_of_train_method_and_each_count_check_names_its_key(tmp_path):
    import typing

    from sgpo_lib.config.experiment import METHODS
    from sgpo_lib.config.run import TrainConfig

    assert METHODS == typing.get_args(typing.get_type_hints(TrainConfig)["method"])
    with pytest.raises(ConfigError, match="key 'rollout.n_guided': must be >= 0"):
        load_config(_write(tmp_path, "rollout:\n  n_guided: -1\n"))
    with pytest.raises(ConfigError, match="key 'rollout.n_autonomous': must be >= 0"):
        load_config(_write(tmp_path, "rollout:\n  n_autonomous: -1\n"))


def test_training_refuses_a_rollout_temperature_other_than_one(tmp_path):
    with pytest.raises(ConfigError, match=r"rollout.temperature.*must be 1.0"):
        load_config(_write(tmp_path, "rollout:\n  temperature: 0.7\n"))
    assert load_config(_write(tmp_path, "rollout:\n  temperature: 0.7\ntrain:\n  method: sft\n")).rollout.temperature == 0.7


def test_ablations_are_named_override_sets_or_legacy_strings(tmp_path):
    """`experiment.ablations`: `- name: {dotted.key: value, ...}` (one ablation may set several keys)
    or a legacy 'key=value' string, its own name; each name x ablation seed is one SGPO run."""
    from sgpo_lib.config.run import ablation_runs, experiment_variants

    cfg = load_config(_write(tmp_path, "experiment:\n  seeds: [0]\n  ablation_seeds: [3, 4]\n  ablations:\n"
                                       "    - direct SFT: {distill.estimator: sampled}\n"
                                       "    - two keys: {distill.coef: 0.5, distill.weighting: constant}\n"
                                       "    - distill.direction=reverse\n"))
    runs = ablation_runs(cfg)
    assert [n for n, _ in runs] == ["direct SFT"] * 2 + ["two keys"] * 2 + ["distill.direction=reverse"] * 2
    assert runs[2][1] == {"train.method": "sgpo", "distill.coef": 0.5, "distill.weighting": "constant", "seed": 3}
    assert experiment_variants(cfg)["ablate"] == [v for _, v in runs]
    assert hash(cfg) and load_config(_write(tmp_path, config_to_yaml(cfg), "again.yaml")) == cfg  # round trip


@pytest.mark.parametrize("entry, match", [
    ("distill.coef", r"'experiment.ablations\[0\]': 'distill.coef' is not an ablation; write each entry as"),
    ("{a: {distill.coef: 0}, b: {distill.coef: 1}}", r"experiment.ablations\[0\]"),
    ("{a: {}}", r"experiment.ablations\[0\]"),
    ("{a: distill.coef=0}", r"experiment.ablations\[0\]"),
])
def test_a_malformed_ablation_names_its_entry_and_the_shapes(tmp_path, entry, match):
    with pytest.raises(ConfigError, match=match):
        load_config(_write(tmp_path, f"experiment:\n  ablations: [{entry}]\n"))


def test_ablation_names_are_unique_and_overrides_are_checked_per_run(tmp_path):
    from sgpo_lib.config.run import check_variants

    with pytest.raises(ConfigError, match=r"names \['x'\] appear twice"):
        load_config(_write(tmp_path, "experiment:\n  ablations: [{x: {distill.coef: 0}}, {x: {distill.coef: 1}}]\n"))
    with pytest.raises(ConfigError, match=r"experiment.ablate run .*unknown key 'distill.coeff'"):
        check_variants(load_config(_write(tmp_path, "experiment:\n  ablations: [{x: {distill.coeff: 0}}]\n")))


def test_the_unknowns_study_maps_every_clip_form_and_delta_the_alpha_rule_the_target_score_and_mini_batches():
    """toy-unknowns: SGPO's defaults as the reference row, the paper's four matching ablations, then every
    KL clip form x delta in {0.25, 1, 4} (token_min at 1 is the reference), the stateless alpha rule, the
    sum score and 4 mini-batches with and without the proximal constraints; every row validated and
    trained over the three seeds."""
    import typing

    from sgpo_lib.config.run import DistillConfig, ablation_runs, check_variants, experiment_variants

    cfg = check_variants(load_config(PARAMS_DIR / "toy-unknowns.yaml"))
    assert cfg.experiment.methods == ("sgpo",) and cfg.experiment.seeds == (0, 1, 2) and not cfg.experiment.scaling_sizes
    d = cfg.distill
    assert (d.kl_clip_mode, d.kl_clip, d.weighting, d.target, d.target_score, cfg.train.mini_batches) == (
        "token_min", 1.0, "pass_gap", "select_one", "mean_logprob", 1)
    ablations = {name: dict(o) for entry in cfg.experiment.ablations for name, o in entry.items()}
    assert ablations == {"w/o proximal constraints": {"distill.kl_clip": None, "distill.target": "all_correct"},
                         "w/o KL clipping": {"distill.kl_clip": None}, "w/o target selection": {"distill.target": "all_correct"},
                         "w/o adaptive weighting": {"distill.weighting": "constant"}}
    rows = {name: dict(o) for entry in cfg.experiment.unknowns for name, o in entry.items()}
    forms = typing.get_args(typing.get_type_hints(DistillConfig)["kl_clip_mode"])
    grid = {(o["distill.kl_clip_mode"], o["distill.kl_clip"]) for o in rows.values() if "distill.kl_clip_mode" in o}
    assert grid | {("token_min", 1.0)} == {(f, delta) for f in forms for delta in (0.25, 1.0, 4.0)} and len(grid) == 11
    assert rows["alpha stateless"] == {"distill.weighting": "pass_gap_stateless"}
    assert rows["target score sum"] == {"distill.target_score": "sum_logprob"}
    assert rows["mini-batches 4"] == {"train.mini_batches": 4}
    assert rows["mini-batches 4, w/o proximal constraints"] == {"train.mini_batches": 4, **ablations["w/o proximal constraints"]}
    assert len(ablation_runs(cfg, "unknowns")) == len(experiment_variants(cfg)["unknowns"]) == 3 * len(rows) == 3 * 15


def _named_ablations(experiment) -> dict:
    return {name: dict(o) for entry in experiment.ablations for name, o in entry.items()}


def test_base_yaml_holds_the_papers_eight_ablations_once():
    """The overrides of the paper's ablations (§7) are written once, in base.yaml; no other params
    file repeats them (toy-smoke and real-cpu set lists of their own)."""
    from sgpo_lib.analysis import paper
    import yaml

    named = _named_ablations(load_config(PARAMS_DIR / "base.yaml").experiment)
    assert list(named) == list(paper.ABLATIONS)
    assert named["w/o proximal constraints"] == {"distill.kl_clip": None, "distill.target": "all_correct"}
    raw = {p.name: (yaml.safe_load(p.read_text()).get("experiment") or {}).get("ablations")  # as written, not merged
           for p in PARAMS_DIR.glob("*.yaml")}
    assert [name for name, ablations in raw.items() if ablations and name != "base.yaml"
            and {n: dict(o) for e in ablations for n, o in e.items()} == named] == []


def test_the_demo_runs_the_papers_main_rows_and_its_eight_ablations():
    """toy-demo: CONTRACT's main-table methods and §7's ablations (the names of paper.py's table, the
    overrides written once, in base.yaml), three seeds each (the ablations inherit the main table's)."""
    from sgpo_lib.config.experiment import ablation_seeds

    e = load_config(PARAMS_DIR / "toy-demo.yaml").experiment
    assert set(e.methods) == {"sft", "sft_grpo", "hpt", "luffy", "sgpo", "grpo"} and e.seeds == (0, 1, 2)
    assert _named_ablations(e) == _named_ablations(load_config(PARAMS_DIR / "base.yaml").experiment)
    assert ablation_seeds(e) == (0, 1, 2)  # ablation_seeds null: the main table's seeds
    smoke = load_config(PARAMS_DIR / "toy-smoke.yaml").experiment
    assert len(smoke.seeds) == 1 and len(smoke.ablations) == 2 and ablation_seeds(smoke) == (0,)


# ---------------------------------------------------------------- extends, as an attacker would (issue 27, item 8)


def test_extends_of_a_file_outside_the_repository_never_prints_its_content(tmp_path):
    secret = tmp_path / "shadow"
    secret.write_text("root:x:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n")
    for text in (secret.read_text(), "password: hunter2\n", "a: [unclosed\n"):
        secret.write_text(text)
        with pytest.raises(ConfigError) as e:
            load_config(_write(tmp_path, f"extends: {secret}\n"))
        assert str(secret) in str(e.value)
        message = str(e.value).replace(str(tmp_path), "")
        assert "root" not in message and "hunter2" not in message and "password" not in message
        assert "unclosed" not in message


def test_extends_of_an_unreadable_file_names_the_path_and_the_reason(tmp_path):
    import os

    secret = tmp_path / "shadow"
    secret.write_text("root: x\n")
    secret.chmod(0)
    if os.access(secret, os.R_OK):  # root reads anything: a binary file instead
        secret.write_bytes(b"\xff\xfe\x00 root")
    with pytest.raises(ConfigError, match=rf"{secret}: cannot be read as a params file \(") as e:
        load_config(_write(tmp_path, f"extends: {secret}\n"))
    assert "root" not in str(e.value).replace(str(tmp_path), "")


@pytest.mark.parametrize("value", ["[base.yaml, other.yaml]", "3", "{a: 1}", "''"])
def test_extends_must_name_one_file(tmp_path, value):
    with pytest.raises(ConfigError, match=r"p\.yaml: 'extends' must name one params file \(a string"):
        load_config(_write(tmp_path, f"extends: {value}\n"))


@pytest.mark.parametrize("params", ["params/real-base.yaml", "params/qwen2.5-1.5b-math.yaml", "params/qwen2.5-7b-math.yaml",
                                    "params/llama3.1-8b-math.yaml"])
def test_the_real_params_follow_the_paper(params):
    """The paper's eight ablations by its names and overrides (§7), three seeds; avg@k and the
    sampling of §8; gradient checkpointing and PPO mini-batches on."""
    from sgpo_lib.config.experiment import ablation_seeds

    cfg = load_config(params)
    assert _named_ablations(cfg.experiment) == _named_ablations(load_config(PARAMS_DIR / "base.yaml").experiment)
    assert list(ablation_seeds(cfg.experiment)) == [0, 1, 2]
    assert cfg.eval.k_map == {"math500": 4, "amc23": 32, "olympiadbench": 4, "aime24": 32}
    assert (cfg.eval.temperature, cfg.eval.top_p, cfg.rollout.temperature) == (0.6, 0.95, 1.0)
    assert cfg.model.gradient_checkpointing and cfg.train.mini_batches == 4 and cfg.train.micro_batch_tokens


def test_the_power_preset_is_the_demos_main_table_with_five_seeds_and_four_times_the_test_problems():
    """toy-power (issue 25, item 5): everything the demo sets, the calibration and the RL budget
    included, except the test split (256 per family), the seeds (0-4) and no ablations or scaling."""
    import dataclasses

    demo, power = load_config(PARAMS_DIR / "toy-demo.yaml"), load_config(PARAMS_DIR / "toy-power.yaml")
    assert (power.world.n_test, power.experiment.seeds) == (4 * demo.world.n_test, (0, 1, 2, 3, 4))
    assert power.experiment.methods == demo.experiment.methods
    assert not power.experiment.ablations and not power.experiment.scaling_sizes
    same_world = dataclasses.replace(power.world, n_test=demo.world.n_test)
    same_experiment = dataclasses.replace(power.experiment, seeds=demo.experiment.seeds, ablations=demo.experiment.ablations,
                                          scaling_sizes=demo.experiment.scaling_sizes)
    assert dataclasses.replace(power, world=same_world, experiment=same_experiment) == demo
