"""Generator B: variants from a chat model, against a local OpenAI-compatible server and once
with the real SmolLM2-135M-Instruct GGUF (its output is poor: that test checks the path)."""
from collections import Counter

import pytest

from chatserver import ChatServer
from embcompare.config import ConfigError, validate
from embcompare.contextual.llm import (ChatAPIClient, LLMConfig, LocalChatClient, generate_llm, make_client,
                                       find_anchor_span, variants_from_reply)
from embcompare.contextual.tasks import TASKS, Sentence, TaskRecord, check_sentence
from embcompare.embedders.api import APIError

KEY = "sk-test-secret-0123456789"
ENV = "EMBCOMPARE_TEST_CHAT_KEY"

# Real WordNet 3.0 example sentences with the anchor's span.
ORIGINALS = [
    TaskRecord("wallop", "n", "07339329-n", "negation", Sentence("the book packs a wallop", (17, 23)),
               (Sentence("the book does not pack a wallop", (25, 31)),), "rules"),
    TaskRecord("truffle", "n", "07737745-n", "question", Sentence("the pig nuzzled the truffle", (20, 27)),
               (Sentence("did the pig nuzzle the truffle?", (23, 30)),), "rules"),
    TaskRecord("peal", "v", "02183175-v", "jumbling", Sentence("bells were pealing", (11, 18)),
               (Sentence("pealing were bells", (0, 7)),), "rules"),
]


def _sentence_of(prompt: str) -> str:
    return prompt.rsplit("Sentence: ", 1)[1]


def answer(prompt: str) -> str:
    """Two good lines, then one without the anchor, one repeating the original, a duplicate."""
    s = _sentence_of(prompt)
    return "\n".join([f"1. Indeed, {s}", "2. The quick brown fox jumps.", f"3. {s}",
                      f"- Indeed, {s}", f'"Really, {s}!"'])


def _client(tmp_path, server, **kw) -> ChatAPIClient:
    cfg = dict(backend="api", model="test-chat", base_url=server.url, api_key_env=ENV,
               cache_dir=str(tmp_path / "cache"), backoff_s=0.01, backoff_max_s=0.1)
    cfg.update(kw)
    return make_client(LLMConfig(**cfg))


@pytest.fixture
def key_env(monkeypatch):
    monkeypatch.setenv(ENV, KEY)


def test_kept_variants_and_counted_rejects(tmp_path, key_env):
    with ChatServer(KEY, answer) as server:
        records, report = generate_llm(ORIGINALS, _client(tmp_path, server), batch_size=4)
    assert len(server.log) == len(ORIGINALS) * len(TASKS)
    assert len(records) == len(ORIGINALS) * len(TASKS)
    for r in records:
        s = r.original.text
        assert [v.text for v in r.variants] == [f"Indeed, {s}", f"Really, {s}!"]
        for v in r.variants:
            assert check_sentence(v, r.anchor) is None
            assert v.text[v.span[0]:v.span[1]] == s[r.original.span[0]:r.original.span[1]]
        assert r.generator == "llm:test-chat" and r.rule == f"llm/{r.task}"
    n = len(records)
    assert report["rejects_total"] == {"anchor missing": n, "same as the original": n, "duplicate": n}
    assert report["records"] == {t: len(ORIGINALS) for t in TASKS}
    # each (anchor, task) rewrites that task's own original when the anchor has one
    neg = next(r for r in records if r.anchor == "wallop" and r.task == "negation")
    assert neg.original == ORIGINALS[0].original


def test_a_reply_with_nothing_usable_gives_no_record(tmp_path, key_env):
    with ChatServer(KEY, lambda p: f"{_sentence_of(p)}\nno such word here") as server:
        records, report = generate_llm(ORIGINALS[:1], _client(tmp_path, server), tasks=("negation",))
    assert records == []
    assert report["prompts_without_variant"] == {"negation": 1}
    assert report["rejects"]["negation"] == {"same as the original": 1, "anchor missing": 1}


def test_retries_after_429_500_and_garbled_answer(tmp_path, key_env):
    with ChatServer(KEY, answer, faults=["429", "500", "malformed"]) as server:
        client = _client(tmp_path, server)
        records, _ = generate_llm(ORIGINALS[:1], client, tasks=("negation",))
    assert [a for a, _ in server.log] == ["429", "500", "malformed", "ok"]
    assert client.requests == 4 and len(records) == 1


