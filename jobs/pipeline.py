"""The whole study in one command: extraction, all-pairs similarity, model agreement, analogies
and word-pair similarity, contextual measures, report; each stage skips the work it has done.

    python jobs/pipeline.py                                   # the embedded default, full WordNet list
    python jobs/pipeline.py 'models=[glove_6b_50d,sbert_minilm]' vocab.max_words=5000 out_dir=/tmp/x
    python jobs/pipeline.py 'stages=[similarity,report]' similarity.top_k=20
    ray job submit --working-dir . -- python jobs/pipeline.py 'models=[llama3_8b,mistral_7b]' out_dir=s3://b/run

Each stage's config is its own file (conf/<stage>.yaml); an override goes to the stages that
have its key: ``models``, ``out_dir``, ``vocab.*``, ``workers.*`` and ``ray.*`` to every stage,
``extract.*`` and ``model.*`` to extraction, ``similarity.*`` to similarity, ``agreement.*`` to
agreement, ``analogy.*`` and ``wordsim.*`` to analogies, ``contextual.*`` and ``report.*`` to
theirs. Every stage's config is composed and checked before the first stage starts, so a typo
costs nothing.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Sequence

import common  # noqa: F401 - puts the repo on sys.path
from common import CONF_DIR, ROOT, log

STAGES = ("extract", "similarity", "agreement", "analogy", "contextual", "report")
DEFAULT_MODELS = ("glove_6b_50d", "sbert_minilm", "smollm2_135m")
# Override prefix -> the stages it goes to (None: every stage whose config has the key).
ROUTES: dict[str, tuple[str, ...] | None] = {
    "models": None, "out_dir": None, "vocab": None, "workers": None, "ray": None,
    "extract": ("extract",), "model": ("extract",), "similarity": ("similarity",), "agreement": ("agreement",),
    "analogy": ("analogy",), "wordsim": ("analogy",), "contextual": ("contextual",), "report": ("report",),
}


class PipelineError(ValueError):
    pass


@dataclass
class Plan:
    stages: list[str]
    models: list[str]
    out_dir: str
    overrides: dict[str, list[str]] = field(default_factory=dict)  # stage -> Hydra overrides


def _key_of(override: str) -> tuple[str, str]:
    """(key, value) of a Hydra override ``key=value`` (also ``+key=`` / ``~key``)."""
    if "=" not in override:
        raise PipelineError(f"override {override!r} is not key=value")
    key, value = override.split("=", 1)
    return key.lstrip("+~"), value


def _parse_list(value: str) -> list[str]:
    v = value.strip()
    if v.startswith("[") and v.endswith("]"):
        v = v[1:-1]
    return [x.strip().strip("'\"") for x in v.split(",") if x.strip()]


def plan(argv: Sequence[str]) -> Plan:
    """Split the command line's overrides among the stages; refuse what no stage takes."""
    stages, models, out_dir = list(STAGES), list(DEFAULT_MODELS), "outputs"
    routed: list[tuple[str, str]] = []
    for arg in argv:
        key, value = _key_of(arg)
        head = key.split(".", 1)[0]
        if key == "stages":
            stages = _parse_list(value)
            unknown = [s for s in stages if s not in STAGES]
            if unknown or not stages:
                raise PipelineError(f"stages={value}: unknown stage(s) {unknown}; stages are {list(STAGES)}")
            continue
        if head not in ROUTES:
            raise PipelineError(f"override {arg!r}: no stage takes '{head}'; keys are stages=[...] and "
                                f"{', '.join(sorted(ROUTES))} (e.g. similarity.top_k=20)")
        if key == "models":
            models = _parse_list(value)
        elif key == "out_dir":
            out_dir = value
        routed.append((head, arg))
    order = [s for s in STAGES if s in stages]  # the data flow fixes the order
    model_overrides = [a for head, a in routed if head == "model"]
    if model_overrides and "contextual" in order:
        # The contextual stage loads conf/model/<name>.yaml itself: an override that reached
        # extraction only would compare vectors of two different settings side by side.
        raise PipelineError(f"{model_overrides[0]!r}: model.* overrides reach extraction only, and the contextual "
                            f"stage would load the model without it; put the setting in conf/model/<name>.yaml "
                            f"(or a new model file), or leave contextual out: stages=[extract,similarity,analogy,report]")
    left_out = [s for s in order if s not in ("extract", "report") and not models_for(s, models)]
    for s in left_out:
        log.info("stage %s left out: it takes none of models=[%s] (docs/definitions.md, \"Model variants\")",
                 s, ",".join(models))
    order = [s for s in order if s not in left_out]
    out = Plan(order, models, out_dir)
    for stage in order:
        mine = [a for head, a in routed if ROUTES[head] is None or stage in ROUTES[head]]
        mine = [a for a in mine if not a.startswith("models=")]
        names = models_for(stage, models)
        models_arg = f"model=[{','.join(names)}]" if stage == "extract" else f"models=[{','.join(names)}]"
        variants = [f"extract.variants=[{','.join(m for m in models if m not in names)}]"] \
            if stage == "extract" and names != models else []
        out.overrides[stage] = [models_arg, f"out_dir={out_dir}", *variants,
                                *[a for a in mine if not a.startswith("out_dir=")]]
    return out


