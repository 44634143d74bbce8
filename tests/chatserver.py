"""A local HTTP server that speaks the OpenAI chat-completions API, for tests.

The reply to a prompt comes from ``answer(prompt)``; ``faults`` are consumed one per request
(ok, 429, 500, malformed, 401) to exercise retries and errors. It records every request and
the most requests it ever had in flight at once.
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


class ChatServer:
    def __init__(self, key: str, answer: Callable[[str], str], faults: list[str] | None = None,
                 delay_s: float = 0.0):
        self.key, self.answer, self.faults, self.delay_s = key, answer, list(faults or []), delay_s
        self.log: list[tuple[str, str]] = []  # (action, user prompt)
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code: int, body: bytes, headers: dict | None = None):
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = next(m["content"] for m in body["messages"] if m["role"] == "user")
                with server.lock:
                    action = server.faults.pop(0) if server.faults else "ok"
                    server.log.append((action, prompt))
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    time.sleep(server.delay_s)
                    auth = self.headers.get("Authorization", "")
                    if action == "401" or auth != f"Bearer {server.key}":
                        # echoes what it got, as some servers do: the client must scrub it
                        self._send(401, json.dumps({"error": f"bad key {auth}"}).encode())
                    elif action == "429":
                        self._send(429, b'{"error": "slow down"}', {"Retry-After": "0.05"})
                    elif action == "500":
                        self._send(500, b'{"error": "oops"}')
                    elif action == "malformed":
                        self._send(200, b'{"choices": [')
                    elif self.path != "/v1/chat/completions":
                        self._send(404, b'{"error": "no such route"}')
                    else:
                        reply = server.answer(prompt)
                        out = {"object": "chat.completion", "model": body["model"],
                               "choices": [{"index": 0, "finish_reason": "stop",
                                            "message": {"role": "assistant", "content": reply}}]}
                        self._send(200, json.dumps(out).encode())
                finally:
                    with server.lock:
                        server.in_flight -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "ChatServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
