"""jobs/agreement.py end to end on 800 words: real embeddings (GloVe, MiniLM), the real
similarity job (embedded Ray) writing the neighbours and groups it reads, the contract of the
three files it writes, and its refusals before any work."""
import importlib.util
import math
import sys

import pyarrow as pa
import pytest

from conftest import ROOT, write_store
from embcompare import store
from embcompare.vocab import VocabFilter, load_words

sys.path.insert(0, str(ROOT / "jobs"))


def _job(name):
    spec = importlib.util.spec_from_file_location(f"{name}_job", ROOT / "jobs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


agreement_job, similarity_job = _job("agreement"), _job("similarity")
MAX_WORDS = 800
MODELS = ["glove_6b_50d", "sbert_minilm"]
COMMON = ["models=[glove_6b_50d,sbert_minilm]", f"vocab.max_words={MAX_WORDS}"]


def config(stage, *overrides):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(stage, overrides=list(overrides))


@pytest.fixture(scope="module")
def similarity_done(tmp_path_factory, glove_cfg, minilm_cfg):
    """An embeddings store as jobs/extract.py writes it, and the similarity job's outputs over it
    with 20 neighbours per word."""
    import ray

    out = tmp_path_factory.mktemp("agree")
    words = load_words(filt=VocabFilter(max_words=MAX_WORDS))
    write_store(out, (glove_cfg, minilm_cfg), words)
    similarity_job.run(config("similarity", *COMMON, f"out_dir={out}", "similarity.top_k=20",
                              "similarity.groups.random_pairs=5000", "ray.num_cpus=2"))
    yield out
    ray.shutdown()


PAIRS = {"model_a": pa.string(), "model_b": pa.string(), "measure": pa.string(), "group": pa.string(),
         "k": pa.int32(), "value": pa.float64(), "chance": pa.float64(), "null_mean": pa.float64(),
         "null_sd": pa.float64(), "n_words": pa.int64()}
WORDS = {"word": pa.string(), "model_a": pa.string(), "model_b": pa.string(), "k": pa.int32(),
         "overlap": pa.float64(), "jaccard": pa.float64(), "rbo": pa.float64()}
ANISOTROPY = {"model": pa.string(), "measure": pa.string(), "group": pa.string(), "value": pa.float64(),
              "n_pairs": pa.int64()}


def check_contract(out) -> list[str]:
    """The agreement files' contract: columns and types, values in range, one row per word,
    pair and k, the pair table's means equal to the word table's."""
    problems = []
    tables = {}
    for name, schema in (("pairs", PAIRS), ("words", WORDS), ("anisotropy", ANISOTROPY)):
        t = store.read_table(store.join(str(out), "agreement", f"{name}.parquet"))
        got = {f.name: f.type for f in t.schema}
        if got != schema:
            problems.append(f"{name}.parquet: columns {got}, expected {schema}")
        tables[name] = t.to_pandas()
    p, w, a = tables["pairs"], tables["words"], tables["anisotropy"]
    for r in p.itertuples():
        lo = -1.0 if r.measure in ("cka_debiased", "spearman") else 0.0
        if not lo - 1e-9 <= r.value <= 1 + 1e-9:
            problems.append(f"pairs: {r.measure} = {r.value} outside [{lo}, 1]")
    if set(p.measure) != {"mutual_knn", "jaccard", "rbo", "cka", "cka_debiased", "spearman"}:
        problems.append(f"pairs: measures {sorted(set(p.measure))}")
    if w.duplicated(["word", "model_a", "model_b", "k"]).any():
        problems.append("words: a (word, pair, k) twice")
    for (ma, mb, k), g in w.groupby(["model_a", "model_b", "k"]):
        for col, measure in (("overlap", "mutual_knn"), ("jaccard", "jaccard"), ("rbo", "rbo")):
            row = p[(p.model_a == ma) & (p.model_b == mb) & (p.k == k) & (p.group == "all") & (p.measure == measure)]
            if len(row) != 1 or abs(row.value.iloc[0] - g[col].mean()) > 1e-12 or row.n_words.iloc[0] != len(g):
                problems.append(f"pairs: {measure}@{k} of {ma}/{mb} is not the mean of words.parquet")
    for m, g in a.groupby("model"):
        share = g[g.measure.isin(["pc1_share", "top3_share"])].value
        if not ((share > 0) & (share <= 1)).all() or not (g[g.measure == "random_sd"].value > 0).all():
            problems.append(f"anisotropy: {m} has a share outside (0, 1] or no spread")
    return problems


def test_stage_writes_its_contract_and_the_same_bytes_twice(similarity_done):
    out = similarity_done
    headline = agreement_job.run(config("agreement", *COMMON, f"out_dir={out}", "agreement.k=[1,10,20]",
                                        "agreement.permutation.sample=500", "agreement.permutation.count=5"))
    assert check_contract(out) == []
    p = store.read_table(store.join(str(out), "agreement", "pairs.parquet")).to_pandas()
    n = headline["n_words"]
    knn = p[(p.measure == "mutual_knn") & (p.group == "all")].set_index("k")
    assert sorted(knn.index) == [1, 10, 20] and knn.loc[10, "chance"] == pytest.approx(10 / (n - 1))
    assert (knn.value > 3 * knn.chance).all()  # GloVe and MiniLM share neighbourhoods well above chance
    groups = set(p.group)
    assert {"all", "pos:noun", "pos:verb", "zipf:3-4"} <= groups and any(g.startswith("bats:") for g in groups)
    cka = p[p.measure == "cka_debiased"].iloc[0]
    assert cka.n_words == n and cka.value > cka.null_mean + 5 * cka.null_sd
    sim = store.read_table(store.join(str(out), "similarity", "correlations.parquet")).to_pylist()[0]
    assert p[p.measure == "spearman"].value.tolist() == [sim["spearman"]]
    a = store.read_table(store.join(str(out), "agreement", "anisotropy.parquet")).to_pandas()
    for m in MODELS:
        summ = store.read_json(store.join(str(out), "similarity", m, "summary.json"))
        mine = a[(a.model == m) & (a.measure == "all_pairs_mean")].value.iloc[0]
        assert mine == summ["mean"]
        es = a[(a.model == m) & (a.measure == "effect_size") & (a.group == "wordnet_synonym")].value
        assert len(es) == 1 and math.isfinite(es.iloc[0])
    before = {f: store.read_bytes(store.join(str(out), "agreement", f))
              for f in ("pairs.parquet", "words.parquet", "anisotropy.parquet")}
    agreement_job.run(config("agreement", *COMMON, f"out_dir={out}", "agreement.k=[1,10,20]",
                             "agreement.permutation.sample=500", "agreement.permutation.count=5"))
    assert all(store.read_bytes(store.join(str(out), "agreement", f)) == b for f, b in before.items())


@pytest.mark.parametrize("overrides,message", [
    (["agreement.k=[10,50]"], r"neighbors.parquet holds 20 neighbours per word; use k <= 20 or rerun the similarity "
                              r"stage with similarity.top_k=50"),
    (["models=[glove_6b_50d]"], r"computed with models \['glove_6b_50d', 'sbert_minilm'\], not \['glove_6b_50d'\]"),
    (["vocab.max_words=700"], r"computed over 454 words of other embeddings or another vocabulary \(here 402\)"),
])
def test_bad_inputs_are_refused_before_any_file_is_written(similarity_done, tmp_path, overrides, message):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(similarity_done / "embeddings", out / "embeddings")
    shutil.copytree(similarity_done / "similarity", out / "similarity")
    shutil.copytree(similarity_done / ".pipeline", out / ".pipeline")  # the commits that vouch for them
    with pytest.raises(SystemExit, match=message):
        agreement_job.run(config("agreement", *COMMON, f"out_dir={out}", *overrides))
    assert not (out / "agreement").exists() or not any((out / "agreement").iterdir())


def test_a_misspelt_key_is_a_config_error():
    from embcompare.config import ConfigError

    with pytest.raises(ConfigError, match="rbo_q"):
        agreement_job.check(config("agreement", *COMMON, "+agreement.rbo_q=0.5"))
