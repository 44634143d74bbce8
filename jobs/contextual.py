"""Words in sentences: the nine sentence-variation tasks, anchor-token and sentence embeddings
in context, AICV / ACD / SMV per model and task, and the paired comparison of the models.

    python jobs/contextual.py 'models=[glove_6b_50d,sbert_minilm,smollm2_135m]'
    python jobs/contextual.py 'models=[sbert_minilm]' contextual.anchors=30 'contextual.layer=[-1,6,input_table]'
    python jobs/contextual.py contextual.generator=llm contextual.llm.backend=api contextual.llm.model=gpt-4o-mini

The sentences are generated once and stored in <out_dir>/contextual/tasks.jsonl (reused on a
rerun whose generator settings match the key in tasks.json). Then one Ray actor per model (one
per GPU on a cluster) embeds each task's sentences; every finished (model, task) is a part
file under <out_dir>/contextual/.parts/<model>/, skipped on a rerun, so a killed job resumes
where it stopped. Writes contextual/results.parquet, contextual/anchors/<model>.parquet and
contextual/comparisons.parquet and contextual/cross_task.parquet (docs/contextual.md).
"""
from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from typing import Any

import hydra
from omegaconf import DictConfig

import common  # noqa: F401 - puts the repo on sys.path
from common import start_ray, worker_pool
from pool import NoWorker, UnitFailed, check_out_dir
from embcompare.config import ConfigError, validate
from embcompare.contextual.settings import ContextualConfig, ContextualSection

log = logging.getLogger("embcompare")

PART_VERSION = "contextual-parts-4"  # bump when the measures' code changes what a part holds
_STATS = b"embcompare.stats"


def check(cfg: Any) -> ContextualConfig:
    """The job's config, checked whole before any work; raises ConfigError naming the key."""
    return validate(cfg, ContextualConfig)


# -- the worker ------------------------------------------------------------------------------
class ContextualWorker:
    """Holds one model; embeds the sentences of one task at a time. A pool worker (jobs/pool.py).

    A task's vectors depend on that task's sentences alone (its anchors' e_w and its sentences
    batched afresh, no cache carried over from the tasks this worker ran before), so a part is
    the same bytes whichever worker, node or order runs it: after a lost node too."""

    def __init__(self, model_cfg: dict, layers: list, batch_size: int, e_w: str = "in_text", threads: int = 1):
        import torch

        torch.set_num_threads(max(1, threads))
        from embcompare.contextual.embed import context_encoder
        from embcompare.embedders import build_embedder

        self.name = model_cfg["name"]
        self.embedder = build_embedder(model_cfg)
        self.encoder = context_encoder(self.embedder, layers, batch_size, e_w)

    def describe(self) -> dict:
        return {"identity": self.embedder.identity(), "kind": self.encoder.kind, "e_w": self.encoder.e_w,
                "token_layers": list(self.encoder.layers), "sentence_layer": self.encoder.sentence_layer}

    def run_task(self, task: str, records: list) -> tuple[str, list[dict], dict]:
        from embcompare.contextual.evaluate import decontextualised, measure_task

        t0 = time.perf_counter()
        decontext = decontextualised(self.encoder, sorted({r.anchor for r in records}))  # e_w once per anchor
        tv = measure_task(self.name, self.encoder, records, decontext)
        stats = {"records": tv.n_records, "sentences": tv.n_sentences, "embed_seconds": round(tv.seconds, 4),
                 "seconds": round(time.perf_counter() - t0, 4), "not_located": tv.not_located,
                 "lemma_fallback": tv.lemma_fallback, "missing_anchors": tv.missing, **self.describe()}
        return task, tv.rows, stats


# -- tasks ------------------------------------------------------------------------------------
def generator_settings(c: ContextualSection) -> dict[str, Any]:
    from embcompare.contextual.rules import generator_version

    # The generator's code is part of its settings: an edited rule makes new sentences.
    s = {"generator": c.generator, "anchors": c.anchors, "seed": c.seed, "max_variants": c.max_variants,
         "wordnet_dir": c.wordnet_dir, "tasks": list(c.tasks), "version": generator_version(c.generator)}
    if c.gate.model is not None and c.generator != "curated":  # a reader reviewed the curated set
        from embcompare.contextual.gate import EXEMPT

        s["gate"] = {"model": c.gate.model, "max_nll_increase": c.gate.max_nll_increase, "exempt": list(EXEMPT)}
    if c.generator == "llm":
        # what changes the replies; not how they are fetched (concurrency, retries, cache)
        s["llm"] = c.llm.model_dump(include={"backend", "model", "base_url", "path", "gguf_file", "temperature",
                                             "max_tokens", "n_variants"})
    return s


def digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def load_or_generate_tasks(out_dir: str, c: ContextualSection) -> tuple[list, str, dict]:
    """(records, sha256 of tasks.jsonl, generator report): the stored data set when it was made
    with these settings (or with the same settings and more tasks: a run on some of the tasks
    reuses it, and its parts), else a new one, written before any embedding starts."""
    from embcompare import store
    from embcompare.contextual.tasks import read_tasks, write_tasks

    path, side = store.join(out_dir, "contextual", "tasks.jsonl"), store.join(out_dir, "contextual", "tasks.json")
    settings = generator_settings(c)
    key = digest(settings)
    if store.exists(path) and store.exists(side):
        meta = store.read_json(side)
        data = store.read_bytes(path)
        stored = dict(meta.get("settings", {}))
        covers = (set(c.tasks) <= set(stored.pop("tasks", []))
                  and stored == {k: v for k, v in settings.items() if k != "tasks"})
        if (meta.get("key") == key or covers) and meta.get("sha256") == hashlib.sha256(data).hexdigest():
            log.info("tasks: reusing %s (%d records)", path, meta.get("records", -1))
            return read_tasks(path), meta["sha256"], meta.get("report", {})
        log.info("tasks: %s was made with other settings; generating again", path)
    t0 = time.time()
    if c.generator == "curated":
        from embcompare.contextual.curated import load_curated

        records, report = load_curated(tasks=c.tasks, anchors=c.anchors, seed=c.seed, max_variants=c.max_variants)
    elif c.generator == "rules":
        from embcompare.contextual.rules import generate_rules

        records, report = generate_rules(n_anchors=c.anchors, seed=c.seed, wordnet_dir=c.wordnet_dir,
                                         max_variants=c.max_variants, tasks=tuple(c.tasks))
    else:
        records, report = _generate_llm(c)
    if c.gate.model is not None and c.generator != "curated":
        records, report["gate"] = _gate(records, c)
    from embcompare.contextual.acceptance import acceptance

    report["acceptance"] = acceptance(records)  # what a reader would count, counted for every record
    write_tasks(path, records)
    sha = hashlib.sha256(store.read_bytes(path)).hexdigest()
    store.write_json(side, {"key": key, "settings": settings, "sha256": sha, "records": len(records),
                            "seconds": round(time.time() - t0, 2), "report": report})
    return records, sha, report


def _gate(records: list, c: ContextualSection) -> tuple[list, dict]:
    from embcompare.contextual.gate import apply_gate, mean_nll
    from embcompare.contextual.llm import load_causal_lm

    t0 = time.time()
    tokenizer, lm, device = load_causal_lm(c.gate.model)
    kept, report = apply_gate(records, lambda texts: mean_nll(tokenizer, lm, device, texts, c.gate.batch_size),
                              c.gate.max_nll_increase)
    report.update(model=c.gate.model, seconds=round(time.time() - t0, 1))
    log.info("tasks: acceptability gate (%s) kept %d of %d records in %.1f s", c.gate.model, len(kept),
             len(records), report["seconds"])
    return kept, report


def _generate_llm(c: ContextualSection) -> tuple[list, dict]:
    from embcompare.contextual.llm import generate_llm, make_client
    from embcompare.contextual.rules import generate_rules

    # The LLM rewrites generator A's originals: both generators share anchors and sentences.
    originals, _ = generate_rules(n_anchors=c.anchors, seed=c.seed, wordnet_dir=c.wordnet_dir,
                                  max_variants=c.max_variants, tasks=tuple(c.tasks))
    return generate_llm(originals, make_client(c.llm), tuple(c.tasks), n_variants=c.llm.n_variants,
                        batch_size=c.llm.batch_size)


# -- parts ------------------------------------------------------------------------------------
def part_path(out_dir: str, model: str, task: str) -> str:
    from embcompare import store

    return store.join(out_dir, "contextual", ".parts", model, f"{task}.parquet")


# The keys of a record a part's values depend on: not its provenance (a review verdict added
# later changes no vector) nor the generator's labels.
_EMBEDDED_KEYS = ("anchor", "pos", "sense", "task", "original", "variants", "variant_senses")


