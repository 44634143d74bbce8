"""A local HTTP server that speaks the OpenAI embeddings API (and Google's batchEmbedContents)
and injects faults from a script, for tests. It computes each vector from the word's bytes."""
from __future__ import annotations

import json
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

DIM = 8


def vector_of(word: str, dim: int = DIM, salt: str = "") -> list[float]:
    """The vector a server gives ``word``; another ``salt`` is another server's model."""
    rng = np.random.default_rng(zlib.crc32((salt + word).encode()))
    return rng.standard_normal(dim).astype(np.float32).tolist()


class FaultServer:
    """``faults``: actions consumed one per request: ok, 429, 500, hang, malformed, baddim, 401."""

    def __init__(self, key: str, faults: list[str] | None = None, retry_after: str = "0.2", salt: str = ""):
        self.key, self.faults, self.retry_after, self.salt = key, list(faults or []), retry_after, salt
        self.log: list[tuple[float, str, int]] = []  # (time, action, batch size)
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
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
                google = ":batchEmbedContents" in self.path
                words = ([r["content"]["parts"][0]["text"] for r in body["requests"]] if google
                         else body["input"])
                with server.lock:
                    action = server.faults.pop(0) if server.faults else "ok"
                    server.log.append((time.time(), action, len(words)))
                given = self.headers.get("x-goog-api-key") if google else \
                    (self.headers.get("Authorization") or "").removeprefix("Bearer ")
                if action == "401" or given != server.key:
                    return self._send(401, b'{"error": {"message": "Incorrect API key provided"}}')
                if action == "429":
                    return self._send(429, b'{"error": "slow down"}', {"Retry-After": server.retry_after})
                if action == "500":
                    return self._send(500, b'{"error": "oops"}')
                if action == "hang":
                    time.sleep(3)
                    return self._send(500, b"{}")
                if action == "malformed":
                    return self._send(200, b'{"data": [ {"embedding": ')
                dim = 3 if action == "baddim" else body.get("dimensions", DIM)
                vecs = [vector_of(w, dim, server.salt) for w in words]
                if google:
                    out = {"embeddings": [{"values": v} for v in vecs]}
                else:
                    out = {"data": [{"index": i, "embedding": v} for i, v in reversed(list(enumerate(vecs)))],
                           "model": body["model"]}
                return self._send(200, json.dumps(out).encode())

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
