"""Multi-replica training (MirroredStrategy over logical CPU devices) against one replica.

N replicas x 1 round of batch_gpu and 1 replica x N accumulation rounds of batch_gpu see the
same sub-batches (so the minibatch-stddev groups coincide) and, the loop's randomness being
drawn per (minibatch, phase, sub-batch), the same latents and noise. One minibatch with all
four phases must then give the same update. Logical CPU devices must be configured before
TensorFlow initializes, so the comparison runs in a fresh process (this file as a script).

Not covered by the equality: the running means. Accumulation rounds update pl_mean and w_avg
once per round, replicas once per step from the all-reduced mean, so the two differ whenever
pl_decay > 0 (the path-length penalty then differs by ~1% after one minibatch) and w_avg
differs after any step. The comparison therefore runs with pl_decay = 0 (penalty = length^2,
no gradient through the mean) and leaves w_avg out; w_avg and pl_mean are checked to be
identical across the replicas.
"""

import os
import sys

import pytest

from conftest import ROOT, run_python

# Gradients (Adam's first moment, beta1 = 0) and parameter updates: max |difference| relative to
# each tensor's largest magnitude. Only the order of float32 sums differs between the two runs
# (measured: gradients <= 1.1e-5, updates <= 5.3e-5; Adam's first step is ~lr * g / |g|, which
# amplifies the relative noise of near-zero gradients).
GRAD_RTOL = 2e-5
UPDATE_RTOL = 1e-4
# 2 replicas by default (~55 s); STYLEGAN2_TEST_REPLICAS=2,4 adds 4 (about twice the time).
REPLICA_COUNTS = tuple(int(n) for n in os.environ.get("STYLEGAN2_TEST_REPLICAS", "2").split(","))


def test_make_strategy_without_devices_is_a_clear_error():
    from stylegan2_tf.training import TrainingError, make_strategy
    import tensorflow as tf
    assert make_strategy(1).num_replicas_in_sync == 1
    n = max(len(tf.config.list_logical_devices("GPU")), len(tf.config.list_logical_devices("CPU"))) + 1
    with pytest.raises(TrainingError, match=f"--num-gpus {n} requested"):
        make_strategy(n)


def test_replicas_match_accumulation_rounds(tmp_path):
    from stylegan2_tf.data.synthetic import create_shapes_dataset
    create_shapes_dataset(str(tmp_path / "shapes16"), num_images=64, resolution=16)
    for n in REPLICA_COUNTS:
        # One process per replica count: strategies of different sizes in one process collide on
        # collective group keys ("joining a group with size4, but that group has size 2").
        r = run_python([__file__, tmp_path, tmp_path / f"results{n}", n], timeout=600)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        assert f"{n} replicas == 1 replica x {n} rounds" in r.stdout, r.stdout


# -- the subprocess -----------------------------------------------------------------------------
def _max_rel(a, b):
    import numpy as np
    scale = max(float(np.max(np.abs(a))), float(np.max(np.abs(b))), 1e-30)
    return float(np.max(np.abs(a - b))) / scale


def _local_values(strategy, var):
    """Per-replica values of a (Keras or tf) variable."""
    import tensorflow as tf
    v = var if isinstance(var, tf.Variable) else var.value  # Keras variables wrap a tf.Variable
    return [x.numpy() for x in strategy.experimental_local_results(v)]


def _compare(data_dir, result_dir, n):
    import numpy as np
    import tensorflow as tf
    from stylegan2_tf.training import TrainingOptions, make_strategy
    from stylegan2_tf.training.loop import Trainer

    bg = 4
    base = dict(data_dir=data_dir, result_dir=result_dir, dataset="shapes16", fmap_base=128, fmap_max=64,
                latent_dim=32, mapping_layers=2, batch=n * bg, batch_gpu=bg, snapshot_ticks=0, pl_decay=0.0)
    one = Trainer(TrainingOptions(**base, num_gpus=1), strategy=make_strategy(1), echo=False)
    strategy = make_strategy(n)
    assert isinstance(strategy, tf.distribute.MirroredStrategy) and strategy.num_replicas_in_sync == n
    assert all("CPU" in d for d in strategy.extended.worker_devices)
    many = Trainer(TrainingOptions(**base, num_gpus=n), strategy=strategy, echo=False)
    assert one.opts.rounds == n and many.opts.rounds == 1

    # Same initial weights (copied, so the comparison does not rest on initializers under a strategy).
    nets = ("G", "D", "Gs")
    for name in nets:
        for a, b in zip(getattr(one, name).variables, getattr(many, name).variables):
            b.assign(a.numpy())
    before = {name: [v.numpy().copy() for v in getattr(one, name).variables] for name in nets}

    # Same sub-batches: replica r of the distributed input gets the 1-replica stream's r-th batch.
    it = one._dataset(0)
    rounds_one = tuple(next(it) for _ in range(n))
    rounds_many = (next(many._dataset(0)),)
    for (img, _), local in zip(rounds_one, strategy.experimental_local_results(rounds_many[0][0])):
        np.testing.assert_array_equal(img.numpy(), local.numpy())

    # Both generators were seeded alike, so the minibatch seed they draw is the same too.
    assert int(one.minibatch.numpy()) == 0  # all four phases run
    stats_one = one.train_minibatch(rounds_one)
    stats_many = many.train_minibatch(rounds_many)
    assert sorted(stats_one) == sorted(stats_many) and len(stats_one) == 7
    for k in stats_one:
        np.testing.assert_allclose(stats_many[k].numpy(), stats_one[k].numpy(), rtol=1e-5, err_msg=k)

    worst = {"grad": 0.0, "update": 0.0}
    for opt in ("opt_G", "opt_D"):
        for a, b in zip(getattr(one, opt).variables, getattr(many, opt).variables):
            if "momentum" in a.path:
                d = _max_rel(a.numpy(), b.numpy())
                worst["grad"] = max(worst["grad"], d)
    for name in nets:
        for i, (a, b) in enumerate(zip(getattr(one, name).variables, getattr(many, name).variables)):
            if "w_avg" in a.path:
                continue
            ua, ub = a.numpy() - before[name][i], b.numpy() - before[name][i]
            if np.any(ua != 0) or np.any(ub != 0):
                d = _max_rel(ua, ub)
                worst["update"] = max(worst["update"], d)

    assert worst["grad"] <= GRAD_RTOL and worst["update"] <= UPDATE_RTOL, worst

    # Mirrored state agrees across replicas: every variable of G, D, Gs (w_avg included) and pl_mean.
    w_avg = many.G.mapping.w_avg
    assert np.any(w_avg.numpy() != 0)
    checked = [("pl_mean", many.loss.pl_mean)] + [(f"{name}:{v.path}", v) for name in nets
                                                  for v in getattr(many, name).variables]
    assert any(v is w_avg for _, v in checked)
    for key, v in checked:
        values = _local_values(strategy, v)
        assert len(values) == n, key
        for x in values[1:]:
            np.testing.assert_array_equal(x, values[0], err_msg=key)
    print(f"{n} replicas == 1 replica x {n} rounds: max rel diff gradients {worst['grad']:.2e}, "
          f"updates {worst['update']:.2e}", flush=True)


def main(data_dir, result_dir, n):
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])
    _compare(data_dir, result_dir, n)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
