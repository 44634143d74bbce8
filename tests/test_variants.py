"""Model variants: the name grammar, every layer from one pass (real SmolLM2), post-processed
spaces against a direct float64 computation, and their stores written by the extraction job."""
import io
import json
import math
import re
import sys

import numpy as np
import pytest
import torch

from conftest import ROOT, run_job
from embcompare import store, transforms
from embcompare.datasets import load_word_pairs
from embcompare.embedders import ModelConfigError, build_embedder
from embcompare.embedders.base import resolve_path
from embcompare.models import load_model_config
from embcompare.variants import Variant, VariantError, parse, resolve_layers
from embcompare.wordsim import evaluate

sys.path.insert(0, str(ROOT / "jobs"))
import pipeline  # noqa: E402


# ---- the grammar -------------------------------------------------------------------------------

@pytest.mark.parametrize("name, want", [
    ("smollm2_135m", Variant("smollm2_135m")),
    ("smollm2_135m@12", Variant("smollm2_135m", 12)),
    ("smollm2_135m@0+abtt", Variant("smollm2_135m", 0, "abtt")),
    ("smollm2_135m+abtt3", Variant("smollm2_135m", None, "abtt", 3)),
    ("glove_6b_50d+center", Variant("glove_6b_50d", None, "center")),
    ("gemma3_270m@18+zscore", Variant("gemma3_270m", 18, "zscore")),
])
def test_names_parse_and_print_back(name, want):
    v = parse(name)
    assert v == want and v.name == name
    assert v.raw == name.split("+")[0]


@pytest.mark.parametrize("name, named", [
    ("smollm2_135m+centre", "unknown transform 'centre'; transforms are +center, +abtt, +zscore"),
    ("smollm2_135m@last", "layer 'last' is not a hidden-state index"),
    ("smollm2_135m@-1", "layer '-1' is not a hidden-state index"),
    ("smollm2_135m@3+abtt0", "removes no component"),
    ("smollm2 135m", "not of the form name"),
])
def test_a_bad_name_is_refused_naming_what_is_allowed(name, named):
    with pytest.raises(VariantError, match=re.escape(named)):
        parse(name)


def test_stage_configs_check_names_before_work(tmp_path):
    # The analogy stage's schema refuses a name outside the grammar, naming the transforms.
    proc = run_job("analogy.py", "models=[glove_6b_50d+whiten]", f"out_dir={tmp_path}", check=False)
    assert proc.returncode != 0 and "unknown transform 'whiten'" in proc.stderr + proc.stdout
    # A layer that is not stored: the error lists the stored variants of that model.
    for name in ("smollm2_135m", "smollm2_135m@3"):
        (tmp_path / "embeddings" / name).mkdir(parents=True)
        (tmp_path / "embeddings" / name / "manifest.json").write_text("{}")
    proc = run_job("analogy.py", "models=[smollm2_135m@40]", f"out_dir={tmp_path}", check=False)
    assert proc.returncode != 0
    assert "stored variants of smollm2_135m: smollm2_135m, smollm2_135m@3" in proc.stderr + proc.stdout
    assert not (tmp_path / "analogy").exists()


def test_model_at_all_expands_to_every_stored_layer_and_reaches_only_the_stages_that_take_it():
    from embcompare.variants import expand

    stored = {"smollm2_135m": ["smollm2_135m@10", "smollm2_135m@2", "smollm2_135m@0"], "glove_6b_50d": []}
    assert parse("smollm2_135m@all+abtt") == Variant("smollm2_135m", "all", "abtt")
    assert expand(["glove_6b_50d", "smollm2_135m@all", "smollm2_135m@all+center"], stored.get) == [
        "glove_6b_50d", "smollm2_135m@0", "smollm2_135m@2", "smollm2_135m@10",
        "smollm2_135m@0+center", "smollm2_135m@2+center", "smollm2_135m@10+center"]
    with pytest.raises(VariantError, match="no stored layer of model glove_6b_50d; extract them first"):
        expand(["glove_6b_50d@all"], stored.get)
    p = pipeline.plan(["models=[smollm2_135m,smollm2_135m@all]"])
    assert "extract.variants=[smollm2_135m@all]" in p.overrides["extract"]
    assert p.overrides["analogy"][0] == "models=[smollm2_135m,smollm2_135m@all]"
    assert p.overrides["similarity"][0] == p.overrides["contextual"][0] == "models=[smollm2_135m]"
    assert p.overrides["agreement"][0] == "models=[smollm2_135m]"  # it reads similarity's files


