"""The one-pass gradient kernels (CPU, float32/64): Sg2ScaleChannelsGrad (the gradient of the
per-sample channel scaling of the non-fused modulated convolution) and Sg2FusedBiasActGrad (the
bias+act derivative with its bias sum). Checked against float64 closed forms computed in numpy and
against TensorFlow's own gradients of the reference ops, to the third order, across the fixed
blocks the sums are cut into; and that the training graphs use them."""

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from stylegan2_tf.ops import custom_ops  # noqa: E402
from stylegan2_tf.ops.scale_channels import scale_channels  # noqa: E402




# [N, ..., C]: rank 2 (one row per sample), a partial block, exactly one block of 256 rows
# (custom_ops/channel_sums.h kRowsPerBlock), several blocks
# with a partial last one (17 * 19 = 323 rows per sample).
SHAPES = [(3, 5), (2, 3, 4, 6), (2, 16, 16, 3), (3, 17, 19, 5)]


@pytest.mark.parametrize("shape", SHAPES)
def test_scale_channels_gradient_is_the_closed_form(kernels, shape):
    rng = np.random.default_rng(sum(shape))
    x, dy = rng.normal(size=shape), rng.normal(size=shape)
    s = rng.normal(size=(shape[0], shape[-1]))
    s_b = s.reshape([shape[0]] + [1] * (len(shape) - 2) + [shape[-1]])
    dx, ds = kernels.sg2_scale_channels_grad(tf.constant(dy), tf.constant(x), tf.constant(s))
    np.testing.assert_array_equal(dx.numpy(), dy * s_b)          # one product per element: exact
    want = np.sum(dy * x, axis=tuple(range(1, len(shape) - 1))) if len(shape) > 2 else dy * x
    np.testing.assert_allclose(ds.numpy(), want, rtol=1e-13, atol=1e-13)
    # float32: the sums are taken in float64, so they are the exact sums rounded once.
    dx32, ds32 = kernels.sg2_scale_channels_grad(*(tf.constant(v, tf.float32) for v in (dy, x, s)))
    d32, x32 = dy.astype(np.float32).astype(np.float64), x.astype(np.float32).astype(np.float64)
    exact = np.sum(d32 * x32, axis=tuple(range(1, len(shape) - 1))) if len(shape) > 2 else d32 * x32
    np.testing.assert_array_equal(ds32.numpy(), exact.astype(np.float32))


def _scaled_derivatives(impl, x, s, order):
    """Value and the derivatives up to `order` of a scalar function of scale_channels(x, s), each
    order differentiating the squared norm of the previous one's gradients, w.r.t. x and s."""
    def level(k):
        if k == 0:
            y = scale_channels(x, s, impl=impl)
            return [tf.reduce_sum(y * tf.cos(x) * y)]
        with tf.GradientTape() as tape:
            tape.watch([x, s])
            lower = level(k - 1)
            target = lower[-1] if k == 1 else tf.reduce_sum(lower[-1][0] ** 2) + tf.reduce_sum(lower[-1][1] ** 2)
        return lower + [tape.gradient(target, [x, s])]
    return level(order)


@pytest.mark.parametrize("dtype,tol", [(tf.float64, 1e-12), (tf.float32, 2e-5)])
def test_scale_channels_kernel_equals_reference_to_the_third_order(kernels, dtype, tol):
    rng = np.random.default_rng(7)
    for shape in SHAPES:
        x = tf.constant(rng.normal(size=shape), dtype)
        s = tf.constant(rng.normal(size=(shape[0], shape[-1])), dtype)
        ref = _scaled_derivatives("ref", x, s, 3)
        got = _scaled_derivatives("custom", x, s, 3)
        np.testing.assert_allclose(got[0].numpy(), ref[0].numpy(), rtol=tol)
        for order in (1, 2, 3):
            for name, r, g in zip(("x", "s"), ref[order], got[order]):
                r, g = r.numpy(), g.numpy()
                scale = max(np.max(np.abs(r)), 1e-30)
                assert np.max(np.abs(r - g)) <= tol * scale, (shape, order, name, np.max(np.abs(r - g)) / scale)


def test_scale_channels_falls_back_where_the_kernel_does_not_serve(kernels):
    """bfloat16/float16, an s broadcast over the batch: the reference, with the same numbers,
    even when the kernels are asked for."""
    x = tf.constant(np.arange(24).reshape(2, 3, 4) * 0.25, tf.float32)
    for dtype in (tf.bfloat16, tf.float16):
        got = scale_channels(tf.cast(x, dtype), tf.ones([2, 4]) * 2, impl="custom")
        np.testing.assert_array_equal(tf.cast(got, tf.float32).numpy(), x.numpy() * 2)
    np.testing.assert_array_equal(scale_channels(x, [[1.0, 2.0, 3.0, 4.0]], impl="custom").numpy(),
                                  x.numpy() * [1.0, 2.0, 3.0, 4.0])


