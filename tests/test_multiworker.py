"""Multi-worker training (MultiWorkerMirroredStrategy): cluster parsing and validation without
TensorFlow servers and the watchdog, then two worker processes on 127.0.0.1 (CPU-only workers:
one replica each) through run_training.py: a run and its resumption, a worker killed mid-run,
a non-finite loss on one worker, and workers started with different options.

The two-worker runs use this file as a wrapper around run_training.py (`python
test_multiworker.py worker REPORT ARGS...`): it records each worker's first local input batch
and, after training, a digest of its networks and optimizer state, so the test can check that
the workers read different images and ended with identical mirrored state.
"""

import hashlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import ROOT, run_python, subprocess_env
from stylegan2_tf.training import TrainingError, TrainingOptions
from stylegan2_tf.training.cluster import (WorkerCluster, cluster_from_flags, describe_worker_failure, parse_tf_config,
                                           resolve_cluster)

pytestmark = [pytest.mark.slow, pytest.mark.multiworker]

TINY_ARGS = ["--fmap-base", "128", "--fmap-max", "64", "--latent-dim", "32", "--mapping-layers", "2", "--batch", "8",
             "--batch-gpu", "4", "--tick-kimg", "0.032"]


def _tf_config(workers, task_type="worker", index=0, chief=None):
    cluster = {"worker": workers}
    if chief is not None:
        cluster["chief"] = chief
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})


# -- parsing and validation (pure Python) -------------------------------------------------------
def test_tf_config_parses_workers_and_chief():
    c = parse_tf_config(_tf_config(["h1:2222", "h2:2222"], index=1))
    assert c == WorkerCluster(chief=(), workers=("h1:2222", "h2:2222"), task_type="worker", task_index=1)
    assert (c.num_workers, c.worker_id, c.is_chief) == (2, 1, False)
    assert c.name() == "worker 1 (h2:2222)" and c.name(0) == "worker 0 (chief, h1:2222)"
    assert parse_tf_config(json.dumps(c.tf_config())) == c
    assert parse_tf_config(_tf_config(["h1:2222"], index=0)).is_chief

    c = parse_tf_config(_tf_config(["h2:1", "h3:1"], "chief", 0, chief=["h1:1"]))
    assert (c.num_workers, c.worker_id, c.is_chief, c.addresses) == (3, 0, True, ("h1:1", "h2:1", "h3:1"))
    c = parse_tf_config(_tf_config(["h2:1", "h3:1"], "worker", 0, chief=["h1:1"]))
    assert (c.worker_id, c.is_chief, c.name()) == (1, False, "worker 1 (h2:1)")
    assert c.worker_id_of_task("chief", 0) == 0 and c.worker_id_of_task("worker", 1) == 2
    assert parse_tf_config("") is None and parse_tf_config(None) is None and parse_tf_config("  ") is None
    assert parse_tf_config(_tf_config(["[::1]:2222", "[::1]:2223"])).workers[0] == "[::1]:2222"


@pytest.mark.parametrize("text, message", [
    ("{cluster: 1}", r"TF_CONFIG is not valid JSON \(Expecting property name"),
    ("[1, 2]", "must be a JSON object"),
    ('{"task": {"type": "worker", "index": 0}}', "no cluster.worker list"),
    ('{"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}', "no cluster.worker list"),
    ('{"cluster": {"worker": "h1:1"}, "task": {"type": "worker", "index": 0}}', "cluster.worker must be a list"),
    ('{"cluster": {"worker": ["h1:1"], "ps": ["h2:1"]}, "task": {"type": "worker", "index": 0}}',
     "cluster job 'ps' is not supported"),
    ('{"cluster": {"worker": ["h1:1"]}}', "TF_CONFIG has no task"),
    ('{"cluster": {"worker": ["h1:1"]}, "task": {"type": "evaluator", "index": 0}}',
     "task type 'evaluator' is unknown"),
    ('{"cluster": {"worker": ["h1:1"]}, "task": {"type": "chief", "index": 0}}',
     "task type 'chief' but the cluster has no chief"),
    ('{"cluster": {"worker": ["h1:1", "h2:1"]}, "task": {"type": "worker", "index": 2}}',
     r"task index 2 is out of range: cluster.worker has 2 address\(es\) \(indices 0..1\)"),
    ('{"cluster": {"worker": ["h1:1"]}, "task": {"type": "worker", "index": -1}}', "task index -1 is out of range"),
    ('{"cluster": {"worker": ["h1:1"]}, "task": {"type": "worker", "index": "0"}}', "must be an integer"),
    ('{"cluster": {"worker": ["h1"]}, "task": {"type": "worker", "index": 0}}', "address 'h1' has no port"),
    ('{"cluster": {"worker": ["h1:http"]}, "task": {"type": "worker", "index": 0}}', "no valid port"),
    ('{"cluster": {"worker": ["h1:70000"]}, "task": {"type": "worker", "index": 0}}', "no valid port"),
    ('{"cluster": {"worker": ["h1:1", "h1:1"]}, "task": {"type": "worker", "index": 0}}', "listed twice"),
    ('{"cluster": {"worker": ["h1:1"], "chief": ["h2:1", "h3:1"]}, "task": {"type": "worker", "index": 0}}',
     "at most one chief"),
])
def test_malformed_tf_config_is_one_clear_error(text, message):
    with pytest.raises(TrainingError, match=message) as info:
        parse_tf_config(text)
    assert "\n" not in str(info.value)