def test_layers_resolve_to_hidden_state_indices():
    assert resolve_layers("all", 31, "m") == list(range(31))
    assert resolve_layers([-1, 12, 30, 0], 31, "m") == [0, 12, 30]
    with pytest.raises(VariantError, match=r"layer 31 is not one of its hidden states: 0..30"):
        resolve_layers([31], 31, "m")


def test_a_layer_variant_loads_its_model_at_that_layer():
    cfg = load_model_config("smollm2_135m@12")
    assert cfg["layer"] == 12 and cfg["name"] == "smollm2_135m@12"
    with pytest.raises(ModelConfigError, match="has no layers to choose"):
        load_model_config("glove_6b_50d@3")
    with pytest.raises(ModelConfigError, match="stored vectors, not a model to load; use smollm2_135m@2"):
        load_model_config("smollm2_135m@2+abtt")


def test_the_pipeline_sends_extraction_the_models_and_their_variants():
    p = pipeline.plan(["models=[glove_6b_50d+center,smollm2_135m@12,smollm2_135m@12+abtt]",
                       "stages=[extract,analogy,contextual]"])
    ex, an = p.overrides["extract"], p.overrides["analogy"]
    assert ex[0] == "model=[glove_6b_50d,smollm2_135m]"
    assert "extract.variants=[glove_6b_50d+center,smollm2_135m@12,smollm2_135m@12+abtt]" in ex
    assert an[0] == "models=[glove_6b_50d+center,smollm2_135m@12,smollm2_135m@12+abtt]"
    # The contextual stage reads layers through contextual.layer, not variants: none of these
    # is a model it takes, so it is left out (not handed an empty model list).
    assert "contextual" not in p.stages and p.stages == ["extract", "analogy"]
    with pytest.raises(pipeline.PipelineError, match="unknown transform"):
        pipeline.plan(["models=[glove_6b_50d+pca]"])


# ---- post-processing against a direct float64 computation ---------------------------------------

def _direct(kind, X, D=None):
    """The textbook computation in float64: PCA by SVD of the centred data (not the scatter
    matrix's eigenvectors the module uses), population standard deviation."""
    X = X.astype(np.float64)
    C = X - X.mean(axis=0)
    if kind == "center":
        return C
    if kind == "zscore":
        return C / X.std(axis=0)
    D = D or math.ceil(X.shape[1] / 100)
    _, _, Vt = np.linalg.svd(C, full_matrices=False)
    U = Vt[:D]
    return C - C @ U.T @ U


def _anisotropic(n=3000, d=256, seed=0):
    """Vectors with one common direction and a few dominant ones, as an LLM's are."""
    rng = np.random.default_rng(seed)
    scales = np.r_[[30.0, 12.0, 8.0], np.linspace(3, 0.5, d - 3)]
    X = rng.standard_normal((n, d)) * scales + 5.0 * rng.standard_normal(d)
    return X.astype(np.float32)


