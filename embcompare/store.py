"""Where results live: a local folder or an object store, and the embeddings store in it.

Every path a job reads or writes goes through this module, so ``out_dir`` may be a local path
or a URI (``s3://bucket/prefix``, ``gs://bucket/prefix``; any filesystem pyarrow opens, with
its usual credentials and settings: for an S3-compatible server, ``AWS_ENDPOINT_URL``). Paths
are plain strings joined with :func:`join`. Every file is committed whole: locally it is
written under a temporary name and renamed; on an object store it is one object, which
appears only when its upload completes. A reader never sees half a file.

The embeddings store: per model, Parquet shards ``part-*.parquet`` and ``manifest.json``.
Shard columns: ``word`` (string), ``vector`` (fixed_size_list<float32>[d]), ``n_tokens``
(int32). A shard's schema metadata holds the key of the work that made it and the words of the
shard that the model lacked, so a rerun can skip it and still count them.
"""
from __future__ import annotations

import atexit
import fnmatch
import json
import os
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

TMP_PREFIX = ".tmp-"
_KEY = b"embcompare.key"
_MISSING = b"embcompare.missing"

def is_uri(path: str | os.PathLike) -> bool:
    """Whether ``path`` names an object store or other remote filesystem (``scheme://``)."""
    s = os.fspath(path)
    return "://" in s and not s.startswith("file://")


def join(base: str | os.PathLike, *parts: str) -> str:
    """``base`` and ``parts`` joined with '/', for local paths and URIs alike."""
    s = os.fspath(base)
    if not is_uri(s):
        return os.path.join(s, *parts)
    return "/".join([s.rstrip("/"), *(p.strip("/") for p in parts)])


@lru_cache(maxsize=None)
def _filesystem(root: str) -> pafs.FileSystem:
    fs, _ = pafs.FileSystem.from_uri(root)
    return fs


# pyarrow finalises its S3 client at exit (an atexit hook registered when pyarrow.fs is imported,
# so it runs after this one); an S3FileSystem still held in the cache is then destroyed after
# the AWS SDK shut down, which can crash the interpreter on exit (apache/arrow issues 44071 and
# 50188). Dropping the cached filesystems first leaves nothing to destroy late.
atexit.register(_filesystem.cache_clear)


def resolve(path: str | os.PathLike) -> tuple[pafs.FileSystem, str]:
    """(pyarrow filesystem, path inside it) for a local path or a URI."""
    s = os.fspath(path)
    if s.startswith("file://"):
        s = s[len("file://"):]
    if not is_uri(s):
        return pafs.LocalFileSystem(), os.path.abspath(s)
    scheme, rest = s.split("://", 1)
    bucket = rest.split("/", 1)[0]
    fs = _filesystem(f"{scheme}://{bucket}")
    return fs, rest.rstrip("/")


def exists(path: str | os.PathLike) -> bool:
    fs, p = resolve(path)
    return fs.get_file_info(p).type != pafs.FileType.NotFound


def is_dir(path: str | os.PathLike) -> bool:
    fs, p = resolve(path)
    info = fs.get_file_info(p)
    if info.type == pafs.FileType.Directory:
        return True
    # Object stores have no folders: a prefix with objects under it counts as one.
    return is_uri(path) and bool(list_files(path))


def list_files(folder: str | os.PathLike, pattern: str = "*") -> list[str]:
    """Sorted paths (in ``folder``'s own form: local path or URI) of the files directly in
    ``folder`` whose name matches the glob ``pattern``; [] when there is no such folder. A
    write's temporary file (a process killed mid-write leaves one) is no file of the store: it
    is listed only by a pattern that asks for temporary files (``TMP_PREFIX*``)."""
    fs, p = resolve(folder)
    try:
        infos = fs.get_file_info(pafs.FileSelector(p, allow_not_found=True, recursive=False))
    except (FileNotFoundError, NotADirectoryError):
        return []
    names = sorted(i.base_name for i in infos if i.type == pafs.FileType.File
                   and (pattern.startswith(TMP_PREFIX) or not i.base_name.startswith(TMP_PREFIX))
                   and fnmatch.fnmatchcase(i.base_name, pattern))
    return [join(folder, n) for n in names]


