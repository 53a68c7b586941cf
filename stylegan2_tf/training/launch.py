"""Starting a run: the options completed from the machine and the cluster, the strategy
created first (before any other TensorFlow operation, as multi-worker training needs), and
a multi-worker run's failures turned into one line naming the worker."""

import tensorflow as tf

from .cluster import Watchdog, barrier, describe_worker_failure
from .loop import Trainer
from .errors import TrainingError
from .strategy import detect_num_gpus, make_strategy


def complete_options(opts, cluster=None, strategy=None):
    """-> validated options with num_gpus 0 (auto) replaced by every visible GPU (1 without
    any), and num_workers taken from the cluster (1 without one, unless a strategy is given)."""
    changes = {}
    if opts.num_gpus == 0:
        changes["num_gpus"] = detect_num_gpus()
    if cluster is not None:
        changes["num_workers"] = cluster.num_workers
    elif strategy is None:
        changes["num_workers"] = 1
    return opts.replace(**changes).validate()


def train_from_options(opts, resume=None, strategy=None, stop_after_ticks=None, echo=True, cluster=None):
    """Complete and validate the options, make the strategy, train. -> the run directory.
    With a `cluster` (WorkerCluster), a worker that stops answering ends training on the
    others with a TrainingError naming it."""
    opts = complete_options(opts, cluster, strategy)
    if cluster is None:
        strategy = strategy or make_strategy(opts.num_gpus)
        return Trainer(opts, resume=resume, strategy=strategy, echo=echo).train(stop_after_ticks=stop_after_ticks)

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
