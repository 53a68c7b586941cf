"""DynamicLossScale: closed-form schedule, exact (un)scaling, float16 underflow recovery,
skipped steps with a Keras optimizer, and agreement across replicas (MirroredStrategy over
two logical CPU devices, in a fresh process: this file run as a script)."""

import sys

import numpy as np
import pytest

from conftest import run_python


def _scaler(**kw):
    from stylegan2_tf.training.loss_scaling import DynamicLossScale
    return DynamicLossScale(**kw)


def test_scale_and_unscale_are_exact():
    import tensorflow as tf
    s = _scaler()
    assert s.scale.numpy() == 2.0 ** 15 and s.good_steps.numpy() == 0
    assert s.scale_loss(tf.constant(3.0)).numpy() == 3.0 * 2 ** 15
    assert s.scale_loss(tf.constant(3.0, tf.float16)).dtype == tf.float16
    g = np.array([1.5, -7.0, 2.0 ** -20], np.float32) * 2 ** 15
    out = s.unscale([tf.constant(g), None])
    assert out[1] is None
    np.testing.assert_array_equal(out[0].numpy(), g / 2 ** 15)  # powers of two: bit-exact


@pytest.mark.parametrize("grads, finite", [
    ([[1.0, 2.0], None, [[3.0]]], True),
    ([[1.0, np.inf], [[3.0]]], False),
    ([[1.0, 2.0], [[np.nan]]], False),
    ([[-np.inf]], False),
    ([], True),
])
def test_all_finite(grads, finite):
    import tensorflow as tf
    s = _scaler()
    ts = [None if g is None else tf.constant(g, tf.float32) for g in grads]
    assert bool(s.all_finite(ts)) is finite
    ts16 = [None if g is None else tf.constant(g, tf.float16) for g in grads]
    assert bool(s.all_finite(ts16)) is finite


def _expected_schedule(flags, scale, interval, factor=2.0, lo=1.0, hi=2.0 ** 32):
    """Plain-Python statement of the rule: overflow -> scale / factor (>= lo), counter 0;
    finite -> counter + 1, and at `interval` finite steps in a row scale * factor (<= hi), counter 0."""
    out, good = [], 0
    for ok in flags:
        if ok:
            good += 1
            if good >= interval:
                scale, good = min(scale * factor, hi), 0
        else:
            scale, good = max(scale / factor, lo), 0
        out.append((scale, good))
    return out


@pytest.mark.parametrize("flags, kw", [
    ([True] * 7, dict(initial_scale=8.0, growth_interval=3)),
    ([True, True, False, True, True, True, False, False], dict(initial_scale=8.0, growth_interval=3)),
    ([False] * 5, dict(initial_scale=8.0, growth_interval=3, min_scale=2.0)),   # floor
    ([True] * 6, dict(initial_scale=8.0, growth_interval=2, max_scale=16.0)),   # cap
    ([True, False, True, True], dict(initial_scale=1.0, growth_interval=1, factor=4.0)),
])
def test_update_schedule_closed_form(flags, kw):
    import tensorflow as tf
    s = _scaler(**kw)
    update = tf.function(s.update)
    want = _expected_schedule(flags, kw["initial_scale"], kw["growth_interval"], kw.get("factor", 2.0),
                              kw.get("min_scale", 1.0), kw.get("max_scale", 2.0 ** 32))
    for ok, (scale, good) in zip(flags, want):
        assert bool(update(tf.constant(ok))) is ok
        assert (s.scale.numpy(), s.good_steps.numpy()) == (scale, good)


def test_default_schedule_is_2000_steps():
    s = _scaler()
    assert s.growth_interval == 2000 and s.factor == 2.0


def test_invalid_arguments():
    need = r"DynamicLossScale: need factor > 1, 0 < min_scale <= initial_scale <= max_scale"
    with pytest.raises(ValueError, match=need):
        _scaler(factor=1.0)
    with pytest.raises(ValueError, match=need):
        _scaler(initial_scale=0.5, min_scale=1.0)


