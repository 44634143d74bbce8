"""The registry of model configs: one YAML file per model in conf/model/.

Each file holds one top-level key, the model's name, equal to the file name, so that Hydra can
select several at once (``model=[glove_6b_50d,sbert_minilm]``) and merge them side by side.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from .embedders import ModelConfigError, check_model_config

DEFAULT_CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def available_models(conf_dir: str | os.PathLike = DEFAULT_CONF_DIR) -> list[str]:
    return sorted(p.stem for p in (Path(conf_dir) / "model").glob("*.yaml"))


def model_configs(selected: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Plain dicts, ``name`` set, from the ``model`` node Hydra composed (name -> config), each
    checked against its backend's schema (ModelConfigError naming the model and the key)."""
    from omegaconf import OmegaConf

    if selected is None or (OmegaConf.is_config(selected) and not OmegaConf.is_dict(selected)) \
            or not isinstance(selected, Mapping) and not OmegaConf.is_config(selected):
        raise ModelConfigError("'model' must map model names to their settings (model=glove_6b_50d or "
                               "model=[glove_6b_50d,sbert_minilm])")
    out = {}
    for name, cfg in selected.items():
        d = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else cfg
        if not isinstance(d, Mapping) or "backend" not in d:
            raise ModelConfigError(f"model {name}: config has no 'backend' (conf/model/{name}.yaml "
                                   f"must hold one key, '{name}', with the model's settings)")
        d = {**d, "name": name}
        check_model_config(d)
        out[name] = d
    if not out:
        raise ModelConfigError("no model selected: model=glove_6b_50d or model=[glove_6b_50d,sbert_minilm]")
    return out


def load_model_config(key: str, conf_dir: str | os.PathLike = DEFAULT_CONF_DIR) -> dict[str, Any]:
    """The config of model ``key`` (conf/model/<key>.yaml) as a plain dict, ``name`` set to key.
    A layer variant ``<key>@<i>`` is the same model read at hidden state i (a stage that loads
    the model itself, as the contextual one does, follows the name).

    Raises ModelConfigError listing the known models when there is no such file, or when the
    name asks for a post-processed variant (those exist only as stored vectors).
    """
    from omegaconf import OmegaConf

    from .variants import VariantError, parse

    try:
        v = parse(key)
    except VariantError as e:
        raise ModelConfigError(str(e)) from None
    if v.transform:
        raise ModelConfigError(f"{key}: a post-processed variant (+{v.transform}) is stored vectors, not a "
                               f"model to load; use {v.raw}")
    if v.layer == "all":
        raise ModelConfigError(f"{key}: stands for every stored layer of {v.base}, not one model to load")
    if v.layer is not None:
        cfg = load_model_config(v.base, conf_dir)
        if cfg["backend"] != "transformers":
            raise ModelConfigError(f"{key}: model {v.base} ({cfg['backend']}) has no layers to choose; only "
                                   f"transformers models take @layer")
        return {**cfg, "name": key, "layer": v.layer, "layers": None}

    path = Path(conf_dir) / "model" / f"{key}.yaml"
    if not path.is_file():
        raise ModelConfigError(f"unknown model '{key}': no {path}; known models: "
                               f"{', '.join(available_models(conf_dir)) or 'none'}")
    try:
        node = OmegaConf.load(path)
    except Exception as e:  # noqa: BLE001 - yaml's parser errors name the line and column
        raise ModelConfigError(f"{path}: not valid YAML: {e}") from None
    if not OmegaConf.is_dict(node) or list(node.keys()) != [key]:
        raise ModelConfigError(f"{path}: must hold exactly one top-level key, '{key}'")
    return model_configs(node)[key]
