"""Full vocabulary end to end (slow: `make test-slow`): GloVe over all 77,503 WordNet words,
then every one of its 1.4 billion pairs."""
import json

import pytest

from conftest import run_job

pytestmark = pytest.mark.slow


def test_glove_full_vocabulary_extraction_and_all_pairs(tmp_path):
    run_job("extract.py", "model=glove_6b_50d", f"out_dir={tmp_path}")
    man = json.loads((tmp_path / "embeddings" / "glove_6b_50d" / "manifest.json").read_text())
    assert man["vocab"]["n_wordnet"] == 77503
    run_job("similarity.py", "models=[glove_6b_50d]", f"out_dir={tmp_path}")
    s = json.loads((tmp_path / "similarity" / "glove_6b_50d" / "summary.json").read_text())
    n = s["n_words"]
    assert 50000 < n < 77503  # GloVe 6B lacks about 24k WordNet lemmas
    assert s["n_pairs"] == n * (n - 1) // 2
    assert -1 <= s["min"] < s["mean"] < s["max"] <= 1.0001
