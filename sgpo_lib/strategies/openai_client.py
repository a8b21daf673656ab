"""A small OpenAI-compatible chat client for the strong model or the strategy extractor.

Architecture.md, `rollout`: "an OpenAI-compatible client for an external strong model /
extractor" (a local vLLM/SGLang server or a hosted API). `OpenAIClient.complete(messages_list)`
returns one completion text per chat, in order, so it plugs straight into
`sgpo_lib.strategies.select.extract_strategies` like any other `complete` callable;
`sample(messages_list, n, temperature)` returns `n` per chat (its candidates).

What it adds over a bare HTTP call: retries with exponential backoff on HTTP 429/5xx,
timeouts and connection errors (honouring `Retry-After`), a simple requests-per-second limit
shared by all threads, `concurrency` requests in flight at once, and a response cache on disk
(one JSON file per sha256 of the request body, base URL and key excluded) so that a re-run
costs nothing. Other HTTP errors (400, 401, 404) fail at once with the server's message as a
`RequestFailed` (reason `http_<status>`); with `return_errors=True` that error is returned in
place of the request's text instead of raised, so that one refused request (say, a prompt
longer than the server's context) is counted by the caller (`extract_strategies` counts it as
a rejection by reason) rather than aborting the batch. Giving up after retries still raises.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from ..core.fileio import read_json, write_json

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


class RequestFailed(RuntimeError):
    """A request the server refused for good (a non-retryable HTTP status); `reason` is `http_<status>`."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def _completion_texts(body: dict) -> list[str]:
    """`choices[i].message.content` of an OpenAI chat response, by index ("" when the model said nothing)."""
    try:
        choices = sorted(body["choices"], key=lambda c: c.get("index", 0))
        texts = [c["message"].get("content") or "" for c in choices]
    except (KeyError, IndexError, TypeError, AttributeError) as e:
        raise RuntimeError(f"not an OpenAI chat completion response: {str(body)[:300]}") from e
    if not texts:
        raise RuntimeError(f"not an OpenAI chat completion response (no choices): {str(body)[:300]}")
    return texts


