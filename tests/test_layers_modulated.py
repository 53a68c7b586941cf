"""Modulated convolution, equalized-lr layers, noise, minibatch stddev and pixel
norm against numpy references written from the paper's equations."""

import math
import os
import sys

import numpy as np
import pytest
import tensorflow as tf

sys.path.insert(0, os.path.dirname(__file__))
import _np_reference as ref  # noqa: E402

from stylegan2_tf.layers import (EqualizedConv2d, EqualizedDense, ModulatedConv2d, SynthesisLayer,  # noqa: E402
                                 ToRGB, minibatch_stddev, modulated_conv2d, normalize_2nd_moment)
from stylegan2_tf.layers import modulated as modulated_module  # noqa: E402
from stylegan2_tf.layers.modulated import ModulatedConvFormError, use_fused_form  # noqa: E402
from stylegan2_tf.ops.capabilities import cpu_grouped_conv_gradient, onednn_enabled  # noqa: E402

K1331 = (1, 3, 3, 1)


def _rand(shape, seed, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _lrelu(x):
    return np.where(x > 0, x, 0.2 * x) * math.sqrt(2)


def np_modulated_conv2d(x, weight, styles, demodulate=True, up=False, resample_kernel=K1331):
    """Paper Eq. 1-3 per sample, then a 'SAME' conv (or the fused 2x upsample + conv)."""
    x = np.asarray(x, np.float64)
    weight = np.asarray(weight, np.float64)
    styles = np.asarray(styles, np.float64)
    out = []
    for n in range(x.shape[0]):
        w1 = weight * styles[n][None, None, :, None]                 # Eq. 1: w'_ijk = s_i w_ijk
        if demodulate:
            sigma = np.sqrt(np.sum(w1 ** 2, axis=(0, 1, 2)) + 1e-8)  # Eq. 3: over i and k, per j
            w1 = w1 / sigma                                          # Eq. 2
        xn = x[n:n + 1]
        if up:
            out.append(ref.upsample_conv_2d(xn, w1, resample_kernel if resample_kernel is not None else [1, 1]))
        else:
            out.append(ref.conv2d_same(xn, w1))
    return np.concatenate(out)


# ------------------------------------------------------------------ modulated_conv2d


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("up,ksize,kernel", [(False, 3, K1331), (False, 1, K1331), (True, 3, K1331),
                                             (True, 3, None), (True, 1, K1331)])
def test_modulated_conv2d_matches_paper_equations(fused, demodulate, up, ksize, kernel):
    x = _rand([3, 5, 6, 4], seed=1)
    weight = _rand([ksize, ksize, 4, 5], seed=2) / math.sqrt(4 * ksize * ksize)
    styles = 1.0 + 0.5 * _rand([3, 4], seed=3)
    got = modulated_conv2d(tf.constant(x), tf.constant(weight), tf.constant(styles), demodulate=demodulate, up=up,
                           fused=fused, resample_kernel=kernel).numpy()
    want = np_modulated_conv2d(x, weight, styles, demodulate, up, kernel)
    assert got.shape == ((3, 10, 12, 5) if up else (3, 5, 6, 5))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize("up", [False, True])
def test_fused_and_nonfused_agree(up):
    x = _rand([4, 6, 6, 3], seed=4)
    weight = _rand([3, 3, 3, 6], seed=5) / 3.0
    styles = 1.0 + 0.5 * _rand([4, 3], seed=6)
    a, b = (modulated_conv2d(tf.constant(x), tf.constant(weight), tf.constant(styles), up=up, fused=f).numpy()
            for f in (True, False))
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_demodulated_output_has_unit_scale_per_channel():
    """With i.i.d. unit inputs, demodulation makes every output channel's std ~1
    regardless of the style magnitude (the point of Eq. 3)."""
    x = _rand([2, 32, 32, 16], seed=7)
    weight = _rand([3, 3, 16, 4], seed=8)
    styles = np.stack([np.full(16, 0.01), np.full(16, 50.0)]).astype(np.float32)
    y = modulated_conv2d(tf.constant(x), tf.constant(weight), tf.constant(styles)).numpy()
    std = y[:, 2:-2, 2:-2].std(axis=(1, 2))
    np.testing.assert_allclose(std, 1.0, rtol=0.15)


# ----------------------------------------------------------------- ModulatedConv2d / ToRGB


@pytest.mark.parametrize("up", [False, True])
@pytest.mark.parametrize("fused", [True, False])
def test_modulated_conv_layer_styles_and_output(up, fused):
    w_dim = 8
    layer = ModulatedConv2d(4, 5, 3, w_dim, up=up, fused_modconv=fused)
    ws = _rand([2, w_dim], seed=9)
    x = _rand([2, 4, 4, 4], seed=10)
    mod_w = layer.affine.weight.numpy().astype(np.float64)
    np.testing.assert_array_equal(layer.affine.bias.numpy(), 0.0)
    # s = A(w) + 1 with A = equalized dense (gain 1/sqrt(w_dim)), zero bias at init.
    styles = 1.0 + ws.astype(np.float64) @ (mod_w / math.sqrt(w_dim))
    np.testing.assert_allclose(layer.styles(tf.constant(ws)).numpy(), styles, rtol=1e-5, atol=1e-6)
    y = layer(tf.constant(x), tf.constant(ws)).numpy()
    weight = layer.weight.numpy() / math.sqrt(4 * 9)
    np.testing.assert_allclose(y, np_modulated_conv2d(x, weight, styles, True, up), rtol=1e-4, atol=1e-5)
    # A non-zero affine bias adds to the styles.
    layer.affine.bias.assign(np.linspace(-0.5, 0.5, 4).astype(np.float32))
    np.testing.assert_allclose(layer.styles(tf.constant(ws)).numpy(), styles + np.linspace(-0.5, 0.5, 4),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fused", [True, False])
def test_torgb_is_not_demodulated(fused):
    w_dim = 6
    layer = ToRGB(5, 3, w_dim, fused_modconv=fused)
    layer.bias.assign(np.array([0.1, -0.2, 0.3], np.float32))
    ws = _rand([2, w_dim], seed=11)
    x = _rand([2, 4, 4, 5], seed=12)
    styles = 1.0 + ws.astype(np.float64) @ (layer.conv.affine.weight.numpy() / math.sqrt(w_dim))
    weight = layer.conv.weight.numpy().astype(np.float64) / math.sqrt(5)
    want = np.einsum("nhwi,io,ni->nhwo", x, weight[0, 0], styles) + np.array([0.1, -0.2, 0.3])
    got = layer(tf.constant(x), tf.constant(ws)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    demod = np_modulated_conv2d(x, weight, styles, demodulate=True) + np.array([0.1, -0.2, 0.3])
    assert np.abs(got - demod).max() > 1e-2


# ------------------------------------------------------------------- equalized layers


def test_equalized_dense_runtime_scaling():
    layer = EqualizedDense(6, 4, activation="lrelu", lrmul=0.01, bias_init=0.5)
    np.testing.assert_allclose(layer.bias.numpy(), 0.5 / 0.01, rtol=1e-6)   # stored raw, scaled at run time
    w = layer.weight.numpy().astype(np.float64)
    b = layer.bias.numpy().astype(np.float64)
    x = _rand([3, 6], seed=13)
    want = _lrelu(x @ (w * 0.01 / math.sqrt(6)) + b * 0.01)
    np.testing.assert_allclose(layer(tf.constant(x)).numpy(), want, rtol=1e-5, atol=1e-6)
    # Inputs of rank > 2 are flattened in NHWC order.
    layer2 = EqualizedDense(2 * 3 * 4, 5)
    x4 = _rand([2, 2, 3, 4], seed=14)
    want = x4.reshape(2, -1).astype(np.float64) @ (layer2.weight.numpy() / math.sqrt(24))
    np.testing.assert_allclose(layer2(tf.constant(x4)).numpy(), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["same", "up", "down"])
def test_equalized_conv2d_runtime_scaling(mode):
    layer = EqualizedConv2d(3, 4, 3, activation="lrelu", up=mode == "up", down=mode == "down", lrmul=0.5)
    layer.bias.assign(np.array([0.1, 0.2, -0.3, 0.4], np.float32))
    w = layer.weight.numpy().astype(np.float64) * 0.5 / math.sqrt(3 * 9)
    b = layer.bias.numpy().astype(np.float64) * 0.5
    x = _rand([2, 6, 6, 3], seed=15)
    if mode == "same":
        pre = ref.conv2d_same(x, w)
    elif mode == "up":
        pre = ref.upsample_conv_2d(x, w, K1331)
    else:
        pre = ref.conv_downsample_2d(x, w, K1331)
    np.testing.assert_allclose(layer(tf.constant(x)).numpy(), _lrelu(pre + b), rtol=1e-4, atol=1e-5)


def test_equalized_init_statistics():
    dense = EqualizedDense(512, 512, lrmul=0.01)
    w = dense.weight.numpy()
    # N(0, 1/lrmul): std 100; the std estimate of 262144 samples is good to ~0.14 %.
    assert abs(w.std() / 100.0 - 1.0) < 0.01
    assert abs(w.mean()) < 100.0 * 5 / math.sqrt(w.size)
    eff = w * dense.weight_gain
    assert abs(eff.std() * math.sqrt(512) - 1.0) < 0.01     # effective He-style std 1/sqrt(fan_in)
    conv = EqualizedConv2d(64, 64, 3)
    w = conv.weight.numpy()
    assert abs(w.std() - 1.0) < 0.02
    assert conv.weight_gain == pytest.approx(1.0 / math.sqrt(64 * 9))
    mod = ModulatedConv2d(64, 32, 3, w_dim=16)
    assert abs(mod.weight.numpy().std() - 1.0) < 0.03


# ------------------------------------------------------------------------- noise modes


def _synthesis_layer(activation="lrelu", up=False):
    layer = SynthesisLayer(3, 4, 8, resolution=8 if up else 4, up=up, activation=activation)
    layer.bias.assign(np.array([0.1, -0.1, 0.2, 0.0], np.float32))
    layer.noise_strength.assign(0.7)
    return layer


@pytest.mark.parametrize("up", [False, True])
def test_noise_modes(up):
    x = tf.constant(_rand([2, 4, 4, 3], seed=16))
    ws = tf.constant(_rand([2, 8], seed=17))
    res = 8 if up else 4
    layer = _synthesis_layer(up=up)
    out_none = layer(x, ws, noise_mode="none").numpy()
    pre = layer.conv(x, ws).numpy().astype(np.float64)
    bias = np.array([0.1, -0.1, 0.2, 0.0])
    np.testing.assert_allclose(out_none, _lrelu(pre + bias), rtol=1e-5, atol=1e-6)
    nc = layer.noise_const.numpy().astype(np.float64)
    assert nc.shape == (res, res)
    out_const = layer(x, ws, noise_mode="const").numpy()
    np.testing.assert_allclose(out_const, _lrelu(pre + 0.7 * nc[None, :, :, None] + bias), rtol=1e-5, atol=1e-6)
    # 'none' is the strength-0 result of both other modes.
    layer.noise_strength.assign(0.0)
    np.testing.assert_array_equal(layer(x, ws, noise_mode="const").numpy(), out_none)
    np.testing.assert_array_equal(layer(x, ws, noise_mode="random").numpy(), out_none)


def test_noise_const_adds_exactly_and_random_is_per_pixel():
    x = tf.constant(_rand([3, 4, 4, 3], seed=18))
    ws = tf.constant(_rand([3, 8], seed=19))
    layer = _synthesis_layer(activation="linear")
    base = layer(x, ws, noise_mode="none").numpy()
    diff = layer(x, ws, noise_mode="const").numpy() - base
    want = 0.7 * layer.noise_const.numpy()[None, :, :, None]
    np.testing.assert_allclose(diff, np.broadcast_to(want, diff.shape), rtol=1e-5, atol=1e-6)
    r1 = layer(x, ws, noise_mode="random").numpy()
    r2 = layer(x, ws, noise_mode="random").numpy()
    assert r1.shape == (3, 4, 4, 4)
    assert np.abs(r1 - r2).max() > 1e-3                              # fresh noise every call
    n1 = r1 - base
    np.testing.assert_allclose(n1, np.broadcast_to(n1[..., :1], n1.shape), atol=1e-5)  # one map for all channels
    assert np.abs(n1[0] - n1[1]).max() > 1e-3                        # a different map per sample


def test_random_noise_statistics():
    layer = SynthesisLayer(2, 2, 4, resolution=32, activation="linear")
    layer.noise_strength.assign(2.0)
    x = tf.constant(_rand([4, 32, 32, 2], seed=20))
    ws = tf.constant(_rand([4, 4], seed=21))
    n = (layer(x, ws, noise_mode="random") - layer(x, ws, noise_mode="none")).numpy()[..., 0] / 2.0
    assert abs(n.std() - 1.0) < 0.05 and abs(n.mean()) < 0.05       # N(0, 1) scaled by the strength


# ----------------------------------------------------------------- minibatch stddev


def np_minibatch_stddev(x, group_size, num_features):
    x = np.asarray(x, np.float64)
    n, h, w, c = x.shape
    g = n if group_size is None else min(group_size, n)
    m = n // g
    cf = c // num_features
    out = np.zeros((n, h, w, num_features))
    for grp in range(m):
        members = [i for i in range(n) if i % m == grp]               # interleaved groups
        assert len(members) == g
        xs = x[members]
        for f in range(num_features):
            sl = xs[..., f * cf:(f + 1) * cf]
            std = np.sqrt(((sl - sl.mean(axis=0)) ** 2).mean(axis=0) + 1e-8)
            out[members, :, :, f] = std.mean()
    return np.concatenate([x, out], axis=-1)


@pytest.mark.parametrize("n,group_size,num_features", [
    (8, 4, 1), (8, 4, 2), (4, 4, 1), (2, 4, 1), (3, 4, 2), (6, None, 1), (6, 2, 2), (5, None, 2),
])
def test_minibatch_stddev(n, group_size, num_features):
    x = _rand([n, 3, 4, 6], seed=22) * np.linspace(0.5, 2.0, n).reshape(n, 1, 1, 1).astype(np.float32)
    got = minibatch_stddev(tf.constant(x), group_size, num_features).numpy()
    want = np_minibatch_stddev(x, group_size, num_features)
    assert got.shape == (n, 3, 4, 6 + num_features)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    if n == 8 and group_size == 4:
        # interleaving: samples 0 and 2 share a group, 0 and 1 do not
        assert got[0, 0, 0, 6] == got[2, 0, 0, 6] and got[0, 0, 0, 6] != got[1, 0, 0, 6]


# --------------------------------------------------------------- normalize_2nd_moment


def test_normalize_2nd_moment():
    z = _rand([5, 7], seed=23).astype(np.float64) * 3.0
    got = normalize_2nd_moment(tf.constant(z)).numpy()
    want = z / np.sqrt((z ** 2).mean(axis=1, keepdims=True) + 1e-8)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose((got ** 2).mean(axis=1), 1.0, rtol=1e-7)  # eps: 1 - 1e-8 / mean
    np.testing.assert_array_equal(normalize_2nd_moment(tf.zeros([2, 3], tf.float64)).numpy(), 0.0)
    z3 = _rand([2, 3, 4], seed=24).astype(np.float64)
    np.testing.assert_allclose(normalize_2nd_moment(tf.constant(z3), axis=2).numpy(),
                               z3 / np.sqrt((z3 ** 2).mean(axis=2, keepdims=True) + 1e-8), rtol=1e-12)


# ------------------------------------------------------------ second-order gradients


def _path_length_grads(layer, x, ws, y, fused):
    """Path-length pattern: g = d sum(img * y) / d ws; gradients of |g|^2 w.r.t. the weights."""
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            inner.watch(ws)
            img = layer(x, ws, fused_modconv=fused)
            s = tf.reduce_sum(img * y)
        g = inner.gradient(s, ws)
        pl = tf.reduce_sum(tf.square(g))
    return [v.numpy() for v in outer.gradient(pl, layer.trainable_weights)]


@pytest.mark.parametrize("up", [False, True])
def test_second_order_gradients_fused_match_nonfused(up, fused_gradient):
    layer = ModulatedConv2d(3, 4, 3, w_dim=5, up=up)
    layer.affine.bias.assign(np.array([0.2, -0.1, 0.3], np.float32))
    x = tf.constant(_rand([3, 4, 4, 3], seed=25))
    ws = tf.constant(_rand([3, 5], seed=26))
    y = tf.constant(_rand([3, 8, 8, 4] if up else [3, 4, 4, 4], seed=27))
    fused = _path_length_grads(layer, x, ws, y, True)
    plain = _path_length_grads(layer, x, ws, y, False)
    assert len(fused) == 3   # weight, affine weight, affine bias
    for a, b in zip(fused, plain):
        assert np.abs(b).max() > 1e-3
        assert np.linalg.norm(a - b) <= 1e-4 * np.linalg.norm(b)
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4 * np.abs(b).max())


@pytest.mark.parametrize("up", [False, True])
def test_second_order_gradients_match_finite_differences(up):
    """Same penalty through the functional op in float64 (non-fused), directional
    derivative w.r.t. the conv weight against central differences."""
    x = tf.constant(_rand([2, 4, 4, 3], seed=28, dtype=np.float64))
    ws = tf.constant(_rand([2, 5], seed=29, dtype=np.float64))
    a = tf.constant(_rand([5, 3], seed=30, dtype=np.float64) / math.sqrt(5))
    y = tf.constant(_rand([2, 8, 8, 4] if up else [2, 4, 4, 4], seed=31, dtype=np.float64))
    w0 = _rand([3, 3, 3, 4], seed=32, dtype=np.float64) / 3.0
    direction = _rand(w0.shape, seed=33, dtype=np.float64)

    def penalty(w):
        with tf.GradientTape() as inner:
            inner.watch(ws)
            img = modulated_conv2d(x, w, tf.matmul(ws, a) + 1.0, up=up, fused=False)
            s = tf.reduce_sum(img * y)
        return tf.reduce_sum(tf.square(inner.gradient(s, ws)))

    wt = tf.constant(w0)
    with tf.GradientTape() as outer:
        outer.watch(wt)
        p = penalty(wt)
    grad = outer.gradient(p, wt).numpy()
    eps = 1e-5
    fd = (penalty(tf.constant(w0 + eps * direction)).numpy()
          - penalty(tf.constant(w0 - eps * direction)).numpy()) / (2 * eps)
    assert np.sum(grad * direction) == pytest.approx(fd, rel=1e-6)


# ------------------------------------------------------------ choice of form


def test_automatic_form_is_non_fused_on_cpu_and_fused_on_gpu(monkeypatch):
    x32 = tf.zeros([2, 4, 4, 3])
    assert use_fused_form(None, x32) is False  # the CPU default
    assert use_fused_form(True, x32) is True and use_fused_form(False, x32) is False
    # float64 and an unknown batch have no grouped form, whatever is asked.
    assert use_fused_form(True, tf.zeros([2, 4, 4, 3], tf.float64)) is False
    unknown_batch = tf.function(lambda x: tf.constant(use_fused_form(True, x)),
                                input_signature=[tf.TensorSpec([None, 4, 4, 3])])
    assert bool(unknown_batch(x32)) is False
    monkeypatch.setattr(modulated_module, "_runs_on_cpu", lambda x: False)
    assert use_fused_form(None, x32) is True  # GPUs keep NVIDIA's default


def test_grouped_conv_gradient_probe_matches_tensorflow():
    # The probe's answer against a direct attempt at the failing op (grouped conv, input gradient).
    def direct(dtype):
        x = tf.ones([1, 4, 4, 6], dtype)
        w = tf.ones([3, 3, 2, 3], dtype)  # 3 groups
        try:
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = tf.nn.conv2d(x, w, 1, "SAME")
            return tape.gradient(y, x) is not None
        except tf.errors.InvalidArgumentError as e:
            assert "grouped convolutions" in str(e)
            return False
    for dtype in (tf.float32, tf.float16):
        assert cpu_grouped_conv_gradient(dtype) == direct(dtype), dtype
    # oneDNN has no float16 convolutions below AVX-512; where it is off, neither dtype works.
    if onednn_enabled() is False:
        assert cpu_grouped_conv_gradient(tf.float32) is False


@pytest.mark.parametrize("compiled", [False, True])
def test_forced_fused_form_without_gradient_kernel_fails_clearly(monkeypatch, compiled):
    """fused_modconv=True on a CPU whose kernels cannot differentiate grouped convolutions: the
    forward pass runs (and equals the non-fused form); a gradient is one error naming the option."""
    monkeypatch.setattr(modulated_module, "cpu_grouped_conv_gradient", lambda dtype: False)
    layer = ModulatedConv2d(3, 4, 3, w_dim=5)
    x = tf.constant(_rand([2, 4, 4, 3], seed=40))
    ws = tf.constant(_rand([2, 5], seed=41))
    np.testing.assert_allclose(layer(x, ws, fused_modconv=True).numpy(), layer(x, ws, fused_modconv=False).numpy(),
                               rtol=1e-5, atol=1e-5)

    def grads(fused):
        with tf.GradientTape() as tape:
            y = tf.reduce_sum(tf.square(layer(x, ws, fused_modconv=fused)))
        return tape.gradient(y, layer.trainable_weights)
    if compiled:
        grads = tf.function(grads)
    with pytest.raises(ModulatedConvFormError, match=r"fused_modconv=True: .*oneDNN.* None \(automatic"):
        grads(True)
    assert all(g is not None for g in grads(False))
    assert all(g is not None for g in grads(None))  # automatic: non-fused here