def list_folders(folder: str | os.PathLike) -> list[str]:
    """Sorted names of the folders directly in ``folder`` (a prefix with objects, on an object
    store), hidden ones left out; [] when there is no such folder."""
    fs, p = resolve(folder)
    try:
        infos = fs.get_file_info(pafs.FileSelector(p, allow_not_found=True, recursive=False))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory and not i.base_name.startswith("."))


def remove(path: str | os.PathLike) -> None:
    """Delete a file; nothing when it is not there."""
    fs, p = resolve(path)
    try:
        fs.delete_file(p)
    except FileNotFoundError:
        pass


def read_bytes(path: str | os.PathLike) -> bytes:
    fs, p = resolve(path)
    with fs.open_input_stream(p) as f:
        return f.read()


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` whole (see the module's docstring)."""
    fs, p = resolve(path)
    if isinstance(fs, pafs.LocalFileSystem):
        os.makedirs(os.path.dirname(p), exist_ok=True)
        tmp = _tmp_path(p)
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, p)
        return
    with fs.open_output_stream(p) as f:
        f.write(data)


def _tmp_path(path: str) -> str:
    d, name = os.path.split(path)
    return os.path.join(d, f"{TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}-{name}")


def check_writable(folder: str | os.PathLike) -> None:
    """Raise PermissionError naming ``folder`` unless a file can be written there and removed:
    called before any work starts, so that no work is lost at the end."""
    probe = join(folder, f"{TMP_PREFIX}probe-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        write_bytes(probe, b"")
        remove(probe)
    except (OSError, pa.ArrowException) as e:
        raise PermissionError(f"out_dir {os.fspath(folder)!r} is not writable: {e}") from None


_SHARD = re.compile(r"part-(\d{9})-(\d{9})\.parquet")


def shard_name(start: int, end: int) -> str:
    """File name of the shard holding vocabulary rows [start, end): named by what it covers, so
    a rerun on any number of workers finds the same names; zero-padded, so that the sorted
    names are the rows' order."""
    return f"part-{start:09d}-{end:09d}.parquet"


def shard_range(name: str) -> tuple[int, int] | None:
    """(start, end) of a shard file name made by :func:`shard_name`; None for any other name."""
    m = _SHARD.fullmatch(os.path.basename(name))
    return (int(m.group(1)), int(m.group(2))) if m else None


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(read_bytes(path).decode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON, whole."""
    write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def _parquet_bytes(table: pa.Table, **kwargs: Any) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **kwargs)
    return sink.getvalue().to_pybytes()


def write_table(path: str | os.PathLike, table: pa.Table, **kwargs: Any) -> None:
    """Write an Arrow table as Parquet, whole (``kwargs`` go to ``pq.write_table``)."""
    write_bytes(path, _parquet_bytes(table, **kwargs))


def read_table(path: str | os.PathLike, columns: Sequence[str] | None = None,
               read_dictionary: Sequence[str] | None = None) -> pa.Table:
    """A Parquet file as a table; ``read_dictionary``: string columns to keep dictionary-encoded
    as stored (no string per row)."""
    fs, p = resolve(path)
    return pq.read_table(p, filesystem=fs, columns=None if columns is None else list(columns),
                         read_dictionary=None if read_dictionary is None else list(read_dictionary))


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
    """Write one shard whole, tagging it with ``key`` and its missing words."""
    meta = {_KEY: key.encode(), _MISSING: json.dumps(list(missing)).encode()}
    write_table(path, table.replace_schema_metadata(meta), compression="zstd")


def shard_info(path: str | os.PathLike) -> tuple[str | None, list[str]]:
    """(key, missing words) stored in a shard; (None, []) when the file is unreadable."""
    try:
        fs, p = resolve(path)
        meta = pq.read_schema(p, filesystem=fs).metadata or {}
    except (OSError, pa.ArrowException):
        return None, []
    key = meta.get(_KEY)
    return (key.decode() if key else None), json.loads(meta.get(_MISSING, b"[]"))


def unreadable(path: str | os.PathLike) -> str | None:
    """Why a Parquet file's footer cannot be read (truncated, not Parquet); None when it can."""
    try:
        fs, p = resolve(path)
        pq.read_metadata(p, filesystem=fs)
    except (OSError, pa.ArrowException) as e:
        return f"{type(e).__name__}: {e}"
    return None


def read_shard(path: str | os.PathLike) -> tuple[str | None, list[str], list[str], int]:
    """(key, embedded words, missing words, vector dimension) of one shard, from one read of its
    word column and footer."""
    fs, p = resolve(path)
    with fs.open_input_file(p) as f:
        pf = pq.ParquetFile(f)
        schema = pf.schema_arrow
        words = pf.read(columns=["word"]).column("word").to_pylist()
    meta = schema.metadata or {}
    key = meta.get(_KEY)
    return (key.decode() if key else None), words, json.loads(meta.get(_MISSING, b"[]")), \
        schema.field("vector").type.list_size


def clear_temporary(folder: str | os.PathLike) -> None:
    """Remove temporary files a killed writer left behind."""
    for p in list_files(folder, f"{TMP_PREFIX}*"):
        remove(p)


def _rows_and_dim(path: str | os.PathLike) -> tuple[int, int]:
    """(rows, vector dimension) of a shard, from its footer alone."""
    fs, p = resolve(path)
    meta = pq.read_metadata(p, filesystem=fs)
    return meta.num_rows, meta.schema.to_arrow_schema().field("vector").type.list_size


def read_embeddings(model_dir: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """Return (words, vectors) of one model: vectors is a float32 (n, d) array in shard order.

    The shards' footers give every shard's rows in the result, which is allocated once; then
    the shards are read concurrently (pyarrow decodes without the GIL), each copied straight
    into its rows and dropped, so that the memory held is the result and the shards in flight.
    """
    manifest = join(model_dir, "manifest.json")
    if exists(manifest):  # the shards the manifest vouches for, not whatever the folder lists
        parts = [join(model_dir, name) for name in read_json(manifest).get("shards", [])]
        lost = [os.path.basename(p) for p in parts if not exists(p)]
        if lost:
            raise FileNotFoundError(f"{os.fspath(model_dir)}: shard(s) {', '.join(lost[:5])} of its manifest are "
                                    f"missing; run jobs/extract.py for this model again")
    else:
        parts = list_files(model_dir, "part-*.parquet")
    if not parts:
        raise FileNotFoundError(f"{os.fspath(model_dir)}: no embeddings (part-*.parquet); run jobs/extract.py "
                                f"for this model first")
    with ThreadPoolExecutor(max_workers=min(len(parts), os.cpu_count() or 1, 8)) as pool:
        layout = list(pool.map(_rows_and_dim, parts))
        dims = {d for _, d in layout}
        if len(dims) > 1:
            by_dim = {d: os.path.basename(p) for (_, d), p in zip(layout, parts)}
            raise ValueError(f"{os.fspath(model_dir)}: shards of different dimensions {by_dim}; remove the "
                             f"stale shards and extract again")
        dim = dims.pop()
        starts = np.cumsum([0] + [n for n, _ in layout]).tolist()
        out = np.empty((starts[-1], dim), dtype=np.float32)

        def load(i: int) -> list[str]:
            t = read_table(parts[i], columns=["word", "vector"])
            vec = t.column("vector")
            if t.num_rows != layout[i][0] or vec.type.list_size != dim:
                raise RuntimeError(f"{parts[i]}: changed while being read ({t.num_rows} rows of "
                                   f"{vec.type.list_size}-d vectors, its footer said {layout[i]})")
            row = starts[i]
            for chunk in vec.chunks:
                # The chunk's own rows of the values it is a window on (a zero-copy view for float32).
                vals = chunk.values.slice(chunk.offset * dim, len(chunk) * dim).to_numpy(zero_copy_only=False)
                np.copyto(out[row: row + len(chunk)], vals.reshape(-1, dim))
                row += len(chunk)
            return t.column("word").to_pylist()

        words = [w for shard_words in pool.map(load, range(len(parts))) for w in shard_words]
    return words, out


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
    return read_json(join(model_dir, "manifest.json"))
