"""The multi-node test infrastructure (tests/multinode.py), each piece proved against plain Ray:
work lands on the worker nodes (never the CPU-0 head), a SIGKILLed node's work finishes on the
others, a joining node takes work, a private-view node really cannot see the driver's files,
pending demand makes the fake autoscaler launch nodes, and `ray job submit` runs on the worker
nodes. Each cluster checks at exit that none of its processes is left."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from multinode import (autoscaling_cluster, cluster_processes, local_cluster, private_view_node,
                       submit)

ray = pytest.importorskip("ray")
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # noqa: E402


@ray.remote(num_cpus=1, max_retries=3)
def unit(i: int, marks: str, gate: str) -> tuple[int, str, int]:
    """One unit of work, which notes its start in the folder ``marks`` (node id in the name) and
    then holds its CPU until the file ``gate`` exists: the test decides what is in flight where,
    whatever the machine's load. Returns where it ran."""
    node = ray.get_runtime_context().get_node_id()
    Path(marks, f"{i}-{node}").touch()
    while not os.path.exists(gate):
        time.sleep(0.05)
    return i, node, os.getpid()


@ray.remote(num_cpus=0)
def exists(path: str) -> bool:
    return os.path.exists(path)


@ray.remote(num_cpus=0)
def write(path: str, text: str) -> None:
    Path(path).write_text(text)


def _on(node_id: str) -> dict:
    return {"scheduling_strategy": NodeAffinitySchedulingStrategy(node_id, soft=False)}


def _started_on(marks: Path, node_id: str) -> set[int]:
    return {int(p.name.split("-")[0]) for p in marks.iterdir() if p.name.endswith(node_id)}


def _alive(pids) -> list[int]:
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            continue
    return out


def _wait_until(cond, what: str, timeout_s: float = 60) -> None:
    deadline = time.time() + timeout_s
    while not cond():
        assert time.time() < deadline, what
        time.sleep(0.05)


def _phase(tmp_path: Path, name: str) -> tuple[Path, Path]:
    marks = tmp_path / name
    marks.mkdir()
    return marks, tmp_path / f"{name}.open"


def test_work_runs_on_worker_nodes_survives_a_sigkilled_node_and_spreads_to_a_new_one(tmp_path):
    with local_cluster(n_workers=2) as c:
        c.connect()
        workers = c.node_ids()
        assert len(set(workers)) == 2 and c.head_id not in workers
        assert c.alive_ids() == {c.head_id, *workers}
        raylets = [n.all_processes["raylet"][0].process.pid for n in c.worker_nodes()]

        # Placement: two units held at once need both 1-CPU worker nodes (the head has CPU 0).
        marks, gate = _phase(tmp_path, "placement")
        refs = [unit.remote(i, str(marks), str(gate)) for i in range(2)]
        _wait_until(lambda: len(list(marks.iterdir())) == 2, "two units did not start together")
        gate.touch()
        ran = ray.get(refs, timeout=60)
        assert {node for _, node, _ in ran} == set(workers)
        worker_pids = {pid for _, _, pid in ran}

        # A node SIGKILLed while it holds a unit: every unit still finishes, all on the other
        # node, the lost one run again there.
        victim, survivor = c.worker_nodes()
        victim_pids = {pid for _, node, pid in ran if node == victim.node_id}
        marks, gate = _phase(tmp_path, "kill")
        refs = [unit.remote(i, str(marks), str(gate)) for i in range(4)]
        _wait_until(lambda: _started_on(marks, victim.node_id), "no unit started on the victim node")
        in_flight = _started_on(marks, victim.node_id)
        t_kill = time.time()
        c.remove_worker(victim, sigkill=True)
        detect_s = c.wait_dead(victim.node_id)
        gate.touch()
        results = ray.get(refs, timeout=120)
        print(f"node death seen by the GCS after {detect_s:.1f} s; all units done "
              f"{time.time() - t_kill:.1f} s after the kill")
        assert sorted(i for i, _, _ in results) == list(range(4))
        assert {node for _, node, _ in results} == {survivor.node_id}
        assert in_flight <= _started_on(marks, survivor.node_id), "a lost unit did not run again"
        assert c.node_ids() == [survivor.node_id] and victim.node_id not in c.alive_ids()
        assert not _alive([raylets[0]])
        assert victim_pids and not _alive(victim_pids), "a worker of the killed node is alive"

        # A node joining while units wait: the survivor's CPU is held, so the queued units can
        # only start on the new node.
        marks, gate = _phase(tmp_path, "join")
        refs = [unit.remote(i, str(marks), str(gate)) for i in range(3)]
        _wait_until(lambda: _started_on(marks, survivor.node_id), "no unit started on the survivor")
        new = c.add_worker()
        _wait_until(lambda: _started_on(marks, new.node_id), "the new node took no unit")
        gate.touch()
        results = ray.get(refs, timeout=120)
        assert new.node_id in {node for _, node, _ in results}
        assert set(c.node_ids()) == {survivor.node_id, new.node_id}
        scratch = c.scratch
        worker_pids |= {pid for _, _, pid in results}
        assert cluster_processes(scratch), "the scan finds no process of a running cluster"

    # Teardown: no raylet, GCS or worker of this cluster is left.
    assert not cluster_processes(scratch)
    assert not _alive(worker_pids | set(raylets))
    assert not ray.is_initialized()