@pytest.mark.parametrize("kind, D", [("center", None), ("abtt", None), ("abtt", 7), ("zscore", None)])
def test_transforms_equal_a_direct_float64_computation(kind, D):
    X = _anisotropic()
    params = transforms.fit(kind, X, D)
    got = transforms.apply(kind, params, X)
    want = _direct(kind, X, D)
    assert got.dtype == np.float32
    # float32 storage of the result: within 1e-6 of the float64 value, relative to its size.
    assert np.max(np.abs(got - want) / np.maximum(1.0, np.abs(want))) < 1e-6
    if kind == "abtt":
        assert params["components"].shape == ((D or math.ceil(256 / 100)), 256)
    # A zero vector stays zero and is left out of the fit.
    Z = np.vstack([X, np.zeros((5, X.shape[1]), np.float32)])
    pz = transforms.fit(kind, Z, D)
    np.testing.assert_array_equal(pz["mean"], params["mean"])
    assert not transforms.apply(kind, pz, Z)[-5:].any()


# ---- real SmolLM2: every layer from one pass ----------------------------------------------------

def independent_vectors(folder, gguf, words, layers):
    """Each word alone through a separately loaded transformers model (output_hidden_states),
    mean over the tokens whose character offsets fall on the word, in float64: {layer: (n, d)}."""
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder), gguf_file=gguf)
    model = AutoModel.from_pretrained(str(folder), gguf_file=gguf, dtype=torch.float32).eval()
    out = {layer: [None] * len(words) for layer in layers}
    n_pieces = [0] * len(words)
    by_length: dict[int, list[int]] = {}  # words of one token count share a batch: no padding at all
    encs = [tok(w, return_offsets_mapping=True) for w in words]
    for i, e in enumerate(encs):
        by_length.setdefault(len(e["input_ids"]), []).append(i)
    for idx in by_length.values():
        ids = torch.tensor([encs[i]["input_ids"] for i in idx])
        with torch.no_grad():
            hs = model(input_ids=ids, attention_mask=torch.ones_like(ids), output_hidden_states=True).hidden_states
        for row, i in enumerate(idx):
            w = words[i]
            on_word = [t for t, (a, b) in enumerate(encs[i]["offset_mapping"]) if b > a and a < len(w) and b > 0]
            n_pieces[i] = len(on_word)
            for layer in layers:
                out[layer][i] = hs[layer][row, on_word].double().mean(0).numpy()
    return {k: np.array(v) for k, v in out.items()}, np.array(n_pieces)


