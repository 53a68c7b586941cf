"""Training: options and configs, losses, the tf.distribute training loop."""

import json
import os

from .cluster import WorkerCluster, cluster_from_flags, parse_tf_config, resolve_cluster
from .losses import StyleGAN2Loss, mix_styles
from .options import (CONFIGS, TICK_KIMG, TrainingError, TrainingOptions, ema_beta, lazy_adam_params)


def saved_options(resume, result_dir):
    """The TrainingOptions a run was started with (for --resume)."""
    from .loop import OPTIONS_FILE, find_resume_dir
    run_dir = find_resume_dir(resume, result_dir)
    with open(os.path.join(run_dir, OPTIONS_FILE)) as f:
        opts = TrainingOptions.from_dict(json.load(f)["options"])
    opts.result_dir = result_dir
    return opts


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
    import tensorflow as tf
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
    import tensorflow as tf
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
    import tensorflow as tf
    return max(len(tf.config.list_physical_devices("GPU")), 1)


def train_from_options(opts, resume=None, strategy=None, stop_after_ticks=None, echo=True, cluster=None):
    """Validate, make the strategy (first, before any other TensorFlow operation), train.
    opts.num_gpus 0 = all visible GPUs (1 without any).
    With a `cluster` (WorkerCluster), `opts.num_workers` is taken from it; a worker that
    stops answering ends training on the others with a TrainingError naming it."""
    from .loop import Trainer
    if opts.num_gpus == 0:
        opts.num_gpus = detect_num_gpus()
    if cluster is not None:
        opts.num_workers = cluster.num_workers
    elif strategy is None:
        opts.num_workers = 1
    opts.validate()
    if cluster is None:
        strategy = strategy or make_strategy(opts.num_gpus)
        trainer = Trainer(opts, resume=resume, strategy=strategy, echo=echo)
        return trainer.train(stop_after_ticks=stop_after_ticks)

    import tensorflow as tf
    from .cluster import Watchdog, barrier, describe_worker_failure
    watchdog = Watchdog(opts.collective_timeout, describe=f"{cluster.name()}: ")
    try:
        watchdog.start(f"waiting for all {cluster.num_workers} workers to connect")
        strategy = strategy or make_strategy(opts.num_gpus, cluster)
        watchdog.beat("setting up with the other workers")
        trainer = Trainer(opts, resume=resume, strategy=strategy, echo=echo, watchdog=watchdog)
        if echo and not cluster.is_chief:
            print(f"{cluster.name()}: training with the chief; it writes {trainer.run_dir}", flush=True)
        run_dir = trainer.train(stop_after_ticks=stop_after_ticks)
        watchdog.beat("waiting for the other workers to finish")
        barrier(strategy, cluster)
        return run_dir
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.AbortedError,
            tf.errors.CancelledError) as e:
        raise TrainingError(describe_worker_failure(e, cluster)) from None
    finally:
        watchdog.stop()


__all__ = ["StyleGAN2Loss", "mix_styles", "CONFIGS", "TICK_KIMG", "TrainingError", "TrainingOptions", "ema_beta",
           "lazy_adam_params", "saved_options", "make_strategy", "detect_num_gpus", "train_from_options", "WorkerCluster",
           "cluster_from_flags", "parse_tf_config", "resolve_cluster"]
