"""A tiny OpenAI-compatible chat server on 127.0.0.1 for tests (real HTTP, real httpx client).

`FakeOpenAIServer(script, delay_s, content)`: POST /v1/chat/completions answers
`content(request body)` (a text, or a list of texts: one choice each; a text is repeated for
the request's `n`); `script` gives the status codes of the first requests (then 200).
`max_in_flight` is the most requests it served at once.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _echo(body: dict) -> str:
    return "echo: " + body["messages"][-1]["content"]


def _choices(content, n: int) -> list[dict]:
    texts = content if isinstance(content, list) else [content] * n
    return [{"index": i, "message": {"role": "assistant", "content": t}} for i, t in enumerate(texts)]


class FakeOpenAIServer:
    """Answers POST /v1/chat/completions with `content(request body)` ("echo: <last message>");
    `script` gives the status codes of the first requests (then 200); `hits` counts requests."""

    def __init__(self, script=(), delay_s=0.0, content=_echo):
        self.script, self.delay_s, self.hits, self.bodies = list(script), delay_s, 0, []
        self.in_flight = self.max_in_flight = 0
        self.content = content
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.hits += 1
                    server.bodies.append((self.path, dict(self.headers), body))
                    status = server.script.pop(0) if server.script else 200
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                time.sleep(server.delay_s)
                with server.lock:
                    server.in_flight -= 1
                reply = {"error": "busy"} if status != 200 else {"choices": _choices(server.content(body), body.get("n", 1))}
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
