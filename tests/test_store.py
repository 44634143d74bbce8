import numpy as np
import pytest

from embcompare import store


def _write(d, name, words, vecs, key="k", missing=()):
    store.write_shard(d / name, store.embeddings_table(words, vecs, [1] * len(words)), key, list(missing))


def test_round_trip_and_metadata(tmp_path):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal((2, 4)).astype(np.float32)
    # Rows 0-3 and 4-9, written in the other order: read back in row order (zero-padded names).
    _write(tmp_path, store.shard_name(4, 10), ["u", "v"], b)
    _write(tmp_path, store.shard_name(0, 4), ["x", "y", "z"], a, missing=["q"])
    words, m = store.read_embeddings(tmp_path)
    assert words == ["x", "y", "z", "u", "v"]
    assert m.dtype == np.float32 and np.array_equal(m, np.vstack([a, b]))
    assert store.shard_info(tmp_path / store.shard_name(0, 4)) == ("k", ["q"])
    assert store.read_shard(tmp_path / store.shard_name(0, 4)) == ("k", ["x", "y", "z"], ["q"], 4)
    assert store.shard_range(store.shard_name(123, 4567)) == (123, 4567)
    assert store.shard_range("part-00000.parquet") is None
    assert not list(tmp_path.glob(".tmp-*"))


def test_aligned_reader_takes_the_intersection(tmp_path):
    d1, d2 = tmp_path / "m1", tmp_path / "m2"
    _write(d1, "part-00000.parquet", ["a", "b", "c"], np.eye(3, dtype=np.float32))
    _write(d2, "part-00000.parquet", ["c", "a"], np.array([[3, 3], [1, 1]], dtype=np.float32))
    words, (m1, m2) = store.read_aligned([d1, d2])
    assert words == ["a", "c"]
    assert np.array_equal(m1, np.eye(3, dtype=np.float32)[[0, 2]])
    assert np.array_equal(m2, np.array([[1, 1], [3, 3]], dtype=np.float32))


def test_shape_mismatch_and_missing_store_are_errors(tmp_path):
    with pytest.raises(ValueError, match="2 words"):
        store.embeddings_table(["a", "b"], np.zeros((3, 2)), [1, 1])
    with pytest.raises(FileNotFoundError, match="extract"):
        store.read_embeddings(tmp_path)