def test_scaling_recovers_float16_underflow():
    """d loss / d h = 1e-8 underflows to 0 in float16 (smallest subnormal ~6e-8); scaled by
    2^15 it is representable, and the unscaled float32 gradient is 0.5e-8 up to fp16 rounding."""
    import tensorflow as tf
    w = tf.Variable(1.0)

    def grad(scaler):
        with tf.GradientTape() as tape:
            h = tf.cast(w, tf.float16) * tf.constant(0.5, tf.float16)
            loss = tf.cast(h, tf.float32) * 1e-8
            if scaler is not None:
                loss = scaler.scale_loss(loss)
        g = tape.gradient(loss, [w])
        return (g if scaler is None else scaler.unscale(g))[0].numpy()

    assert grad(None) == 0.0
    np.testing.assert_allclose(grad(_scaler()), 0.5e-8, rtol=1e-3)


def test_apply_gradients_if_skips_the_optimizer_step():
    import keras
    import tensorflow as tf
    from stylegan2_tf.training.loss_scaling import apply_gradients_if
    v = keras.Variable(np.ones([3], np.float32))
    opt = keras.optimizers.Adam(0.1)
    opt.build([v])
    s = _scaler(initial_scale=4.0, growth_interval=2)

    @tf.function
    def step(factor):
        with tf.GradientTape() as tape:
            loss = s.scale_loss(tf.reduce_sum(v * v) * factor)
        grads, finite = s.unscale_and_update(tape.gradient(loss, [v]))
        return apply_gradients_if(opt, grads, [v], finite)

    before = v.numpy().copy()
    assert not bool(step(tf.constant(np.inf)))
    np.testing.assert_array_equal(v.numpy(), before)
    assert int(opt.iterations.numpy()) == 0 and s.scale.numpy() == 2.0
    assert bool(step(tf.constant(1.0)))
    assert int(opt.iterations.numpy()) == 1 and np.all(v.numpy() < before)
    assert s.scale.numpy() == 2.0 and s.good_steps.numpy() == 1


def test_replicas_agree_on_overflow():
    r = run_python([__file__, "replicas"], timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "replicas agree" in r.stdout, r.stdout


# -- the subprocess -----------------------------------------------------------------------------
def _replicas():
    """Overflow on replica 1 only: both replicas skip the update and halve the scale."""
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from stylegan2_tf.training.loss_scaling import DynamicLossScale, apply_gradients_if

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        layer = keras.layers.Dense(3, use_bias=False)
        layer.build((None, 4))
        opt = keras.optimizers.Adam(0.1)
        opt.build(layer.trainable_variables)
        scaler = DynamicLossScale(initial_scale=8.0, growth_interval=2)

    def replica_fn(poison):
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(tf.ones([2, 4])))
            loss = loss * tf.where(tf.logical_and(poison, tf.equal(replica, 1)), np.inf, 1.0)
            scaled = scaler.scale_loss(loss)
        grads, finite = scaler.unscale_and_update(tape.gradient(scaled, layer.trainable_variables))
        return apply_gradients_if(opt, grads, layer.trainable_variables, finite)

    @tf.function
    def step(poison):
        return strategy.experimental_local_results(strategy.run(replica_fn, args=(poison,)))

    flags = [False, True, False, False, False, True]
    want = _expected_schedule([not p for p in flags], 8.0, 2)
    iterations = 0
    for poison, (scale, good) in zip(flags, want):
        kernel = layer.kernel.numpy().copy()
        applied = [bool(a) for a in step(tf.constant(poison))]
        assert all(a is (not poison) for a in applied), applied
        iterations += not poison
        scales = [v.numpy() for v in strategy.experimental_local_results(scaler.scale)]
        goods = [v.numpy() for v in strategy.experimental_local_results(scaler.good_steps)]
        assert scales == [scale, scale] and goods == [good, good], (scales, goods, scale, good)
        assert int(opt.iterations.numpy()) == iterations
        assert np.array_equal(kernel, layer.kernel.numpy()) is poison
    print("replicas agree")


if __name__ == "__main__" and sys.argv[1:] == ["replicas"]:
    _replicas()
