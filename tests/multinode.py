"""A multi-node Ray on one machine, for the tests: a head with CPU 0 (as in cluster.yaml) and
worker nodes of one CPU each, each node its own raylet. Four pieces, each proved against plain Ray
in tests/test_multinode.py:

- ``local_cluster``: ``ray.cluster_utils.Cluster`` (what Ray's own fault-tolerance tests use);
  worker nodes added and SIGKILLed while work runs.
- ``private_view_node``: a worker node in its own mount namespace, with a tmpfs over a folder,
  so that a file the driver writes there is not visible on that node (a "local out_dir").
- ``autoscaling_cluster``: Ray's fake multi-node provider (``fake_multinode``); pending demand
  for the worker type's resources launches nodes.
- ``submit``: ``ray job submit`` onto a ``local_cluster(dashboard=True)``.

Other engineers run Ray on this machine at the same time, so nothing here runs ``ray stop`` or
uses Ray's default temp dir (/tmp/ray): each cluster has its own short scratch dir (Unix socket
paths are limited to 107 bytes), RAY_TMPDIR points there while it lives (``Cluster`` writes its
address file, which a bare ``ray.init()`` reads, under RAY_TMPDIR), every port is a free one,
and every process is stopped by its own handle or PID. At teardown the scratch dir finds any
process of the cluster still alive: raylets, GCS and agents name it on their command line;
workers (whose command line Ray rewrites to ``ray::...``) hold their log files open in it.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from itertools import count
from pathlib import Path
from typing import Any, Iterator

import psutil

RAY_BIN = Path(sys.executable).parent / "ray"

# With Ray's default GCS health checks a SIGKILLed node was marked dead 17 s after the kill
# (measured here); with these, in 1-1.5 s, so that its tasks and actors are retried elsewhere
# at once.
FAST_HEALTH_CHECK = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500,
                     "health_check_timeout_ms": 1000, "health_check_failure_threshold": 3}

# `ray start --block` answers SIGTERM by draining its node for up to 30 s first (Ray 2.60, for
# Kubernetes pod deletions); 0 stops it at once.
NO_DRAIN = {"RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}

_serial = count()


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free on 127.0.0.1 now (all held open together, so no repeats)."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _scratch() -> Path:
    d = Path(f"/tmp/ecmn-{os.getpid()}-{next(_serial)}")
    shutil.rmtree(d, ignore_errors=True)
    (d / "ray").mkdir(parents=True)
    return d


def cluster_processes(scratch: str | os.PathLike) -> list[psutil.Process]:
    """The live processes of the cluster whose scratch dir is ``scratch`` (this process excluded):
    those naming it on their command line and those holding a file open under it."""
    mark = str(scratch)
    found = []
    for p in psutil.process_iter(["pid", "cmdline", "status"]):
        if p.pid == os.getpid() or p.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if any(mark in a for a in (p.info["cmdline"] or [])):
            found.append(p)
            continue
        try:
            fds = os.listdir(f"/proc/{p.pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{p.pid}/fd/{fd}").startswith(mark):
                    found.append(p)
                    break
            except OSError:
                continue
    return found


def _descendants(pids: list[int]) -> list[psutil.Process]:
    procs = []
    for pid in pids:
        try:
            p = psutil.Process(pid)
            procs += [p, *p.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
    return procs


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    # is_running() compares the start time too, so a reused PID does not count.
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            continue
    return out


def reap(scratch: Path, known: list[psutil.Process], grace_s: float = 20.0) -> list[str]:
    """Wait up to ``grace_s`` for every process of the cluster to exit (Ray workers leave on
    their own a moment after their raylet dies); SIGKILL, by PID, whatever is left then.
    Returns a description of each process that had to be killed (empty: a clean exit)."""
    deadline = time.time() + grace_s
    while True:
        left = {p.pid: p for p in _alive(known) + cluster_processes(scratch)}
        if not left or time.time() > deadline:
            break
        time.sleep(0.2)
    killed = []
    for p in left.values():
        try:
            killed.append(f"{p.pid} {' '.join(p.cmdline())[:200]}")
            p.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(list(left.values()), timeout=10)
    return killed


def _disconnect_driver(address: str) -> None:
    """ray.shutdown() when this process's driver is connected to the cluster at ``address``."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return
    try:
        ours = ray.get_runtime_context().gcs_address == address
    except Exception:  # a driver whose cluster is already gone
        ours = True
    if ours:
        ray.shutdown()


