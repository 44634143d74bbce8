"""Embedding APIs: OpenAI-compatible ``/embeddings`` (ada-002, text-embedding-3-*) and Google's
``batchEmbedContents`` (the PaLM/Gecko family).

Batches go out with a concurrency limit; 429, 5xx, timeouts, dropped connections and garbled
bodies are retried with exponential backoff and jitter, honouring Retry-After. Every vector
that comes back is cached on disk at once (SQLite), so a rerun or a resumed job never pays for
it twice and a failure loses nothing already bought. The key is read from the environment
variable the config names; it is never stored, logged, or put in an error message.
"""
from __future__ import annotations

import hashlib
import os
import random
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import numpy as np
from pydantic import Field

from .base import Embedded, ModelConfigError, ModelOptions, options

PROVIDERS = {
    "openai": {"base_url": "https://api.openai.com/v1", "key_env": "OPENAI_API_KEY"},
    "google": {"base_url": "https://generativelanguage.googleapis.com/v1beta", "key_env": "GOOGLE_API_KEY"},
}
RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class APIOptions(ModelOptions):
    backend: Literal["api"]
    model: str  # the API's model name
    provider: Literal["openai", "google"] = "openai"  # openai: any OpenAI-compatible server too
    api_key_env: str | None = None  # the variable holding the key; None: the provider's usual one
    base_url: str | None = None  # None: the provider's
    dim: int | None = Field(None, ge=1)  # expected vector size; None: whatever comes back
    dimensions: int | None = Field(None, ge=1)  # asked of text-embedding-3-* (shortened vectors)
    batch_size: int = Field(256, ge=1)
    concurrency: int = Field(4, ge=1)
    timeout_s: float = Field(60, gt=0)
    max_retries: int = Field(6, ge=0)
    backoff_s: float = Field(1.0, ge=0)
    backoff_max_s: float = Field(60, ge=0)
    cache_dir: str = "~/.cache/embcompare/api"


class APIError(RuntimeError):
    """The API refused or kept failing; the message names the cause (never the key)."""


class Transient(Exception):
    def __init__(self, cause: str, retry_after: float | None = None):
        super().__init__(cause)
        self.retry_after = retry_after