class OpenAIClient:
    """Chat completions from `base_url` (e.g. "http://127.0.0.1:8000/v1") for `model`.

    The API key is `api_key` when given (a server the run started: `local_server`), else read
    from the environment variable `api_key_env` (none sent when unset). `extra_body` is merged into every request (e.g. `{"seed": 0}`).
    `stats` counts "requests", "cache_hits", "retries" and "failed". `return_errors`: see the
    module docstring.
    """

    def __init__(self, base_url: str, model: str, api_key_env: str | None = "OPENAI_API_KEY",
                 cache_dir: str | os.PathLike | None = None, temperature: float = 0.0,
                 max_tokens: int = 1024, timeout_s: float = 120.0, max_retries: int = 6,
                 backoff_s: float = 1.0, max_backoff_s: float = 60.0,
                 requests_per_s: float | None = None, concurrency: int = 4,
                 extra_body: dict | None = None, return_errors: bool = False, api_key: str | None = None):
        if concurrency < 1 or max_retries < 0 or (requests_per_s is not None and requests_per_s <= 0):
            raise ValueError("OpenAIClient: need concurrency >= 1, max_retries >= 0, requests_per_s > 0 or None")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.api_key_env = model, api_key_env
        self.params = {"temperature": temperature, "max_tokens": max_tokens, **(extra_body or {})}
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.max_retries, self.backoff_s, self.max_backoff_s = max_retries, backoff_s, max_backoff_s
        self.requests_per_s, self.concurrency = requests_per_s, concurrency
        self.return_errors = return_errors
        self.stats: Counter = Counter()
        self._lock = threading.Lock()
        self._next_slot = 0.0
        key = api_key or (os.environ.get(api_key_env) if api_key_env else None)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(headers=headers, timeout=timeout_s,
                                  limits=httpx.Limits(max_connections=concurrency))

    @property
    def name(self) -> str:
        return f"openai:{self.model}"

    def _request(self, messages: list[dict]) -> dict:
        return {"model": self.model, "messages": messages, **self.params}

    def _cache_path(self, request: dict) -> Path | None:
        if self.cache_dir is None:
            return None
        digest = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()
        return self.cache_dir / f"{digest}.json"

    def _count(self, key: str) -> None:
        with self._lock:
            self.stats[key] += 1

    def _wait_for_slot(self) -> None:
        """Space request starts `1 / requests_per_s` apart across all threads."""
        if self.requests_per_s is None:
            return
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + 1.0 / self.requests_per_s
        time.sleep(max(0.0, slot - now))

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        delay = min(self.max_backoff_s, self.backoff_s * 2**attempt)
        try:
            return max(delay, min(self.max_backoff_s, float(retry_after))) if retry_after else delay
        except ValueError:  # an HTTP date instead of seconds
            return delay

    def _post(self, request: dict) -> list[str]:
        """One completion, retrying transient failures; raises RuntimeError when it gives up."""
        attempt = 0
        while True:
            self._wait_for_slot()
            self._count("requests")
            retry_after = None
            try:
                response = self._http.post(self.url, json=request)
            except (httpx.TimeoutException, httpx.TransportError) as e:
                error = f"{type(e).__name__}: {e}"
            else:
                if response.status_code == 200:
                    return _completion_texts(response.json())
                error = f"HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code not in RETRY_STATUS:
                    hint = f" (is ${self.api_key_env} set?)" if response.status_code in (401, 403) else ""
                    raise RequestFailed(f"http_{response.status_code}", f"{self.url}: {error}{hint}")
                retry_after = response.headers.get("retry-after")
            if attempt == self.max_retries:
                raise RuntimeError(f"{self.url}: gave up after {attempt + 1} attempts; last error {error}")
            delay = self._backoff(attempt, retry_after)
            self._count("retries")
            log.warning("%s: %s; retry %d/%d in %.1f s", self.url, error, attempt + 1, self.max_retries, delay)
            time.sleep(delay)
            attempt += 1

    def _complete_one(self, request: dict) -> list[str] | RequestFailed:
        """The texts of all choices of one request (from the cache when there)."""
        path = self._cache_path(request)
        if path is not None and path.exists():
            self._count("cache_hits")
            cached = read_json(path)
            return cached["texts"] if "texts" in cached else [cached["text"]]
        try:
            texts = self._post(request)
        except RequestFailed as e:
            if not self.return_errors:
                raise
            self._count("failed")
            log.warning("%s", e)
            return e
        if path is not None:
            write_json(path, {"request": request, "texts": texts})
        return texts

    def _run(self, requests: list[dict]) -> list[list[str] | RequestFailed]:
        """All choices of each request, in order, `concurrency` at a time (identical requests sent once)."""
        unique = list({json.dumps(r, sort_keys=True): r for r in requests}.items())
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            texts = dict(zip((k for k, _ in unique), pool.map(self._complete_one, [r for _, r in unique])))
        return [texts[json.dumps(r, sort_keys=True)] for r in requests]

    def complete(self, messages_list: list[list[dict]]) -> list[str | RequestFailed]:
        """One completion text per chat-message list, in order (identical requests sent once);
        a `RequestFailed` in place of a text only with `return_errors`."""
        return [t if isinstance(t, RequestFailed) else t[0] for t in self._run([self._request(m) for m in messages_list])]

    def sample(self, messages_list: list[list[dict]], n: int, temperature: float) -> list[list[str] | RequestFailed]:
        """`n` completions per chat-message list at `temperature` (one request each, with the
        API's `n`), in order; a server may return fewer. A `RequestFailed` in place of the list
        only with `return_errors`."""
        return self._run([{**self._request(m), "n": n, "temperature": temperature} for m in messages_list])

    __call__ = complete

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "OpenAIClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
