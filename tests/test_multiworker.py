"""Multi-worker training: cluster parsing and validation without TensorFlow servers, failure
messages and the watchdog."""

import json
import signal
import time

import pytest

from conftest import run_python
from stylegan2_tf.training import TrainingError, TrainingOptions
from stylegan2_tf.training.cluster import (WorkerCluster, cluster_from_flags, describe_worker_failure, parse_tf_config,
                                           resolve_cluster)


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
