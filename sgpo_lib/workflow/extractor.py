"""The strategy extractor of a run, as a `complete(messages_list)` callable (sgpo-method.md §1).

`extractor(cfg)` is a context manager yielding an `Extractor` (`complete`, `sample`, `rank`
callables for `strategies.select.extract_strategies`): the toy world's offline extractor, or an
`OpenAIClient` for `strategy.extractor_model` at `strategy.base_url`, or, with
`strategy.serve: local`, at a vLLM server that it starts for the block and stops after
(`sgpo_lib.strategies.local_server`). Refused requests come back as counted rejections
(`return_errors`). A single candidate is one greedy request (v1); `strategy.n_candidates > 1`
asks for that many in one request (the API's `n`) at `strategy.candidate_temperature`; rank
prompts are greedy. With `strategy.json_schema` every extraction request carries the §1
schema as an OpenAI `response_format` (vLLM decodes under it), with the validation limits of
`strategies.StrategyLimits` as array sizes and string lengths, so that a schema-valid output
also passes the length checks; rank requests carry the ranking schema.

Departure: the schema gives each text field an equal share of `max_chars` (the two text
fields and the steps), stricter than the validation's per-field limits.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Iterator, NamedTuple

from ..config.run import RunConfig
from ..core.paths import output_root
from ..strategies.library import CompleteFn, make_limits
from ..strategies.local_server import LocalServer
from ..strategies.openai_client import OpenAIClient
from ..strategies.select import SampleFn
from ..toy.extractor import OfflineExtractor


def response_format(**limits) -> dict:
    """The §1 JSON schema as an OpenAI `response_format` (strategy limits as keyword overrides).

    >>> schema = response_format(min_steps=3, max_steps=4, max_chars=900)["json_schema"]["schema"]
    >>> schema["properties"]["steps"]["minItems"], schema["properties"]["steps"]["items"]["maxLength"]
    (3, 150)
    """
    lim = make_limits(**limits)
    share = lim.max_chars // (2 + lim.max_steps)

    def text(limit: int) -> dict:
        return {"type": "string", "minLength": 1, "maxLength": min(limit, share)}

    properties = {"problem_type": text(lim.max_type_chars), "strategy": text(lim.max_strategy_chars),
                  "steps": {"type": "array", "items": text(lim.max_step_chars), "minItems": lim.min_steps,
                            "maxItems": lim.max_steps}}
    return _json_schema("strategy", properties)


RANK_FORMAT = {"ranking": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1}}


def _json_schema(name: str, properties: dict) -> dict:
    schema = {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}


class Extractor(NamedTuple):
    """The callables of `strategies.select.extract_strategies`: one answer per chat, `n` per
    chat, and the rank answers."""

    complete: CompleteFn
    sample: SampleFn
    rank: CompleteFn


def limits_of(cfg: RunConfig) -> dict:
    """The strategy limits the config sets (keyword arguments of `extract_strategies`)."""
    s = cfg.strategy
    return {"min_steps": s.min_steps, "max_steps": s.max_steps, "max_chars": s.max_chars,
            "max_copied_numbers": s.max_copied_numbers}


def selection_of(cfg: RunConfig) -> dict:
    """The candidate settings the config sets (keyword arguments of `extract_strategies`)."""
    return {"n_candidates": cfg.strategy.n_candidates, "select": cfg.strategy.select}


def extractor_name(cfg: RunConfig) -> str:
    s = cfg.strategy
    return s.extractor if s.extractor == "offline" else f"openai:{s.extractor_model} ({s.serve} server {s.base_url})"


@contextlib.contextmanager
def extractor(cfg: RunConfig, model_dir_of_student=None) -> Iterator[Extractor]:
    """The configured extractor; `model_dir_of_student()` gives the folder that
    `strategy.serve_model: student` serves."""
    s = cfg.strategy
    if s.extractor == "offline":
        toy = OfflineExtractor(fault_rate=cfg.world.extractor_fault_rate, seed=cfg.world_seed)
        yield Extractor(toy.complete, toy.sample, toy.complete)
        return

    with contextlib.ExitStack() as stack:
        base_url, api_key = s.base_url, None
        if s.serve == "local":
            model = model_dir_of_student() if s.serve_model == "student" else s.serve_model
            server = stack.enter_context(LocalServer(str(model), s.extractor_model, output_root(cfg.output.root) / "logs" /
                                                     "extractor_server.log", s.serve_args, s.serve_timeout_s))
            base_url, api_key = server.base_url, server.api_key
        formats = (response_format(**limits_of(cfg)), _json_schema("ranking", RANK_FORMAT))
        client, ranker = (stack.enter_context(OpenAIClient(
            base_url=base_url, model=s.extractor_model, api_key_env=s.api_key_env,
            cache_dir=output_root(cfg.output.root) / "cache" / "openai", max_tokens=s.max_tokens, concurrency=s.concurrency,
            extra_body={"response_format": f} if s.json_schema else None, return_errors=True,
            api_key=api_key)) for f in formats)
        yield Extractor(client.complete, functools.partial(client.sample, temperature=s.candidate_temperature),
                        ranker.complete)
