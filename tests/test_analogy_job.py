"""jobs/analogy.py end to end on GloVe: result tables of the output contract, the same bytes on a
rerun, and clear errors before any work."""
import pyarrow.parquet as pq
import pytest

from conftest import run_job


@pytest.fixture(scope="module")
def glove_store(tmp_path_factory):
    out = tmp_path_factory.mktemp("an")
    run_job("extract.py", "model=glove_6b_50d", "vocab.max_words=3000", f"out_dir={out}")
    return out


def test_results_and_questions_follow_the_contract(glove_store, tmp_path):
    import os
    custom = tmp_path / "mini"
    custom.mkdir()
    (custom / "X01 [country - capital].txt").write_text("france\tparis\nitaly\trome\nspain\tmadrid/madrid_city\n")
    proc = run_job("analogy.py", "models=[glove_6b_50d]", f"out_dir={glove_store}",
                   f"analogy.datasets=[bats,google,mini:{custom}]", "analogy.methods=[3CosAdd,3CosAvg,LRCos]")
    res = pq.read_table(glove_store / "analogy" / "results.parquet").to_pandas()
    assert {"model", "dataset", "category", "method", "n_questions", "n_answered", "n_correct", "accuracy",
            "oov", "exclusion_policy", "oov_policy"} <= set(res.columns)
    e01 = res[(res.dataset == "bats") & (res.category == "E01 [country - capital]")].set_index("method")
    assert e01.loc["3CosAdd", "n_questions"] == 50 * 49 and e01.loc["3CosAvg", "n_questions"] == 50
    assert (res.n_answered + res.oov == res.n_questions).all()
    assert len(res[res.dataset == "bats"]) == 40 * 3 and set(res[res.dataset == "google"].category) >= {"family"}
    mini = res[res.dataset == "mini"].set_index("method")
    assert mini.loc["3CosAdd", "n_correct"] == 6  # the three capitals, every way round
    q = pq.read_table(glove_store / "analogy" / "questions" / "glove_6b_50d.parquet").to_pandas()
    assert len(q) == res.n_questions.sum()
    hits = q[(q.dataset == "mini") & (q.method == "3CosAdd")]
    assert hits.correct.all() and (hits["rank"] == 1).all()
    assert q[q.oov]["predicted"].isna().all()
    ws = pq.read_table(glove_store / "wordsim" / "results.parquet").to_pandas().set_index("dataset")
    assert ws.loc["wordsim353", "n_pairs"] == 353 and ws.loc["simlex999", "n_pairs"] == 999
    assert 0.2 < ws.loc["wordsim353", "spearman"] < 0.8
    assert "glove_6b_50d" in proc.stdout
    # A second run of the same config into another out_dir: byte-identical Parquet.
    again = tmp_path / "again"
    again.mkdir()
    os.symlink(glove_store / "embeddings", again / "embeddings")
    run_job("analogy.py", "models=[glove_6b_50d]", f"out_dir={again}",
            f"analogy.datasets=[bats,google,mini:{custom}]", "analogy.methods=[3CosAdd,3CosAvg,LRCos]")
    for rel in ("analogy/results.parquet", "analogy/questions/glove_6b_50d.parquet", "wordsim/results.parquet"):
        assert (glove_store / rel).read_bytes() == (again / rel).read_bytes(), rel


def test_malformed_data_set_names_file_and_line(glove_store, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "Z01 [x].txt").write_text("good\tpair\nno tab here\n")
    proc = run_job("analogy.py", "models=[glove_6b_50d]", f"out_dir={glove_store}", f"analogy.datasets=[b:{bad}]",
                   check=False)
    assert proc.returncode != 0 and f"{bad / 'Z01 [x].txt'}:2" in proc.stderr


@pytest.mark.parametrize("override, names", [
    ("analogy.datasets=[goggle]", ["'goggle'", "bats, google", "NAME:/path"]),
    ("analogy.methods=[3CosAdd,3CosMult]", ["3CosMult", "'3CosMul'", "'PairDistance'"]),
    ("analogy.eps=0", ["analogy.eps", "greater than 0"]),
    ("analogy.lrcos_random_negatives=-1", ["analogy.lrcos_random_negatives", "greater than or equal to 0"]),
    ("+analogy.batch=512", ["unknown key 'analogy.batch'", "lrcos_random_negatives"]),
    ("wordsim.datasets=[wordsim]", ["wordsim.datasets.0", "'simlex999'"]),
])
def test_bad_config_is_refused_before_any_work(tmp_path, override, names):
    proc = run_job("analogy.py", "models=[glove_6b_50d]", f"out_dir={tmp_path / 'out'}", override, check=False)
    assert proc.returncode != 0 and "error:" in proc.stderr
    for n in names:
        assert n in proc.stderr, (n, proc.stderr[-2000:])
    assert not (tmp_path / "out" / "analogy").exists()  # nothing written, no Ray started