def test_worker_flags():
    c = cluster_from_flags("10.0.0.1:2222, 10.0.0.2:2222", 1)
    assert c == parse_tf_config(_tf_config(["10.0.0.1:2222", "10.0.0.2:2222"], index=1))
    assert cluster_from_flags(None, None) is None
    for hosts, index, message in [(None, 0, "--task-index needs --worker-hosts"),
                                  ("h1:1,h2:1", None, "--worker-hosts needs --task-index"),
                                  ("h1:1,h2", 0, "address 'h2' has no port"),
                                  ("h1:1,,h2:1", 0, "has an empty entry"),
                                  ("h1:1,h2:1", 2, "task index 2 is out of range")]:
        with pytest.raises(TrainingError, match=message):
            cluster_from_flags(hosts, index)


def test_tf_config_and_flags_must_agree():
    env = _tf_config(["h1:1", "h2:1"], index=1)
    assert resolve_cluster(env, "h1:1,h2:1", 1) == resolve_cluster(env) == resolve_cluster(None, "h1:1,h2:1", 1)
    assert resolve_cluster(None) is None and resolve_cluster("") is None
    with pytest.raises(TrainingError, match=r"TF_CONFIG \(worker 1 \(h2:1\).* and --worker-hosts/--task-index "
                                            r"\(worker 0 \(chief, h1:1\).* disagree"):
        resolve_cluster(env, "h1:1,h2:1", 0)
    with pytest.raises(TrainingError, match="disagree"):
        resolve_cluster(env, "h1:1,h3:1", 1)


def test_options_count_replicas_over_workers():
    opts = TrainingOptions(batch=32, batch_gpu=2, num_gpus=8, num_workers=2).validate()  # 2 machines x 8 GPUs
    assert (opts.replicas, opts.rounds) == (16, 1)
    opts = TrainingOptions(batch=64, batch_gpu=4, num_gpus=8, num_workers=2).validate()
    assert (opts.replicas, opts.rounds) == (16, 1)
    opts = TrainingOptions(batch=32, batch_gpu=2, num_gpus=4, num_workers=2).validate()
    assert (opts.replicas, opts.rounds) == (8, 2)
    with pytest.raises(TrainingError, match=r"--batch 32 is not divisible by --batch-gpu 4 x 24 replica\(s\) "
                                            r"\(3 workers x 8\)"):
        TrainingOptions(batch=32, batch_gpu=4, num_gpus=8, num_workers=3).validate()
    with pytest.raises(TrainingError, match="collective-timeout"):
        TrainingOptions(collective_timeout=-1).validate()


def test_cpu_worker_runs_one_replica():
    import tensorflow as tf
    from stylegan2_tf.training import make_strategy
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    cluster = cluster_from_flags("127.0.0.1:1,127.0.0.1:2", 1)
    with pytest.raises(TrainingError, match=r"--num-gpus 2 per worker, but worker 1 \(127.0.0.1:2\) has no GPU: a "
                                            r"CPU-only worker runs exactly one replica"):
        make_strategy(2, cluster)


