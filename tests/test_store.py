import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
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


def test_many_shards_read_concurrently_equal_the_shards_read_one_by_one(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    sizes = [5, 1, 0, 12, 7, 3, 9, 2, 4, 6, 8]
    start = 0
    for i, n in enumerate(sizes):
        words = [f"w{start + j}" for j in range(n)]
        path = tmp_path / store.shard_name(start, start + n)
        table = store.embeddings_table(words, rng.standard_normal((n, 6)).astype(np.float32), [1] * n)
        if i == 3:  # a shard of several row groups: several chunks when read
            store.write_table(path, table, row_group_size=5)
        else:
            _write(tmp_path, path.name, words, table.column("vector").combine_chunks().flatten()
                   .to_numpy().reshape(-1, 6))
        start += n
    one_by_one = [pq.read_table(p, columns=["word", "vector"]) for p in sorted(tmp_path.glob("part-*"))]
    want_words = [w for t in one_by_one for w in t.column("word").to_pylist()]
    want = np.vstack([t.column("vector").combine_chunks().flatten().to_numpy().reshape(-1, 6) for t in one_by_one])
    words, m = store.read_embeddings(tmp_path)
    assert words == want_words == [f"w{i}" for i in range(sum(sizes))]
    assert m.dtype == np.float32 and m.flags.c_contiguous and np.array_equal(m, want)

    # Chunks that are windows on their values (a non-zero offset) give their own rows.
    read = store.read_table
    monkeypatch.setattr(store, "read_table", lambda p, columns=None: pa.concat_tables(
        [read(p, columns).slice(0, 2), read(p, columns).slice(2)]))
    words2, m2 = store.read_embeddings(tmp_path)
    assert words2 == words and np.array_equal(m2, want)


def test_shards_of_different_dimensions_are_an_error_naming_them(tmp_path):
    _write(tmp_path, store.shard_name(0, 2), ["a", "b"], np.ones((2, 4), dtype=np.float32))
    _write(tmp_path, store.shard_name(2, 3), ["c"], np.ones((1, 5), dtype=np.float32))
    with pytest.raises(ValueError, match=r"shards of different dimensions .*part-000000002-000000003\.parquet"):
        store.read_embeddings(tmp_path)


def test_aligned_reader_over_several_shards(tmp_path):
    d1, d2 = tmp_path / "m1", tmp_path / "m2"
    _write(d1, store.shard_name(0, 2), ["a", "b"], np.array([[1, 0], [2, 0]], dtype=np.float32))
    _write(d1, store.shard_name(2, 4), ["c", "d"], np.array([[3, 0], [4, 0]], dtype=np.float32))
    _write(d2, store.shard_name(0, 1), ["d"], np.array([[0, 4]], dtype=np.float32))
    _write(d2, store.shard_name(1, 3), ["b", "x"], np.array([[0, 2], [0, 9]], dtype=np.float32))
    words, (m1, m2) = store.read_aligned([d1, d2])
    assert words == ["b", "d"]
    assert m1.tolist() == [[2, 0], [4, 0]] and m2.tolist() == [[0, 2], [0, 4]]


def test_a_write_left_half_done_is_not_listed(tmp_path):
    # A process killed mid-write (kill -9 in the resume tests) leaves its temporary file: a
    # listing of "*.pkl" or "part-*" must not take it for a committed file.
    store.write_bytes(tmp_path / "ckpt.pkl", b"done")
    (tmp_path / f"{store.TMP_PREFIX}123-abcd1234-ckpt.pkl").write_bytes(b"half")
    assert store.list_files(tmp_path, "*.pkl") == [store.join(tmp_path, "ckpt.pkl")]
    assert store.list_files(tmp_path) == [store.join(tmp_path, "ckpt.pkl")]
    store.clear_temporary(tmp_path)  # which asks for them by name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pkl"]