def test_scale_channels_kernel_says_what_is_wrong(kernels):
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"ScaleChannelsGrad: s must be \[2, 4\], got \[3,4\]"):
        kernels.sg2_scale_channels_grad(tf.zeros([2, 3, 4]), tf.zeros([2, 3, 4]), tf.zeros([3, 4]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="ScaleChannelsGrad: dy .* differs from x"):
        kernels.sg2_scale_channels_grad(tf.zeros([2, 3, 3]), tf.zeros([2, 3, 4]), tf.zeros([2, 4]))


@pytest.mark.parametrize("act,clamp", [("lrelu", None), ("lrelu", 0.8), ("swish", None), ("linear", None)])
def test_bias_act_gradient_and_bias_sum_in_one_pass(kernels, act, clamp):
    """Sg2FusedBiasActGrad's dx is the derivative op's, bit for bit, and its bias sum the float64
    sum of dx over all rows (many blocks), against numpy."""
    rng = np.random.default_rng(3)
    for dtype in (tf.float64, tf.float32):
        x = tf.constant(rng.normal(size=(3, 17, 19, 5)), dtype)
        dy = tf.constant(rng.normal(size=(3, 17, 19, 5)), dtype)
        b = tf.constant(rng.normal(size=5), dtype)
        params = tf.constant([0.2, 1.5, -1.0 if clamp is None else clamp], tf.float64)
        dx, db = kernels.sg2_fused_bias_act_grad(dy, x, b, params, act=act)
        want_dx = kernels.sg2_fused_bias_act_deriv(dy, x, b, params, act=act, order=1)
        np.testing.assert_array_equal(dx.numpy(), want_dx.numpy())
        exact = np.sum(dx.numpy().astype(np.float64).reshape(-1, 5), axis=0)
        if dtype == tf.float64:
            np.testing.assert_allclose(db.numpy(), exact, rtol=1e-13)
        else:
            np.testing.assert_array_equal(db.numpy(), exact.astype(np.float32))
        # No bias: db is empty.
        dx0, db0 = kernels.sg2_fused_bias_act_grad(dy, x, tf.zeros([0], dtype), params, act=act)
        assert db0.shape == (0,)
        np.testing.assert_array_equal(
            dx0.numpy(), kernels.sg2_fused_bias_act_deriv(dy, x, tf.zeros([0], dtype), params, act=act, order=1))


def _op_types(fn, *args):
    """The op types of fn's traced graph and of the functions it calls."""
    graph_def = tf.function(fn).get_concrete_function(*args).graph.as_graph_def()
    return {n.op for n in graph_def.node} | {n.op for f in graph_def.library.function for n in f.node_def}


def test_gradients_of_the_layers_use_the_one_pass_kernels(kernels):
    """A synthesis layer's gradient on the CPU in float32 runs both one-pass kernels: the
    modulation's (Eq. 1) Sg2ScaleChannelsGrad and, in the style affine, Sg2FusedBiasActGrad (the
    layer's own epilogue has its kernel: tests/test_synthesis_epilogue.py)."""
    from stylegan2_tf.layers.modulated import SynthesisLayer
    layer = SynthesisLayer(8, 8, 4, resolution=8, fused_modconv=False)
    x = tf.random.normal([2, 8, 8, 8])
    w = tf.random.normal([2, 4])

    def grads(x, w):
        with tf.GradientTape() as tape:
            tape.watch([x, w])
            y = layer(x, w, noise_mode="none")
        return tape.gradient(y, [x, w] + layer.trainable_variables)

    types = _op_types(grads, x, w)
    assert {"Sg2ScaleChannelsGrad", "Sg2FusedBiasActGrad"} <= types, sorted(types)
    assert "Sg2FusedBiasActDeriv" not in types


def test_the_cpu_only_kernels_stand_aside_where_a_gpu_is_visible(kernels, monkeypatch):
    from stylegan2_tf.ops import implementation
    assert implementation.cpu_only_kernel_fits(tf.float32) and implementation.cpu_only_kernel_fits(tf.float64)
    assert not implementation.cpu_only_kernel_fits(tf.bfloat16)
    monkeypatch.setitem(custom_ops._state, "gpus", True)     # as on a machine with a visible GPU
    assert not implementation.cpu_only_kernel_fits(tf.float32)