def models_for(stage: str, models: list[str]) -> list[str]:
    """The names ``stage`` takes for ``models`` (model variants included, docs/definitions.md,
    "Model variants"): extraction the models themselves (the variants go to extract.variants);
    the contextual stage, which loads each model and reads its layers through contextual.layer,
    the models without a variant; ``model@all`` (every stored layer) goes to analogies, word-pair
    similarity and the report, not to all-pairs similarity or agreement (which need the layers
    named one by one)."""
    from embcompare.config import ConfigError
    from embcompare.variants import bases, parse

    try:
        if stage == "extract":
            return bases(models)
        if stage == "contextual":
            return [m for m in models if not parse(m).transform and parse(m).layer is None]
        if stage in ("similarity", "agreement"):
            return [m for m in models if parse(m).layer != "all"]
    except ConfigError as e:
        raise PipelineError(f"models: {e}") from None
    return list(models)


def compose(stage: str, overrides: list[str]):
    """The stage's config as its own job would see it (conf/<stage>.yaml + overrides)."""
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name=stage, overrides=overrides)


def _drop_unknown_shared(stage: str, overrides: list[str]) -> list[str]:
    """Shared keys (vocab, workers, ray) go only to stages whose config has that section."""
    from omegaconf import OmegaConf

    base = compose(stage, [o for o in overrides if o.startswith(("model=", "models="))])
    keep = []
    for o in overrides:
        key, _ = _key_of(o)
        head = key.split(".", 1)[0]
        if ROUTES.get(head) is None and head not in ("models", "out_dir") and OmegaConf.select(base, head) is None:
            continue
        if head in ("models", "model") and OmegaConf.select(base, head) is None:
            continue
        keep.append(o)
    return keep


def load_job(stage: str) -> ModuleType:
    """jobs/<stage>.py as a module (its ``run(cfg)`` does the stage's work)."""
    path = ROOT / "jobs" / f"{stage}.py"
    spec = importlib.util.spec_from_file_location(f"embcompare_jobs_{stage}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the job's schema annotations through it
    spec.loader.exec_module(module)
    # Ray workers cannot import this module by its name: send its actor classes by value, as
    # they are sent when the job runs as a script (__main__).
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(module)
    if not hasattr(module, "run"):
        raise PipelineError(f"{path} has no run(cfg)")
    return module


def check(module: ModuleType, cfg: Any) -> None:
    """Refuse a stage's config before any stage runs, with the job's own checker."""
    checker = getattr(module, "check", None) or getattr(module, "check_config", None)
    if checker is not None:
        checker(cfg)


def stage_models(p: Plan, stage: str) -> list[str]:
    """The models ``stage`` reads, as its job names them in its commit (model@all expanded to the
    layers extraction stored)."""
    from common import expand_models
    from embcompare.config import ConfigError

    names = models_for(stage, p.models)
    try:
        return expand_models(p.out_dir, names)
    except ConfigError:  # nothing stored yet: the stage runs, and says so itself
        return names


def check_across(cfgs: dict[str, Any]) -> None:
    """Refuse settings of one stage that another stage's output cannot serve."""
    if "agreement" in cfgs and "similarity" in cfgs:
        ks, sim = list(cfgs["agreement"].agreement.k), cfgs["similarity"].similarity
        if max(ks) > sim.top_k:
            raise PipelineError(f"agreement.k={ks} needs the similarity stage's neighbours that deep: set "
                                f"similarity.top_k={max(ks)} (it is {sim.top_k}) or lower agreement.k")
        if not sim.groups.random_pairs:
            raise PipelineError("the agreement stage's effect sizes need random pairs: similarity.groups.random_pairs "
                                "must be > 0")


def skip_reason(out_dir: str, stage: str, digest: str, inputs: dict) -> str | None:
    """None when ``stage``'s latest commit is for this config and these embeddings and every
    file it lists is intact (present, recorded size and sha256); else why the stage reruns."""
    from embcompare import commit

    try:
        rec = commit.read(out_dir, stage)
    except commit.DamagedCommit as e:
        return f"{e}; the stage reruns"
    if rec is None:
        return "no commit record (never finished here)"
    if rec.get("config") != digest:
        return "its config changed since its last commit"
    if rec.get("inputs") != inputs:
        return "what it read (the embeddings; for contextual, the model configs) changed since its last commit"
    upstream = commit.upstream_runs(out_dir, stage)
    if rec.get("upstream", {}) != upstream:
        return f"{', '.join(upstream)} committed another run since its last commit"
    problems = commit.verify(out_dir, rec)
    if problems:
        return f"{'; '.join(problems.values())}; rebuilding"
    return None


def run_pipeline(argv: Sequence[str]) -> dict[str, Any]:
    from embcompare import commit, store
    from embcompare.config import ConfigError

    p = plan(argv)
    jobs, cfgs = {}, {}
    for stage in p.stages:  # everything checked before anything runs
        jobs[stage] = load_job(stage)
        try:
            cfgs[stage] = compose(stage, _drop_unknown_shared(stage, p.overrides[stage]))
            check(jobs[stage], cfgs[stage])
        except ConfigError as e:
            raise PipelineError(f"stage {stage}: {e}") from None
        except Exception as e:  # Hydra's override errors name the key
            if type(e).__name__ in ("ConfigCompositionException", "OverrideParseException",
                                    "ConfigAttributeError", "ConfigKeyError", "MissingConfigException"):
                raise PipelineError(f"stage {stage}: {e}") from None
            raise
    check_across(cfgs)
    store.check_writable(p.out_dir)
    headlines: dict[str, Any] = {}
    started = time.time()
    # One run identity for every stage's commit (the report's header names it).
    os.environ[commit.RUN_ENV] = commit.new_run_id()
    for stage in p.stages:
        code = getattr(jobs[stage], "code_version", None)  # code the config alone does not pin
        digest = commit.config_digest(cfgs[stage], code=code(cfgs[stage]) if code else None)
        if stage not in ("extract", "report"):
            why = skip_reason(p.out_dir, stage, digest, commit.stage_inputs(p.out_dir, stage, stage_models(p, stage)))
            if why is None:
                log.info("%s: committed for this config and these embeddings, every file intact; skipped", stage)
                headlines[stage] = (commit.read(p.out_dir, stage).get("extra") or {}).get("headline", {})
                continue
            log.info("%s: runs: %s", stage, why)
        print(f"== {stage} ==", flush=True)
        headlines[stage] = jobs[stage].run(cfgs[stage]) or {}
    headlines["seconds"] = round(time.time() - started, 1)
    _print_headlines(p, headlines)
    return headlines


def _fmt(v: Any) -> str:
    return "n/a" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)


