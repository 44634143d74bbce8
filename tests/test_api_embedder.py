"""The embedding-API backend against a local server that speaks the endpoint and injects faults."""
import os

import numpy as np
import pytest

from apiserver import DIM, FaultServer, vector_of
from conftest import run_job
from embcompare import store
from embcompare.embedders import ModelConfigError, build_embedder
from embcompare.embedders.api import APIError

KEY = "sk-test-DO-NOT-LEAK-4f1c2b"
WORDS = [f"w{i}" for i in range(25)]


@pytest.fixture
def key_env(monkeypatch):
    monkeypatch.setenv("EMBCOMPARE_TEST_KEY", KEY)
    return "EMBCOMPARE_TEST_KEY"


def cfg(server, tmp_path, key_env, **over):
    return {"name": "api_t", "backend": "api", "provider": "openai", "model": "m", "base_url": server.url,
            "api_key_env": key_env, "dim": DIM, "batch_size": 10, "concurrency": 2, "timeout_s": 1.0,
            "max_retries": 4, "backoff_s": 0.01, "cache_dir": str(tmp_path / "cache"), **over}


def test_vectors_come_back_in_order_and_are_cached(tmp_path, key_env):
    with FaultServer(KEY) as srv:
        emb = build_embedder(cfg(srv, tmp_path, key_env))
        out = emb.embed(WORDS)
        assert out.words == WORDS and out.missing == []
        np.testing.assert_array_equal(out.vectors, np.array([vector_of(w) for w in WORDS], dtype=np.float32))
        assert [n for _, _, n in srv.log] == [10, 10, 5]
        again = build_embedder(cfg(srv, tmp_path, key_env)).embed(WORDS[::-1])
        assert len(srv.log) == 3  # a rerun never pays twice
        np.testing.assert_array_equal(again.vectors, out.vectors[::-1])
    assert KEY not in str(emb.identity())


def test_two_endpoints_serving_one_model_name_never_share_cached_vectors(tmp_path, key_env):
    from embcompare.extract import work_key

    with FaultServer(KEY, salt="server A") as a, FaultServer(KEY, salt="server B") as b:
        emb_a = build_embedder(cfg(a, tmp_path, key_env))
        out_a = emb_a.embed(WORDS)
        emb_b = build_embedder(cfg(b, tmp_path, key_env))  # same cache_dir, provider, model name
        out_b = emb_b.embed(WORDS)
        assert len(b.log) == 3  # B was asked for every word: nothing came from A's cache
    np.testing.assert_array_equal(out_a.vectors, np.array([vector_of(w, salt="server A") for w in WORDS], np.float32))
    np.testing.assert_array_equal(out_b.vectors, np.array([vector_of(w, salt="server B") for w in WORDS], np.float32))
    assert emb_a.cache.path != emb_b.cache.path
    # The endpoint is in the identity, so the work key changes with it.
    assert emb_a.identity()["base_url"] == a.url
    assert work_key(emb_a.identity(), "v", 10) != work_key(emb_b.identity(), "v", 10)


def test_google_endpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("GOOGLE_API_KEY", KEY)
    with FaultServer(KEY) as srv:
        emb = build_embedder({"name": "g", "backend": "api", "provider": "google", "model": "text-embedding-004",
                              "base_url": srv.url, "dim": DIM, "cache_dir": str(tmp_path)})
        out = emb.embed(["alpha", "beta"])
    np.testing.assert_array_equal(out.vectors[1], np.float32(vector_of("beta")))


def test_transient_faults_are_retried_honouring_retry_after(tmp_path, key_env):
    with FaultServer(KEY, ["429", "500", "hang", "malformed"], retry_after="0.5") as srv:
        out = build_embedder(cfg(srv, tmp_path, key_env, concurrency=1)).embed(WORDS)
        np.testing.assert_array_equal(out.vectors, np.array([vector_of(w) for w in WORDS], dtype=np.float32))
        times = [t for t, _, _ in srv.log]
        assert [a for _, a, _ in srv.log][:5] == ["429", "500", "hang", "malformed", "ok"]
        assert times[1] - times[0] >= 0.5  # waited as long as Retry-After asked


@pytest.mark.parametrize("fault,message", [("401", "rejected the key in $EMBCOMPARE_TEST_KEY (HTTP 401)"),
                                           ("baddim", "returned 3-d vectors, expected 8")])
def test_fatal_answers_stop_with_the_cause_and_keep_what_was_bought(tmp_path, key_env, fault, message):
    with FaultServer(KEY, ["ok", fault]) as srv:
        emb = build_embedder(cfg(srv, tmp_path, key_env, concurrency=1))
        with pytest.raises(APIError) as e:
            emb.embed(WORDS)
        assert message in str(e.value) and KEY not in str(e.value)
        assert len(emb.cache.get_many(WORDS)) == 10  # the first batch stays cached, the bad one does not


def test_persistent_faults_give_up_naming_the_last_cause(tmp_path, key_env):
    with FaultServer(KEY, ["malformed"] * 10) as srv:
        with pytest.raises(APIError, match="gave up after 3 tries; last: malformed JSON"):
            build_embedder(cfg(srv, tmp_path, key_env, max_retries=2)).embed(WORDS[:3])


def test_missing_key_is_a_config_error(tmp_path, monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    with pytest.raises(ModelConfigError, match="set the environment variable NO_SUCH_KEY_VAR"):
        build_embedder({"name": "a", "backend": "api", "model": "m", "api_key_env": "NO_SUCH_KEY_VAR"})


def _all_text(folder) -> str:
    text = []
    for p in folder.rglob("*"):
        if p.is_file():
            text.append(p.read_bytes().decode("latin-1"))
    return "\n".join(text)


def test_job_through_the_api_never_writes_or_prints_the_key(tmp_path):
    env = {**os.environ, "OPENAI_API_KEY": KEY}
    common = ["model=openai_te3_small", "vocab.max_words=300", "extract.evaluation_words=false", "model.openai_te3_small.dim=8",
              "model.openai_te3_small.batch_size=64", "model.openai_te3_small.backoff_s=0.01",
              f"model.openai_te3_small.cache_dir={tmp_path / 'cache'}"]
    with FaultServer(KEY, ["ok", "429", "ok", "500"]) as srv:
        out = tmp_path / "out"
        proc = run_job("extract.py", *common, f"model.openai_te3_small.base_url={srv.url}", f"out_dir={out}", env=env)
    words, X = store.read_embeddings(out / "embeddings" / "openai_te3_small")
    assert len(words) == 300
    np.testing.assert_array_equal(X, np.array([vector_of(w) for w in words], dtype=np.float32))
    assert KEY not in proc.stdout + proc.stderr and KEY not in _all_text(out)

    with FaultServer("another-key", []) as srv:
        out = tmp_path / "out401"
        bad = run_job("extract.py", *common, f"model.openai_te3_small.base_url={srv.url}", f"out_dir={out}",
                      "model.openai_te3_small.cache_dir=" + str(tmp_path / "cache2"), env=env, check=False)
    assert bad.returncode != 0 and "HTTP 401" in bad.stderr and "OPENAI_API_KEY" in bad.stderr
    assert KEY not in bad.stdout + bad.stderr and KEY not in _all_text(out)
    assert not list((out / "embeddings" / "openai_te3_small").glob("part-*"))