def records_sha(records: list) -> str:
    """sha256 of what the measures read from one task's records (sentences, spans, anchors,
    senses), in order."""
    from embcompare.contextual.tasks import record_to_dict

    lines = "\n".join(json.dumps({k: d[k] for k in _EMBEDDED_KEYS}, ensure_ascii=False, sort_keys=True)
                      for d in map(record_to_dict, records))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def part_key(model_cfg: dict, task_sha: str, task: str, c: ContextualSection) -> str:
    # Everything that changes a part's values: the model's config (its files, layer, pooling,
    # template, dtype), the task's own sentences (a part depends on no other task's: an edit to
    # one task's records reruns that task's parts only), the task, the layers, this code's version.
    return digest({"model": model_cfg, "task_records_sha256": task_sha, "task": task,
                   "layers": [str(x) for x in c.layer], "e_w": c.e_w, "version": PART_VERSION})


def known_identity(out_dir: str, model: str) -> dict | None:
    """The model's identity (resolved Hub commit or file sha256, pooling, layer...) as its latest
    extraction into ``out_dir`` recorded it; None when it was not extracted there. The part key
    holds the model's config only: a part made from other weights under the same config (a
    moved Hub branch) is told apart by the identity its stats recorded."""
    from embcompare import store

    path = store.join(out_dir, "embeddings", model, "manifest.json")
    return store.read_json(path).get("identity") if store.exists(path) else None


def write_part(path: str, rows: list[dict], key: str, stats: dict) -> None:
    import pyarrow as pa

    from embcompare import store
    from embcompare.contextual.compare import ANCHOR_COLUMNS

    table = pa.Table.from_pylist(rows, schema=anchor_schema()) if rows else anchor_schema().empty_table()
    assert tuple(table.column_names) == ANCHOR_COLUMNS
    meta = {b"embcompare.key": key.encode(), b"embcompare.missing": json.dumps(stats.get("missing_anchors", [])).encode(),
            _STATS: json.dumps(stats, default=str).encode()}
    store.write_table(path, table.replace_schema_metadata(meta), compression="zstd")


def read_part_stats(path: str) -> dict:
    from embcompare import store

    meta = store.read_table(path).schema.metadata or {}
    return json.loads(meta.get(_STATS, b"{}"))


def anchor_schema():
    import pyarrow as pa

    return pa.schema([("model", pa.string()), ("task", pa.string()), ("anchor", pa.string()), ("pos", pa.string()),
                      ("sense", pa.string()), ("level", pa.string()), ("layer", pa.string()),
                      ("measure", pa.string()), ("e_w", pa.string()), ("value", pa.float64())])


def embed_all(cfg: ContextualConfig, model_cfgs: dict, by_task: dict) -> dict[str, dict]:
    """Run every pending (model, task) on Ray actors; write each part as it finishes. Returns
    model -> {'sentences', 'embed_seconds', 'parts_run'} of this run."""
    from tqdm import tqdm

    from embcompare import store

    c = cfg.contextual
    shas = {t: records_sha(by_task[t]) for t in c.tasks}
    todo: dict[str, list[str]] = {}
    for m, mcfg in model_cfgs.items():
        store.clear_temporary(store.join(cfg.out_dir, "contextual", ".parts", m))
        known = known_identity(cfg.out_dir, m)
        for t in c.tasks:
            p = part_path(cfg.out_dir, m, t)
            if (store.exists(p) and store.shard_info(p)[0] == part_key(mcfg, shas[t], t, c)
                    and (known is None or read_part_stats(p).get("identity") == known)):
                continue
            todo.setdefault(m, []).append(t)
    done_before = sum(len(c.tasks) for _ in model_cfgs) - sum(len(v) for v in todo.values())
    if done_before:
        log.info("contextual: %d (model, task) parts already done; skipped", done_before)
    run_stats = {m: {"sentences": 0, "embed_seconds": 0.0, "parts_run": 0} for m in model_cfgs}
    if not todo:
        return run_stats
    start_ray(cfg.ray)
    probe = check_out_dir(cfg.out_dir)
    layers = [x for x in c.layer]
    total = sum(sum(1 + len(r.variants) for r in by_task[t]) for ts in todo.values() for t in ts)
    with tqdm(total=total, desc="contextual", unit="sentence", mininterval=2.0) as bar:
        for m, tasks in todo.items():
            # One pool per model, its workers freed before the next model's; within a model the
            # tasks spread over as many workers as the cluster holds. Small tasks first: finished
            # parts come early, so a stopped run has kept the most.
            tasks = sorted(tasks, key=lambda t: sum(1 + len(r.variants) for r in by_task[t]))
            with worker_pool(cfg.workers, ContextualWorker, (model_cfgs[m], layers, c.batch_size, c.e_w),
                             retries=cfg.workers.retries, label=f"contextual {m}", probe=probe) as pool:
                try:
                    for t, (_, rows, stats), node in pool.map(tasks, "run_task", lambda t: (t, by_task[t]),
                                                              name=lambda t: f"model {m}, task {t}"):
                        stats["node"] = node
                        write_part(part_path(cfg.out_dir, m, t), rows, part_key(model_cfgs[m], shas[t], t, c), stats)
                        rs = run_stats[m]
                        rs["sentences"] += stats["sentences"]
                        rs["embed_seconds"] += stats["embed_seconds"]
                        rs["parts_run"] += 1
                        rs.setdefault("nodes", {})[t] = node
                        bar.update(sum(1 + len(r.variants) for r in by_task[t]))
                        bar.set_postfix_str(f"{m}/{t}")
                except (UnitFailed, NoWorker) as e:
                    raise SystemExit(f"error: {e}; finished (model, task) parts are kept in "
                                     f"{store.join(cfg.out_dir, 'contextual', '.parts')}") from None
    return run_stats