def test_failure_messages_name_the_worker():
    cluster = cluster_from_flags("127.0.0.1:5000,127.0.0.1:5001", 0)
    heartbeat = RuntimeError("Collective ops is aborted by: Error reported from /job:worker/task:1: The following "
                             "tasks are unhealthy (stopped sending heartbeats):\n/job:worker/replica:0/task:1\nThe "
                             "tasks have crashed.")
    msg = describe_worker_failure(heartbeat, cluster)
    assert msg.startswith("worker 0 (chief, 127.0.0.1:5000): worker 1 (127.0.0.1:5001) stopped sending heartbeats")
    assert "intact" in msg and "\n" not in msg
    refused = RuntimeError("Collective ops is aborted by: failed to connect to all addresses; last error: UNKNOWN: "
                           "ipv4:127.0.0.1:5000: Failed to connect to remote host: Connection refused")
    msg = describe_worker_failure(refused, cluster_from_flags("127.0.0.1:5000,127.0.0.1:5001", 1))
    assert msg.startswith("worker 1 (127.0.0.1:5001): worker 0 (chief, 127.0.0.1:5000) cannot be reached")
    msg = describe_worker_failure(RuntimeError("Collective has timed out\nmore"), cluster)
    assert "lost contact with the other workers (RuntimeError: Collective has timed out)" in msg


def test_watchdog_kills_a_process_blocked_holding_the_gil(tmp_path):
    """Beats keep it quiet; then a call that holds the GIL (regex backtracking, like a TensorFlow
    call that never returns) is ended by the watchdog process, with one error line."""
    code = f"""if True:
        import re, sys, time
        from stylegan2_tf.training.cluster import Watchdog
        Watchdog(0).start("nothing").stop()  # 0 = no limit
        dog = Watchdog(1.0, describe="worker 1 (h:1): ").start("starting")
        for _ in range(10):
            time.sleep(0.2)
            dog.beat("training (minibatch 3)")
        dog.set_log_path({str(tmp_path / "log.txt")!r})
        print("blocking", flush=True)
        re.match(r"(a+)+$", "a" * 64 + "b")
        print("not reached", flush=True)
        """
    start = time.time()
    r = run_python(["-c", code], timeout=120)
    message = ("error: worker 1 (h:1): no progress for 1 s while training (minibatch 3) (--collective-timeout): a "
               "worker is stalled, did not start or cannot be reached; stopping. The last snapshot and checkpoint "
               "are intact")
    assert r.returncode == -signal.SIGKILL, r.stdout + r.stderr
    assert r.stdout == "blocking\n" and r.stderr.strip().splitlines()[-1] == message, r.stderr
    assert open(tmp_path / "log.txt").read() == message + "\n"
    assert time.time() - start < 60


def test_cli_refuses_bad_cluster_input(tmp_path):
    args = [ROOT / "run_training.py", "--dataset", "x", "--result-dir", tmp_path / "results"]
    r = run_python(args, env={"TF_CONFIG": "{not json"})
    assert r.returncode != 0 and r.stderr.strip().splitlines()[-1].startswith("error: TF_CONFIG is not valid JSON")
    r = run_python([*args, "--task-index", "1"])
    assert r.returncode != 0 and r.stderr.strip().splitlines()[-1] == (
        "error: --task-index needs --worker-hosts (the comma-separated host:port of every worker)")
    assert not os.path.exists(tmp_path / "results")


