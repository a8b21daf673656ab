"""A tiny, randomly initialised Qwen2 model folder with a locally trained tokenizer.

Used by the generation tests (`tests/conftest.py`) and the rollout benchmark
(`bench/bench_rollouts.py`) so that both backends of `sgpo_lib.model.generation` can be exercised
offline: the folder loads with `AutoModelForCausalLM`/`AutoTokenizer`, PEFT and vLLM.
It is not a student (the toy world builds those); it only has to be a valid model.

Departures from a real checkpoint: the tokenizer is a byte-level BPE trained in a few
milliseconds on a built-in corpus, and the weights are random with a larger
`initializer_range` than usual so that next-token distributions are peaked enough for
top-p, sampling-vs-greedy and LoRA effects to be visible in tests. The attention head
dimension is 64, which the vLLM CPU backend supports (16 does not).
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast, Qwen2Config

EOS_TOKEN = "<|im_end|>"
PAD_TOKEN = "<|endoftext|>"
SPECIAL_TOKENS = (PAD_TOKEN, "<|im_start|>", EOS_TOKEN)
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
HEAD_DIM = 64
VOCAB_MULTIPLE = 64
_CORPUS = (
    "Please reason step by step, and put your final answer within \\boxed{}.",
    "What is 12 times 7 modulo 5? First reduce each factor, then multiply.",
    "Strategy: reduce each factor modulo m before multiplying. Key insight: numbers stay small.",
    "The answer is 42. Steps: 1. read the problem 2. compute 3. check the result.",
    "0123456789 + - * / = ( ) { } [ ] < > | \\ ^ % # ! ? , . : ; ' \"",
)


def build_tiny_tokenizer(vocab_size: int = 320):
    """A byte-level BPE tokenizer with Qwen-style chat special tokens and a chat template.

    Returns a `transformers` fast tokenizer (eos `<|im_end|>`, pad `<|endoftext|>`).
    """
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        chat_template=CHAT_TEMPLATE,
    )


def build_tiny_model_dir(
    out_dir: str | Path,
    hidden_size: int = 128,
    num_layers: int = 2,
    initializer_range: float = 0.2,
    seed: int = 0,
    max_position_embeddings: int = 1024,
    intermediate_size: int | None = None,
    vocab_size: int | None = None,
) -> Path:
    """Save a random Qwen2 (head dim 64, float32) plus its tokenizer into `out_dir`.

    The vocabulary is padded to a multiple of 64; the generation config's EOS is `<|im_end|>`.
    `max_position_embeddings` is the context vLLM allows (real benchmark prompts need > 1024).
    `intermediate_size` (default 2 x hidden) and `vocab_size` (rows past the tokenizer's are never
    sampled) give a real model's shapes (`make gpu-check`). Returns `out_dir` as a Path.
    """
    out_dir = Path(out_dir)
    tokenizer = build_tiny_tokenizer()
    vocab = vocab_size or -(-len(tokenizer) // VOCAB_MULTIPLE) * VOCAB_MULTIPLE
    heads = hidden_size // HEAD_DIM
    config = Qwen2Config(
        vocab_size=vocab,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=max_position_embeddings,
        initializer_range=initializer_range,
        tie_word_embeddings=False,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        dtype="float32",
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