def test_a_private_view_node_cannot_see_a_file_the_driver_wrote(ray_cluster, tmp_path):
    c = ray_cluster
    plain = c.node_ids()
    hidden = tmp_path / "out_dir"
    private = private_view_node(c, hidden)
    assert set(c.node_ids()) == {*plain, private.node_id}
    assert private.node_id in c.alive_ids()

    probe = hidden / "probe.txt"
    probe.write_text("written by the driver")
    assert all(ray.get([exists.options(**_on(n)).remote(str(probe)) for n in plain]))
    assert not ray.get(exists.options(**_on(private.node_id)).remote(str(probe)))
    # And the other way: what the private node writes there stays on its own "disk".
    ray.get(write.options(**_on(private.node_id)).remote(str(hidden / "from-node.txt"), "x"))
    assert not (hidden / "from-node.txt").exists()
    assert ray.get(exists.options(**_on(private.node_id)).remote(str(hidden / "from-node.txt")))
    # Outside the hidden folder the node shares the driver's files.
    assert ray.get(exists.options(**_on(private.node_id)).remote(str(tmp_path)))
    # The tmpfs lives in the node's own mount namespace: the driver's view is unchanged, also
    # once the node is stopped.
    private.stop()
    assert private.proc.returncode is not None and private.node_id not in c.node_ids()
    assert probe.read_text() == "written by the driver"


DEMAND = """
import json, time
import ray

ray.init()
launched_before = [n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU", 0) > 0]

@ray.remote(num_cpus=1, resources={"fake_gpu": 1})
class Worker:
    def where(self):
        return ray.get_runtime_context().get_node_id()

t0 = time.time()
actors = [Worker.remote() for _ in range(2)]
where = ray.get([w.where.remote() for w in actors], timeout=150)
print("SECONDS=%.1f" % (time.time() - t0))
print("BEFORE=" + json.dumps(launched_before))
print("WHERE=" + json.dumps(where))
"""


# Slow: run by .ci/run in its own pytest session with the stage tests. After the default suite's
# hundreds of tests in one session, the fake autoscaler's launched nodes twice never ran the
# actors ("cancelled before it started running"), while the test passes on its own and in the
# file; the cause is not found yet (see the closing note of issue 19).
@pytest.mark.slow
def test_pending_actor_demand_makes_the_fake_autoscaler_launch_nodes(tmp_path):
    # The driver is a process of its own, as a stage's driver is (RAY_ADDRESS set).
    script = tmp_path / "demand.py"
    script.write_text(DEMAND)
    with autoscaling_cluster(max_workers=3) as a:
        proc = subprocess.run([sys.executable, str(script)], env={**os.environ, "RAY_ADDRESS": a.address},
                              capture_output=True, text=True, timeout=240)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        out = dict(ln.split("=", 1) for ln in proc.stdout.splitlines() if "=" in ln and ln.split("=")[0].isupper())
        a.connect()
        launched = a.node_ids()
        head = [n["NodeID"] for n in a.nodes() if n["Resources"].get("CPU", 0) == 0]
        scratch = a.scratch
    print(f"2 nodes launched by demand and actors running after {out['SECONDS']} s")
    assert json.loads(out["BEFORE"]) == []  # min_workers 0: nothing until there is demand
    where = json.loads(out["WHERE"])
    assert len(set(where)) == 2 and set(where) <= set(launched)
    assert len(launched) <= 3
    assert len(head) == 1 and head[0] not in where
    assert not cluster_processes(scratch)


ENTRY = """
import json, time
import ray

ray.init()

@ray.remote(num_cpus=1)
def where(i):
    time.sleep(0.5)
    return ray.get_runtime_context().get_node_id()

nodes = ray.get([where.options(scheduling_strategy="SPREAD").remote(i) for i in range(4)])
print("NODES=" + json.dumps(sorted(set(nodes))))
"""


def test_ray_job_submit_runs_the_job_on_the_worker_nodes(tmp_path):
    job = tmp_path / "job"
    job.mkdir()
    (job / "entry.py").write_text(ENTRY)
    with local_cluster(n_workers=2, dashboard=True) as c:
        # A driver in a process of its own (a job run with ray.address=... or RAY_ADDRESS) joins.
        proc = subprocess.run([sys.executable, "entry.py"], cwd=job, env={**os.environ, "RAY_ADDRESS": c.address},
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        [line] = [ln for ln in proc.stdout.splitlines() if ln.startswith("NODES=")]
        assert set(json.loads(line[len("NODES="):])) == set(c.node_ids())

        rc, logs = submit(c, "python entry.py", env={"RAY_AUTH_MODE": "token"}, working_dir=job)
        assert rc == 0, logs[-4000:]
        [line] = [ln for ln in logs.splitlines() if ln.startswith("NODES=")]
        assert set(json.loads(line[len("NODES="):])) == set(c.node_ids())
        rc, logs = submit(c, "python -c 'raise SystemExit(3)'", env={"RAY_AUTH_MODE": "token"})
        assert rc != 0 and "failed" in logs.lower()
