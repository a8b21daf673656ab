"""Strategy extraction that yields too little stops the run, through the real path: `assets.strategy_library`
with the `openai` extractor (real httpx client) against a fake OpenAI-compatible server on loopback.
A refused request (HTTP 400) is a counted rejection; an empty library is never cached or reused."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from fake_openai import FakeOpenAIServer

from sgpo_lib.config.run import RunConfig, StrategyConfig
from sgpo_lib.core.records import Problem
from sgpo_lib.strategies.openai_client import OpenAIClient, RequestFailed
from sgpo_lib.strategies.yield_check import ExtractionError, check_yield
from sgpo_lib.workflow import assets

GOOD = json.dumps({"problem_type": "sum", "strategy": "Add the parts term by term.",
                   "steps": ["List the terms.", "Add them in order.", "Check the total."]})
PROBLEMS = [Problem(id=f"s/{i}", problem=f"Problem {i}: add {i + 10} and {i + 20}.", answer=str(2 * i + 30),
                    source="s", split="train", strong_response=f"So the sum is \\boxed{{{2 * i + 30}}}.")
            for i in range(4)]


@pytest.fixture
def run_env(tmp_path, monkeypatch):
    """Outputs (and so the strategy cache) in tmp_path; the training problems are `PROBLEMS`."""
    monkeypatch.setenv("SGPO_OUTPUTS", str(tmp_path))
    monkeypatch.setattr(assets, "problems", lambda cfg: {"train": PROBLEMS, "test": []})
    return tmp_path


def _cfg(url: str, **strategy) -> RunConfig:
    strategy = {"n_candidates": 1, **strategy}  # v1's single shot; candidates: test_strategies_select
    return RunConfig(strategy=StrategyConfig(extractor="openai", base_url=url, extractor_model="served-name",
                                             api_key_env=None, **strategy))


def test_no_valid_output_stops_with_cause_and_fix_and_caches_nothing(run_env):
    with FakeOpenAIServer(content=lambda body: "I cannot help with that.") as server:
        with pytest.raises(ExtractionError) as err:
            assets.strategy_library(_cfg(server.url, min_accepted_fraction=0.0))
    message = str(err.value)
    assert "accepted 0 of 4" in message and "invalid_json x4" in message
    assert "strategy.extractor_model" in message and "strategy.max_tokens" in message
    assert "openai:served-name" in message
    assert not list(run_env.glob("cache/strategies/*/library.jsonl"))


def test_refused_request_is_a_counted_rejection(run_env):
    with FakeOpenAIServer(script=[400], content=lambda body: GOOD) as server:
        cfg = _cfg(server.url, max_tokens=77, concurrency=1)
        library, report = assets.strategy_library(cfg)
        assert report == Counter(accepted=3, http_400=1) and len(library) == 3
        assert {body["max_tokens"] for _, _, body in server.bodies} == {77}
        assert {body["model"] for _, _, body in server.bodies} == {"served-name"}
        hits = server.hits
        assert len(assets.strategy_library(cfg)[0]) == 3 and server.hits == hits  # cached


def test_all_requests_refused_names_the_context_fix(run_env):
    with FakeOpenAIServer(script=[400] * 4) as server:
        with pytest.raises(ExtractionError, match=r"http_400 x4 \(e\.g\. s/\d: .*HTTP 400.*longer context"):
            assets.strategy_library(_cfg(server.url))


def test_an_empty_cached_library_is_not_reused(run_env):
    with FakeOpenAIServer(content=lambda body: GOOD) as server:
        cfg = _cfg(server.url)
        assets.strategy_library(cfg)
        [cached] = run_env.glob("cache/strategies/*/library.jsonl")
        cached.write_text("")  # as an older version cached it
        library, _ = assets.strategy_library(cfg)
    assert len(library) == 4 and server.hits == 4 and len(cached.read_text().splitlines()) == 4


def test_threshold_on_the_accepted_fraction():
    check_yield(Counter(accepted=1, invalid_json=9, strong_response_wrong=50), 0.1, "x")
    with pytest.raises(ExtractionError, match=r"accepted 1 of 10 .*min_accepted_fraction is 0.2"):
        check_yield(Counter(accepted=1, invalid_json=9), 0.2, "x")
    with pytest.raises(ExtractionError, match="accepted 0 of 3"):
        check_yield(Counter(step_count=3), 0.0, "x")
    with pytest.raises(ExtractionError, match="data.train_sets"):
        check_yield(Counter(no_strong_response=5), 0.1, "x")


def test_client_returns_refusals_in_place_only_when_asked():
    chats = [[{"role": "user", "content": f"q{i}"}] for i in range(2)]
    with FakeOpenAIServer(script=[400]) as server:
        with OpenAIClient(server.url, "m", api_key_env=None, concurrency=1, return_errors=True) as client:
            first, second = client.complete(chats)
        assert isinstance(first, RequestFailed) and first.reason == "http_400" and second == "echo: q1"
        assert client.stats["failed"] == 1 and server.hits == 2
    with FakeOpenAIServer(script=[400]) as server, OpenAIClient(server.url, "m", api_key_env=None) as client:
        with pytest.raises(RequestFailed, match="HTTP 400"):
            client.complete(chats[:1])
