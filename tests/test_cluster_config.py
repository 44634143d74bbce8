"""cluster.yaml passes the checks `ray up` makes before it contacts the cloud
(ray.autoscaler._private.commands._bootstrap_config: prepare_config, then validate_config), and
a misspelt key is refused by them."""
import copy

import pytest
import yaml

from conftest import ROOT

pytest.importorskip("jsonschema")  # Ray's autoscaler validates with it (ray[default])
from ray.autoscaler._private.util import prepare_config, validate_config  # noqa: E402


@pytest.fixture(scope="module")
def config():
    # `ray up` reads the file with yaml.safe_load too.
    return yaml.safe_load((ROOT / "cluster.yaml").read_text())


def check(config: dict) -> dict:
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def test_cluster_yaml_is_valid_for_ray_up(config):
    prepared = check(config)
    types = prepared["available_node_types"]
    head = types[prepared["head_node_type"]]
    workers = [t for name, t in types.items() if name != prepared["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0, "the head is a CPU node"
    assert len(workers) == 1 and workers[0]["resources"]["GPU"] >= 1
    assert workers[0]["max_workers"] > workers[0]["min_workers"], "the GPU worker type autoscales"
    assert prepared["provider"]["type"] == "aws"
    # Every node installs the project with its gpu extra, from the folder `ray up` ships.
    mount = [remote for remote, local in prepared["file_mounts"].items() if local == "."]
    assert mount
    installs = [c for c in prepared["head_setup_commands"] if "pip install" in c and mount[0] in c]
    assert installs and all("gpu" in c.split(mount[0], 1)[1].split('"')[0] for c in installs)
    assert prepared["worker_setup_commands"] == prepared["head_setup_commands"]
    # Token authentication on every node, with the token `ray up` ships.
    assert any(r.endswith(".ray/auth_token") for r in prepared["file_mounts"])
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        assert any("RAY_AUTH_MODE=token ray start" in c for c in prepared[key]), key


@pytest.mark.parametrize("where, typo", [
    ((), "max_worker"),                                   # top level
    (("available_node_types", "gpu_worker"), "min_worker"),  # inside a node type
    (("available_node_types", "head"), "resource"),
])
# Not caught by Ray before launch: keys inside ``provider`` and ``node_config`` (free-form in its
# schema; AWS refuses them at launch time). docs/cluster.md says so.
def test_a_misspelt_key_is_refused(config, where, typo):
    import jsonschema

    bad = copy.deepcopy(config)
    node = bad
    for k in where:
        node = node[k]
    node[typo] = 2
    with pytest.raises((jsonschema.ValidationError, ValueError)) as err:
        check(bad)
    assert typo in str(err.value)


def test_a_node_type_without_resources_is_refused(config):
    # Outside AWS's instance-type lookup, Ray cannot guess a node's CPUs and GPUs.
    import jsonschema

    bad = copy.deepcopy(config)
    del bad["available_node_types"]["gpu_worker"]["resources"]
    with pytest.raises(jsonschema.ValidationError, match="resources"):
        check(bad)
