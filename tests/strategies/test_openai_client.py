"""`OpenAIClient` against a tiny real HTTP server on 127.0.0.1: retries on 500/429, order
under concurrency, the disk cache (hits counted on the server), rate limit, hard errors."""

from __future__ import annotations

import json
import time

import pytest
from fake_openai import FakeOpenAIServer as _Server

from sgpo_lib.strategies.openai_client import OpenAIClient


def _chats(n):
    return [[{"role": "system", "content": "be brief"}, {"role": "user", "content": f"q{i}"}] for i in range(n)]


def test_retries_then_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_KEY", "sk-test")
    with _Server(script=[500, 429]) as server:
        with OpenAIClient(server.url, "m", api_key_env="TEST_KEY", cache_dir=tmp_path, backoff_s=0.01,
                          concurrency=1) as client:
            first = client.complete(_chats(3))
            assert first == ["echo: q0", "echo: q1", "echo: q2"]
            assert server.hits == 5 and client.stats["retries"] == 2
            path, headers, body = server.bodies[-1]
            assert path == "/v1/chat/completions" and headers["Authorization"] == "Bearer sk-test"
            assert body["model"] == "m" and body["temperature"] == 0.0

        with OpenAIClient(server.url, "m", api_key_env="TEST_KEY", cache_dir=tmp_path) as again:
            assert again.complete(_chats(3)) == first
            assert server.hits == 5 and again.stats["cache_hits"] == 3  # a re-run costs nothing
            assert again.complete(_chats(4))[3] == "echo: q3" and server.hits == 6
    assert len(list(tmp_path.glob("*.json"))) == 4


def test_concurrency_keeps_order_and_dedupes(tmp_path):
    with _Server(delay_s=0.2) as server, OpenAIClient(server.url, "m", api_key_env=None, concurrency=8) as client:
        chats = _chats(8) + _chats(2)  # the last two repeat the first two
        start = time.monotonic()
        out = client.complete(chats)
        elapsed = time.monotonic() - start
    assert out == [f"echo: q{i}" for i in range(8)] + ["echo: q0", "echo: q1"]
    assert server.hits == 8
    assert elapsed < 1.0, f"requests were not concurrent ({elapsed:.2f} s)"
    assert "Authorization" not in server.bodies[0][1]


def test_rate_limit_spaces_requests():
    with _Server() as server, OpenAIClient(server.url, "m", api_key_env=None, requests_per_s=10,
                                           concurrency=4) as client:
        start = time.monotonic()
        client.complete(_chats(5))
        assert time.monotonic() - start >= 0.39  # 5 starts, 0.1 s apart


def test_gives_up_and_hard_errors():
    with _Server(script=[503] * 10) as server:
        with OpenAIClient(server.url, "m", api_key_env=None, max_retries=2, backoff_s=0.01) as client:
            with pytest.raises(RuntimeError, match="gave up after 3 attempts"):
                client.complete(_chats(1))
        assert server.hits == 3
    with _Server(script=[401]) as server:
        with OpenAIClient(server.url, "m", api_key_env="NO_SUCH_KEY_VAR", backoff_s=0.01) as client:
            with pytest.raises(RuntimeError, match=r"HTTP 401.*NO_SUCH_KEY_VAR"):
                client.complete(_chats(1))
        assert server.hits == 1
    with OpenAIClient("http://127.0.0.1:9/v1", "m", api_key_env=None, max_retries=1, backoff_s=0.01,
                      timeout_s=2) as client:
        with pytest.raises(RuntimeError, match="ConnectError"):
            client.complete(_chats(1))


def test_plugs_into_extract_strategies():
    from sgpo_lib.core.records import Problem
    from sgpo_lib.strategies.select import extract_strategies

    strategy = {"problem_type": "t", "strategy": "k", "steps": ["a", "b", "c"]}
    problem = Problem(id="p", problem="2+3?", answer="5", source="s", split="train", strong_response="5")
    with _Server(content=lambda body: "```json\n" + json.dumps(strategy) + "\n```") as server:
        with OpenAIClient(server.url, "m", api_key_env=None) as client:
            library, counts = extract_strategies([problem], client.complete, extractor=client.name)
    assert counts == {"accepted": 1}
    assert next(iter(library)).provenance["extractor"] == "openai:m"


def test_sample_returns_n_choices_per_chat_and_caches_them(tmp_path):
    with _Server(content=lambda body: [f"{body['messages'][-1]['content']}#{i}" for i in range(body.get("n", 1))]) as server:
        with OpenAIClient(server.url, "m", api_key_env=None, cache_dir=tmp_path, concurrency=2) as client:
            first = client.sample(_chats(3), 2, temperature=0.7)
            assert first == [["q0#0", "q0#1"], ["q1#0", "q1#1"], ["q2#0", "q2#1"]] and server.hits == 3
            assert {(b["n"], b["temperature"]) for _, _, b in server.bodies} == {(2, 0.7)}
            assert client.sample(_chats(3), 2, temperature=0.7) == first and server.hits == 3  # cached
            assert client.complete(_chats(1)) == ["q0#0"]  # a plain request (no n) takes the first choice