def headline_lines(h: dict[str, Any]) -> list[str]:
    """The numbers a researcher looks at first, one line each, from the stages' results."""
    from embcompare.commit import jsonable

    h = jsonable(h)
    lines = []
    for m, r in (h.get("extract") or {}).items():
        if isinstance(r, dict) and "embedded" in r:
            lines.append(f"extract     {m}: dim {r.get('dim')}, embedded {r['embedded']} of {r.get('words')} words")
    sim = h.get("similarity") or {}
    for m, r in (sim.get("models") or {}).items():
        lines.append(f"similarity  {m}: {r.get('n_pairs')} pairs, mean {_fmt(r.get('mean'))}, std {_fmt(r.get('std'))}")
    for r in sim.get("correlations") or []:
        lines.append(f"similarity  {r['model_a']} vs {r['model_b']}: spearman {_fmt(r.get('spearman'))}, "
                     f"kendall {_fmt(r.get('kendall'))} (+-{r.get('error_bound', 0):.1e})")
    agr = h.get("agreement") or {}
    for r in agr.get("pairs") or []:
        k = f"@{r['k']}" if r.get("k") else ""
        ref = (f" (chance {_fmt(r.get('chance'))})" if r["measure"] == "mutual_knn"
               else f" (null {_fmt(r.get('null_mean'))})" if r.get("null_mean") is not None else "")
        lines.append(f"agreement   {r['model_a']} vs {r['model_b']}: {r['measure']}{k} {_fmt(r.get('value'))}{ref}")
    for m, r in (agr.get("anisotropy") or {}).items():
        lines.append(f"agreement   {m}: " + ", ".join(f"{k} {_fmt(v)}" for k, v in r.items()))
    for m, r in (h.get("analogy") or {}).items():
        for ds, acc in ((r or {}).get("accuracy") or {}).items():
            accs = ", ".join(f"{k} {_fmt(v)}" for k, v in sorted(acc.items()))
            lines.append(f"analogy     {m} {ds}: {accs}")
    ctx = h.get("contextual") or {}
    if ctx:
        lines.append(f"contextual  {ctx.get('anchors')} anchors, {ctx.get('records')} (anchor, task) records, "
                     f"{ctx.get('result_rows')} result rows")
    return lines


def _print_headlines(p: Plan, h: dict[str, Any]) -> None:
    from embcompare import store

    print(f"\n== done in {h['seconds']:.0f} s: {', '.join(p.stages)} for {', '.join(p.models)} ==")
    for line in headline_lines(h):
        print(line)
    print(f"outputs: {p.out_dir}")
    if "report" in p.stages:
        print(f"report:  {store.join(p.out_dir, 'report', 'index.html')}")


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s] %(message)s")
    try:
        run_pipeline(sys.argv[1:] if argv is None else argv)
    except PipelineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
