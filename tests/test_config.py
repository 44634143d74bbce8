"""Config schemas: every model file and the extraction job's config are checked before any work,
and each mistake is one error naming the key and what is allowed."""
import pytest
from omegaconf import OmegaConf

from conftest import ROOT
from embcompare.config import ConfigError, VocabConfig, validate
from embcompare.embedders import BACKENDS, ModelConfigError, check_model_config
from embcompare.models import available_models, load_model_config, model_configs

MODEL_FILES = sorted((ROOT / "conf" / "model").glob("*.yaml"))


@pytest.mark.parametrize("path", MODEL_FILES, ids=lambda p: p.stem)
def test_every_model_file_validates_against_its_backend(path):
    cfg = load_model_config(path.stem)
    opts = check_model_config(cfg)
    assert opts.backend == cfg["backend"] and opts.name == path.stem
    # The schema knows every key the file sets: nothing in a shipped file is silently ignored.
    assert set(cfg) - {"name"} <= set(type(opts).model_fields)


def test_a_misspelt_option_is_refused_naming_it_and_the_allowed_keys():
    cfg = {**load_model_config("simcse_bert_large"), "poolng": "cls"}
    with pytest.raises(ModelConfigError) as e:
        check_model_config(cfg)
    msg = str(e.value)
    assert "unknown key 'model.simcse_bert_large.poolng'" in msg
    assert "allowed keys here:" in msg and "pooling" in msg and "layer" in msg and "template" in msg


def test_unknown_or_absent_backend_lists_the_known_ones():
    with pytest.raises(ModelConfigError, match=r"'model.x.backend' = 'magic': unknown backend; known backends: "
                                               + ", ".join(sorted(BACKENDS))):
        check_model_config({"name": "x", "backend": "magic"})
    with pytest.raises(ModelConfigError, match="missing key 'model.x.backend'; known backends: api"):
        check_model_config({"name": "x", "path": "/m"})


@pytest.mark.parametrize("over,key", [
    ({"batch_size": 0}, "batch_size"), ({"pooling": "max"}, "pooling"), ({"dtype": "int8"}, "dtype"),
    ({"layer": "last"}, "layer"), ({"template": "no slot"}, "template"),
])
def test_out_of_range_transformer_values_are_named(over, key):
    cfg = {**load_model_config("smollm2_135m"), **over}
    with pytest.raises(ModelConfigError, match=rf"'model.smollm2_135m.{key}' = "):
        check_model_config(cfg)


@pytest.mark.parametrize("over,key", [({"concurrency": 0}, "concurrency"), ({"timeout_s": 0}, "timeout_s"),
                                      ({"max_retries": -1}, "max_retries"), ({"provider": "azure"}, "provider"),
                                      ({"dim": 0}, "dim")])
def test_out_of_range_api_values_are_named(over, key):
    cfg = {**load_model_config("openai_te3_small"), **over}
    with pytest.raises(ModelConfigError, match=rf"'model.openai_te3_small.{key}' = "):
        check_model_config(cfg)


def test_static_backends_check_their_options():
    with pytest.raises(ModelConfigError, match=r"'model.w.format' = 'fasttext'"):
        check_model_config({"name": "w", "backend": "keyed_vectors", "path": "/x", "format": "fasttext"})
    with pytest.raises(ModelConfigError, match=r"'model.w.limit' = 0"):
        check_model_config({"name": "w", "backend": "keyed_vectors", "path": "/x", "limit": 0})
    with pytest.raises(ModelConfigError, match=r"missing key 'model.g.index'"):
        check_model_config({"name": "g", "backend": "glove_npy", "vectors": "v.npy"})


def test_malformed_model_files(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "broken.yaml").write_text("broken:\n  backend: glove_npy\n  vectors: [unclosed\n")
    (model / "flat.yaml").write_text("backend: glove_npy\nvectors: v.npy\nindex: i.parquet\n")
    (model / "listy.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ModelConfigError, match=r"(?s)broken.yaml: not valid YAML: .*line 3"):
        load_model_config("broken", tmp_path)
    for name in ("flat", "listy"):
        with pytest.raises(ModelConfigError, match=rf"{name}.yaml: must hold exactly one top-level key, '{name}'"):
            load_model_config(name, tmp_path)
    # What Hydra composes from a flat file: settings where models should be.
    with pytest.raises(ModelConfigError, match="model backend: config has no 'backend'"):
        model_configs(OmegaConf.create({"backend": "glove_npy", "vectors": "v.npy"}))
    with pytest.raises(ModelConfigError, match="no model selected"):
        model_configs(OmegaConf.create({}))
    assert "glove_6b_50d" in available_models()


def test_vocab_section():
    assert validate({"pos": ["n"], "max_words": 10}, VocabConfig, "vocab").pos == ["n"]
    with pytest.raises(ConfigError, match=r"'vocab.pos.0' = 'x'"):
        validate({"pos": ["x"]}, VocabConfig, "vocab")
    with pytest.raises(ConfigError, match=r"'vocab.min_length' = 0"):
        validate({"min_length": 0}, VocabConfig, "vocab")
    with pytest.raises(ConfigError, match=r"unknown key 'vocab.maxwords'; allowed keys here: max_words, min_length"):
        validate({"maxwords": 10}, VocabConfig, "vocab")


def _extract_cfg(*overrides):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="extract", overrides=list(overrides))


def test_extract_job_config_is_checked_whole():
    import sys

    sys.path.insert(0, str(ROOT / "jobs"))
    from extract import check_config

    job, models = check_config(_extract_cfg("model=[glove_6b_50d,sbert_minilm]"))
    assert job.extract.shard_size == 8192 and list(models) == ["glove_6b_50d", "sbert_minilm"]
    for override, message in [
        ("extract.shard_size=0", r"'extract.shard_size' = 0"),
        ("workers.retries=-1", r"'workers.retries' = -1"),
        ("+extract.shardsize=5", r"unknown key 'extract.shardsize'; allowed keys here: bats_dir, evaluation_words"),
        ("workers.max=0", r"'workers.max' = 0: Input should be 'auto' or Input should be greater than or equal to 1"),
        ("ray.num_cpus=0", r"'ray.num_cpus' = 0"),
        ("+model.glove_6b_50d.poolng=cls", r"unknown key 'model.glove_6b_50d.poolng'; allowed keys here: backend"),
        ("model.glove_6b_50d.backend=magic", r"unknown backend; known backends"),
    ]:
        with pytest.raises(ConfigError, match=message):
            check_config(_extract_cfg(override))