class VectorCache:
    """word -> float32 vector, in one SQLite file per (provider, endpoint, model, dimensions)."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS vec (word TEXT PRIMARY KEY, v BLOB NOT NULL)")
        self._db.commit()

    def get_many(self, words: Sequence[str]) -> dict[str, np.ndarray]:
        out = {}
        with self._lock:
            for s in range(0, len(words), 500):
                chunk = list(words[s: s + 500])
                q = f"SELECT word, v FROM vec WHERE word IN ({','.join('?' * len(chunk))})"
                for w, blob in self._db.execute(q, chunk):
                    out[w] = np.frombuffer(blob, dtype=np.float32)
        return out

    def put_many(self, words: Sequence[str], vectors: np.ndarray) -> None:
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO vec VALUES (?, ?)",
                                 [(w, np.asarray(v, dtype=np.float32).tobytes()) for w, v in zip(words, vectors)])
            self._db.commit()


def retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def cache_tag(provider: str, base_url: str, model: str, dimensions: int | None) -> str:
    """File name of a model's vector cache. Two servers serving a model under one name (two
    OpenAI-compatible endpoints) may give different vectors, so the endpoint is part of it."""
    endpoint = hashlib.sha256(base_url.encode()).hexdigest()[:12]
    return f"{provider}-{model.replace('/', '_')}-{dimensions or 'full'}-{endpoint}"


class APIEmbedder:
    def __init__(self, cfg: Mapping[str, Any] | APIOptions):
        cfg = options(cfg, APIOptions)
        self.name = cfg.name
        self.provider = cfg.provider
        defaults = PROVIDERS[self.provider]
        self.model = cfg.model
        self.base_url = str(cfg.base_url or defaults["base_url"]).rstrip("/")
        self.key_env = cfg.api_key_env or defaults["key_env"]
        if not os.environ.get(self.key_env):
            raise ModelConfigError(f"model {self.name}: set the environment variable {self.key_env} to the API key")
        self.dimensions = cfg.dimensions
        self.dim = int(cfg.dim or self.dimensions or 0)
        self.batch_size = cfg.batch_size
        self.concurrency = cfg.concurrency
        self.timeout_s = float(cfg.timeout_s)
        self.max_retries = cfg.max_retries
        self.backoff_s = float(cfg.backoff_s)
        self.backoff_max_s = float(cfg.backoff_max_s)
        cache_dir = Path(os.path.expanduser(cfg.cache_dir))
        tag = cache_tag(self.provider, self.base_url, self.model, self.dimensions)
        self.cache = VectorCache(cache_dir / f"{tag}.sqlite")
        self._rng = random.Random(0)
        import requests

        self._session = requests.Session()

    def identity(self) -> dict[str, Any]:
        return {"model": self.name, "backend": "api", "provider": self.provider, "model_id": self.model,
                "dimensions": self.dimensions, "base_url": self.base_url, "pooling": "api", "layer": None,
                "template": None, "dtype": "float32"}

    # -- one request ---------------------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        key = os.environ.get(self.key_env, "")
        return text.replace(key, "***") if key else text

    def _request(self, words: Sequence[str]) -> np.ndarray:
        import requests

        key = os.environ.get(self.key_env, "")
        if self.provider == "openai":
            url = f"{self.base_url}/embeddings"
            headers = {"Authorization": f"Bearer {key}"}
            body: dict[str, Any] = {"model": self.model, "input": list(words)}
            if self.dimensions:
                body["dimensions"] = int(self.dimensions)
        else:
            url = f"{self.base_url}/models/{self.model}:batchEmbedContents"
            headers = {"x-goog-api-key": key}
            body = {"requests": [{"model": f"models/{self.model}", "content": {"parts": [{"text": w}]},
                                  **({"outputDimensionality": int(self.dimensions)} if self.dimensions else {})}
                                 for w in words]}
        try:
            r = self._session.post(url, json=body, headers=headers, timeout=self.timeout_s)
        except requests.Timeout:
            raise Transient(f"no answer within {self.timeout_s:g} s") from None
        except requests.ConnectionError as e:
            raise Transient(f"connection failed ({type(e).__name__})") from None
        if r.status_code in RETRY_STATUS:
            raise Transient(f"HTTP {r.status_code}", retry_after(r.headers.get("Retry-After")))
        if r.status_code in (401, 403):
            raise APIError(f"model {self.name}: {self.provider} rejected the key in ${self.key_env} "
                           f"(HTTP {r.status_code}): {self._scrub(r.text[:200])}")
        if r.status_code != 200:
            raise APIError(f"model {self.name}: HTTP {r.status_code} from {url}: {self._scrub(r.text[:300])}")
        try:
            payload = r.json()
            if self.provider == "openai":
                items = sorted(payload["data"], key=lambda d: d["index"])
                vectors = [d["embedding"] for d in items]
            else:
                vectors = [e["values"] for e in payload["embeddings"]]
            arr = np.asarray(vectors, dtype=np.float32)
        except (ValueError, KeyError, TypeError) as e:
            raise Transient(f"malformed JSON answer ({type(e).__name__}: {str(e)[:80]})") from None
        if arr.ndim != 2 or arr.shape[0] != len(words):
            raise APIError(f"model {self.name}: asked for {len(words)} vectors, got an answer of shape {arr.shape}")
        if self.dim and arr.shape[1] != self.dim:
            raise APIError(f"model {self.name}: the API returned {arr.shape[1]}-d vectors, expected {self.dim} "
                           f"(words {list(words[:3])}...)")
        if not np.isfinite(arr).all():
            raise APIError(f"model {self.name}: non-finite values in the vectors of {list(words[:3])}...")
        return arr

    def _with_retries(self, words: Sequence[str]) -> np.ndarray:
        for attempt in range(self.max_retries + 1):
            try:
                return self._request(words)
            except Transient as t:
                if attempt == self.max_retries:
                    raise APIError(f"model {self.name}: gave up after {attempt + 1} tries; last: {t}") from None
                wait = min(self.backoff_max_s, self.backoff_s * 2 ** attempt) * (0.5 + self._rng.random() / 2)
                if t.retry_after is not None:
                    wait = max(wait, min(t.retry_after, self.backoff_max_s))
                time.sleep(wait)
        raise AssertionError("unreachable")

    def _batch(self, words: Sequence[str], stop: threading.Event) -> None:
        if stop.is_set():  # another batch failed for good: spend nothing more
            return
        try:
            vecs = self._with_retries(words)
        except APIError:
            stop.set()
            raise
        if not self.dim:
            self.dim = vecs.shape[1]
        self.cache.put_many(words, vecs)

    # -- the protocol --------------------------------------------------------------------------
    def embed(self, words: Sequence[str]) -> Embedded:
        words = list(dict.fromkeys(words))
        have = self.cache.get_many(words)
        todo = [w for w in words if w not in have]
        batches = [todo[s: s + self.batch_size] for s in range(0, len(todo), self.batch_size)]
        stop = threading.Event()
        with ThreadPoolExecutor(max_workers=max(1, self.concurrency)) as pool:
            futures = [pool.submit(self._batch, b, stop) for b in batches]
            try:
                for f in futures:
                    f.result()
            except BaseException:
                stop.set()  # finished batches are already cached: nothing bought is lost
                for f in futures:
                    f.cancel()
                raise
        have.update(self.cache.get_many(todo))
        vecs = np.stack([have[w] for w in words]).astype(np.float32) if words else np.zeros((0, self.dim), np.float32)
        if self.dim and vecs.shape[1] != self.dim:
            raise APIError(f"model {self.name}: cached vectors in {self.cache.path} are {vecs.shape[1]}-d, "
                           f"expected {self.dim}")
        return Embedded(words, vecs, np.zeros(len(words), dtype=np.int32), [])