def _connect(address: str) -> None:
    """Connect this process's driver to ``address``; a driver left connected elsewhere (an
    earlier test's embedded Ray) is shut down first."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.init(address=address, configure_logging=False)


def _wait_http(url: str, timeout_s: float, what: str, log: Path | None = None) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:  # it answers (401 without the auth token): it is up
            return
        except OSError:
            time.sleep(0.5)
    tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
    raise RuntimeError(f"{what} did not answer at {url} within {timeout_s:.0f} s\n{tail}")


@contextmanager
def _cluster_env(scratch: Path) -> Iterator[None]:
    """While the cluster lives (restored after): RAY_TMPDIR at ``scratch``, because Ray writes the
    address of the latest cluster to $RAY_TMPDIR/ray/ray_current_cluster and a bare
    ``ray.init()`` anywhere on the machine reads it (under /tmp/ray it would pull other people's
    runs onto this cluster); and this interpreter's bin first on PATH, for the nodes this
    process starts: a job's ``python ...`` entrypoint is then this environment's Python."""
    changed = {"RAY_TMPDIR": str(scratch), "PATH": f"{RAY_BIN.parent}:{os.environ.get('PATH', '')}"}
    before = {k: os.environ.get(k) for k in changed}
    os.environ.update(changed)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _stop_group(proc: subprocess.Popen, grace_s: float) -> None:
    """Stop the process group led by ``proc`` (a ``ray start --block`` started in a session of its
    own, with every process of its node): SIGTERM, and after ``grace_s`` seconds SIGKILL to
    whatever is left of the group. The nodes here hold nothing worth a slow shutdown."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10)):
        if sig == signal.SIGTERM and (grace_s <= 0 or proc.poll() is not None):
            continue
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:  # the whole group is gone
            break
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            pass


class PrivateNode:
    """A worker node started by ``private_view_node``: its own mount namespace, stopped by the PID
    of its ``ray start --block`` (process group)."""

    def __init__(self, proc: subprocess.Popen, node_id: str, hidden_dir: Path, log: Path):
        self.proc, self.node_id, self.hidden_dir, self.log = proc, node_id, hidden_dir, log

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, sigkill: bool = False) -> None:
        _stop_group(self.proc, grace_s=0 if sigkill else 5)


class LocalCluster:
    """What ``local_cluster`` yields: a ``ray.cluster_utils.Cluster`` with its head (CPU 0 by
    default) and worker nodes, all in this machine."""

    def __init__(self, cluster: Any, scratch: Path, worker_cpus: float, resources: dict | None,
                 dashboard_url: str | None):
        self.cluster, self.scratch = cluster, scratch
        self.worker_cpus, self.resources = worker_cpus, resources
        self.dashboard_url = dashboard_url
        self.private_nodes: list[PrivateNode] = []
        self._workers: list[Any] = []  # in the order added (Cluster keeps a set)

    @property
    def address(self) -> str:
        """The GCS address, host:port: for ``ray.init(address=...)``, a job's
        ``ray.address=...`` override or RAY_ADDRESS."""
        return self.cluster.address

    @property
    def head_id(self) -> str:
        return self.cluster.head_node.node_id

    def connect(self) -> None:
        """Connect this process's driver (disconnected at teardown)."""
        _connect(self.address)

    def add_worker(self, num_cpus: float | None = None, resources: dict | None = None) -> Any:
        """Start one more worker node (its own raylet); returns Ray's ``Node`` handle (``.node_id``)
        once the GCS has it."""
        node = self.cluster.add_node(num_cpus=self.worker_cpus if num_cpus is None else num_cpus,
                                     resources=resources if resources is not None else self.resources)
        self.cluster.wait_for_nodes()
        self._workers.append(node)
        return node

    def remove_worker(self, node: Any, sigkill: bool = True) -> None:
        """Take a worker node away. ``sigkill``: as a lost machine, SIGKILL at once to its raylet
        and every process under it (workers, agents), so that no worker of the node finishes a
        write after the node is gone; then ``Cluster.remove_node(allow_graceful=False)``.
        Otherwise a graceful stop. The GCS marks the node dead once its health checks fail
        (``wait_dead``)."""
        if sigkill:
            own = [p.process.pid for ps in node.all_processes.values() for p in ps]
            for p in _descendants(own):
                try:
                    p.kill()
                except psutil.NoSuchProcess:
                    pass
        self.cluster.remove_node(node, allow_graceful=not sigkill)
        self._workers.remove(node)

    def worker_nodes(self) -> list[Any]:
        """Ray's ``Node`` handles of the worker nodes started by ``add_worker`` and not removed."""
        return list(self._workers)

    def node_ids(self) -> list[str]:
        """Ids of the worker nodes this cluster started and has not removed (private-view nodes
        included); the head's is ``head_id``."""
        ids = [n.node_id for n in self._workers]
        return ids + [p.node_id for p in self.private_nodes if p.proc.poll() is None]

    def alive_ids(self) -> set[str]:
        """Ids of the nodes the GCS counts alive now (head included)."""
        return {n["NodeID"] for n in self.cluster.global_state.node_table() if n["Alive"]}

    def wait_dead(self, node_id: str, timeout_s: float = 60) -> float:
        """Seconds until the GCS marks ``node_id`` dead."""
        t0 = time.time()
        while node_id in self.alive_ids():
            if time.time() - t0 > timeout_s:
                raise TimeoutError(f"node {node_id} still alive after {timeout_s} s")
            time.sleep(0.1)
        return time.time() - t0