def test_cache_serves_a_rerun_and_keeps_what_a_failure_bought(tmp_path, key_env):
    with ChatServer(KEY, answer, faults=["ok", "500", "500", "500"]) as server:
        client = _client(tmp_path, server, max_retries=2, concurrency=1)
        with pytest.raises(APIError, match="gave up after 3 tries"):
            generate_llm(ORIGINALS[:2], client, tasks=("negation",))
        assert len(server.log) == 4
        # the first prompt's reply was cached before the second failed: a rerun asks only the second
        records, report = generate_llm(ORIGINALS[:2], _client(tmp_path, server), tasks=("negation",))
        assert len(server.log) == 5 and report["cached_replies"] == 1 and len(records) == 2
        again, report = generate_llm(ORIGINALS[:2], _client(tmp_path, server), tasks=("negation",))
        assert len(server.log) == 5 and report["cached_replies"] == 2 and again == records
        # another model name on the same endpoint is another cache entry
        generate_llm(ORIGINALS[:1], _client(tmp_path, server, model="other"), tasks=("negation",))
        assert len(server.log) == 6


def test_concurrency_limit(tmp_path, key_env):
    with ChatServer(KEY, answer, delay_s=0.05) as server:
        generate_llm(ORIGINALS, _client(tmp_path, server, concurrency=2), tasks=TASKS[:4])
    assert len(server.log) == 12
    assert server.max_in_flight <= 2


def test_key_from_environment_never_in_errors(tmp_path, key_env, monkeypatch):
    with ChatServer(KEY, answer, faults=["401"]) as server:
        with pytest.raises(APIError) as e:
            generate_llm(ORIGINALS[:1], _client(tmp_path, server), tasks=("negation",))
    assert "401" in str(e.value) and ENV in str(e.value) and KEY not in str(e.value)
    monkeypatch.delenv(ENV)
    with pytest.raises(APIError, match=ENV):
        _client(tmp_path, server)


def test_reply_lines_cleaned_and_anchor_found_inflected():
    rejects = Counter()
    out = variants_from_reply("Here:\n1) The Banks were closed.\n* 'the bank is open'\n\n2. bank",
                              "the bank is open", "bank", 5, rejects)
    assert [(v.text, v.text[v.span[0]:v.span[1]]) for v in out] == [
        ("The Banks were closed.", "Banks"), ("bank", "bank")]
    assert rejects == {"anchor missing": 1, "same as the original": 1}


@pytest.mark.parametrize("anchor, prefixed, real", [
    ("art", "The artist sketched a horse.", "Her art sold well."),
    ("use", "Give us the keys.", "They used the keys."),
    ("try", "A tall tree stood there.", "She tries again."),
    ("fire", "The firm hired him.", "The fires spread."),
])
def test_llm_generator_anchor_is_an_inflection_never_a_prefix(anchor, prefixed, real):
    rejects = Counter()
    out = variants_from_reply(f"{prefixed}\n{real}", "an original", anchor, 5, rejects)
    assert [v.text for v in out] == [real] and rejects == {"anchor missing": 1}
    assert find_anchor_span(prefixed, anchor) is None
    # the span is the inflected word itself, and the first real form after a prefixed word
    both = prefixed + " " + real
    s, e = find_anchor_span(both, anchor)
    assert s > len(prefixed) and both[s:e].lower().startswith(anchor[:2])


def test_config_refuses_unknown_keys():
    with pytest.raises(ConfigError, match="contextual.llm.modle"):
        validate({"model": "x", "modle": "y"}, LLMConfig, "contextual.llm")
    with pytest.raises(ConfigError, match="gguf_file"):
        validate({"model": "x", "gguf_file": "a.gguf"}, LLMConfig, "contextual.llm")


@pytest.mark.slow
def test_smollm2_gguf_writes_variants():
    client = make_client(LLMConfig(backend="transformers", model="smollm2_135m", max_tokens=32, batch_size=2))
    assert isinstance(client, LocalChatClient)
    records, report = generate_llm(ORIGINALS[:2], client, tasks=("question",), n_variants=2)
    assert report["prompts"] == 2 and client.requests == 2
    for r in records:
        assert r.generator == "llm:smollm2_135m"
        for v in r.variants:
            assert check_sentence(v, r.anchor) is None and v.text != r.original.text
    total = sum(len(r.variants) for r in records) + sum(report["rejects_total"].values())
    assert total >= 1  # the model wrote some line, kept or counted