# -- two worker processes ------------------------------------------------------------------------
def _free_ports(n):
    """n free ports below the kernel's ephemeral range: a port that bind(0) handed out and we closed
    again can be taken by any process's next outgoing connection before the worker binds it; ports
    outside that range are given to no one automatically."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    rng = random.Random(os.getpid() ^ time.time_ns())
    ports = []
    while len(ports) < n:
        port = rng.randrange(max(1024, low - 12000), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        if port not in ports:
            ports.append(port)
    return ports


class Workers:
    """Worker processes (this file as a wrapper around run_training.py), outputs in files."""

    def __init__(self, tmp_path, name, args_by_worker, cwd_by_worker=None, env_by_worker=None):
        self.paths = []
        self.procs = []
        for i, args in enumerate(args_by_worker):
            out = tmp_path / f"{name}-w{i}"
            report = tmp_path / f"{name}-w{i}.json"
            env = subprocess_env(**(env_by_worker or {}).get(i, {}))
            env.pop("TF_CONFIG", None)
            cwd = (cwd_by_worker or {}).get(i, ROOT)
            self.paths.append((out.with_suffix(".out"), out.with_suffix(".err"), report))
            self.procs.append(subprocess.Popen(
                [sys.executable, __file__, "worker", str(report), *map(str, args)], cwd=cwd, env=env,
                stdout=open(self.paths[-1][0], "w"), stderr=open(self.paths[-1][1], "w")))

    def wait(self, timeout):
        deadline = time.time() + timeout
        try:
            return [p.wait(timeout=max(1.0, deadline - time.time())) for p in self.procs]
        finally:
            self.kill()

    def kill(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    def stdout(self, i):
        return self.paths[i][0].read_text()

    def stderr(self, i):
        return self.paths[i][1].read_text()

    def report(self, i):
        return json.loads(self.paths[i][2].read_text())

    def output(self, i):
        return f"--- worker {i} stdout\n{self.stdout(i)[-3000:]}\n--- stderr\n{self.stderr(i)[-3000:]}"


def _digest(arrays):
    h = hashlib.sha256()
    for a in arrays:
        h.update(a.tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    from stylegan2_tf.data.synthetic import create_shapes_dataset
    root = tmp_path_factory.mktemp("data")
    create_shapes_dataset(str(root / "shapes16"), num_images=128, resolution=16)
    return str(root)


def test_two_workers_train_one_tick_then_resume(data_dir, tmp_path):
    """Worker 1 runs in its own working directory and TMPDIR, with a --result-dir of its own that
    must never appear: only the chief writes (worker 1's checkpoint copies go to TMPDIR and are
    deleted). Then both resume the chief's run (a shared result directory) for one more tick."""
    from stylegan2_tf.official import load_network_pkl
    results = tmp_path / "results"
    ports = _free_ports(2)
    hosts = ",".join(f"127.0.0.1:{p}" for p in ports)
    (tmp_path / "cwd1").mkdir()
    (tmp_path / "tmp1").mkdir()
    isolated = dict(cwd_by_worker={1: tmp_path / "cwd1"}, env_by_worker={1: {"TMPDIR": str(tmp_path / "tmp1")}})
    common = ["run_training.py", "--data-dir", data_dir, "--dataset", "shapes16", *TINY_ARGS, "--snapshot-ticks", "0",
              "--total-kimg", "0.032", "--worker-hosts", hosts]
    args = [[*common, "--result-dir", results, "--task-index", 0],
            [*common, "--result-dir", tmp_path / "results-of-worker1", "--task-index", 1]]
    start = time.time()
    workers = Workers(tmp_path, "new", args, **isolated)
    rcs = workers.wait(timeout=240)
    assert rcs == [0, 0], workers.output(0) + workers.output(1)
    elapsed = time.time() - start

    runs = os.listdir(results)
    assert runs == ["00000-shapes16-config-f-2x1gpu"], runs
    run_dir = results / runs[0]
    files = set(os.listdir(run_dir))
    assert [f for f in files if f.endswith(".pkl")] == ["network-final.pkl"]
    assert {"reals.png", "fakes_init.png", "log.txt", "stats.jsonl", "training_options.json", "checkpoints"} <= files
    assert [json.loads(line)["tick"] for line in open(run_dir / "stats.jsonl")] == [1]
    saved = json.load(open(run_dir / "training_options.json"))["options"]
    assert (saved["num_workers"], saved["num_gpus"], saved["collective_timeout"]) == (2, 1, 600.0)
    log = open(run_dir / "log.txt").read()
    assert "batch 8 = 1 round(s) x 2 replica(s) x 4" in log
    assert not os.path.exists(tmp_path / "results-of-worker1")
    # Nothing of ours; Python may leave __pycache__ of AutoGraph's temporary modules in TMPDIR.
    assert os.listdir(tmp_path / "cwd1") == []
    assert [f for f in os.listdir(tmp_path / "tmp1") if f != "__pycache__"] == []
    assert workers.stdout(1).strip().splitlines() == [
        f"worker 1 (127.0.0.1:{ports[1]}): training with the chief; it writes {run_dir}"]

    chief, other = workers.report(0), workers.report(1)
    assert chief["run_dir"] == other["run_dir"] == str(run_dir)
    assert chief["first_batch"] != other["first_batch"]  # each worker reads its own shard
    assert chief["weights"] == other["weights"] and chief["optimizers"] == other["optimizers"]
    nets = load_network_pkl(run_dir / "network-final.pkl")
    assert _digest([v.numpy() for key in ("G", "D", "G_ema") for v in nets[key].variables]) == chief["weights"]

    # Resume: both workers restore the chief's latest checkpoint from the shared result directory.
    common = ["run_training.py", "--resume", "latest", "--result-dir", results, "--total-kimg", "0.064",
              "--worker-hosts", ",".join(f"127.0.0.1:{p}" for p in _free_ports(2))]
    workers = Workers(tmp_path, "resume", [[*common, "--task-index", 0], [*common, "--task-index", 1]], **isolated)
    rcs = workers.wait(timeout=240)
    assert rcs == [0, 0], workers.output(0) + workers.output(1)
    chief, other = workers.report(0), workers.report(1)
    assert chief["resumed"] and other["resumed"] and chief["cur_nimg"] == other["cur_nimg"] == 64
    assert chief["weights"] == other["weights"] and chief["optimizers"] == other["optimizers"]
    assert chief["first_batch"] != other["first_batch"]
    assert os.listdir(results) == runs and [f for f in os.listdir(tmp_path / "tmp1") if f != "__pycache__"] == []
    assert [json.loads(line)["tick"] for line in open(run_dir / "stats.jsonl")] == [1, 2]
    assert "Resumed from" in open(run_dir / "log.txt").read()
    print(f"two workers: new run {elapsed:.0f} s, whole test {time.time() - start:.0f} s")


