"""A tiny OpenAI-compatible chat server on 127.0.0.1 for tests (real HTTP, real httpx client).

`FakeOpenAIServer(script, delay_s, content)`: POST /v1/chat/completions answers
`content(request body)`; `script` gives the status codes of the first requests (then 200).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _echo(body: dict) -> str:
    return "echo: " + body["messages"][-1]["content"]


class FakeOpenAIServer:
    """Answers POST /v1/chat/completions with `content(request body)` ("echo: <last message>");
    `script` gives the status codes of the first requests (then 200); `hits` counts requests."""

    def __init__(self, script=(), delay_s=0.0, content=_echo):
        self.script, self.delay_s, self.hits, self.bodies = list(script), delay_s, 0, []
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
                time.sleep(server.delay_s)
                reply = {"error": "busy"} if status != 200 else {
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": server.content(body)}}]}
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
