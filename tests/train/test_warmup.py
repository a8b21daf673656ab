"""The SFT warm-up (sgpo-method.md §0): a fixed, disjoint split by world_seed; fraction 0 is
today's behaviour; the cache folder follows the settings that change the weights; and a tiny
end-to-end warm-up on a toy student gives a full model folder equal to base + adapter, found
again as a cache hit, waited for while another process builds it, and refused when damaged."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from types import SimpleNamespace

import pytest

from sgpo_lib.config.run import ConfigError, load_config
from sgpo_lib.core import fileio
from sgpo_lib.core.records import Problem
from sgpo_lib.train import warmup
from sgpo_lib.workflow import assets

TINY = """
output: {{root: "{root}"}}
world: {{n_train: 4, n_test: 2, n_ood: 2}}
student: {{size: tiny}}
pretrain: {{steps: 4, batch_size: 4, warmup_steps: 1}}
rollout: {{max_new_tokens: 8}}
train: {{warmup_sft_fraction: 0.5, warmup_sft_epochs: 2, batch_problems: 4, lr: 0.01}}
eval: {{k: 1, max_problems: 1}}
"""


def _problems(n_per_source=9, sources=("toy/sum", "toy/mul")):
    return [Problem(f"{s}/{i}", f"q{i}", "1", s, "train", strong_response="1") for s in sources for i in range(n_per_source)]


def test_split_is_disjoint_deterministic_and_stratified():
    ps = _problems()
    warm, rest = warmup.split(ps, 1 / 3, world_seed=0)
    assert {p.id for p in warm}.isdisjoint(p.id for p in rest) and len(warm) + len(rest) == len(ps)
    assert Counter(p.source for p in warm) == {"toy/sum": 3, "toy/mul": 3}  # a third of each source
    assert [p.id for p in warm] == [p.id for p in ps if p in warm]  # input order kept
    again, _ = warmup.split(list(reversed(ps)), 1 / 3, world_seed=0)
    assert {p.id for p in again} == {p.id for p in warm}  # the same subset whatever the order
    other, _ = warmup.split(ps, 1 / 3, world_seed=1)
    assert {p.id for p in other} != {p.id for p in warm}
    assert warmup.split(ps, 0.0, 0) == ([], ps)
    with pytest.raises(ValueError, match=r"train.warmup_sft_fraction 0.01 of 18 .* leaves 0 for the warm-up"):
        warmup.split(ps, 0.01, 0)


def test_fraction_is_validated(tmp_path):
    for bad in ("warmup_sft_fraction: 1.0", "warmup_sft_fraction: -0.1", "warmup_sft_epochs: 0"):
        (tmp_path / "p.yaml").write_text(f"train: {{{bad}}}\n")
        with pytest.raises(ConfigError, match=r"key 'train.warmup_sft_(fraction|epochs)'"):
            load_config(tmp_path / "p.yaml")


def _cfg(tmp_path, **overrides):
    (tmp_path / "p.yaml").write_text(TINY.format(root=tmp_path / "out"))
    return load_config(tmp_path / "p.yaml", overrides)


def test_fraction_zero_is_todays_model_dir_and_problems(tmp_path, monkeypatch):
    monkeypatch.setattr(assets, "strategy_library", lambda cfg: (SimpleNamespace(for_problem=lambda p, retrieve: None), Counter()))
    monkeypatch.setattr(assets, "student_dir", lambda cfg, size=None: tmp_path / "base-student")
    monkeypatch.setattr(warmup, "prepare", lambda *a: pytest.fail("no warm-up may be built"))
    everything = assets.problems(_cfg(tmp_path))["train"]
    for method in ("sgpo", "grpo", "sft"):
        data = assets.train_data(_cfg(tmp_path, **{"train.warmup_sft_fraction": 0, "train.method": method}))
        assert data.model_dir == tmp_path / "base-student" and data.train == everything
    assert assets.build_warmup(_cfg(tmp_path, **{"train.warmup_sft_fraction": 0}))["warm-up"].startswith("off")
    grpo = assets.train_data(_cfg(tmp_path, **{"train.method": "grpo"}))  # warm-up on: grpo starts from the base
    sft = assets.train_data(_cfg(tmp_path, **{"train.method": "sft"}))
    assert grpo.model_dir == tmp_path / "base-student" and len(grpo.train) == len(sft.train) == len(everything) // 2
    assert {p.id for p in grpo.train}.isdisjoint(p.id for p in sft.train)  # sft: the warm-up problems


def test_cache_folder_follows_what_changes_the_weights(tmp_path):
    cfg = _cfg(tmp_path)
    warm, _ = warmup.split(assets.problems(cfg)["train"], 0.5, cfg.world_seed)
    key = warmup.folder(cfg, tmp_path / "base", warm)
    for same in ({"seed": 3}, {"train.method": "grpo"}, {"distill.coef": 0.0}, {"eval.k": 3}, {"train.steps": 99}):
        assert warmup.folder(_cfg(tmp_path, **same), tmp_path / "base", warm) == key, same
    for changed in ({"train.warmup_sft_epochs": 3}, {"train.lr": 0.5}, {"model.lora.r": 4}, {"world_seed": 1}):
        assert warmup.folder(_cfg(tmp_path, **changed), tmp_path / "base", warm) != key, changed
    assert warmup.folder(cfg, tmp_path / "other-base", warm) != key and warmup.folder(cfg, tmp_path / "base", warm[1:]) != key


def _logits(model, ids):
    """Logits of a model, or of the model folder at `model`."""
    import torch
    from transformers import AutoModelForCausalLM

    model = model if isinstance(model, torch.nn.Module) else AutoModelForCausalLM.from_pretrained(model)
    with torch.no_grad():
        return model(input_ids=ids).logits


@pytest.mark.integration
@pytest.mark.timeout(900)
def test_tiny_warmup_end_to_end(tmp_path, monkeypatch):
    """Warm-up on a toy student: a killed build resumes, merged full model = base + adapter, cache hit,
    damaged cache refused."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from sgpo_lib.train.trainer import Trainer

    torch.set_num_threads(1)
    cfg = _cfg(tmp_path)
    base = assets.student_dir(cfg)
    merge = warmup._merge
    monkeypatch.setattr(warmup, "_merge", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt("killed")))
    with pytest.raises(KeyboardInterrupt):  # killed after training, before the model was in place
        assets.build_warmup(cfg)
    monkeypatch.setattr(warmup, "_merge", merge)
    monkeypatch.setattr(Trainer, "train_step", lambda *a: pytest.fail("the finished SFT run must resume, not retrain"))
    row = assets.build_warmup(cfg)
    monkeypatch.undo()
    assert (row["warm-up problems"], row["RL problems"], row["steps"], row["cache"]) == (8, 8, 4, "built now")
    model = assets.train_data(cfg).model_dir
    out = model.parent
    assert model.name == "model" and not (model / "adapter_config.json").exists() and (model / "config.json").exists()
    assert [r["step"] for r in fileio.read_jsonl(out / "run" / "metrics.jsonl")] == [0, 1, 2, 3, 4]
    assert not (out / "run" / "checkpoints").exists() and fileio.read_json(out / warmup.META_FILE)["steps"] == 4
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    with_adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), out / "run" / "final")
    torch.testing.assert_close(_logits(model, ids), _logits(with_adapter, ids), rtol=1e-4, atol=1e-4)
    assert not torch.allclose(_logits(model, ids), _logits(base, ids), atol=1e-3)  # SFT moved the weights

    monkeypatch.setattr(warmup, "_build", lambda *a: pytest.fail("a cache hit must not train"))
    assert assets.build_warmup(cfg)["cache"] == "hit" and assets.train_data(cfg).model_dir == model
    (model / "model.safetensors").write_bytes(b"not a model")
    with pytest.raises(RuntimeError, match=r"model\.safetensors: cannot be read"):
        assets.train_data(cfg)