# -- tables -----------------------------------------------------------------------------------
def collect(cfg: ContextualConfig, model_cfgs: dict, by_task: dict) -> dict[str, Any]:
    """Write anchors/<model>.parquet, results.parquet and comparisons.parquet from the parts."""
    import pandas as pd
    import pyarrow as pa

    from embcompare import store
    from embcompare.contextual.compare import (COMPARISON_COLUMNS, CROSS_TASK_COLUMNS, RESULT_COLUMNS, compare_models,
                                               cross_task, summarize)
    from embcompare.contextual.evaluate import SENTENCE_ONLY_NOTE, STATIC_NOTE

    c = cfg.contextual
    out = store.join(cfg.out_dir, "contextual")
    frames, results, layer_of, kinds, totals = [], [], {}, {}, {}
    for m in model_cfgs:
        tables, stats = [], {}
        for t in c.tasks:
            p = part_path(cfg.out_dir, m, t)
            tables.append(store.read_table(p))
            stats[t] = read_part_stats(p)
        table = pa.concat_tables(tables) if tables else anchor_schema().empty_table()
        store.write_table(store.join(out, "anchors", f"{m}.parquet"), table.replace_schema_metadata(None))
        df = table.to_pandas()
        frames.append(df)
        desc = next(iter(stats.values()))
        kinds[m] = desc["kind"]
        sent, secs = sum(s["sentences"] for s in stats.values()), sum(s["embed_seconds"] for s in stats.values())
        totals[m] = {"sentences": sent, "embed_seconds": round(secs, 2),
                     "sentences_per_s": round(sent / secs, 1) if secs else None,
                     "not_located": sum(s["not_located"] for s in stats.values()),
                     "lemma_fallback": sum(s.get("lemma_fallback", 0) for s in stats.values()),
                     "missing_anchors": len({a for s in stats.values() for a in s["missing_anchors"]})}
        note = {"static": STATIC_NOTE}.get(desc["kind"], "")
        rows = summarize(df, {(m, meas): note for meas in ("AICV", "AICV_ov", "ACD")})
        for r in rows:
            r["n_missing"] = int(stats[r["task"]]["records"]) - r["n"]
        if desc["kind"] == "sentence_only":  # say so, rather than leave the rows out
            rows += [{"model": m, "task": t, "level": "token", "layer": "", "measure": meas, "e_w": "", "n": 0,
                      "mean": float("nan"), "std": float("nan"), "n_missing": int(stats[t]["records"]),
                      "note": SENTENCE_ONLY_NOTE} for t in c.tasks for meas in ("AICV", "AICV_ov", "ACD")]
        results += rows
        layer_of[(m, "sentence")] = desc["sentence_layer"]
        if desc["kind"] == "static":
            layer_of[(m, "token")] = "static"
        elif desc["kind"] != "sentence_only":
            layer_of[(m, "token")] = str(c.compare_layer)
    anchors = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    comparisons = compare_models(anchors, layer_of) if len(model_cfgs) > 1 and len(anchors) else []
    res_t = pa.Table.from_pylist(results) if results else pa.table({k: [] for k in RESULT_COLUMNS})
    store.write_table(store.join(out, "results.parquet"), res_t.select(list(RESULT_COLUMNS)))
    cmp_schema = pa.schema([(k, pa.string()) for k in COMPARISON_COLUMNS[:7]] +
                           [("n", pa.int64()), ("n_nonzero", pa.int64())] +
                           [(k, pa.float64()) for k in COMPARISON_COLUMNS[9:]])
    cmp_t = pa.Table.from_pylist([{k: r[k] for k in COMPARISON_COLUMNS} for r in comparisons], schema=cmp_schema)
    store.write_table(store.join(out, "comparisons.parquet"), cmp_t)
    originals = {(t, r.anchor): r.original.text for t, rs in by_task.items() for r in rs}
    cross = cross_task(anchors, originals) if len(anchors) else []
    cross_schema = pa.schema([(k, pa.string()) for k in CROSS_TASK_COLUMNS[:6]] + [("n", pa.int64())] +
                             [(k, pa.float64()) for k in CROSS_TASK_COLUMNS[7:]])
    store.write_table(store.join(out, "cross_task.parquet"), pa.Table.from_pylist(cross, schema=cross_schema))
    return {"results": results, "comparisons": comparisons, "kinds": kinds, "totals": totals, "cross_task": cross}


