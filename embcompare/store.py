"""The embeddings store: per model, Parquet shards ``part-NNNNN.parquet`` and ``manifest.json``.

Shard columns: ``word`` (string), ``vector`` (fixed_size_list<float32>[d]), ``n_tokens``
(int32). A shard's schema metadata holds the key of the work that made it and the words
of the shard that the model lacked, so a rerun can skip it and still count them.
Every file is written under a temporary name and renamed: a reader never sees half a file.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

TMP_PREFIX = ".tmp-"
_KEY = b"embcompare.key"
_MISSING = b"embcompare.missing"


def shard_name(i: int) -> str:
    return f"part-{i:05d}.parquet"


def _tmp_path(path: Path) -> Path:
    return path.with_name(f"{TMP_PREFIX}{os.getpid()}-{path.name}")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def write_table(path: str | os.PathLike, table: pa.Table) -> None:
    """Write an Arrow table as Parquet, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def embeddings_table(words: Sequence[str], vectors: np.ndarray, n_tokens: Sequence[int]) -> pa.Table:
    """Arrow table of the store's schema; ``vectors`` is (n, d) and becomes float32."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != len(words) or len(n_tokens) != len(words):
        raise ValueError(f"{len(words)} words, vectors of shape {vectors.shape}, {len(n_tokens)} token counts")
    d = vectors.shape[1]
    vec = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), type=pa.float32()), d)
    return pa.table({"word": pa.array(list(words), type=pa.string()), "vector": vec,
                     "n_tokens": pa.array(np.asarray(n_tokens, dtype=np.int32), type=pa.int32())})


def write_shard(path: str | os.PathLike, table: pa.Table, key: str, missing: Sequence[str]) -> None:
    """Write one shard atomically, tagging it with ``key`` and its missing words."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {_KEY: key.encode(), _MISSING: json.dumps(list(missing)).encode()}
    table = table.replace_schema_metadata(meta)
    tmp = _tmp_path(path)
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


def shard_info(path: str | os.PathLike) -> tuple[str | None, list[str]]:
    """(key, missing words) stored in a shard; (None, []) when the file is unreadable."""
    try:
        meta = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowException):
        return None, []
    key = meta.get(_KEY)
    return (key.decode() if key else None), json.loads(meta.get(_MISSING, b"[]"))


def clear_temporary(model_dir: str | os.PathLike) -> None:
    """Remove temporary files a killed writer left behind."""
    d = Path(model_dir)
    if d.is_dir():
        for p in d.glob(f"{TMP_PREFIX}*"):
            p.unlink()


def read_embeddings(model_dir: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """Return (words, vectors) of one model: vectors is a float32 (n, d) array in shard order."""
    d = Path(model_dir)
    parts = sorted(d.glob("part-*.parquet"))
    if not parts:
        raise FileNotFoundError(f"{d}: no embeddings (part-*.parquet); run jobs/extract.py for this model first")
    table = pa.concat_tables(pq.read_table(p, columns=["word", "vector"]) for p in parts)
    words = table.column("word").to_pylist()
    vec = table.column("vector").combine_chunks()
    dim = vec.type.list_size
    return words, vec.values.to_numpy(zero_copy_only=False).reshape(-1, dim)


def read_aligned(model_dirs: Sequence[str | os.PathLike]) -> tuple[list[str], list[np.ndarray]]:
    """Return (words, one matrix per model) over the words every model embedded.

    Words keep the first model's order; row i of every matrix is words[i].
    """
    loaded = [read_embeddings(d) for d in model_dirs]
    common = set(loaded[0][0]).intersection(*(set(w) for w, _ in loaded[1:]))
    words = [w for w in loaded[0][0] if w in common]
    mats = []
    for w_list, m in loaded:
        row = {w: i for i, w in enumerate(w_list)}
        mats.append(m[np.fromiter((row[w] for w in words), dtype=np.int64, count=len(words))])
    return words, mats


def read_manifest(model_dir: str | os.PathLike) -> dict:
    return json.loads((Path(model_dir) / "manifest.json").read_text(encoding="utf-8"))
