"""FusedAdam (training/optimizer.py) against Adam written out in numpy (TF1 AdamOptimizer's
update, float64), inside and outside tf.function, with a learning-rate change between steps,
under MirroredStrategy, and with keras.optimizers.Adam's variables and checkpoint layout."""

import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT, run_python
from stylegan2_tf.training.optimizer import FusedAdam


def _numpy_adam(x, grads, lrs, beta1, beta2, eps):
    m, v = np.zeros_like(x), np.zeros_like(x)
    for t, (g, lr) in enumerate(zip(grads, lrs), start=1):
        m = m + (g - m) * (1 - beta1)
        v = v + (g * g - v) * (1 - beta2)
        alpha = lr * np.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
        x = x - alpha * m / (np.sqrt(v) + eps)
    return x, m, v


def _grads(step, shapes):
    rng = np.random.default_rng(100 + step)
    return [rng.standard_normal(s) * (step + 1) for s in shapes]


SHAPES = [(3, 4), (5,), ()]


@pytest.mark.parametrize("graph", [False, True])
@pytest.mark.parametrize("beta1", [0.0, 0.9])
def test_fused_adam_matches_numpy_adam(beta1, graph):
    beta2, eps = 0.99 ** 0.8, 1e-8
    lrs = [0.002, 0.002, 0.0005, 0.0005]       # the schedule may change lr between steps
    x0 = [np.random.default_rng(i).standard_normal(s) for i, s in enumerate(SHAPES)]
    variables = [tf.Variable(x, dtype=tf.float64) for x in x0]
    opt = FusedAdam(learning_rate=lrs[0], beta_1=beta1, beta_2=beta2, epsilon=eps)
    opt.build(variables)

    def apply(grads):
        opt.apply_gradients(zip(grads, variables))
    step = tf.function(apply) if graph else apply
    for t, lr in enumerate(lrs):
        opt.learning_rate.assign(lr)
        step([tf.constant(g) for g in _grads(t, SHAPES)])
    assert int(opt.iterations.numpy()) == len(lrs)
    lr32 = [float(np.float32(lr)) for lr in lrs]  # Keras keeps the learning rate in float32
    for i, (var, x) in enumerate(zip(variables, x0)):
        want, m, v = _numpy_adam(x, [_grads(t, SHAPES)[i] for t in range(len(lrs))], lr32, beta1, beta2, eps)
        np.testing.assert_allclose(var.numpy(), want, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(opt._momentums[i].numpy(), m, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(opt._velocities[i].numpy(), v, rtol=1e-13, atol=1e-15)
        assert np.abs(var.numpy() - x).max() > 1e-5   # it moved


def test_fused_adam_under_mirrored_strategy_updates_every_replica():
    r = run_python([__file__, "mirrored"], timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "replicas agree with numpy" in r.stdout, r.stdout


def _mirrored():
    """Two logical CPU devices (a fresh process): each replica holds half of every gradient."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    beta1, beta2, eps, lr = 0.0, 0.99, 1e-8, 0.01
    x0 = np.linspace(-1.0, 1.0, 6)
    with strategy.scope():
        var = tf.Variable(x0, dtype=tf.float64)
        opt = FusedAdam(learning_rate=lr, beta_1=beta1, beta_2=beta2, epsilon=eps)
        opt.build([var])

    @tf.function
    def step(t):
        def replica_fn():
            g = tf.sin(tf.range(6, dtype=tf.float64) + t) / 2
            opt.apply_gradients([(g, var)])  # sums the replicas' gradients
        strategy.run(replica_fn)
    for t in range(3):
        step(tf.constant(float(t), tf.float64))
    grads = [np.sin(np.arange(6) + t) for t in range(3)]
    want, _, _ = _numpy_adam(x0, grads, [float(np.float32(lr))] * 3, beta1, beta2, eps)
    assert len(var.values) == 2
    for component in var.values:          # every replica's copy took the same update
        np.testing.assert_allclose(component.numpy(), want, rtol=1e-13)
    for component in opt._momentums[0].value.values:
        np.testing.assert_allclose(component.numpy(), grads[-1], rtol=1e-13)
    print("replicas agree with numpy")


def test_fused_adam_keeps_keras_adams_variables_and_checkpoints(tmp_path):
    import keras
    variables = [tf.Variable(np.ones(s, np.float32)) for s in SHAPES]
    fused = FusedAdam(learning_rate=0.01)
    plain = keras.optimizers.Adam(learning_rate=0.01)
    fused.build(variables)
    plain.build(variables)
    assert [v.shape for v in fused.variables] == [v.shape for v in plain.variables]
    fused.apply_gradients(zip([tf.fill(v.shape, 0.5) for v in variables], variables))
    # A checkpoint of one restores into the other (resuming runs written by earlier versions).
    path = tf.train.Checkpoint(opt=fused).save(str(tmp_path / "ckpt"))
    tf.train.Checkpoint(opt=plain).restore(path).assert_consumed()
    for a, b in zip(fused.variables, plain.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert int(plain.iterations.numpy()) == 1
    # And in float32 the two agree to float32 rounding.
    v_fused, v_plain = tf.Variable(np.ones(4, np.float32)), tf.Variable(np.ones(4, np.float32))
    for opt, v in ((FusedAdam(learning_rate=0.01, beta_1=0.0), v_fused), (keras.optimizers.Adam(0.01, 0.0), v_plain)):
        for t in range(3):
            opt.apply_gradients([(tf.constant([0.3, -1.0, 2.0, 1e-3], tf.float32) * (t + 1), v)])
    np.testing.assert_allclose(v_fused.numpy(), v_plain.numpy(), rtol=1e-5)
    with pytest.raises(ValueError, match="amsgrad"):
        FusedAdam(amsgrad=True)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    {"mirrored": _mirrored}[sys.argv[1]]()