def test_killed_worker_stops_the_chief(data_dir, tmp_path):
    from stylegan2_tf.official import load_network_pkl
    results = tmp_path / "results"
    ports = _free_ports(2)
    common = ["run_training.py", "--data-dir", data_dir, "--dataset", "shapes16", "--result-dir", results, *TINY_ARGS,
              "--snapshot-ticks", "1", "--total-kimg", "1000", "--collective-timeout", "120",
              "--worker-hosts", ",".join(f"127.0.0.1:{p}" for p in ports)]
    workers = Workers(tmp_path, "kill", [[*common, "--task-index", 0], [*common, "--task-index", 1]])
    try:
        deadline = time.time() + 180
        while "Saved network-snapshot" not in workers.stdout(0):
            assert time.time() < deadline and workers.procs[0].poll() is None, workers.output(0) + workers.output(1)
            time.sleep(0.5)
        time.sleep(1.0)  # into the next tick
        workers.procs[1].send_signal(signal.SIGKILL)
        killed = time.time()
        rc = workers.procs[0].wait(timeout=120)
        detected = time.time() - killed
    finally:
        workers.kill()
    assert rc == 1, workers.output(0)
    last = _error_line(workers.stderr(0))
    assert last.startswith(f"error: worker 0 (chief, 127.0.0.1:{ports[0]}): worker 1 (127.0.0.1:{ports[1]}) "), last
    assert ("stopped sending heartbeats" in last or "cannot be reached" in last) and "intact" in last, last
    assert detected < 60, detected
    run_dir = results / os.listdir(results)[0]
    snapshots = sorted(f for f in os.listdir(run_dir) if f.startswith("network-snapshot"))
    assert snapshots and not [f for f in os.listdir(run_dir) if f.startswith(".tmp-")]
    assert load_network_pkl(run_dir / snapshots[-1])["G_ema"].config.img_resolution == 16
    print(f"killed worker detected after {detected:.1f} s")


def test_non_finite_loss_on_one_worker_stops_every_worker(data_dir, tmp_path):
    """Worker 1's copy of a D bias turns NaN: the all-reduced losses are NaN on both workers, so
    both stop at the same minibatch with the same error, and no snapshot is written."""
    results = tmp_path / "results"
    common = ["run_training.py", "--data-dir", data_dir, "--dataset", "shapes16", "--result-dir", results, *TINY_ARGS,
              "--snapshot-ticks", "1", "--total-kimg", "0.032",
              "--worker-hosts", ",".join(f"127.0.0.1:{p}" for p in _free_ports(2))]
    workers = Workers(tmp_path, "nan", [[*common, "--task-index", 0], [*common, "--task-index", 1]],
                      env_by_worker={0: {"POISON_WORKER": "1"}, 1: {"POISON_WORKER": "1"}})
    assert workers.wait(timeout=240) == [1, 1], workers.output(0) + workers.output(1)
    errors = [_error_line(workers.stderr(i)) for i in range(2)]
    assert errors[0] == errors[1], errors
    assert errors[0].startswith("error: non-finite Loss/G/loss (nan) at minibatch 0 "), errors
    run_dir = results / os.listdir(results)[0]
    assert not [f for f in os.listdir(run_dir) if f.endswith(".pkl")]


