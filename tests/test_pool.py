"""jobs/pool.py on an embedded Ray: what is retried (a lost worker) and what is not (the stage's
own error, a worker that cannot start), and that every finished unit comes back first."""
import os
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "jobs"))


class Squarer:
    """A worker that squares numbers; dies (as an OOM kill does) on the units listed in the
    file ``die_on`` once each, and raises on negative numbers (an error of the stage's code)."""

    def __init__(self, die_on: str | None = None, die_at_start: bool = False, threads: int = 1):
        if die_at_start:
            os._exit(9)
        self.die_on = die_on
        self.threads = threads

    def square(self, x: int) -> int:
        if x < 0:
            raise ValueError(f"negative input {x}")
        if self.die_on and os.path.exists(self.die_on):
            todo = open(self.die_on).read().split()
            if str(x) in todo:
                todo.remove(str(x))
                with open(self.die_on, "w") as f:
                    f.write(" ".join(todo))
                os._exit(9)
        return x * x


@pytest.fixture(scope="module")
def ray_up():
    import ray
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import tests/
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    yield
    ray.shutdown()


def test_lost_workers_rerun_their_units_and_every_unit_comes_back_once(ray_up, tmp_path):
    from pool import Pool, Resources

    marker = tmp_path / "die"
    marker.write_text("3 7")
    with Pool(Squarer, (str(marker),), Resources(1), retries=2, label="squares") as pool:
        got = {u: (r, node) for u, r, node in pool.map(list(range(10)), "square", lambda u: (u,))}
        assert {u: r for u, (r, _) in got.items()} == {u: u * u for u in range(10)}
        assert marker.read_text().split() == []  # both deaths happened
        assert sum(pool.nodes_seen.values()) == 10 and len({n for _, n in got.values()}) == 1


def test_a_unit_whose_workers_keep_dying_fails_naming_it_after_those_in_flight(ray_up, tmp_path):
    from pool import Pool, Resources, UnitFailed

    marker = tmp_path / "die"
    marker.write_text("5 5 5")
    done = []
    with Pool(Squarer, (str(marker),), Resources(1), retries=2, label="squares") as pool:
        with pytest.raises(UnitFailed, match=r"unit 5: its worker was lost 3 times \(workers.retries=2\)"):
            for u, r, _ in pool.map(list(range(8)), "square", lambda u: (u,), name=lambda u: f"unit {u}"):
                done.append(u)
    # Once a unit fails for good no new unit starts; the ones in flight are collected: every
    # unit handed out before unit 5 (0-4) finished and came back, the two after it may not have.
    assert {0, 1, 2, 3, 4} <= set(done) <= {0, 1, 2, 3, 4, 6, 7}


def test_the_stages_own_error_is_not_retried(ray_up, tmp_path):
    from pool import Pool, Resources, UnitFailed

    with Pool(Squarer, (), Resources(1), retries=5, label="squares") as pool:
        with pytest.raises(UnitFailed, match=r"unit -2: .*negative input -2"):
            list(pool.map([1, -2, 3], "square", lambda u: (u,), name=lambda u: f"unit {u}"))


def test_a_worker_that_dies_while_starting_stops_the_map_at_once(ray_up):
    from pool import NoWorker, Pool, Resources

    with Pool(Squarer, (None, True), Resources(1), retries=2, label="squares", wait_s=600) as pool:
        with pytest.raises(NoWorker, match=r"squares: a worker died while starting 3 times \(workers.retries=2\)"):
            list(pool.map([1, 2], "square", lambda u: (u,)))


def test_a_worker_no_node_can_hold_is_refused_on_an_embedded_ray(ray_up):
    from pool import NoWorker, Pool, Resources

    with Pool(Squarer, (), Resources(4), label="squares") as pool:
        with pytest.raises(NoWorker, match="no node of this Ray can hold a worker of 4 CPU"):
            list(pool.map([1], "square", lambda u: (u,)))
