"""Tests of the toy base students: pretraining, saved folders, cache, determinism, premise table."""

from __future__ import annotations

import dataclasses
import json

import pytest

torch = pytest.importorskip("torch")

from sgpo_lib.config.toy_presets import toy_preset
from sgpo_lib.toy import (
    PretrainConfig,
    StudentConfig,
    ToyWorldConfig,
    family_strategies,
    generate_world,
    premise_table,
    prepare_student,
)
from sgpo_lib.toy import students as students_mod
from sgpo_lib.toy.pretrain import build_model, pretrain
from sgpo_lib.toy.tokenizer import build_tokenizer

WORLD = ToyWorldConfig(n_train=4, n_test=4, n_ood=4)
TINY = StudentConfig(size="tiny")
QUICK = PretrainConfig(steps=4, batch_size=4, warmup_steps=1)
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory):
    torch.set_num_threads(1)
    return prepare_student(WORLD, TINY, QUICK, seed=0, cache_dir=tmp_path_factory.mktemp("cache"))


def load_tensors(folder) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_folder_is_an_ordinary_model_folder(student_dir):
    names = {p.name for p in student_dir.iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
            "toy_student.json"} <= names
    config = json.loads((student_dir / "config.json").read_text())
    assert config["model_type"] == "qwen2" and config["hidden_size"] // config["num_attention_heads"] == 64
    assert not any(p.name.startswith(".") for p in student_dir.parent.iterdir())  # no temp folder left