def test_workers_started_with_other_options_all_refuse(data_dir, tmp_path):
    """The workers compare their options with the chief's before anything is written."""
    results = tmp_path / "results"
    common = ["run_training.py", "--data-dir", data_dir, "--dataset", "shapes16", "--result-dir", results, *TINY_ARGS,
              "--worker-hosts", ",".join(f"127.0.0.1:{p}" for p in _free_ports(2))]
    workers = Workers(tmp_path, "options", [[*common, "--task-index", 0], [*common, "--task-index", 1, "--seed", 7]])
    assert workers.wait(timeout=120) == [1, 1], workers.output(0) + workers.output(1)
    for i in range(2):
        assert _error_line(workers.stderr(i)).startswith(
            "error: worker 1 (127.0.0.1:") and "has other options than the chief: seed=7 (chief: 1000)" in \
            workers.stderr(i), workers.output(i)
    assert not os.path.exists(results)


def test_workers_given_another_dataset_all_refuse(data_dir, tmp_path):
    """--data-dir may differ between workers, the dataset may not: a worker whose shapes16 has other
    images stops every worker before anything is written."""
    from stylegan2_tf.data.synthetic import create_shapes_dataset
    other = tmp_path / "other-data"
    create_shapes_dataset(str(other / "shapes16"), num_images=64, resolution=16)
    results = tmp_path / "results"
    common = ["--dataset", "shapes16", "--result-dir", results, *TINY_ARGS,
              "--worker-hosts", ",".join(f"127.0.0.1:{p}" for p in _free_ports(2))]
    workers = Workers(tmp_path, "dataset", [["run_training.py", "--data-dir", data_dir, *common, "--task-index", 0],
                                            ["run_training.py", "--data-dir", other, *common, "--task-index", 1]])
    assert workers.wait(timeout=120) == [1, 1], workers.output(0) + workers.output(1)
    for i in range(2):
        line = _error_line(workers.stderr(i))
        assert line.startswith("error: worker 1 (127.0.0.1:") and \
            "has another dataset 'shapes16' than the chief: images 64 (chief: 128)" in line, workers.output(i)
    assert not os.path.exists(results)


def _error_line(stderr):
    """The last 'error: ...' line: TensorFlow may log more (a peer's closed connection) while the
    process exits after printing it."""
    lines = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert lines, stderr[-3000:]
    return lines[-1]


# -- the wrapper ---------------------------------------------------------------------------------
def _worker(report_path, argv):
    """run_training.py with ARGS, recording the first local batch and the final state."""
    import itertools
    import runpy

    import numpy as np
    from stylegan2_tf.training import loop

    report = {}
    make_dataset, train = loop.Trainer.dataset, loop.Trainer.train

    def recording_dataset(self, start_nimg, batch_gpu=None):
        it = make_dataset(self, start_nimg, batch_gpu)
        first = next(it)
        report["first_batch"] = _digest([x.numpy() for x in self.strategy.experimental_local_results(first[0])])
        return itertools.chain([first], it)

    def recording_train(self, **kw):
        if self.cluster.worker_id == int(os.environ.get("POISON_WORKER", -1)):
            v = self.state.D.epilogue.out.bias  # this worker's copy only
            v.assign(np.full(v.shape, np.nan, np.float32))
        run_dir = train(self, **kw)
        report.update(run_dir=run_dir, resumed=self.resumed, cur_nimg=self.state.nimg,
                      weights=_digest([v.numpy() for net in (self.state.G, self.state.D,
                                                             self.state.G_ema) for v in net.variables]),
                      optimizers=_digest([v.numpy() for opt in (self.state.opt_G, self.state.opt_D)
                                          for v in opt.variables]))
        with open(report_path, "w") as f:
            json.dump(report, f)
        return run_dir

    loop.Trainer.dataset, loop.Trainer.train = recording_dataset, recording_train
    sys.argv = argv
    runpy.run_path(str(ROOT / argv[0]), run_name="__main__")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    if sys.argv[1] == "worker":
        _worker(sys.argv[2], sys.argv[3:])