@contextmanager
def local_cluster(n_workers: int = 2, head_cpus: float = 0, worker_cpus: float = 1,
                  resources: dict | None = None, dashboard: bool = False,
                  system_config: dict | None = None) -> Iterator[LocalCluster]:
    """A head with ``head_cpus`` CPUs (0, as in cluster.yaml) and ``n_workers`` worker nodes of
    ``worker_cpus`` CPUs and ``resources`` each. ``dashboard=True`` starts the dashboard (the job
    server ``submit`` needs). GCS health checks are FAST_HEALTH_CHECK unless ``system_config``
    ({}: Ray's defaults).
    At exit: the driver disconnected, every node stopped, and AssertionError if any process of
    the cluster was still alive 20 s later (it is SIGKILLed first)."""
    from ray.cluster_utils import Cluster

    scratch = _scratch()
    with _cluster_env(scratch):
        dash_port, agent, metrics, renv, client = free_ports(5)
        head_args: dict[str, Any] = dict(
            num_cpus=head_cpus, temp_dir=str(scratch / "ray"), include_dashboard=dashboard,
            # A free dashboard port even without the dashboard: the head still starts a dashboard
            # process, on 8265 (another person's, maybe) unless told otherwise.
            dashboard_host="127.0.0.1", dashboard_port=dash_port,
            dashboard_agent_listen_port=agent, metrics_export_port=metrics, runtime_env_agent_port=renv,
            # A copy: the head writes its object_spilling_config (a path in its session dir) into
            # the dict it is given, which would send every later cluster's spills there.
            ray_client_server_port=client, _system_config=dict(FAST_HEALTH_CHECK if system_config is None else system_config))
        cluster = None
        lc = None
        # Each Node of a Cluster installs its SIGTERM handler in this process (drain that node,
        # then exit); put pytest's back once the cluster is gone.
        sigterm = signal.getsignal(signal.SIGTERM)
        try:
            cluster = Cluster(initialize_head=True, head_node_args=head_args)
            lc = LocalCluster(cluster, scratch, worker_cpus, resources,
                              f"http://127.0.0.1:{dash_port}" if dashboard else None)
            for _ in range(n_workers):
                lc.add_worker()
            if dashboard:
                _wait_http(f"{lc.dashboard_url}/api/version", 120, "Ray dashboard")
            yield lc
        finally:
            killed = _teardown_local(cluster, lc, scratch)
            shutil.rmtree(scratch, ignore_errors=True)
            signal.signal(signal.SIGTERM, sigterm)
    assert not killed, f"Ray processes of the cluster left behind (SIGKILLed): {killed}"


def _teardown_local(cluster: Any, lc: LocalCluster | None, scratch: Path) -> list[str]:
    if cluster is None:
        return reap(scratch, [])
    known = _descendants([p.process.pid for n in cluster.list_all_nodes()
                          for ps in n.all_processes.values() for p in ps])
    if cluster.address:
        _disconnect_driver(cluster.address)
    for pn in lc.private_nodes if lc else []:
        known += _descendants([pn.pid])
        pn.stop()
    cluster.shutdown()
    return reap(scratch, known)


def private_view_node(cluster: LocalCluster, hidden_dir: str | os.PathLike, num_cpus: float = 1,
                      timeout_s: float = 60) -> PrivateNode:
    """Start a worker node of ``cluster`` that cannot see ``hidden_dir``: ``unshare -m`` gives it
    its own mount namespace with an empty tmpfs over ``hidden_dir`` (a node whose local disk is
    not the driver's). Stopped with the cluster (or by ``.stop()``); returns once the GCS has it."""
    hidden = Path(hidden_dir).resolve()
    hidden.mkdir(parents=True, exist_ok=True)
    if str(cluster.scratch).startswith(str(hidden)):
        raise ValueError(f"{hidden} would hide the cluster's own session dir {cluster.scratch}")
    k = len(cluster.private_nodes)
    tag = f"private_view_{k}"  # a resource no other node has: how the new node is found in the GCS
    agent, agent_grpc, metrics, renv = free_ports(4)
    ray_start = [str(RAY_BIN), "start", f"--address={cluster.address}", f"--num-cpus={num_cpus}",
                 f"--resources={json.dumps({tag: 1})}", "--block", "--disable-usage-stats",
                 f"--dashboard-agent-listen-port={agent}", f"--dashboard-agent-grpc-port={agent_grpc}",
                 f"--metrics-export-port={metrics}", f"--runtime-env-agent-port={renv}",
                 "--min-worker-port=0", "--max-worker-port=0"]
    script = f'mount -t tmpfs tmpfs {shlex.quote(str(hidden))} && exec {shlex.join(ray_start)}'
    env = {**os.environ, **NO_DRAIN, "RAY_TMPDIR": str(cluster.scratch), "PATH": f"{RAY_BIN.parent}:{os.environ['PATH']}"}
    env.pop("RAY_ADDRESS", None)
    log = cluster.scratch / f"{tag}.log"
    with open(log, "w") as out:
        # unshare does not fork: the PID is ray start's, and its process group holds the node.
        # As root `unshare -m` is enough; `-rm` (a user namespace mapping this user to root) lets
        # a non-root user mount the tmpfs, where the kernel allows unprivileged user namespaces.
        # Both keep Ray working (checked as root).
        flags = "-m" if os.geteuid() == 0 else "-rm"
        proc = subprocess.Popen(["unshare", flags, "--propagation", "private", "sh", "-c", script], env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + timeout_s
    node_id = None
    while node_id is None:
        if proc.poll() is not None:
            raise RuntimeError(f"private-view node exited {proc.returncode}: {log.read_text()[-3000:]}")
        if time.time() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            raise RuntimeError(f"private-view node not up after {timeout_s} s: {log.read_text()[-3000:]}")
        for n in cluster.cluster.global_state.node_table():
            if n["Alive"] and tag in n.get("Resources", {}):
                node_id = n["NodeID"]
        time.sleep(0.2)
    node = PrivateNode(proc, node_id, hidden, log)
    cluster.private_nodes.append(node)
    return node


def submit(cluster: LocalCluster, entrypoint: str, env: dict[str, str] | None = None,
           working_dir: str | os.PathLike | None = None, timeout_s: float = 300) -> tuple[int, str]:
    """``ray job submit`` of ``entrypoint`` (a shell command line) to the job server of
    ``cluster`` (started with ``dashboard=True``), waiting for the end. ``env``: extra variables
    for the CLI. Returns the CLI's exit status and its output (the job's logs included)."""
    if cluster.dashboard_url is None:
        raise ValueError("submit needs a cluster started with local_cluster(dashboard=True)")
    cmd = [str(RAY_BIN), "job", "submit", f"--address={cluster.dashboard_url}"]
    if working_dir is not None:
        cmd += ["--working-dir", str(working_dir)]
    cmd += ["--", *shlex.split(entrypoint)]
    full_env = {**os.environ, "PATH": f"{RAY_BIN.parent}:{os.environ['PATH']}", **(env or {})}
    full_env.pop("RAY_ADDRESS", None)
    proc = subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=timeout_s)
    return proc.returncode, proc.stdout + proc.stderr


class AutoscalingCluster:
    """What ``autoscaling_cluster`` yields: a head started with Ray's fake multi-node provider."""

    def __init__(self, address: str, scratch: Path, head: subprocess.Popen, worker_type: str):
        self.address, self.scratch, self.head, self.worker_type = address, scratch, head, worker_type

    def connect(self) -> None:
        _connect(self.address)

    def nodes(self) -> list[dict]:
        import ray

        return [n for n in ray.nodes() if n["Alive"]]

    def node_ids(self) -> list[str]:
        """Ids of the alive nodes the autoscaler launched (those with the worker type's
        resources); needs ``connect()`` first."""
        return [n["NodeID"] for n in self.nodes() if n["Resources"].get("CPU", 0) > 0]


@contextmanager
def autoscaling_cluster(max_workers: int = 3, worker_resources: dict | None = None,
                        worker_type: str = "gpu_worker", idle_timeout_minutes: float = 5,
                        timeout_s: float = 90) -> Iterator[AutoscalingCluster]:
    """A head with CPU 0 and the autoscaler on Ray's fake multi-node provider, whose one worker
    type (``worker_type``, like cluster.yaml's GPU worker: min 0, at most ``max_workers``) has
    ``worker_resources`` (default {"CPU": 1, "fake_gpu": 1}: the custom resource stands in for
    the GPU). Pending tasks and actors that ask for those resources are the demand that launches
    nodes. Not ``ray.cluster_utils.AutoscalingCluster``: its start() and shutdown() run
    ``ray stop --force`` (every Ray on the machine), and it reads an example.yaml that the
    installed wheel lacks."""
    resources = dict(worker_resources or {"CPU": 1, "fake_gpu": 1})
    scratch = _scratch()
    gcs, agent, agent_grpc, metrics, renv, client = free_ports(6)
    from ray._private.services import get_node_ip_address

    address = f"{get_node_ip_address()}:{gcs}"  # what ray.init would turn 127.0.0.1 into anyway
    config = {
        "cluster_name": f"ecmn-{scratch.name}", "max_workers": max_workers,
        # gcs_address: the fake provider's nodes join this head (its default is port 6379).
        "provider": {"type": "fake_multinode", "use_node_id_as_ip": True, "disable_node_updaters": True,
                     "disable_launch_config_check": True, "gcs_address": address},
        "available_node_types": {
            "ray.head.default": {"resources": {"CPU": 0}, "node_config": {}, "max_workers": 0},
            worker_type: {"resources": resources, "node_config": {}, "min_workers": 0,
                          "max_workers": max_workers}},
        "head_node_type": "ray.head.default", "auth": {}, "upscaling_speed": 1.0,
        "idle_timeout_minutes": idle_timeout_minutes, "docker": {}, "initialization_commands": [],
        "setup_commands": [], "head_setup_commands": [], "worker_setup_commands": [],
        "head_start_ray_commands": [], "worker_start_ray_commands": [], "file_mounts": {},
        "cluster_synced_files": [], "file_mounts_sync_continuously": False, "rsync_exclude": [],
        "rsync_filter": []}
    cfg_path = scratch / "autoscaling.json"
    cfg_path.write_text(json.dumps(config))
    cmd = [str(RAY_BIN), "start", "--head", "--block", f"--port={gcs}",
           "--num-cpus=0", f"--autoscaling-config={cfg_path}", f"--temp-dir={scratch / 'ray'}",
           "--include-dashboard=false", "--disable-usage-stats", f"--dashboard-agent-listen-port={agent}",
           f"--dashboard-agent-grpc-port={agent_grpc}", f"--metrics-export-port={metrics}",
           f"--runtime-env-agent-port={renv}", f"--ray-client-server-port={client}",
           f"--system-config={json.dumps(FAST_HEALTH_CHECK, separators=(',', ':'))}"]
    # RAY_AUTH_MODE=disabled: `ray start` turns token authentication on when ~/.ray/auth_token
    # exists, and a driver of this process (RAY_AUTH_MODE unset) then cannot connect; the
    # in-process Cluster heads of local_cluster run without it too.
    env = {**os.environ, **NO_DRAIN, "RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1", "RAY_AUTH_MODE": "disabled",
           "RAY_TMPDIR": str(scratch), "PATH": f"{RAY_BIN.parent}:{os.environ['PATH']}"}
    env.pop("RAY_ADDRESS", None)
    log = scratch / "head.log"
    with open(log, "w") as out:
        head = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    known: list[psutil.Process] = []
    try:
        # ray start writes the address file once the head is up, before it blocks.
        addr_file = scratch / "ray" / "ray_current_cluster"
        deadline = time.time() + timeout_s
        while not addr_file.exists():
            if head.poll() is not None:
                raise RuntimeError(f"ray start --head exited {head.returncode}: {log.read_text()[-3000:]}")
            if time.time() > deadline:
                raise RuntimeError(f"autoscaling head not up after {timeout_s} s: {log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield AutoscalingCluster(address, scratch, head, worker_type)
    finally:
        # The fake provider's nodes are children of the head's autoscaler (monitor) process.
        known = _descendants([head.pid])
        _disconnect_driver(address)
        _stop_group(head, grace_s=3)
        killed = reap(scratch, known)
        shutil.rmtree(scratch, ignore_errors=True)
    assert not killed, f"Ray processes of the autoscaling cluster left behind (SIGKILLed): {killed}"
