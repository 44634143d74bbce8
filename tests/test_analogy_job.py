"""jobs/analogy.py end to end on GloVe: result tables of the output contract, and clear errors."""
import pyarrow.parquet as pq
import pytest

from conftest import run_job


@pytest.fixture(scope="module")
def glove_store(tmp_path_factory):
    out = tmp_path_factory.mktemp("an")
    run_job("extract.py", "model=glove_6b_50d", "vocab.max_words=3000", f"out_dir={out}")
    return out


def test_results_and_questions_follow_the_contract(glove_store, tmp_path):
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


def test_malformed_data_set_names_file_and_line(glove_store, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "Z01 [x].txt").write_text("good\tpair\nno tab here\n")
    proc = run_job("analogy.py", "models=[glove_6b_50d]", f"out_dir={glove_store}", f"analogy.datasets=[b:{bad}]",
                   check=False)
    assert proc.returncode != 0 and f"{bad / 'Z01 [x].txt'}:2" in proc.stderr