def _cos(a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.fixture(scope="module")
def smollm2_layers():
    cfg = {**load_model_config("smollm2_135m"), "layers": [4, 15, -1]}
    return build_embedder(cfg), cfg


def test_each_layer_variant_gives_the_wordsim_of_an_independent_pooling(smollm2_layers):
    emb, cfg = smollm2_layers
    assert emb.layers == [4, 15, 30] and emb.n_hidden == 31
    pairs = load_word_pairs("wordsim353")
    words = sorted({w for p in pairs for w in (p.a, p.b)})
    got = emb.embed_layers(words, emb.layers)  # what an extraction worker stores, one pass
    assert all(g.words == words for g in got)
    ref, n_pieces = independent_vectors(resolve_path(cfg, "path"), cfg["gguf_file"], words, emb.layers)
    assert (n_pieces > 1).sum() > 50  # multi-piece words are part of the check
    for layer, g in zip(emb.layers, got):
        assert _cos(g.vectors, ref[layer]).min() > 1 - 1e-5
        mine = evaluate(words, g.vectors, pairs)["spearman"]
        theirs = evaluate(words, ref[layer].astype(np.float32), pairs)["spearman"]
        assert abs(mine - theirs) < 1e-3, (layer, mine, theirs)
    # The layers differ (a wrong index would give one layer three times).
    assert _cos(got[0].vectors, got[2].vectors).mean() < 0.9


def _vectors(d):
    return store.read_embeddings(d)


@pytest.mark.slow  # two extractions of SmolLM2 on Ray: about 60 s on an idle 2-core machine, 105 s loaded
def test_the_job_stores_every_layer_of_one_pass_resumes_per_layer_and_shard_and_writes_transforms(tmp_path):
    out = tmp_path / "out"
    args = ["model=smollm2_135m", "model.smollm2_135m.layers=[0,7,-1]", "vocab.max_words=300",
            "extract.evaluation_words=false", "extract.shard_size=128", "ray.num_cpus=2", f"out_dir={out}",
            "extract.variants=[smollm2_135m+center,smollm2_135m@7+abtt,smollm2_135m@3+zscore]"]
    proc = run_job("extract.py", *args)
    emb = out / "embeddings"
    layers = ["smollm2_135m@0", "smollm2_135m@3", "smollm2_135m@7", "smollm2_135m@30"]
    assert sorted(p.name for p in emb.iterdir()) == sorted(
        ["smollm2_135m", *layers, "smollm2_135m+center", "smollm2_135m@7+abtt", "smollm2_135m@3+zscore"])
    assert "3 of 3 shards to embed into 5 stores" in proc.stdout + proc.stderr  # one pass for all layers
    base_words, base = _vectors(emb / "smollm2_135m")
    keys = set()
    for name in layers:
        man = json.loads((emb / name / "manifest.json").read_text())
        assert man["identity"]["layer"] == int(name.split("@")[1]) and man["counts"]["embedded"] == 300
        keys.add(man["key"])
    assert len(keys) == 4  # a work key per layer
    # The configured layer (-1) is hidden state 30: the same vectors, bit for bit.
    w30, v30 = _vectors(emb / "smollm2_135m@30")
    assert w30 == base_words and np.array_equal(v30, base)
    # Kill-and-resume per (layer, shard): one shard of one layer lost, a temporary file left.
    lost = emb / "smollm2_135m@7" / "part-000000128-000000256.parquet"
    before = {p: p.stat().st_mtime_ns for p in emb.glob("smollm2_135m@*/part-*.parquet") if p != lost}
    want = lost.read_bytes()
    lost.unlink()
    (emb / "smollm2_135m@7" / "manifest.json").unlink()
    proc = run_job("extract.py", *args)
    assert "1 of 3 shards to embed into 5 stores" in proc.stdout + proc.stderr
    assert lost.read_bytes() == want
    assert {p: p.stat().st_mtime_ns for p in before} == before  # the other layers' shards untouched
    assert (emb / "smollm2_135m@7" / "manifest.json").exists()
    # Post-processed stores: applying the stored parameters to the raw store gives the stored
    # vectors (both routes agree), and they follow the definitions.
    for name, kind in [("smollm2_135m+center", "center"), ("smollm2_135m@7+abtt", "abtt"),
                       ("smollm2_135m@3+zscore", "zscore")]:
        raw = name.split("+")[0]
        rw, rx = _vectors(emb / raw)
        tw, tx = _vectors(emb / name)
        params = dict(np.load(io.BytesIO((emb / name / "transform.npz").read_bytes())))
        assert tw == rw and np.array_equal(tx, transforms.apply(kind, params, rx))
        assert np.max(np.abs(tx - _direct(kind, rx)) / np.maximum(1.0, np.abs(_direct(kind, rx)))) < 1e-6
        man = json.loads((emb / name / "manifest.json").read_text())
        assert man["transform"]["fitted_on"] == raw and man["key"] != json.loads(
            (emb / raw / "manifest.json").read_text())["key"]
    assert json.loads((emb / "smollm2_135m@7+abtt" / "manifest.json").read_text())["transform"][
        "components_removed"] == math.ceil(576 / 100)
    # SmolLM2's common direction: mean cosine of all pairs near 0.9 raw, near 0 once centred.
    _, cx = _vectors(emb / "smollm2_135m+center")

    def mean_pair_cos(X):
        U = X.astype(np.float64) / np.linalg.norm(X, axis=1, keepdims=True)
        S = U @ U.T
        return (S.sum() - np.trace(S)) / (len(U) * (len(U) - 1))

    assert mean_pair_cos(base) > 0.8
    assert abs(mean_pair_cos(cx)) < 0.01


def test_a_variant_of_a_model_not_extracted_is_refused_before_work(tmp_path):
    proc = run_job("extract.py", "model=glove_6b_50d", "extract.variants=[smollm2_135m@3]", f"out_dir={tmp_path}",
                   check=False)
    assert proc.returncode != 0 and "not among the models extracted (glove_6b_50d)" in proc.stderr + proc.stdout
    proc = run_job("extract.py", "model=glove_6b_50d", "extract.variants=[glove_6b_50d@3]", f"out_dir={tmp_path}",
                   check=False)
    assert proc.returncode != 0 and "has no layers to choose" in proc.stderr + proc.stdout
    assert not (tmp_path / "embeddings").exists()


@pytest.mark.slow  # starts Ray and loads SmolLM2: about 35 s
def test_a_layer_the_model_lacks_is_refused_before_any_shard(tmp_path):
    proc = run_job("extract.py", "model=smollm2_135m", "model.smollm2_135m.layers=[31]", "vocab.max_words=20",
                   "extract.evaluation_words=false", "ray.num_cpus=2", f"out_dir={tmp_path}", check=False)
    assert proc.returncode != 0 and "layer 31 is not one of its hidden states: 0..30" in proc.stderr + proc.stdout
    assert not list((tmp_path / "embeddings").glob("*/part-*"))


# ---- the report's depth figure and post-processing table ----------------------------------------

def test_the_report_plots_layers_by_depth_and_tables_post_processing():
    import pandas as pd

    from embcompare.report import ReportInputs, build_sections
    from embcompare.report.sections import depth_table, postprocessing_table

    ws, an, man = [], [], {}
    for m, rho in [("smollm2_135m@0", 0.1), ("smollm2_135m@15", 0.5), ("smollm2_135m@30", 0.3),
                   ("gemma3_270m@9", 0.6), ("smollm2_135m", 0.3), ("smollm2_135m+center", 0.35)]:
        ws.append({"model": m, "dataset": "wordsim353", "spearman": rho, "n_pairs": 353, "n_oov": 0, "pearson": 0})
        an += [{"model": m, "dataset": "bats", "category": c, "method": "3CosAdd", "n_correct": k, "n_answered": 10,
                "n_questions": 10, "oov": 0, "accuracy": k / 10} for c, k in [("a", 1), ("b", 2)]]
        man[m] = {"hidden_states": 19 if m.startswith("gemma") else 31, "counts": {}, "identity": {}}
    inputs = ReportInputs(manifests=man, wordsim=pd.DataFrame(ws), analogy=pd.DataFrame(an),
                          summaries={"smollm2_135m": {"mean": 0.91}, "smollm2_135m+center": {"mean": 0.002}})
    depth = depth_table(inputs).set_index(["model", "layer"])
    assert sorted(depth.index) == [("gemma3_270m", 9), ("smollm2_135m", 0), ("smollm2_135m", 15),
                                   ("smollm2_135m", 30)]
    assert depth.loc[("smollm2_135m", 15), "depth"] == 0.5 and depth.loc[("gemma3_270m", 9), "depth"] == 0.5
    assert depth.loc[("smollm2_135m", 15), "WS-353 Spearman"] == 0.5
    assert depth.loc[("smollm2_135m", 30), "bats 3CosAdd"] == pytest.approx(0.15)  # 3 of 20
    post = postprocessing_table(inputs)
    assert list(post["model"]) == ["smollm2_135m", "smollm2_135m+center"]
    assert list(post["mean cosine"]) == [0.91, 0.002] and list(post["WS-353 Spearman"]) == [0.3, 0.35]
    titles = [s.title for s in build_sections(inputs, [])]
    assert titles[-1].startswith("Model variants")
    assert not any(s.title.startswith("Model variants") for s in build_sections(ReportInputs(), []))