def code_version(cfg: DictConfig) -> str:
    """The version of the code behind this stage's results that its config does not pin: the
    sentence generator's rules and the parts' measures (part of the stage's commit, so the
    pipeline reruns the stage after either changes)."""
    from embcompare.contextual.rules import generator_version

    return f"{generator_version(cfg.contextual.generator)}/{PART_VERSION}"


def run(cfg: DictConfig) -> dict[str, Any]:
    """The contextual stage; returns its headline numbers. Raises ConfigError before any work
    on a bad config."""
    from embcompare import commit, store
    from embcompare.embedders import ModelConfigError
    from embcompare.models import load_model_config

    settings = check(cfg)
    c = settings.contextual
    try:
        model_cfgs = {m: load_model_config(m) for m in settings.models}
    except ModelConfigError as e:
        raise ConfigError(str(e)) from None
    store.check_writable(settings.out_dir)
    t0 = time.time()
    read_keys = commit.stage_inputs(settings.out_dir, "contextual", settings.models)  # the models' configs
    records, _, report = load_or_generate_tasks(settings.out_dir, c)
    by_task = {t: [r for r in records if r.task == t] for t in c.tasks}
    empty = [t for t, rs in by_task.items() if not rs]
    if empty:
        log.warning("contextual: no records for task(s) %s; they get no rows", empty)
    gen_s = time.time() - t0
    run_stats = embed_all(settings, model_cfgs, by_task)
    tables = collect(settings, model_cfgs, by_task)
    # Rates over every part (this run's and earlier runs'): sentences embedded per second of
    # embedding, model loading and the decontextualised vectors left out.
    rates = {m: {**tables["totals"][m], "kind": tables["kinds"][m], "parts_run": run_stats[m]["parts_run"],
                 "nodes": run_stats[m].get("nodes", {})}  # task -> the Ray node that ran its part in this run
             for m in model_cfgs}
    headline = {"records": len(records), "records_per_task": {t: len(rs) for t, rs in by_task.items()},
                "anchors": len({r.anchor for r in records}), "generation_seconds": round(gen_s, 1),
                "models": rates, "result_rows": len(tables["results"]),
                "comparisons": len(tables["comparisons"]), "seconds": round(time.time() - t0, 1)}
    out = store.join(settings.out_dir, "contextual")
    store.write_json(store.join(out, "run.json"), headline)
    written = [store.join(out, f) for f in ("tasks.jsonl", "tasks.json", "results.parquet", "comparisons.parquet",
                                            "cross_task.parquet", "run.json")] + [store.join(out, "anchors", f"{m}.parquet") for m in model_cfgs]
    # Last: the commit makes these files the stage's results (and sweeps an earlier run's).
    commit.write(settings.out_dir, "contextual", written, config=commit.config_digest(cfg, code=code_version(cfg)),
                 inputs=read_keys, sweep=["contextual"],
                 extra={"headline": headline, "seconds": headline["seconds"]})
    return headline


@hydra.main(config_path="../conf", config_name="contextual", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        h = run(cfg)
    except (ConfigError, PermissionError) as e:
        raise SystemExit(f"error: {e}") from None
    print(f"contextual: {h['records']} records ({h['anchors']} anchors), {h['result_rows']} result rows, "
          f"{h['comparisons']} comparisons, {h['seconds']:.1f} s")
    for m, s in h["models"].items():
        rate = f"{s['sentences_per_s']} sentences/s" if s["sentences_per_s"] else "nothing to embed"
        print(f"  {m}: {s['sentences']} sentences in {s['embed_seconds']:.1f} s ({rate})")


if __name__ == "__main__":
    sys.exit(main())
