"""Embed the vocabulary with one or more models on Ray actors; write the embeddings store.

    python jobs/extract.py model=glove_6b_50d
    python jobs/extract.py 'model=[glove_6b_50d,sbert_minilm]' vocab.max_words=5000 out_dir=/tmp/x

Finished shards are skipped on a rerun with the same config, on any number of workers, so a
killed job picks up where it stopped and ends with the same files as an uninterrupted run. A
worker that dies mid-shard is replaced and its shard retried (``workers.retries`` times); an
error in the model itself stops the job at once, naming the shard; finished shards are kept.
"""
from __future__ import annotations

import datetime as dt
import os
import platform
import sys
import time
from typing import Annotated, Any

import hydra
from omegaconf import DictConfig
from pydantic import AfterValidator, Field

import common  # noqa: F401 - puts the repo on sys.path
from common import expand_models, load_vocab, log, start_ray, worker_pool
from pool import NoWorker, UnitFailed, check_out_dir
from embcompare.config import RayConfig, Section, VocabConfig, WorkersConfig, validate, variant_names

# Test hook: "marker=PATH,times=N[,start=ROW]" makes a worker die (os._exit, as a crashed or
# OOM-killed process does) while embedding a shard (the one starting at ROW, or any), at most
# N times over all workers and restarts, counted by lines appended to the marker file.
FAULT_ENV = "EMBCOMPARE_TEST_WORKER_DEATH"


class ExtractSection(Section):
    shard_size: int = Field(8192, ge=1)  # words per shard: the unit of work, of retry and of resume
    evaluation_words: bool = True  # also embed the words of BATS, Google, WordSim-353, SimLex-999
    bats_dir: str | None = None  # None: the vendored data/BATS_3.0
    # Model variants to make too (docs/definitions.md, "Model variants"): a layer adds to its
    # model's layers, a transform is fitted on the raw store and written as its own store.
    variants: Annotated[list[str], AfterValidator(variant_names)] = []


class ExtractJobConfig(Section):
    out_dir: str
    extract: ExtractSection = ExtractSection()
    workers: WorkersConfig = WorkersConfig()
    ray: RayConfig = RayConfig()
    vocab: VocabConfig = VocabConfig()
    model: dict[str, Any]  # each model checked against its backend's schema (check_config)


def check_config(cfg: DictConfig) -> tuple[ExtractJobConfig, dict[str, dict[str, Any]]]:
    """The job's config and its models' configs, checked; ConfigError naming the key otherwise."""
    from embcompare.models import model_configs

    from embcompare.config import ConfigError
    from embcompare.variants import parse

    job = validate(cfg, ExtractJobConfig)
    models = model_configs(cfg.model)
    for name in job.extract.variants:
        v = parse(name)
        if v.base not in models:
            raise ConfigError(f"'extract.variants': {name} is a variant of {v.base}, which is not among the models "
                              f"extracted ({', '.join(models)}); add it: model=[{','.join([*models, v.base])}]")
        if v.layer is not None:
            m = models[v.base]
            if m["backend"] != "transformers":
                raise ConfigError(f"'extract.variants': {name}: model {v.base} ({m['backend']}) has no layers to "
                                  f"choose; only transformers models take @layer")
            if v.layer == "all" or m.get("layers") == "all":
                m["layers"] = "all"
            else:
                m["layers"] = sorted({*(m.get("layers") or []), v.layer})
    return job, models


def _die_if_asked(start: int) -> None:
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    opts = dict(part.split("=", 1) for part in spec.split(","))
    if "start" in opts and int(opts["start"]) != start:
        return
    marker = opts["marker"]
    deaths = open(marker).read().count("\n") if os.path.exists(marker) else 0
    if deaths < int(opts.get("times", 1)):
        with open(marker, "a") as f:
            f.write(f"{os.getpid()} {start}\n")
        os._exit(17)


