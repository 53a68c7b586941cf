"""The tf.distribute strategy of a run: one device, several GPUs (or logical CPU devices) of
one machine, or several workers (MultiWorkerMirroredStrategy)."""

import tensorflow as tf

from .errors import TrainingError


def make_strategy(num_gpus, cluster=None):
    """The strategy for `num_gpus` replicas on this machine, or with a `cluster`
    (WorkerCluster) a MultiWorkerMirroredStrategy over every worker.

    One machine: the default strategy for one replica; MirroredStrategy over `num_gpus`
    GPUs. Without enough GPUs, a process that has split its CPU into at least `num_gpus`
    logical devices (tests, `tf.config.set_logical_device_configuration` before TensorFlow
    initializes) mirrors over those CPU devices instead.

    Cluster: each worker mirrors over its first `num_gpus` GPUs, or, without GPUs, runs one
    replica on its CPU (the strategy takes one CPU device per worker; logical CPU devices are
    not used), so CPU-only workers need num_gpus 1. The strategy starts this worker's server
    and waits until every worker has connected; it must be created before any other
    TensorFlow operation runs in the process."""
    if cluster is not None:
        return _multi_worker_strategy(num_gpus, cluster)
    if num_gpus == 1:
        return tf.distribute.get_strategy()
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) >= num_gpus:
        return tf.distribute.MirroredStrategy([d.name for d in gpus[:num_gpus]])
    cpus = tf.config.list_logical_devices("CPU")
    if len(cpus) >= num_gpus:
        return tf.distribute.MirroredStrategy([d.name for d in cpus[:num_gpus]])
    raise TrainingError(f"--num-gpus {num_gpus} requested, but {len(gpus)} GPU(s) are visible")


def _multi_worker_strategy(num_gpus, cluster):
    gpus = tf.config.list_physical_devices("GPU")  # does not initialize TensorFlow
    if not gpus and num_gpus != 1:
        raise TrainingError(f"--num-gpus {num_gpus} per worker, but {cluster.name()} has no GPU: a CPU-only worker "
                            f"runs exactly one replica (use --num-gpus 1)")
    if gpus and len(gpus) < num_gpus:
        raise TrainingError(f"--num-gpus {num_gpus} per worker, but {cluster.name()} has {len(gpus)} GPU(s)")
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec(cluster.jobs()), task_type=cluster.task_type, task_id=cluster.task_index,
        num_accelerators={"GPU": num_gpus} if gpus else {}, rpc_layer="grpc")
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    except RuntimeError as e:
        if "startup" in str(e):
            raise TrainingError("multi-worker training: the strategy must be created before any other TensorFlow "
                                "operation runs in the process") from None
        raise
    expected = num_gpus * cluster.num_workers
    if strategy.num_replicas_in_sync != expected:
        raise TrainingError(f"{cluster.name()}: the strategy has {strategy.num_replicas_in_sync} replicas, expected "
                            f"{cluster.num_workers} workers x {num_gpus}")
    return strategy


def detect_num_gpus():
    """--num-gpus 0 (auto): every GPU this process sees, or 1 (the CPU) without any. Lists the
    physical devices only, so it does not initialize TensorFlow (multi-worker needs that)."""
    return max(len(tf.config.list_physical_devices("GPU")), 1)