HOLD = "import sys, time\nfrom sgpo_lib.core.locks import run_lock\nwith run_lock(sys.argv[1]):\n print('held', flush=True)\n time.sleep(2)"


def test_a_second_process_waits_for_the_build(tmp_path, monkeypatch):
    cfg = _cfg(tmp_path)
    warm, _ = warmup.split(assets.problems(cfg)["train"], 0.5, cfg.world_seed)
    out = warmup.folder(cfg, tmp_path / "base", warm)
    built = []
    monkeypatch.setattr(warmup, "LOCK_POLL_S", 0.1)
    monkeypatch.setattr(warmup, "_build", lambda *a: built.append(a) or fileio.write_json(out / warmup.META_FILE, {}))
    monkeypatch.setattr(warmup, "_check_complete", lambda out: None)
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        start = time.monotonic()
        assert warmup.prepare(cfg, tmp_path / "base", warm, []) == out and len(built) == 1
        assert time.monotonic() - start > 1.5  # it waited for the holder (2 s) instead of failing
    finally:
        proc.kill()
        proc.wait()


def test_full_fine_tuning_keeps_the_trained_folder(tmp_path, tiny_model_dir):
    """Without LoRA the SFT run's final folder is already a full model: it becomes the warm-up model as is."""
    cfg = _cfg(tmp_path, **{"model.lora.enabled": False})
    warmup._merge(cfg, tmp_path / "unused-base", tiny_model_dir, tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == sorted(p.name for p in tiny_model_dir.iterdir())
    assert (tmp_path / "model" / "model.safetensors").read_bytes() == (tiny_model_dir / "model.safetensors").read_bytes()


def test_a_sweep_builds_each_warmup_once_before_its_runs(tmp_path, monkeypatch):
    from sgpo_lib.workflow import stages

    cfg = _cfg(tmp_path)
    (tmp_path / "config.yaml").write_text((tmp_path / "p.yaml").read_text())
    built, order = [], []
    monkeypatch.setattr(assets, "student_dir", lambda cfg, size=None: tmp_path / f"student-{cfg.student.size}")
    monkeypatch.setattr(warmup, "prepare", lambda cfg, base, warm, evals: built.append(base) or base / "warm")
    monkeypatch.setattr(stages, "run_sweep", lambda *a, **kw: order.append(list(built)))
    variants = [{"train.method": m, "seed": s} for m in ("grpo", "sgpo", "sft") for s in (0, 1)]
    variants += [{"train.method": "sgpo", "distill.coef": 0, "seed": 0}, {"train.method": "sgpo", "student.size": "base", "seed": 0}]
    stages._sweep(cfg, tmp_path, "main", variants)
    assert order == [built] and set(built) == {tmp_path / "student-tiny", tmp_path / "student-base"}  # before the runs
    assert assets.prepare_warmups(str(tmp_path / "config.yaml"), variants) == [tmp_path / "student-tiny" / "warm" / "model",
                                                                                 tmp_path / "student-base" / "warm" / "model"]


def test_a_damaged_cached_warmup_names_the_whole_entry_to_delete(tmp_path):
    """Deleting only `model/` would leave `warmup.json`, and the next run would fail again."""
    out = tmp_path / "warmup" / "abc"
    (out / "model").mkdir(parents=True)
    (out / "model" / "config.json").write_text("{}")
    (out / "model" / "model.safetensors").write_bytes(b"not a model")
    fileio.write_json(out / warmup.META_FILE, {})
    with pytest.raises(RuntimeError, match=rf"model\.safetensors: cannot be read .* delete {out} and run again"):
        warmup._check_complete(out)