def test_folder_loads_with_auto_classes_and_generates(student_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sgpo_lib.data.prompts import render, unguided_messages

    model = AutoModelForCausalLM.from_pretrained(student_dir)
    tok = AutoTokenizer.from_pretrained(student_dir)
    problem = generate_world(WORLD, 0)["test"][0]
    enc = tok(render(tok, unguided_messages(problem, WORLD.instruction)), return_tensors="pt", add_special_tokens=False)
    out = model.generate(**enc, max_new_tokens=5, do_sample=False, pad_token_id=tok.pad_token_id)
    assert out.shape[1] == enc["input_ids"].shape[1] + 5 or out[0, -1].item() == tok.eos_token_id


def test_peft_lora_attaches_to_every_projection(student_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(student_dir),
                           LoraConfig(r=4, lora_alpha=8, target_modules=LORA_TARGETS))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert {t for t in LORA_TARGETS if any(f"{t}.lora_A" in n for n in trainable)} == set(LORA_TARGETS)


def test_same_seed_gives_identical_weights_and_other_seed_differs(student_dir, tmp_path):
    again = prepare_student(WORLD, TINY, QUICK, seed=0, cache_dir=tmp_path)
    first, second = load_tensors(student_dir), load_tensors(again)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    other = load_tensors(prepare_student(WORLD, TINY, QUICK, seed=1, cache_dir=tmp_path))
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_second_preparation_comes_from_the_cache(student_dir, monkeypatch):
    def no_rebuild(*args, **kwargs):
        raise AssertionError("the cached student was rebuilt")

    monkeypatch.setattr(students_mod, "build_student", no_rebuild)
    assert prepare_student(WORLD, TINY, QUICK, seed=0, cache_dir=student_dir.parent) == student_dir
    changed = dataclasses.replace(QUICK, lr=QUICK.lr / 2)
    with pytest.raises(AssertionError, match="rebuilt"):
        prepare_student(WORLD, TINY, changed, seed=0, cache_dir=student_dir.parent)


def test_cache_key_ignores_the_extractor_but_not_the_world():
    key = students_mod.cache_key
    spec = students_mod.student_spec
    base = key(spec(WORLD, TINY, QUICK, 0))
    assert key(spec(dataclasses.replace(WORLD, extractor_fault_rate=0.5), TINY, QUICK, 0)) == base
    assert key(spec(dataclasses.replace(WORLD, instruction="Answer in \\boxed{}."), TINY, QUICK, 0)) != base
    assert key(spec(WORLD, TINY, QUICK, 1)) != base


def test_tiny_pretraining_reduces_the_loss():
    torch.set_num_threads(1)
    tok = build_tokenizer()
    model = build_model(TINY, tok, seed=0)
    losses = pretrain(model, tok, WORLD, PretrainConfig(steps=40, batch_size=8, warmup_steps=4, lr=3e-3), seed=0)
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5


def test_premise_table_has_one_row_per_split_and_family(student_dir):
    world = generate_world(WORLD, 0)
    table = premise_table(student_dir, world["test"][:2] + world["ood"][-2:], family_strategies(), max_new_tokens=4)
    assert list(table.columns) == ["split", "family", "n", "unguided", "guided", "gap"]
    assert set(zip(table.split, table.family)) == {("test", "sum"), ("test", "mean"), ("ood", "linear"), ("ood", "mean")}
    assert table.unguided.between(0, 1).all() and table.guided.between(0, 1).all()


@pytest.mark.slow
def test_demo_student_satisfies_the_premise():
    """guided greedy accuracy >= unguided + 0.2 on held-out test problems, unguided > 0."""
    world_cfg, student_cfg, pretrain_cfg = toy_preset("demo")
    world = generate_world(world_cfg, 0)
    folder = prepare_student(world_cfg, student_cfg, pretrain_cfg, seed=0)
    table = premise_table(folder, world["test"], family_strategies(world_cfg.families), instruction=world_cfg.instruction)
    mean = table[table.family == "mean"].iloc[0]
    assert mean.unguided > 0 and mean.guided >= mean.unguided + 0.2, table.to_string()


def test_deepened_student_computes_its_parents_function():
    from sgpo_lib.toy.pretrain import deepen

    tok = build_tokenizer()
    parent = build_model(StudentConfig(size="small"), tok, seed=0)
    grown = deepen(parent, StudentConfig(size="base"), tok, seed=0)
    assert grown.config.num_hidden_layers == parent.config.num_hidden_layers + 1
    ids = torch.tensor([tok("Evaluate 12+3.")["input_ids"]])
    with torch.no_grad():
        torch.testing.assert_close(grown(ids).logits, parent(ids).logits, rtol=0, atol=1e-5)


def test_grown_size_is_built_from_its_cached_parent(tmp_path, monkeypatch):
    small = prepare_student(WORLD, StudentConfig(size="small"), QUICK, seed=0, cache_dir=tmp_path)
    built = []
    real_build = students_mod.build_student
    monkeypatch.setattr(students_mod, "build_student", lambda *a, **k: built.append(a[1].size) or real_build(*a, **k))
    base = prepare_student(WORLD, StudentConfig(size="base"), dataclasses.replace(QUICK, grow_steps=3), seed=0, cache_dir=tmp_path)
    assert built == ["base"]  # the parent came from the cache
    meta = json.loads((base / "toy_student.json").read_text())
    assert meta["student"]["grown_from"] == "small" and json.loads((base / "config.json").read_text())["num_hidden_layers"] == 4
    # the parent's cache key does not depend on the growth settings
    assert prepare_student(WORLD, StudentConfig(size="small"), dataclasses.replace(QUICK, grow_steps=3), 0, tmp_path) == small


def test_completion_loss_is_the_models_own_loss():
    from sgpo_lib.toy.pretrain import MixtureSampler, completion_loss

    tok = build_tokenizer()
    model = build_model(TINY, tok, seed=0)
    ids_B_T, mask_B_T, labels_B_T = next(MixtureSampler(WORLD, QUICK, tok, 0).batches(4, tok.pad_token_id))
    with torch.no_grad():
        torch.testing.assert_close(completion_loss(model, ids_B_T, mask_B_T, labels_B_T),
                                   model(input_ids=ids_B_T, attention_mask=mask_B_T, labels=labels_B_T).loss)
