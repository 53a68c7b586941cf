"""Sampling in micro-batches, the same on one replica or several: each micro-batch's random
numbers depend only on (seed, stream, micro-batch index), and the micro-batches are spread over a
tf.distribute strategy's replicas and gathered back in order."""

import numpy as np


def run_replicated(opts, fn, make_inputs, num_micro):
    """Call `fn(*inputs)` for micro-batches 0..num_micro-1 (inputs from `make_inputs(index)`),
    spread over the strategy's replicas; returns the outputs in micro-batch order."""
    strategy = opts.strategy
    replicas = strategy.num_replicas_in_sync if strategy is not None else 1
    if replicas == 1:
        for i in range(num_micro):
            yield to_numpy(fn(*make_inputs(i)))
        return
    for start in range(0, num_micro, replicas):
        indices = [min(start + r, num_micro - 1) for r in range(replicas)]   # pad the last round
        per_replica = [make_inputs(i) for i in indices]
        values = strategy.experimental_distribute_values_from_function(
            lambda ctx: per_replica[ctx.replica_id_in_sync_group])
        result = strategy.run(lambda args: fn(*args), args=(values,))
        local = strategy.experimental_local_results(result)
        for r, i in enumerate(indices):
            if start + r < num_micro:
                yield to_numpy(local[r])


def to_numpy(x):
    """A step's output (a tensor, or a tuple/list of them) as numpy arrays."""
    if isinstance(x, (tuple, list)):
        return type(x)(to_numpy(v) for v in x)
    return x.numpy() if hasattr(x, "numpy") else np.asarray(x)


def micro_rng(seed, stream, index):
    """The random numbers of one micro-batch: a function of the run's seed, the stream (fakes,
    PPL paths, ...) and the micro-batch's index only."""
    return np.random.default_rng([int(seed), stream, int(index)])


def progress(opts, what, done, total):
    """Report `done` of `total` items of `what` to opts.progress, if set."""
    if opts.progress is not None:
        opts.progress(what, done, total)
