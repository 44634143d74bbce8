"""Stage commits: which files under ``out_dir`` are a stage's current results.

A stage writes its files, then one commit record last, ``<out_dir>/.pipeline/<stage>.json``:
the run's identity, the stage's config digest, the embeddings it read (each model's manifest
key) and every file it wrote with its size and sha256. As in Delta Lake's or Iceberg's log, the
record is the commit point: a reader (the next stage, the pipeline's skip check, the report)
trusts a file only when the latest record lists it and the file still has the recorded size
and hash. So the files of an interrupted stage (written, no record yet) are never read as
results, a file changed or truncated after its commit is caught, and a folder listing is never
trusted on its own (a stray file of an earlier run is listed by no record). On an object store
the record is one object written after all the others, like every file here (embcompare.store).

A stage commits with one call::

    commit.write(out_dir, "similarity", files, config=cfg, inputs=commit.embeddings_keys(out_dir, models),
                 sweep=["similarity"])

and a reader asks one function which files are current: ``commit.current(out_dir, stage)``.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import pyarrow.fs as pafs

from . import store

log = logging.getLogger("embcompare")

FOLDER = ".pipeline"
FORMAT = "embcompare-commit-1"
RUN_ENV = "EMBCOMPARE_RUN_ID"  # set by jobs/pipeline.py: every stage of one pipeline run shares it
# Test hook: a stage named here dies (os._exit, as a killed process does) after writing its
# files and before its commit record: the interrupted rewrite the commit guards against.
FAULT_ENV = "EMBCOMPARE_TEST_DIE_BEFORE_COMMIT"


# Stages computed from another stage's files as well as from the embeddings: their commit records
# the upstream commit's run id, and they are current only while that commit is.
UPSTREAM: dict[str, tuple[str, ...]] = {"agreement": ("similarity",)}


class DamagedCommit(ValueError):
    """A commit record that cannot be read; the message is one line naming the file."""


def record_path(out_dir: str, stage: str) -> str:
    return store.join(out_dir, FOLDER, f"{stage}.json")


def run_identity() -> dict[str, str]:
    """This run's id (the pipeline's, shared by its stages, or a new one) and the time now."""
    rid = os.environ.get(RUN_ENV) or new_run_id()
    return {"id": rid, "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def new_run_id() -> str:
    return f"{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


# Settings that say where and how fast a stage runs, never what it computes: a rerun with other
# ones (more workers, a cluster address, a copied out_dir) is the same result.
NOT_RESULTS = ("ray", "workers", "out_dir")


def config_digest(cfg: Any, code: str | None = None) -> str:
    """sha256 of a stage's resolved config (an OmegaConf config or plain data) less NOT_RESULTS,
    and of ``code``: the version of code whose output the config alone does not pin (the
    contextual generator's rules)."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(cfg, (DictConfig, ListConfig)):
            cfg = OmegaConf.to_container(cfg, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    if isinstance(cfg, dict):
        cfg = {k: v for k, v in cfg.items() if k not in NOT_RESULTS}
    if code is not None:
        cfg = {"config": cfg, "code": code}
    return hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()


def model_config_keys(models: Sequence[str]) -> dict[str, str | None]:
    """sha256 of each model's config (conf/model/<name>.yaml, as loaded): what a stage that loads
    the models itself (contextual) read, in place of stored embeddings."""
    from .models import load_model_config

    out: dict[str, str | None] = {}
    for m in models:
        try:
            out[m] = config_digest(load_model_config(m))
        except Exception:  # noqa: BLE001 - an unloadable model vouches for nothing; its stage says why
            out[m] = None
    return out


def stage_inputs(out_dir: str, stage: str, models: Sequence[str]) -> dict[str, str | None]:
    """What ``stage``'s results depend on besides its config, per model: the embeddings key for
    the stages that read the stored embeddings, the model config for the contextual stage (it
    loads each model and embeds sentences, never the stored vocabulary)."""
    if stage == "contextual":
        return model_config_keys(models)
    return embeddings_keys(out_dir, models)


def _manifest(out_dir: str, name: str) -> dict | None:
    path = store.join(out_dir, "embeddings", name, "manifest.json")
    try:
        return store.read_json(path) if store.exists(path) else None
    except (ValueError, OSError):
        return None


def variant_problem(out_dir: str, name: str) -> str | None:
    """Why the stored variant ``name`` no longer belongs to its model's stored embeddings (a
    transform fitted on an earlier raw store, a layer store of an earlier extraction), with the
    command that remakes it; None when it does, or when ``name`` is no variant or has no store
    (the reader says so)."""
    from .variants import VariantError, extract_command, parse

    try:
        v = parse(name)
    except VariantError:
        return None
    mine = _manifest(out_dir, name)
    if mine is None or (v.layer is None and not v.transform):
        return None
    fix = f"; remake it: `{extract_command(name, out_dir)}`"
    if v.transform:
        raw = _manifest(out_dir, v.raw)
        if raw is None or raw.get("key") != (mine.get("transform") or {}).get("fitted_on_key"):
            return f"{name} was fitted on other embeddings of {v.raw} than the stored ones{fix}"
        return variant_problem(out_dir, v.raw)

    def pass_of(m: dict) -> tuple:  # the extraction pass: identity but the layer, and vocabulary
        return ({k: x for k, x in (m.get("identity") or {}).items() if k != "layer"}, (m.get("vocab") or {}).get("sha256"))

    base = _manifest(out_dir, v.base)
    if base is None or pass_of(base) != pass_of(mine):
        return f"{name} is from another extraction of {v.base} than the stored one{fix}"
    return None


def embeddings_keys(out_dir: str, models: Sequence[str]) -> dict[str, str | None]:
    """Each model's embeddings key (its manifest.json's ``key``; None when it has no manifest, or
    when it is a variant that no longer belongs to its model's store: variant_problem): what a
    stage read, recorded in its commit."""
    keys: dict[str, str | None] = {}
    for m in models:
        if variant_problem(out_dir, m):
            keys[m] = None
            continue
        path = store.join(out_dir, "embeddings", m, "manifest.json")
        try:
            keys[m] = store.read_json(path).get("key") if store.exists(path) else None
        except (ValueError, OSError):
            keys[m] = None  # a damaged manifest vouches for nothing
    return keys


def jsonable(x: Any) -> Any:
    """``x`` as plain JSON: NaN (an accuracy with no answered question) becomes null."""
    if isinstance(x, float):
        return None if x != x else x
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if x is None or isinstance(x, (str, int, bool)):
        return x
    return str(x)


def committed_files(out_dir: str, stage: str, under: str) -> dict[str, dict]:
    """{file name: {size, sha256}} of the files under ``under`` (relative to out_dir) that the
    stage's latest commit lists; empty without a readable commit."""
    try:
        rec = read(out_dir, stage)
    except DamagedCommit:
        return {}
    prefix = under.rstrip("/") + "/"
    return {r[len(prefix):]: e for r, e in (rec or {}).get("files", {}).items() if r.startswith(prefix)}


def upstream_runs(out_dir: str, stage: str) -> dict[str, str | None]:
    """The run id of each stage ``stage`` reads files of (UPSTREAM), as committed now (None:
    no readable commit)."""
    out: dict[str, str | None] = {}
    for up in UPSTREAM.get(stage, ()):
        try:
            rec = read(out_dir, up)
        except DamagedCommit:
            rec = None
        out[up] = rec["run"].get("id") if rec else None
    return out


def file_digest(path: str) -> tuple[int, str]:
    """(size, sha256) of one file, read in 8 MiB pieces (hashlib drops the GIL on them)."""
    fs, p = store.resolve(path)
    h, size = hashlib.sha256(), 0
    with fs.open_input_stream(p) as f:
        while True:
            chunk = f.read(8 << 20)
            if not chunk:
                break
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


def _digests(out_dir: str, rels: Sequence[str]) -> list[tuple[int, str]]:
    with ThreadPoolExecutor(max_workers=min(8, max(1, len(rels)))) as pool:
        return list(pool.map(lambda r: file_digest(store.join(out_dir, r)), rels))


def relative(out_dir: str, path: str) -> str:
    """``path`` relative to ``out_dir`` with '/' separators (how a record names its files)."""
    base, p = os.fspath(out_dir).rstrip("/"), os.fspath(path)
    if store.is_uri(base) or store.is_uri(p):
        if not p.startswith(base + "/"):
            raise ValueError(f"{p} is not under {base}")
        return p[len(base) + 1:]
    rel = os.path.relpath(os.path.abspath(p), os.path.abspath(base))
    if rel.startswith(".."):
        raise ValueError(f"{p} is not under {base}")
    return rel.replace(os.sep, "/")


def write(out_dir: str, stage: str, files: Sequence[str], *, config: Any = None,
          inputs: Mapping[str, str | None] | None = None, sweep: Sequence[str] = (),
          extra: Mapping[str, Any] | None = None, upstream: Mapping[str, str | None] | None = None) -> dict:
    """Commit ``stage``: hash ``files`` (paths under ``out_dir``, as store.join makes them), write the
    record last, then remove the files under the ``sweep`` folders (relative to out_dir) that
    the record does not list: an earlier run's leftovers (a dropped model's tables, an
    interrupted run's files). Dot-folders in them (resume caches with keys of their own) are
    kept. ``config`` is the stage's config (or its digest); ``inputs`` maps each model read to
    its embeddings key; ``extra`` (headline numbers, seconds) is stored as is; ``upstream`` is the
    run id of each UPSTREAM stage whose files the stage read (default: the ones committed now).
    Returns the record."""
    if stage in os.environ.get(FAULT_ENV, "").split(","):
        os._exit(17)
    rels = sorted(dict.fromkeys(relative(out_dir, f) for f in files))
    digests = _digests(out_dir, rels)
    rec = {"format": FORMAT, "stage": stage, "run": run_identity(),
           "config": config if isinstance(config, str) or config is None else config_digest(config),
           "inputs": dict(inputs or {}), "upstream": dict(upstream_runs(out_dir, stage) if upstream is None else upstream),
           "files": {r: {"size": s, "sha256": h} for r, (s, h) in zip(rels, digests)},
           **({"extra": jsonable(dict(extra))} if extra else {})}
    store.write_bytes(record_path(out_dir, stage), (json.dumps(rec, indent=2, sort_keys=True, default=str)
                                                     + "\n").encode())
    for folder in sweep:
        removed = [p for p in _files_under(out_dir, folder) if relative(out_dir, p) not in rec["files"]]
        for p in removed:
            store.remove(p)
            _remove_empty_folders(os.path.dirname(p), store.join(out_dir, folder))
        if removed:
            log.info("%s: removed %d file(s) under %s that its commit does not list (an earlier run's), e.g. %s",
                     stage, len(removed), folder, relative(out_dir, removed[0]))
    return rec


def _remove_empty_folders(folder: str, root: str) -> None:
    """Local folders left empty up to ``root`` (an object store has no folders to leave)."""
    if store.is_uri(folder):
        return
    folder, root = os.path.abspath(folder), os.path.abspath(root)
    while folder.startswith(root + os.sep):
        try:
            os.rmdir(folder)
        except OSError:  # not empty
            return
        folder = os.path.dirname(folder)


def _files_under(out_dir: str, folder: str) -> list[str]:
    """Every file under ``out_dir/folder``, recursively, but not inside dot-folders."""
    root = store.join(out_dir, folder)
    fs, p = store.resolve(root)
    try:
        infos = fs.get_file_info(pafs.FileSelector(p, allow_not_found=True, recursive=True))
    except (FileNotFoundError, NotADirectoryError):
        return []
    out = []
    for i in infos:
        if i.type != pafs.FileType.File:
            continue
        sub = i.path[len(p):].strip("/").split("/")
        if any(part.startswith(".") and not part.startswith(store.TMP_PREFIX) for part in sub[:-1]):
            continue
        out.append(store.join(root, *sub))
    return out


def read(out_dir: str, stage: str) -> dict | None:
    """The stage's latest commit record; None when it has none; DamagedCommit (one line naming
    the file) when it cannot be read."""
    path = record_path(out_dir, stage)
    if not store.exists(path):
        return None
    try:
        rec = json.loads(store.read_bytes(path).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise DamagedCommit(f"{path}: damaged commit record ({type(e).__name__}: {e})") from None
    if not isinstance(rec, dict) or not isinstance(rec.get("files"), dict) or "run" not in rec:
        raise DamagedCommit(f"{path}: damaged commit record (not a commit: no files or run)")
    return rec


def verify(out_dir: str, rec: Mapping[str, Any], only: Sequence[str] | None = None) -> dict[str, str]:
    """What no longer matches the record: listed file -> one line saying it is missing or
    changed (size, then sha256), over every listed file or the listed ones among ``only``."""
    rels = [r for r in rec["files"] if only is None or r in only]
    problems, present = {}, []
    for r in rels:
        fs, p = store.resolve(store.join(out_dir, r))
        info = fs.get_file_info(p)
        if info.type == pafs.FileType.NotFound:
            problems[r] = f"{r} is missing"
        elif info.size is not None and info.size != rec["files"][r]["size"]:
            problems[r] = f"{r} changed: {info.size} bytes, committed {rec['files'][r]['size']}"
        else:
            present.append(r)
    for r, (_, h) in zip(present, _digests(out_dir, present)):
        if h != rec["files"][r]["sha256"]:
            problems[r] = f"{r} changed: its sha256 is not the committed one"
    return problems


@dataclass
class Current:
    """What a reader may trust of one stage: the latest record (None when there is none or it is
    damaged), the verified files (relative name -> path) and what was wrong with the others."""

    stage: str
    record: dict | None = None
    files: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def path(self, rel: str) -> str | None:
        """The path of ``rel`` when the commit lists it and it is intact; else None."""
        return self.files.get(rel)

    @property
    def run(self) -> dict:
        return (self.record or {}).get("run", {})

    @property
    def inputs(self) -> dict:
        return (self.record or {}).get("inputs", {})


def current(out_dir: str, stage: str, only: Sequence[str] | None = None) -> Current:
    """The files of ``stage`` a reader may trust (of ``only``, when given): those its latest
    commit lists and that still have the recorded size and sha256."""
    cur = Current(stage)
    try:
        cur.record = read(out_dir, stage)
    except DamagedCommit as e:
        cur.problems.append(str(e))
        return cur
    if cur.record is None:
        cur.problems.append(f"{record_path(out_dir, stage)} is absent: the stage has not finished a run here")
        return cur
    wanted = [r for r in cur.record["files"] if only is None or r in only]
    bad = verify(out_dir, cur.record, wanted)
    cur.problems = list(bad.values())
    cur.files = {r: store.join(out_dir, r) for r in wanted if r not in bad}
    return cur
