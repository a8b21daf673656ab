"""The toy students' tokenizer: a small byte-level BPE in Qwen2's format, digits one token each.

Built locally with `tokenizers`: the exact pipeline of transformers' `Qwen2Tokenizer` (NFC,
Qwen2's pre-tokenization regex, byte-level BPE), with merges learned on a fixed corpus of the
toy world's own texts (strategy wordings, problems, strong responses, executions). Frequent
words become one token; Qwen2's regex keeps every digit its own token, which keeps digit
arithmetic learnable. Any text still tokenizes (byte level) and decoding is exact.
Special tokens: chat roles, end of turn (= eos) and padding.

Why Qwen2's format: for a `model_type: qwen2` folder, transformers 5 (and so vLLM) loads the
tokenizer as `Qwen2Tokenizer`, rebuilding the Qwen2 pipeline from the saved vocab and merges
whatever pipeline was saved; a tokenizer of any other shape would silently change on reload.
Why not characters: the strategy block is in every guided prompt; at one token per character
pretraining was several times slower. Saved with `save_pretrained` and a Jinja chat
template, so `AutoTokenizer`, `apply_chat_template` (hence `sgpo_lib.data.prompts.render`) and
vLLM treat it like any other model's tokenizer.

Example:
    >>> tok = build_tokenizer()
    >>> tok.convert_ids_to_tokens(tok("Evaluate 12+3.")["input_ids"])
    ['Evaluate', 'Ġ', '1', '2', '+', '3', '.']
"""

from __future__ import annotations

import json
import random

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX, Qwen2Tokenizer

from ..data.prompts import DEFAULT_INSTRUCTION, guided_messages
from .families import FAMILIES
from .wording import make_strategy
from .world import make_problem

PAD, EOS = "<|pad|>", "<|end|>"
ROLES = ("system", "user", "assistant")
ROLE_TOKENS = [f"<|{r}|>" for r in ROLES]
SPECIAL_TOKENS = [PAD, EOS] + ROLE_TOKENS
# One turn per message: <|role|>content<|end|>; the generation prompt opens an assistant turn.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|assistant|>' }}{%- endif -%}"
)
VOCAB_LIMIT = 1024
CORPUS_INSTANCES_PER_FAMILY = 64


def tokenizer_corpus() -> list[str]:
    """The fixed texts the BPE merges are learned from (independent of seed and config).

    Guided prompt contents with every field paraphrase in turn, strong responses and
    step-by-step executions, drawn from a fixed generator: words appear in the contexts
    (line starts, after a space) where prompts and responses will show them.
    """

    rng, texts = random.Random(0), [DEFAULT_INSTRUCTION]
    for family in FAMILIES.values():
        for _ in range(CORPUS_INSTANCES_PER_FAMILY):
            inst, key = family.sample(rng, ood=False), rng.choice(family.strategy_keys)
            problem = make_problem(family, inst, "corpus", 0, key, skip_rate=1.0)  # summary only: its lines are execute's
            strategy = make_strategy(family.name, key, rng)
            texts += [problem.problem, guided_messages(problem, strategy, DEFAULT_INSTRUCTION)[0]["content"],
                      problem.strong_response, family.execute(inst, key)]
    return texts


def build_tokenizer():
    """A fresh `Qwen2Tokenizer` (byte-level BPE trained on the toy corpus, chat template, eos/pad set)."""

    core = Tokenizer(models.BPE())
    core.normalizer = normalizers.NFC()
    core.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_LIMIT, min_frequency=1, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    core.train_from_iterator(tokenizer_corpus(), trainer=trainer)
    model = json.loads(core.to_str())["model"]
    tok = Qwen2Tokenizer(vocab=model["vocab"], merges=[tuple(m) for m in model["merges"]], unk_token=None,
                         eos_token=EOS, pad_token=PAD, extra_special_tokens=ROLE_TOKENS)
    tok.chat_template = CHAT_TEMPLATE
    return tok
