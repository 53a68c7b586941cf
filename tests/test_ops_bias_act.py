"""fused_bias_act against numpy closed forms, official default gains, and
finite-difference gradients."""

import math

import numpy as np
import pytest
import tensorflow as tf

from stylegan2_tf.ops import ACTIVATIONS, activation_gain, fused_bias_act

SELU_LAMBDA = 1.0507009873554804934193349852946
SELU_ALPHA = 1.6732632423543772848170429916717


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


NP_ACT = {
    "linear": lambda x, a: x,
    "relu": lambda x, a: np.maximum(x, 0.0),
    "lrelu": lambda x, a: np.where(x > 0, x, a * x),
    "tanh": lambda x, a: np.tanh(x),
    "sigmoid": lambda x, a: _sigmoid(x),
    "elu": lambda x, a: np.where(x > 0, x, np.expm1(x)),
    "selu": lambda x, a: SELU_LAMBDA * np.where(x > 0, x, SELU_ALPHA * np.expm1(x)),
    "softplus": lambda x, a: np.log1p(np.exp(x)),
    "swish": lambda x, a: x * _sigmoid(x),
}

# Official StyleGAN2 defaults (dnnlib/tflib/ops/fused_bias_act.py).
OFFICIAL_GAIN = {"linear": 1.0, "relu": math.sqrt(2), "lrelu": math.sqrt(2), "tanh": 1.0, "sigmoid": 1.0,
                 "elu": 1.0, "selu": 1.0, "softplus": 1.0, "swish": math.sqrt(2)}


def _tol(act):
    # tf.nn.leaky_relu carries alpha as a float32 attribute, so its slope is only
    # float32-exact (relative 1.5e-8) even for float64 tensors.
    return dict(rtol=1e-7, atol=1e-12) if act == "lrelu" else dict(rtol=1e-12, atol=1e-12)


def _inputs(shape, seed):
    """Random values kept away from 0 (kinks of relu / lrelu)."""
    x = np.random.default_rng(seed).uniform(0.1, 3.0, size=shape)
    sign = np.where(np.random.default_rng(seed + 1).random(shape) < 0.5, -1.0, 1.0)
    return x * sign


def test_activation_table_is_complete():
    assert set(ACTIVATIONS) == set(OFFICIAL_GAIN)


@pytest.mark.parametrize("act", sorted(OFFICIAL_GAIN))
def test_default_gain(act):
    assert activation_gain(act) == pytest.approx(OFFICIAL_GAIN[act], rel=1e-12)


@pytest.mark.parametrize("act", sorted(OFFICIAL_GAIN))
def test_activation_closed_form_default_gain(act):
    x = _inputs([3, 4, 5, 6], seed=1)
    b = np.random.default_rng(2).standard_normal(6) * 0.05
    got = fused_bias_act(tf.constant(x), tf.constant(b), act=act).numpy()
    want = NP_ACT[act](x + b, 0.2) * OFFICIAL_GAIN[act]
    np.testing.assert_allclose(got, want, **_tol(act))


def test_lrelu_default_alpha_is_0_2():
    x = np.array([-2.0, -0.5, 0.5, 3.0])
    got = fused_bias_act(tf.constant(x), act="lrelu").numpy()
    np.testing.assert_allclose(got, np.array([-0.4, -0.1, 0.5, 3.0]) * math.sqrt(2), **_tol("lrelu"))


@pytest.mark.parametrize("act", ["lrelu", "relu", "tanh", "swish", "linear"])
def test_custom_alpha_and_gain(act):
    x = _inputs([2, 7], seed=3)
    got = fused_bias_act(tf.constant(x), act=act, alpha=0.35, gain=0.7).numpy()
    np.testing.assert_allclose(got, NP_ACT[act](x, 0.35) * 0.7, **_tol(act))
    # gain=1 switches the default gain off.
    got = fused_bias_act(tf.constant(x), act=act, alpha=0.35, gain=1.0).numpy()
    np.testing.assert_allclose(got, NP_ACT[act](x, 0.35), **_tol(act))


