"""The toy students' tokenizer: a small BPE over words, one token per digit or symbol.

Built locally with `tokenizers`: a pre-tokenizer cuts text into letter runs (with their
leading space) and single other characters, and BPE merges are learned on a fixed corpus of
the toy world's own words (strategy wordings, problem and response templates), so frequent
words are one token while every digit, sign and newline stays its own token. Any printable
ASCII text still tokenizes (unknown words fall back to characters), and decoding is exact.
Special tokens: chat roles, end of turn (= eos) and padding.

Why not characters: the strategy block is in every guided prompt; at one token per character
it made pretraining several times slower, while arithmetic only needs digits to be single
tokens (they are). Saved as an ordinary Hugging Face tokenizer (`save_pretrained`) with a
Jinja chat template, so `AutoTokenizer`, `apply_chat_template` (hence
`sgpo_lib.prompts.render`) and vLLM treat it like any other model's tokenizer.

Example:
    >>> tok = build_tokenizer()
    >>> tok.convert_ids_to_tokens(tok("Evaluate 12+3.")["input_ids"])
    ['Evaluate', ' ', '1', '2', '+', '3', '.']
"""

from __future__ import annotations

PAD, EOS, UNK = "<|pad|>", "<|end|>", "<|unk|>"
ROLES = ("system", "user", "assistant")
SPECIAL_TOKENS = [PAD, EOS, UNK] + [f"<|{r}|>" for r in ROLES]
CHARACTERS = ["\n"] + [chr(c) for c in range(32, 127)]
VOCAB_LIMIT = 1024
# One user/assistant turn each: <|role|>content<|end|>; the generation prompt opens an assistant turn.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|assistant|>' }}{%- endif -%}"
)


WORD_OR_CHAR = r" ?[A-Za-z]+|[\s\S]"
CORPUS_INSTANCES_PER_FAMILY = 64


def tokenizer_corpus() -> list[str]:
    """The fixed texts the BPE merges are learned from (independent of seed and config).

    Guided prompt contents with every field paraphrase in turn, strong responses and
    step-by-step executions, drawn from a fixed generator: words appear in the contexts
    (line starts, after a space) where prompts and responses will show them.
    """
    import random

    from ..prompts import DEFAULT_INSTRUCTION, guided_messages
    from .families import FAMILIES
    from .wording import make_strategy
    from .world import make_problem

    rng, texts = random.Random(0), [DEFAULT_INSTRUCTION]
    for family in FAMILIES.values():
        for _ in range(CORPUS_INSTANCES_PER_FAMILY):
            inst, key = family.sample(rng, ood=False), rng.choice(family.strategy_keys)
            problem = make_problem(family, inst, "corpus", 0, key)
            strategy = make_strategy(family.name, key, rng)
            texts += [guided_messages(problem, strategy, DEFAULT_INSTRUCTION)[0]["content"], problem.strong_response,
                      family.execute(inst, key)]
    return texts


def build_tokenizer():
    """A fresh `PreTrainedTokenizerFast` (word BPE, single digits, chat template, eos/pad set)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE(unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(WORD_OR_CHAR), behavior="isolated")
    core.decoder = decoders.Fuse()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_LIMIT, min_frequency=1, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=CHARACTERS, show_progress=False)
    core.train_from_iterator(tokenizer_corpus(), trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token=EOS, pad_token=PAD, unk_token=UNK,
        additional_special_tokens=[f"<|{r}|>" for r in ROLES], clean_up_tokenization_spaces=False,
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok
