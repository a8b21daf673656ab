"""Every numeric config key has a finite range with a reason, checked when the params load:
the extreme values of the second attack campaign (issue 27, item 4) fail naming the key."""

import dataclasses
import typing

import pytest

from sgpo_lib.config.run import ConfigError, RunConfig, check_variants, limits, load_config


@pytest.fixture
def params(tmp_path):
    p = tmp_path / "exp.yaml"
    p.write_text("seed: 3\n")
    return p


def _numeric_keys(cls, prefix=""):
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            yield from _numeric_keys(tp, f"{prefix}{f.name}.")
        elif {int, float} & set(typing.get_args(tp) + (tp,)) or any(
                {int, float} & set(typing.get_args(a)) for a in typing.get_args(tp)):
            yield prefix + f.name


def test_every_numeric_key_of_the_schema_has_a_range_with_a_reason():
    keys = set(_numeric_keys(RunConfig))
    assert {"train.steps", "experiment.seeds", "rollout.kv_cache_gib", "output.keep_checkpoints"} <= keys
    assert keys == set(limits.RANGES), (keys - set(limits.RANGES), set(limits.RANGES) - keys)
    for key, (low, high, why) in limits.RANGES.items():
        assert low <= high and high < float("inf") and len(why) > 5, key


@pytest.mark.parametrize("key, value", [
    ("train.batch_problems", 10**9), ("rollout.max_new_tokens", 10**9), ("train.steps", 10**12),
    ("grading.workers", 10**5), ("eval.temperature", float("inf")), ("train.lr", float("inf")),
    ("distill.coef", float("inf")), ("distill.coef", float("nan")), ("output.keep_checkpoints", 0),
    ("output.keep_checkpoints", -1), ("experiment.seeds", [0, -1]), ("distill.kl_clip", float("-inf")),
])
def test_extreme_values_fail_naming_the_key(params, key, value):
    with pytest.raises(ConfigError, match=f"key '{key}'"):
        load_config(params, {key: value})


def test_inf_written_in_yaml_is_refused(tmp_path):
    p = tmp_path / "inf.yaml"
    p.write_text("train:\n  lr: .inf\n")
    with pytest.raises(ConfigError, match=r"key 'train.lr': inf is not a finite number"):
        load_config(p)


def test_completion_lengths_must_fit_the_models_context(params):
    with pytest.raises(ConfigError, match=r"key 'rollout.max_new_tokens': 1024 new tokens .* context of 1024 "
                                          r"\(student.max_position_embeddings\)"):
        load_config(params, {"rollout.max_new_tokens": 1024})
    with pytest.raises(ConfigError, match=r"key 'eval.max_new_tokens'.*rollout.max_model_len"):
        load_config(params, {"model.source": "tiny", "eval.max_new_tokens": 4096})
    assert load_config(params, {"rollout.max_new_tokens": 900}).rollout.max_new_tokens == 900


def test_grading_workers_are_bounded_by_the_machines_cores_where_work_starts(params, monkeypatch, tmp_path):
    from sgpo_lib.workflow.runs import start_run
    from sgpo_lib.workflow.stages import train_variant

    monkeypatch.setattr(limits, "cores", lambda: 2)
    assert check_variants(load_config(params, {"grading.workers": 8})).grading.workers == 8
    nine = load_config(params, {"grading.workers": 9})  # a config made on a larger machine still loads
    with pytest.raises(ConfigError, match=r"key 'grading.workers': 9 grading processes on 2 cores; give at most 8"):
        check_variants(nine)
    with pytest.raises(ConfigError, match=r"key 'grading.workers'"):
        start_run(params, {"grading.workers": 9, "output.root": str(tmp_path / "out")})
    with pytest.raises(ConfigError, match=r"key 'grading.workers'"):
        train_variant(str(params), {"grading.workers": 9}, tmp_path / "out" / "t")
    assert not (tmp_path / "out").exists()


def test_an_ablation_with_an_extreme_value_fails_with_the_params(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("experiment:\n  ablations:\n    - huge: {train.steps: 1000000000000}\n")
    with pytest.raises(ConfigError, match=r"experiment.ablate run .*key 'train.steps'"):
        check_variants(load_config(p), str(p))