def test_bias_broadcast_along_last_axis_and_axis_1():
    x = _inputs([2, 3, 4, 5], seed=4)
    b_last = np.arange(5, dtype=np.float64) - 2.0
    got = fused_bias_act(tf.constant(x), tf.constant(b_last), axis=-1).numpy()
    np.testing.assert_allclose(got, x + b_last[None, None, None, :], rtol=1e-12)
    got = fused_bias_act(tf.constant(x), tf.constant(b_last), axis=3).numpy()
    np.testing.assert_allclose(got, x + b_last[None, None, None, :], rtol=1e-12)
    b1 = np.array([10.0, -20.0, 30.0])
    got = fused_bias_act(tf.constant(x), tf.constant(b1), axis=1, act="lrelu").numpy()
    np.testing.assert_allclose(got, NP_ACT["lrelu"](x + b1[None, :, None, None], 0.2) * math.sqrt(2),
                               **_tol("lrelu"))
    # rank-2 input (dense layers), bias along the feature axis
    x2 = _inputs([4, 3], seed=5)
    got = fused_bias_act(tf.constant(x2), tf.constant(b1), act="relu").numpy()
    np.testing.assert_allclose(got, np.maximum(x2 + b1, 0) * math.sqrt(2), rtol=1e-12)


def test_bias_cast_to_input_dtype():
    x = tf.constant(_inputs([2, 3], seed=6), tf.float32)
    y = fused_bias_act(x, np.array([1.0, 2.0, 3.0], np.float64), act="lrelu")
    assert y.dtype == tf.float32


def test_clamp_after_gain():
    x = np.linspace(-5, 5, 41)
    got = fused_bias_act(tf.constant(x), act="lrelu", clamp=2.0).numpy()
    np.testing.assert_allclose(got, np.clip(NP_ACT["lrelu"](x, 0.2) * math.sqrt(2), -2.0, 2.0),
                               **_tol("lrelu"))
    got = fused_bias_act(tf.constant(x), tf.constant([0.5]), act="linear", gain=3.0, clamp=1.0).numpy()
    np.testing.assert_allclose(got, np.clip((x + 0.5) * 3.0, -1.0, 1.0), rtol=1e-12)


def test_unknown_activation_raises():
    with pytest.raises(ValueError, match=r"unknown activation 'gelu_nope'; choose from \['elu', 'linear', 'lrelu'"):
        fused_bias_act(tf.zeros([2]), act="gelu_nope")


@pytest.mark.parametrize("act", sorted(OFFICIAL_GAIN))
@pytest.mark.parametrize("clamp", [None, 1.5])
def test_gradients_match_finite_differences(act, clamp):
    x = _inputs([3, 4], seed=7)
    b = np.array([0.03, -0.02, 0.01, 0.04])
    y = np.random.default_rng(8).standard_normal(x.shape)
    alpha, gain = (0.3, 1.3) if act == "lrelu" else (None, None)
    if clamp is not None:
        # keep every pre-clamp output away from the clamp boundary
        out = NP_ACT[act](x + b, alpha or 0.2) * (gain or OFFICIAL_GAIN[act])
        keep = np.abs(np.abs(out) - clamp) > 1e-2
        assert keep.sum() > 4
        x = np.where(keep, x, 0.5)

    def f(xv, bv):
        return tf.reduce_sum(fused_bias_act(xv, bv, act=act, alpha=alpha, gain=gain, clamp=clamp) * y)

    xt, bt = tf.constant(x), tf.constant(b)
    with tf.GradientTape() as tape:
        tape.watch([xt, bt])
        val = f(xt, bt)
    gx, gb = tape.gradient(val, [xt, bt])
    eps = 1e-6
    # elementwise op: all entries can be perturbed at once for d/dx
    fx = lambda xv: (fused_bias_act(tf.constant(xv), bt, act=act, alpha=alpha, gain=gain,  # noqa: E731
                                    clamp=clamp).numpy() * y)
    num_gx = (fx(x + eps) - fx(x - eps)) / (2 * eps)
    np.testing.assert_allclose(gx.numpy(), num_gx, rtol=1e-6, atol=1e-8)
    num_gb = np.array([(f(xt, tf.constant(b + eps * e)).numpy() - f(xt, tf.constant(b - eps * e)).numpy())
                       / (2 * eps) for e in np.eye(len(b))])
    np.testing.assert_allclose(gb.numpy(), num_gb, rtol=1e-6, atol=1e-8)
    if clamp is not None and act in ("linear", "lrelu", "swish", "selu", "elu"):
        assert np.any(gx.numpy() == 0.0)   # clamped entries pass no gradient