class EmbedWorker:
    """Holds one model; embeds shards. Runs as a Ray actor."""

    def __init__(self, model_cfg: dict, threads: int = 1):
        if model_cfg.get("backend") in ("transformers", "sentence_transformers"):
            import torch

            torch.set_num_threads(max(1, threads))
        from embcompare.embedders import build_embedder

        self.embedder = build_embedder(model_cfg)
        name = model_cfg["name"]
        # The stores one pass fills: the model at its configured layer, then each listed layer
        # as the variant <name>@<index> (docs/definitions.md, "Model variants").
        self.stores: dict[str, Any] = {name: None}
        self.stores.update({f"{name}@{i}": i for i in getattr(self.embedder, "layers", [])})

    def identity(self) -> tuple[dict[str, dict], int, int | None]:
        """Per store, the identity of its vectors; the dimension; the number of hidden states
        (None for a model without layers), which places a layer at its relative depth."""
        return ({s: (self.embedder.identity() if layer is None else self.embedder.identity(layer))
                 for s, layer in self.stores.items()}, self.embedder.dim, getattr(self.embedder, "n_hidden", None))

    def embed(self, start: int, words: list[str], stores: list[str] | None = None):
        """{store: Embedded} for ``stores`` (None: every store), from one forward pass."""
        _die_if_asked(start)
        stores = list(self.stores) if stores is None else stores
        t0 = time.perf_counter()
        if stores == list(self.stores)[:1]:  # the configured layer alone: any backend
            out = {stores[0]: self.embedder.embed(words)}
        else:
            layers = [self.embedder.layer if self.stores[s] is None else self.stores[s] for s in stores]
            out = dict(zip(stores, self.embedder.embed_layers(words, layers)))
        return out, time.perf_counter() - t0


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("embcompare", "numpy", "pyarrow", "torch", "transformers", "sentence-transformers",
                "gensim", "ray"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def extract_model(model_cfg: dict[str, Any], words: list[str], vocab_sha: str, n_wordnet: int,
                  job: ExtractJobConfig, probe: Any = None) -> dict[str, dict[str, Any]]:
    """Embed the vocabulary with one model into each of its stores (the configured layer, and each
    of ``layers:`` as <name>@<index>), one forward pass per shard for all of them; resumes per
    (store, shard). Returns each store's manifest. ``probe``: what check_out_dir gave."""
    from tqdm import tqdm

    from embcompare import commit, store
    from embcompare.extract import ShardError, check_result, pending_shards, plan_shards, verify_store, work_key

    key = model_cfg["name"]
    started = time.time()
    pool = worker_pool(job.workers, EmbedWorker, (model_cfg,), retries=job.workers.retries, label=key,
                       probe=probe)
    with pool:
        try:
            [(_, (identities, dim, n_hidden), _)] = list(pool.map([key], "identity", lambda _: ()))
        except UnitFailed as e:
            raise SystemExit(f"error: model {key}: could not be loaded: {e.message}") from None
        except NoWorker as e:
            raise SystemExit(f"error: model {key}: could not be loaded: {e.reason}") from None
        shards = plan_shards(words, job.extract.shard_size)
        dirs = {s: store.join(job.out_dir, "embeddings", s) for s in identities}
        keys = {s: work_key(ident, vocab_sha, job.extract.shard_size) for s, ident in identities.items()}
        # The manifest vouches for the shards: it goes before any shard is touched and comes back
        # only after every shard is verified, so an interrupted run never leaves a store that
        # later stages would read as finished.
        pending: dict[str, list[str]] = {}  # shard name -> the stores that lack it
        for s in identities:
            store.remove(store.join(dirs[s], "manifest.json"))
            committed = commit.committed_files(job.out_dir, "extract", f"embeddings/{s}")
            for shard in pending_shards(dirs[s], shards, keys[s], committed):
                pending.setdefault(shard.name, []).append(s)
        todo = [sh for sh in shards if sh.name in pending]
        log.info("%s: %d of %d shards to embed%s (workers of %g CPU, %g GPU, at most %s)", key, len(todo),
                 len(shards), f" into {len(identities)} stores" if len(identities) > 1 else "", pool.res.cpus,
                 pool.res.gpus, pool.size or "one per shard")
        embed_s = 0.0
        nodes: dict[str, str] = {}  # shard -> the Ray node that embedded it
        with tqdm(total=sum(len(s.words) for s in todo), desc=key, unit="word", mininterval=2.0) as bar:
            try:
                for shard, (results, seconds), node in pool.map(
                        todo, "embed", lambda sh: (sh.start, list(sh.words), pending.get(sh.name)),
                        name=lambda sh: sh.describe(key)):
                    for s, result in results.items():
                        check_result(s, shard, result, dim)
                    for s, result in results.items():
                        table = store.embeddings_table(result.words, result.vectors, result.n_tokens)
                        store.write_shard(store.join(dirs[s], shard.name), table, keys[s], result.missing)
                    bar.update(len(shard.words))
                    embed_s += seconds
                    nodes[shard.name] = node
            except (UnitFailed, NoWorker, ShardError, ValueError) as e:
                raise SystemExit(f"error: {e}; finished shards are kept in {', '.join(dirs.values())}") from None
    manifests = {}
    for s, ident in identities.items():
        try:
            embedded, missing = verify_store(s, dirs[s], shards, keys[s], dim)
        except ShardError as e:
            raise SystemExit(f"error: {e}") from None
        elapsed = time.time() - started
        if missing:
            log.info("%s: %d words missing (the model lacks them or cannot represent them whole), e.g. %s", s,
                     len(missing), [w[:40] for w in missing[:5]])
        manifest = {
            "model": s, "identity": ident, "dim": dim, "key": keys[s],
            "vocab": {"source": "wordnet + evaluation data sets", "sha256": vocab_sha, "n_words": len(words),
                      "n_wordnet": n_wordnet, "n_evaluation_extra": len(words) - n_wordnet,
                      "filter": job.vocab.model_dump(exclude={"wordnet_dir"})},
            "counts": {"words": len(words), "embedded": embedded, "missing": len(missing)},
            "missing_words": missing, "shard_size": job.extract.shard_size,
            "shards": [sh.name for sh in shards], "versions": versions(),
            "time": {"finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                     "seconds_this_run": round(elapsed, 3),
                     "shards_this_run": sum(1 for v in pending.values() if s in v),
                     "embed_seconds_this_run": round(embed_s, 3),
                     # where this run embedded each shard (Ray node ids): the report counts units per node
                     "nodes_this_run": {sh: nd for sh, nd in nodes.items() if s in pending.get(sh, [])}},
        }
        if n_hidden is not None:
            manifest["hidden_states"] = n_hidden
        if s == key and len(identities) > 1:
            manifest["variants"] = [x for x in identities if x != key]  # the layer stores of the same pass
        store.write_json(store.join(dirs[s], "manifest.json"), manifest)
        manifests[s] = manifest
    return manifests


def _damaged_files(out_dir: str, name: str, files: list[str]) -> list[str]:
    """Which of the store's ``files`` are missing, or changed since the extraction commit that
    lists them (a file no commit lists is only checked present)."""
    from embcompare import commit, store

    committed = commit.committed_files(out_dir, "extract", f"embeddings/{name}")
    out = []
    for f in files:
        p = store.join(out_dir, "embeddings", name, f)
        if not store.exists(p):
            out.append(f"{f} is missing")
        elif f in committed and commit.file_digest(p) != (committed[f]["size"], committed[f]["sha256"]):
            out.append(f"{f} changed since its commit")
    return out


def write_transformed(out_dir: str, name: str) -> dict[str, Any]:
    """Fit the transform variant ``name`` (e.g. smollm2_135m@12+abtt) on its raw store's vectors
    and write it as a store of its own, shard by shard, with the fitted parameters beside it
    (transform.npz: mean, and components or scale) so that new words can be mapped the same way.
    Skipped when the store is already there for the same raw store and transform."""
    import hashlib
    import io
    import json

    import numpy as np

    from embcompare import store, transforms
    from embcompare.variants import parse

    v = parse(name)
    raw_dir, dst = store.join(out_dir, "embeddings", v.raw), store.join(out_dir, "embeddings", name)
    if not store.exists(store.join(raw_dir, "manifest.json")):
        raise SystemExit(f"error: {name}: no finished store {raw_dir} to fit the transform on")
    raw = store.read_manifest(raw_dir)
    D = transforms.abtt_components(raw["dim"], v.abtt_d) if v.transform == "abtt" else None
    spec = {"kind": v.transform, "components_removed": D, "fitted_on": v.raw, "fitted_on_key": raw["key"]}
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
    man_path = store.join(dst, "manifest.json")
    if store.exists(man_path) and store.read_json(man_path).get("key") == key:
        made = store.read_json(man_path)
        damaged = _damaged_files(out_dir, name, [*made.get("shards", []), "transform.npz"])
        if not damaged:
            log.info("%s: already made from this store of %s; skipped", name, v.raw)
            return made
        log.warning("%s: %s; making it again", name, "; ".join(damaged))
    started = time.time()
    store.remove(man_path)
    store.clear_temporary(dst)
    for p in store.list_files(dst, "part-*.parquet"):
        store.remove(p)
    _, X = store.read_embeddings(raw_dir)
    params = transforms.fit(v.transform, X, D)
    n_fit = int(np.any(X != 0, axis=1).sum())
    del X
    buf = io.BytesIO()
    np.savez(buf, **params)
    store.write_bytes(store.join(dst, "transform.npz"), buf.getvalue())
    dim = raw["dim"]
    for p in store.list_files(raw_dir, "part-*.parquet"):
        _, missing = store.shard_info(p)
        t = store.read_table(p)
        vec = t.column("vector").combine_chunks()
        X = vec.values.slice(vec.offset * dim, len(vec) * dim).to_numpy(zero_copy_only=False).reshape(-1, dim)
        table = store.embeddings_table(t.column("word").to_pylist(), transforms.apply(v.transform, params, X),
                                       t.column("n_tokens").to_numpy())
        store.write_shard(store.join(dst, os.path.basename(p)), table, key, missing)
    manifest = {**raw, "model": name, "key": key, "identity": {**raw["identity"], "transform": spec},
                "transform": {**spec, "n_fit": n_fit, "parameters": "transform.npz"},
                "time": {"finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                         "seconds_this_run": round(time.time() - started, 3)}}
    manifest.pop("variants", None)
    store.write_json(man_path, manifest)
    return manifest


def vocabulary(job: ExtractJobConfig) -> tuple[list[str], int]:
    """(words, how many of them are WordNet's): the WordNet list, then the evaluation data sets'
    words it lacks."""
    words = load_vocab(job.vocab)
    n_wordnet = len(words)
    if job.extract.evaluation_words:
        from embcompare.datasets import evaluation_words

        have = set(words)
        words += [w for w in evaluation_words(job.extract.bats_dir) if w not in have]
    return words, n_wordnet


def run(cfg: DictConfig) -> dict[str, Any]:
    """Extract every configured model; returns per model its dimension, counts, seconds and folder."""
    from embcompare import store
    from embcompare.config import ConfigError
    from embcompare.datasets import DatasetFormatError
    from embcompare.vocab import WordNetNotFound, words_sha256

    try:  # everything checked before Ray starts or a file is touched
        job, models = check_config(cfg)
        words, n_wordnet = vocabulary(job)
        store.check_writable(store.join(job.out_dir, "embeddings"))
    except (ConfigError, WordNetNotFound, DatasetFormatError, FileNotFoundError, PermissionError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    vocab_sha = words_sha256(words)
    log.info("vocabulary: %d words, %d from WordNet and %d more from the evaluation data sets (sha256 %s)",
             len(words), n_wordnet, len(words) - n_wordnet, vocab_sha[:12])
    from embcompare import commit

    t0 = time.time()
    start_ray(job.ray)
    probe = check_out_dir(job.out_dir)
    out, written, keys = {}, [], {}

    def done(k: str, m: dict[str, Any], *extra: str) -> None:
        where = store.join(job.out_dir, "embeddings", k)
        written.extend([store.join(where, s) for s in m["shards"]] + [store.join(where, f) for f in
                                                                       ("manifest.json", *extra)])
        keys[k] = m["key"]
        out[k] = {"dim": m["dim"], **m["counts"], "seconds": m["time"]["seconds_this_run"], "dir": where}

    for model_cfg in models.values():
        for k, m in extract_model(model_cfg, words, vocab_sha, n_wordnet, job, probe).items():
            c = m["counts"]
            done(k, m)
            print(f"{k}: dim {m['dim']}, embedded {c['embedded']} of {c['words']} words, missing {c['missing']}, "
                  f"{m['time']['seconds_this_run']:.1f} s -> {out[k]['dir']}")
    for name in expand_models(job.out_dir, job.extract.variants):
        if "+" in name:
            m = write_transformed(job.out_dir, name)
            done(name, m, "transform.npz")
            print(f"{name}: {m['transform']['kind']} fitted on {m['transform']['n_fit']} vectors of "
                  f"{m['transform']['fitted_on']} -> {out[name]['dir']}")
    # The commit names the run's models: the report's current model list. Other models' stores
    # stay where they are (an expensive cache, keyed), but no longer count as current.
    commit.write(job.out_dir, "extract", written, config=cfg, inputs=keys,
                 extra={"headline": out, "seconds": round(time.time() - t0, 3)})
    return out


@hydra.main(config_path="../conf", config_name="extract", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    sys.exit(main())
