"""Check the toy world's premise: guided greedy accuracy well above unguided, unguided above 0.

For each held-out problem the student answers twice with greedy decoding: under the
unguided prompt `prompt(x)` and under the guided prompt `prompt(x, s)` with the canonical
strategy of the procedure its strong response used (sgpo-method.md, Notation). Prompts come
from `sgpo_lib.data.prompts`, rendered with the student's chat template, as in training.
Grading is the toy world's exact match of the last `\\boxed{}` (the shared grader's rule for
`answer_kind="exact"`), kept local so this module needs no other part of the library.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from ..core.records import Problem, Strategy
from ..data.prompts import guided_messages, render, unguided_messages

BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
DEFAULT_MAX_NEW_TOKENS = 200
DEFAULT_BATCH_SIZE = 64


def exact_reward(text: str, answer: str) -> float:
    """1.0 when the last `\\boxed{...}` in `text` equals `answer` (stripped), else 0.0."""
    found = BOXED.findall(text)
    return float(bool(found) and found[-1].strip() == answer.strip())


def greedy_complete(model, tokenizer, prompts: Sequence[str], max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
                    batch_size: int = DEFAULT_BATCH_SIZE) -> list[str]:
    """Greedy completions (special tokens removed) of already-rendered prompts, in order."""
    out: list[str] = []
    for i in range(0, len(prompts), batch_size):
        enc = tokenizer(list(prompts[i : i + batch_size]), add_special_tokens=False, padding=True,
                        padding_side="left", return_tensors="pt")
        with torch.no_grad():
            ids_B_T = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                     eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        new_B_T = ids_B_T[:, enc["input_ids"].shape[1] :]  # (B, T) completion tokens only
        out += tokenizer.batch_decode(new_B_T, skip_special_tokens=True)
    return out


def strategy_for(problem: Problem, strategies: dict[str, list[Strategy]]) -> Strategy:
    """The strategy of `problem`'s own strong response (by id), else the first of its type."""
    candidates = strategies.get(problem.meta.get("problem_type", ""), [])
    if not candidates:
        raise KeyError(f"problem {problem.id}: no strategy of type {problem.meta.get('problem_type')!r}")
    wanted = problem.meta.get("strategy_id")
    return next((s for s in candidates if s.id == wanted), candidates[0])


def load_student(model_dir: str | Path):
    """(model in eval mode, tokenizer) from a saved toy student folder."""
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    return model, AutoTokenizer.from_pretrained(model_dir)


def summarise(frame):
    """Per (split, family) accuracy unguided vs guided, then a macro-average row per split.

    `frame` has one row per graded answer: split, family, guided (bool), reward.
    """
    stats = frame.groupby(["split", "family", "guided"], sort=False)["reward"].agg(["mean", "size"]).unstack("guided")
    table = pd.DataFrame({"n": stats[("size", False)], "unguided": stats[("mean", False)],
                          "guided": stats[("mean", True)]}).reset_index()
    parts = []
    for split, part in table.groupby("split", sort=False):
        macro = {"split": split, "family": "mean", "n": part["n"].sum(),
                 "unguided": part["unguided"].mean(), "guided": part["guided"].mean()}
        parts.append(pd.concat([part, pd.DataFrame([macro])], ignore_index=True))
    table = pd.concat(parts, ignore_index=True)
    table["gap"] = table["guided"] - table["unguided"]
    return table[["split", "family", "n", "unguided", "guided", "gap"]]


def premise_table(model_dir: str | Path | None, problems: Sequence[Problem], strategies: dict[str, list[Strategy]],
                  instruction: str = "", max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
                  batch_size: int = DEFAULT_BATCH_SIZE, model_and_tokenizer=None):
    """Greedy accuracy per (split, family), unguided vs guided, plus a macro-average row per split.

    Returns a DataFrame with columns split, family, n, unguided, guided, gap (accuracies in
    [0, 1]; gap = guided - unguided). `model_and_tokenizer` reuses an already loaded pair
    instead of loading `model_dir`.
    """
    model, tok = model_and_tokenizer or load_student(model_dir)
    unguided = [render(tok, unguided_messages(p, instruction)) for p in problems]
    guided = [render(tok, guided_messages(p, strategy_for(p, strategies), instruction)) for p in problems]
    texts = greedy_complete(model, tok, unguided + guided, max_new_tokens, batch_size)
    rows = [{"split": p.split, "family": p.meta.get("family", p.source), "guided": g, "reward": exact_reward(t, p.answer)}
            for g, chunk in ((False, texts[: len(problems)]), (True, texts[len(problems) :]))
            for p, t in zip(problems, chunk)]
    return summarise(pd.DataFrame(rows))
