"""The toy students' character-level tokenizer, built locally with `tokenizers`.

One token per printable ASCII character and newline, plus special tokens for the chat roles,
end of turn (= eos) and padding. Saved as an ordinary Hugging Face tokenizer
(`PreTrainedTokenizerFast.save_pretrained`) with a Jinja chat template, so
`AutoTokenizer.from_pretrained(dir)`, `apply_chat_template` (hence `sgpo_lib.prompts.render`)
and vLLM treat it like any other model's tokenizer. Character level keeps digit arithmetic
learnable (one digit = one token) at the cost of longer prompts.

Example:
    >>> tok = build_tokenizer()
    >>> tok.decode(tok("12+3=15")["input_ids"])
    '12+3=15'
"""

from __future__ import annotations

PAD, EOS, UNK = "<|pad|>", "<|end|>", "<|unk|>"
ROLES = ("system", "user", "assistant")
SPECIAL_TOKENS = [PAD, EOS, UNK] + [f"<|{r}|>" for r in ROLES]
CHARACTERS = ["\n"] + [chr(c) for c in range(32, 127)]
# One user/assistant turn each: <|role|>content<|end|>; the generation prompt opens an assistant turn.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|assistant|>' }}{%- endif -%}"
)


def build_tokenizer():
    """A fresh `PreTrainedTokenizerFast` (character level, chat template, eos/pad set)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + CHARACTERS)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()
    core.add_special_tokens(SPECIAL_TOKENS)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token=EOS, pad_token=PAD, unk_token=UNK,
        additional_special_tokens=[f"<|{r}|>" for r in ROLES], clean_up_tokenization_spaces=False,
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok
