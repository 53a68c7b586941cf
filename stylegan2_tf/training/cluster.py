"""Multi-worker (multi-node) training with tf.distribute.MultiWorkerMirroredStrategy.

The cluster comes from TF_CONFIG (the standard JSON: cluster.worker [+ one cluster.chief],
task type/index) or from --worker-hosts/--task-index, which build the same description.
Worker ids: the chief (if any) is 0, then the workers in order; the chief is the 'chief'
task, else worker 0. Only the chief writes results; see Trainer.

Parsing and validation here are pure Python (no TensorFlow import) so bad input is refused
before any server starts. The TensorFlow helpers (`all_gather_json`, `barrier`) run
collectives over every worker.

Failure detection. When a worker dies (crash, SIGKILL, lost machine) the others fail their
pending collective with an UnavailableError: at once if its connections are refused or reset,
else when it has missed heartbeats to the coordination service that
MultiWorkerMirroredStrategy starts (10 s); `describe_worker_failure` turns that into a
one-line message naming the worker. A worker that is
alive but stuck (a hung filesystem, a deadlock) sends heartbeats, and one that never connects
blocks the others in the strategy's setup (for up to an hour by default), so a `Watchdog` ends
the process when no progress was made for --collective-timeout seconds. (A per-collective
timeout through CommunicationOptions(timeout_seconds=...) is not used: TensorFlow starts one
thread per collective that lives for the whole timeout, i.e. thousands of threads at training
speed.)
"""

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from typing import Tuple

from .errors import TrainingError

JOB_TYPES = ("chief", "worker")
# Bytes each worker may contribute to `all_gather_json` (paths and the options, as JSON).
GATHER_BYTES = 16384


@dataclass(frozen=True)
class WorkerCluster:
    """The synchronous training cluster and this process's place in it."""
    chief: Tuple[str, ...]    # zero or one 'host:port'
    workers: Tuple[str, ...]  # 'host:port' of the worker tasks
    task_type: str            # 'chief' or 'worker'
    task_index: int

    @property
    def num_workers(self):
        """Processes taking part (the chief included)."""
        return len(self.chief) + len(self.workers)

    @property
    def worker_id(self):
        return 0 if self.task_type == "chief" else len(self.chief) + self.task_index

    @property
    def is_chief(self):
        return self.worker_id == 0

    @property
    def addresses(self):
        """Addresses by worker id."""
        return self.chief + self.workers

    def name(self, worker_id=None):
        """'worker 1 (host:port)', 'worker 0 (chief, host:port)' or 'chief (host:port)' by worker id;
        this process by default."""
        worker_id = self.worker_id if worker_id is None else worker_id
        if self.chief:
            return f"chief ({self.chief[0]})" if worker_id == 0 else f"worker {worker_id} ({self.addresses[worker_id]})"
        return f"worker {worker_id} ({'chief, ' if worker_id == 0 else ''}{self.addresses[worker_id]})"

    def jobs(self):
        """{job: [addresses]}, as in TF_CONFIG's cluster."""
        jobs = {"worker": list(self.workers)}
        if self.chief:
            jobs["chief"] = list(self.chief)
        return jobs

    def tf_config(self):
        """The TF_CONFIG dictionary describing this process."""
        return {"cluster": self.jobs(), "task": {"type": self.task_type, "index": self.task_index}}

    def worker_id_of_task(self, job, index):
        """Worker id of TensorFlow task /job:<job>/task:<index> (None if not in the cluster)."""
        if job == "chief" and self.chief and index == 0:
            return 0
        if job == "worker" and 0 <= index < len(self.workers):
            return len(self.chief) + index
        return None


def _check_address(addr, where):
    if not isinstance(addr, str) or not addr.strip():
        raise TrainingError(f"{where}: addresses must be 'host:port' strings, got {addr!r}")
    addr = addr.strip()
    host, sep, port = addr.rpartition(":")
    if not sep or not host:
        raise TrainingError(f"{where}: address {addr!r} has no port (use host:port)")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise TrainingError(f"{where}: address {addr!r} has no valid port (use host:port, port 1-65535)")
    return addr


def _cluster_from_dict(cfg, source):
    if not isinstance(cfg, dict):
        raise TrainingError(f"{source} must be a JSON object with 'cluster' and 'task'")
    cluster = cfg.get("cluster")
    if not isinstance(cluster, dict) or not cluster.get("worker") and not cluster.get("chief"):
        raise TrainingError(f"{source} has no cluster.worker list of 'host:port' addresses")
    for job in cluster:
        if job not in JOB_TYPES:
            raise TrainingError(f"{source}: cluster job {job!r} is not supported (synchronous training uses "
                                f"'worker' and at most one 'chief')")
    jobs = {}
    for job in JOB_TYPES:
        addrs = cluster.get(job, [])
        if isinstance(addrs, str) or not isinstance(addrs, (list, tuple)):
            raise TrainingError(f"{source}: cluster.{job} must be a list of 'host:port' addresses")
        jobs[job] = tuple(_check_address(a, f"{source} cluster.{job}") for a in addrs)
    if len(jobs["chief"]) > 1:
        raise TrainingError(f"{source}: cluster.chief has {len(jobs['chief'])} addresses; there is at most one chief")
    seen = set()
    for addr in jobs["chief"] + jobs["worker"]:
        if addr in seen:
            raise TrainingError(f"{source}: address {addr} is listed twice")
        seen.add(addr)
    task = cfg.get("task")
    if not isinstance(task, dict) or "type" not in task:
        raise TrainingError(f"{source} has no task (e.g. \"task\": {{\"type\": \"worker\", \"index\": 0}})")
    task_type = task["type"]
    if task_type not in JOB_TYPES:
        raise TrainingError(f"{source}: task type {task_type!r} is unknown (use 'worker', or 'chief' if the "
                            f"cluster has one)")
    if not jobs[task_type]:
        raise TrainingError(f"{source}: task type {task_type!r} but the cluster has no {task_type} addresses")
    index = task.get("index", 0)
    if isinstance(index, bool) or not isinstance(index, int):
        raise TrainingError(f"{source}: task index must be an integer, got {index!r}")
    n = len(jobs[task_type])
    if not 0 <= index < n:
        raise TrainingError(f"{source}: task index {index} is out of range: cluster.{task_type} has {n} "
                            f"address(es) (indices 0..{n - 1})")
    return WorkerCluster(chief=jobs["chief"], workers=jobs["worker"], task_type=task_type, task_index=index)


def parse_tf_config(text, source="TF_CONFIG"):
    """The cluster described by a TF_CONFIG string; None for an empty one."""
    if text is None or not text.strip():
        return None
    try:
        cfg = json.loads(text)
    except json.JSONDecodeError as e:
        raise TrainingError(f"{source} is not valid JSON ({e.msg} at character {e.pos})") from None
    return _cluster_from_dict(cfg, source)


def cluster_from_flags(worker_hosts, task_index):
    """--worker-hosts host:port,host:port --task-index i -> the cluster (None if neither is given)."""
    if worker_hosts is None and task_index is None:
        return None
    if worker_hosts is None:
        raise TrainingError("--task-index needs --worker-hosts (the comma-separated host:port of every worker)")
    if task_index is None:
        raise TrainingError("--worker-hosts needs --task-index (this worker's position in the list, 0 = chief)")
    hosts = [h.strip() for h in worker_hosts.split(",")]
    if not all(hosts):
        raise TrainingError(f"--worker-hosts {worker_hosts!r} has an empty entry")
    cfg = {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": task_index}}
    return _cluster_from_dict(cfg, "--worker-hosts/--task-index")


def resolve_cluster(tf_config=None, worker_hosts=None, task_index=None):
    """The cluster from TF_CONFIG (the text; pass os.environ.get('TF_CONFIG')) and/or the flags.
    Both may be given only if they describe the same cluster and task. None: one process."""
    from_env = parse_tf_config(tf_config)
    from_flags = cluster_from_flags(worker_hosts, task_index)
    if from_env and from_flags and from_env != from_flags:
        raise TrainingError(f"TF_CONFIG ({from_env.name()} of {list(from_env.addresses)}) and --worker-hosts/"
                            f"--task-index ({from_flags.name()} of {list(from_flags.addresses)}) disagree; give one "
                            f"of them")
    return from_env or from_flags


def cluster_of_strategy(strategy):
    """The WorkerCluster of a MultiWorkerMirroredStrategy with a cluster; None otherwise."""
    import tensorflow as tf
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return None
    resolver = strategy.cluster_resolver
    spec = resolver.cluster_spec().as_dict()
    if not spec:
        return None
    jobs = {job: list(addrs.values()) if isinstance(addrs, dict) else list(addrs) for job, addrs in spec.items()}
    return _cluster_from_dict({"cluster": jobs, "task": {"type": resolver.task_type, "index": resolver.task_id}},
                              "the strategy's cluster")


# -- collectives --------------------------------------------------------------------------------
def all_gather_json(strategy, cluster, obj):
    """Every worker contributes a JSON-serializable `obj`; returns all of them, by worker id.
    One float32 all-reduce of a [workers, GATHER_BYTES] byte table (each worker fills its row)."""
    import numpy as np
    import tensorflow as tf
    data = json.dumps(obj, sort_keys=True).encode()
    if len(data) > GATHER_BYTES - 1:
        raise TrainingError(f"multi-worker setup: {len(data)} bytes to share exceed {GATHER_BYTES - 1} "
                            f"(very long paths?)")
    table = np.zeros([cluster.num_workers, GATHER_BYTES], np.float32)
    table[cluster.worker_id, 0] = len(data)
    table[cluster.worker_id, 1:1 + len(data)] = np.frombuffer(data, np.uint8)
    zeros = np.zeros_like(table)
    local = strategy.num_replicas_in_sync // cluster.num_workers

    def value_fn(ctx):  # the first replica of each worker contributes its row
        return tf.constant(table if ctx.replica_id_in_sync_group % local == 0 else zeros)

    values = strategy.experimental_distribute_values_from_function(value_fn)
    total = strategy.reduce(tf.distribute.ReduceOp.SUM, values, axis=None).numpy()
    out = []
    for row in total:
        n = int(row[0])
        out.append(json.loads(row[1:1 + n].astype(np.uint8).tobytes().decode()))
    return out


def barrier(strategy, cluster):
    """Returns when every worker got here (a tiny all-gather)."""
    all_gather_json(strategy, cluster, None)


# -- failures -----------------------------------------------------------------------------------
_TASK = re.compile(r"/job:(chief|worker)/replica:\d+/task:(\d+)")
_ADDR = re.compile(r"ipv[46]:([^\s,;\"']+:\d+)")
_REMOTE = re.compile(r"remote target /job:(chief|worker)/replica:\d+/task:(\d+)")


def describe_worker_failure(error, cluster):
    """One line for a tf.errors.OpError that ended multi-worker training."""
    text = str(getattr(error, "message", None) or error)
    ids = []
    if "heartbeat" in text:
        # "The following tasks are unhealthy (stopped sending heartbeats): /job:worker/replica:0/task:1"
        for job, index in _TASK.findall(text.split("heartbeat", 1)[-1]):
            wid = cluster.worker_id_of_task(job, int(index))
            if wid is not None and wid not in ids and wid != cluster.worker_id:
                ids.append(wid)
        what = "stopped sending heartbeats (crashed, killed or cut off)"
    else:
        # "failed to connect to all addresses; last error: ... ipv4:127.0.0.1:43863: ... Connection refused"
        # or "... Connection reset by peer ... from remote target /job:worker/replica:0/task:0".
        for addr in _ADDR.findall(text):
            wid = cluster.addresses.index(addr) if addr in cluster.addresses else None
            if wid is not None and wid not in ids and wid != cluster.worker_id:
                ids.append(wid)
        for job, index in _REMOTE.findall(text):
            wid = cluster.worker_id_of_task(job, int(index))
            if wid is not None and wid not in ids and wid != cluster.worker_id:
                ids.append(wid)
        what = "cannot be reached (its process ended or its machine is down)"
    if ids:
        what = f"{', '.join(cluster.name(i) for i in ids)} {what}"
    else:
        first = text.strip().splitlines()[0] if text.strip() else ""
        what = f"lost contact with the other workers ({type(error).__name__}: {first})"
    return (f"{cluster.name()}: {what}; stopping. The last snapshot and checkpoint are intact (restart every "
            f"worker with --resume latest)")


class Watchdog:
    """Ends this process when `beat` was not called for `timeout` seconds (0 = never): a
    collective waiting on a worker that is alive but stuck, or a worker that never connects,
    does not return by itself. The countdown runs in a small separate process
    (watchdog_process.py), because this one may be blocked inside TensorFlow holding the GIL
    (it is while the strategy waits for the other workers to connect); on expiry that process
    prints one error line and kills this one (SIGKILL; exit status 137)."""

    def __init__(self, timeout, describe=""):
        self.timeout = float(timeout)
        self.describe = describe
        self._proc = None

    def start(self, what):
        if self.timeout > 0 and self._proc is None:
            script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "watchdog_process.py")
            self._proc = subprocess.Popen([sys.executable, script, str(os.getpid()), repr(self.timeout),
                                           self.describe], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        self.beat(what)
        return self

    def _send(self, command, arg):
        if self._proc is None:
            return
        try:
            self._proc.stdin.write(f"{command}\t{' '.join(str(arg).split())}\n".encode())
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    def beat(self, what=""):
        """Restart the countdown; `what`: what this process does next (for the message)."""
        self._send("beat", what or "")

    def set_log_path(self, path):
        """A file that gets the error line too (the chief's log.txt)."""
        self._send("log", path or "")

    def stop(self):
        if self._proc is not None:
            try:
                self._proc.stdin.close()
            except OSError:
                pass
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
            self._proc = None
