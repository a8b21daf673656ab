"""Params: every file validates; each kind of bad params fails early with a clear message."""

import re
from pathlib import Path

import pytest

from sgpo_lib.config import ConfigError, RunConfig, apply_overrides, deep_merge, load_config
from sgpo_lib.paths import PARAMS_DIR

PARAMS = sorted(PARAMS_DIR.glob("*.yaml"))


@pytest.mark.parametrize("path", PARAMS, ids=[p.name for p in PARAMS])
def test_every_params_file_validates(path):
    cfg = load_config(path)
    assert isinstance(cfg, RunConfig)


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
    with pytest.raises(Exception):
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
    assert (cfg.distill.on, cfg.train.mixed_precision) == ("all", "no")
