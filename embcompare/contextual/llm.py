"""Generator B: a language model writes the variants, as in the study.

Two clients behind one method, ``complete(prompts) -> replies``:
- ChatAPIClient: any OpenAI-compatible ``/chat/completions`` endpoint. Requests go out with a
  concurrency limit; 429, 5xx, timeouts and garbled bodies are retried with exponential
  backoff (Retry-After honoured), the same policy as the embedding APIs
  (embcompare/embedders/api.py). Every reply is cached on disk at once (SQLite, keyed by
  endpoint + model + prompt + sampling settings), so a rerun pays for nothing twice. The key
  comes from the environment variable the config names and is never stored or logged.
- LocalChatClient: a transformers causal LM from a folder or a conf/model entry (a GGUF file
  included, e.g. SmolLM2-135M-Instruct), greedy decoding in batches.

One prompt per (anchor, task) asks for ``n_variants`` sentences, one per line. A line is
kept only if it holds the anchor (some inflected form of it) and differs from the original;
every rejected line is counted under its reason.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import sqlite3
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, Mapping, Protocol, Sequence

from pydantic import Field, model_validator

from embcompare.config import Section
from embcompare.contextual.tasks import TASKS, Sentence, TaskRecord, surface_matches
from embcompare.embedders.api import RETRY_STATUS, APIError, retry_after, Transient

SYSTEM = "You rewrite English sentences exactly as asked. Answer with the sentences only, one per line."

# The instruction for each task; {anchor} must survive in every sentence written.
INSTRUCTIONS = {
    "synonym": "Replace one word other than '{anchor}' with a synonym.",
    "antonym": "Replace one word other than '{anchor}' with its antonym.",
    "negation": "Negate the sentence.",
    "jumbling": "Shuffle the order of the words other than '{anchor}' at random.",
    "paraphrase": "Paraphrase the sentence: change at least two words other than '{anchor}' and its structure, keep its meaning.",
    "question": "Turn the sentence into a question.",
    "exclamation": "Turn the sentence into an exclamation.",
    "active_passive": "Change the voice of the sentence (active to passive or passive to active).",
    "polysemy": "Write new sentences that use the word '{anchor}' in a different meaning than it has here.",
}


def prompt_for(task: str, anchor: str, sentence: str, n: int) -> str:
    return (f"{INSTRUCTIONS[task].format(anchor=anchor)} Keep the word '{anchor}' in every sentence. "
            f"Write {n} different versions, one per line, nothing else.\nSentence: {sentence}")


class ChatClient(Protocol):
    name: str

    def complete(self, prompts: Sequence[str]) -> list[str]:
        """One reply per prompt, in order."""


class LLMConfig(Section):
    """The ``contextual.llm`` section: which model writes the variants and how it is asked."""

    backend: Literal["api", "transformers"] = "api"
    # api: the model name the endpoint serves; transformers: a conf/model key (smollm2_135m)
    # or, with ``path``, a name for the records.
    model: str
    base_url: str = "https://api.openai.com/v1"
    api_key_env: str = "OPENAI_API_KEY"  # the variable holding the key, never the key itself
    path: str | None = None  # transformers: a model folder (instead of a conf/model key)
    gguf_file: str | None = None
    device: str = "auto"
    temperature: float = Field(0.0, ge=0, le=2)
    max_tokens: int = Field(256, ge=1)
    n_variants: int = Field(5, ge=1, le=20)
    batch_size: int = Field(16, ge=1)
    concurrency: int = Field(4, ge=1)
    timeout_s: float = Field(120, gt=0)
    max_retries: int = Field(6, ge=0)
    backoff_s: float = Field(1.0, ge=0)
    backoff_max_s: float = Field(60, ge=0)
    cache_dir: str = "~/.cache/embcompare/chat"

    @model_validator(mode="after")
    def _names(self) -> "LLMConfig":
        if self.backend == "api" and (self.path or self.gguf_file):
            raise ValueError("path and gguf_file are for backend: transformers")
        return self


class ReplyCache:
    """prompt key -> reply text, one SQLite file; every reply is written as it arrives."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS reply (key TEXT PRIMARY KEY, text TEXT NOT NULL)")
        self._db.commit()

    def get(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT text FROM reply WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def put(self, key: str, text: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO reply VALUES (?, ?)", (key, text))
            self._db.commit()


class ChatAPIClient:
    """An OpenAI-compatible chat-completions endpoint (see the module docstring)."""

    def __init__(self, cfg: LLMConfig):
        import requests

        self.cfg = cfg
        self.name = cfg.model
        self.base_url = cfg.base_url.rstrip("/")
        self.key_env = cfg.api_key_env
        if not os.environ.get(self.key_env):
            raise APIError(f"chat model {self.name}: set the environment variable {self.key_env} to the API key")
        self.cache = ReplyCache(Path(os.path.expanduser(cfg.cache_dir)) / "replies.sqlite")
        self.requests = 0  # requests sent (retries included), for the report
        self.cached = 0
        self._session = requests.Session()
        self._rng = random.Random(0)
        self._count = threading.Lock()

    def key(self, prompt: str) -> str:
        ident = json.dumps([self.base_url, self.name, SYSTEM, prompt, self.cfg.temperature, self.cfg.max_tokens])
        return hashlib.sha256(ident.encode()).hexdigest()

    def _scrub(self, text: str) -> str:
        key = os.environ.get(self.key_env, "")
        return text.replace(key, "***") if key else text

    def _request(self, prompt: str) -> str:
        import requests

        with self._count:
            self.requests += 1
        body = {"model": self.name, "temperature": self.cfg.temperature, "max_tokens": self.cfg.max_tokens,
                "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]}
        headers = {"Authorization": f"Bearer {os.environ.get(self.key_env, '')}"}
        url = f"{self.base_url}/chat/completions"
        try:
            r = self._session.post(url, json=body, headers=headers, timeout=self.cfg.timeout_s)
        except requests.Timeout:
            raise Transient(f"no answer within {self.cfg.timeout_s:g} s") from None
        except requests.ConnectionError as e:
            raise Transient(f"connection failed ({type(e).__name__})") from None
        if r.status_code in RETRY_STATUS:
            raise Transient(f"HTTP {r.status_code}", retry_after(r.headers.get("Retry-After")))
        if r.status_code in (401, 403):
            raise APIError(f"chat model {self.name}: {url} rejected the key in ${self.key_env} "
                           f"(HTTP {r.status_code}): {self._scrub(r.text[:200])}")
        if r.status_code != 200:
            raise APIError(f"chat model {self.name}: HTTP {r.status_code} from {url}: {self._scrub(r.text[:300])}")
        try:
            text = r.json()["choices"][0]["message"]["content"]
            if not isinstance(text, str):
                raise TypeError(f"content is {type(text).__name__}")
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise Transient(f"malformed JSON answer ({type(e).__name__}: {str(e)[:80]})") from None
        return text

    def _one(self, prompt: str, stop: threading.Event) -> str | None:
        if stop.is_set():
            return None
        k = self.key(prompt)
        hit = self.cache.get(k)
        if hit is not None:
            with self._count:
                self.cached += 1
            return hit
        for attempt in range(self.cfg.max_retries + 1):
            try:
                text = self._request(prompt)
                break
            except Transient as t:
                if attempt == self.cfg.max_retries:
                    stop.set()
                    raise APIError(f"chat model {self.name}: gave up after {attempt + 1} tries; last: {t}") from None
                wait = min(self.cfg.backoff_max_s, self.cfg.backoff_s * 2 ** attempt) * (0.5 + self._rng.random() / 2)
                if t.retry_after is not None:
                    wait = max(wait, min(t.retry_after, self.cfg.backoff_max_s))
                time.sleep(wait)
            except APIError:
                stop.set()
                raise
        self.cache.put(k, text)  # at once: a later failure loses nothing bought
        return text

    def complete(self, prompts: Sequence[str]) -> list[str]:
        stop = threading.Event()
        with ThreadPoolExecutor(max_workers=self.cfg.concurrency) as pool:
            futures = [pool.submit(self._one, p, stop) for p in prompts]
            try:
                return [f.result() for f in futures]
            except BaseException:
                stop.set()
                for f in futures:
                    f.cancel()
                raise


def load_causal_lm(model: str, path: str | None = None, gguf_file: str | None = None,
                   device: str = "auto") -> tuple[Any, Any, str]:
    """(tokenizer, causal LM in eval mode, device) of a conf/model key with backend
    transformers (its ``package`` / ``path`` / ``gguf_file`` or ``model_id``), or of a folder
    ``path``; float32, a pad token set."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from embcompare.embedders.base import resolve_path
    from embcompare.embedders.sentence import pick_device

    if path:
        folder, gguf = Path(os.path.expanduser(path)), gguf_file
        if not folder.is_dir():
            raise FileNotFoundError(f"causal model {model}: path {folder} is not a folder")
    else:
        from embcompare.models import load_model_config

        mcfg = load_model_config(model)
        if mcfg.get("backend") != "transformers":
            raise ValueError(f"causal model {model}: conf/model/{model}.yaml is backend "
                             f"{mcfg.get('backend')!r}; a causal language model needs backend transformers")
        folder = resolve_path(mcfg, "path") if mcfg.get("path") else Path(mcfg["model_id"])
        gguf = gguf_file or mcfg.get("gguf_file")
    kw = {"gguf_file": gguf} if gguf else {}
    dev = pick_device(device)
    tokenizer = AutoTokenizer.from_pretrained(str(folder), **kw)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    lm = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32, **kw)
    lm.to(dev).eval()
    return tokenizer, lm, dev


class LocalChatClient:
    """A transformers causal LM with a chat template, greedy decoding, batches of prompts.

    The model is found the way the embedders find it: a conf/model key (its ``package`` /
    ``path`` / ``gguf_file``, resolved by embcompare.embedders.base.resolve_path) or a folder.
    """

    def __init__(self, cfg: LLMConfig):
        self.cfg = cfg
        self.name = cfg.model
        self.tokenizer, self.model, self.device = load_causal_lm(cfg.model, cfg.path, cfg.gguf_file, cfg.device)
        if self.tokenizer.chat_template is None:
            raise ValueError(f"chat model {self.name}: its tokenizer has no chat template")
        self.tokenizer.padding_side = "left"  # generation continues from the right end
        self.requests = self.cached = 0

    def complete(self, prompts: Sequence[str]) -> list[str]:
        import torch

        out: list[str] = []
        for s in range(0, len(prompts), self.cfg.batch_size):
            chunk = prompts[s: s + self.cfg.batch_size]
            texts = [self.tokenizer.apply_chat_template(
                [{"role": "system", "content": SYSTEM}, {"role": "user", "content": p}],
                tokenize=False, add_generation_prompt=True) for p in chunk]
            enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
            with torch.inference_mode():
                gen = self.model.generate(**enc, max_new_tokens=self.cfg.max_tokens, do_sample=False,
                                          pad_token_id=self.tokenizer.pad_token_id)
            n = enc["input_ids"].shape[1]
            out += [self.tokenizer.decode(g[n:], skip_special_tokens=True) for g in gen]
            self.requests += len(chunk)
        return out


def make_client(cfg: LLMConfig | Mapping[str, Any]) -> ChatClient:
    if not isinstance(cfg, LLMConfig):
        cfg = LLMConfig(**cfg)
    return ChatAPIClient(cfg) if cfg.backend == "api" else LocalChatClient(cfg)


# ---------------------------------------------------------------- replies to variants
def _clean(line: str) -> str:
    s = line.strip()
    # list markers the models add: "1.", "2)", "-", "*"
    head, _, rest = s.partition(" ")
    if rest and (head in ("-", "*", "•") or (head.rstrip(".):").isdigit() and head[-1:] in ".):")):
        s = rest.strip()
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "\"'":
        s = s[1:-1].strip()
    return s


def _norm(text: str) -> str:
    return " ".join("".join(c for c in text.lower() if c.isalnum() or c.isspace()).split())


def find_anchor_span(text: str, anchor: str) -> tuple[int, int] | None:
    """Span of the first word of ``text`` that is a form of ``anchor`` (case, inflection)."""
    n_words = len(anchor.split())
    words, i = [], 0
    while i < len(text):
        if text[i].isalpha():
            j = i
            while j < len(text) and text[j].isalpha():
                j += 1
            words.append((i, j))
            i = j
        else:
            i += 1
    for k in range(len(words) - n_words + 1):
        s, e = words[k][0], words[k + n_words - 1][1]
        if surface_matches(text[s:e], anchor):
            return s, e
    return None


def variants_from_reply(reply: str, original: str, anchor: str, n: int, rejects: Counter) -> list[Sentence]:
    """The reply's lines that hold the anchor and differ from the original (and each other)."""
    kept: list[Sentence] = []
    seen = {_norm(original)}
    for line in reply.splitlines():
        s = _clean(line)
        if not s:
            continue
        if len(kept) == n:
            rejects["more lines than asked"] += 1
            continue
        if _norm(s) == _norm(original):
            rejects["same as the original"] += 1
            continue
        if _norm(s) in seen:
            rejects["duplicate"] += 1
            continue
        span = find_anchor_span(s, anchor)
        if span is None:
            rejects["anchor missing"] += 1
            continue
        seen.add(_norm(s))
        kept.append(Sentence(s, span))
    return kept


def _originals_by_anchor(originals: Sequence[TaskRecord], tasks: Sequence[str]):
    """For every anchor and task: the original sentence to rewrite (the anchor's record of
    that task when there is one, else its first record) and its sense."""
    by_anchor: dict[tuple[str, str], dict[str, TaskRecord]] = defaultdict(dict)
    for r in originals:
        by_anchor[(r.anchor, r.pos)].setdefault(r.task, r)
    out = []
    for (anchor, pos), recs in by_anchor.items():
        fallback = next((r for t, r in recs.items() if t != "polysemy"), next(iter(recs.values())))
        for task in tasks:
            out.append((task, recs.get(task, fallback)))
    return out


def generate_llm(originals: Sequence[TaskRecord] | None, client: ChatClient, tasks: Sequence[str] = TASKS, *,
                 n_variants: int = 5, batch_size: int = 64, n_anchors: int = 1200, seed: int = 0,
                 wordnet_dir: str | None = None) -> tuple[list[TaskRecord], dict[str, Any]]:
    """Generator B: for each anchor and task, the model rewrites the anchor's original sentence.

    ``originals``: records whose original sentences are rewritten (e.g. generator A's, so both
    generators share anchors and sentences); None draws them with generate_rules(n_anchors,
    seed, wordnet_dir). Prompts go to ``client`` ``batch_size`` at a time. Returns the records
    and a report: prompts, records and sentences per task, rejected lines per task and reason.
    """
    t0 = time.perf_counter()
    bad = [t for t in tasks if t not in TASKS]
    if bad:
        raise ValueError(f"unknown tasks {bad}; use some of {list(TASKS)}")
    if originals is None:
        from embcompare.contextual.rules import generate_rules

        originals, _ = generate_rules(n_anchors=n_anchors, seed=seed, wordnet_dir=wordnet_dir)
    jobs = _originals_by_anchor(originals, tasks)
    prompts = [prompt_for(task, r.anchor, r.original.text, n_variants) for task, r in jobs]
    generator = f"llm:{client.name}"
    records: list[TaskRecord] = []
    rejects: dict[str, Counter] = defaultdict(Counter)
    empty = Counter()
    for s in range(0, len(jobs), batch_size):
        replies = client.complete(prompts[s: s + batch_size])
        for (task, r), reply in zip(jobs[s: s + batch_size], replies):
            variants = variants_from_reply(reply or "", r.original.text, r.anchor, n_variants, rejects[task])
            if not variants:
                empty[task] += 1
                continue
            records.append(TaskRecord(anchor=r.anchor, pos=r.pos, sense=r.sense, task=task, original=r.original,
                                      variants=tuple(variants), generator=generator, rule=f"llm/{task}"))
    per_task = Counter(r.task for r in records)
    sentences = Counter()
    for r in records:
        sentences[r.task] += 1 + len(r.variants)
    report = {
        "generator": generator,
        "prompts": len(prompts),
        "requests": getattr(client, "requests", None),
        "cached_replies": getattr(client, "cached", None),
        "anchors": len({(r.anchor, r.pos) for _, r in jobs}),
        "records": {t: per_task.get(t, 0) for t in tasks},
        "sentences": {t: sentences.get(t, 0) for t in tasks},
        "prompts_without_variant": {t: empty[t] for t in tasks if empty[t]},
        "rejects": {t: dict(rejects[t].most_common()) for t in tasks if rejects[t]},
        "rejects_total": dict(sum(rejects.values(), Counter()).most_common()),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    return records, report
