"""upfirdn_2d and the resampling helpers against scipy / numpy references, plus
first and second derivatives against finite differences."""

import os
import sys

import numpy as np
import pytest
import scipy.signal
import tensorflow as tf

sys.path.insert(0, os.path.dirname(__file__))
import _np_reference as ref  # noqa: E402

from stylegan2_tf.ops import (conv_downsample_2d, downsample_2d, filter_2d, setup_kernel,  # noqa: E402
                              upfirdn_2d, upsample_2d, upsample_conv_2d)
from stylegan2_tf.ops.upfirdn_2d import UPSAMPLE_CONV_FORMS, upsample_conv_form  # noqa: E402

K1331 = [1, 3, 3, 1]


def _rand(shape, seed, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _scipy_separable(x, ky, kx, up, down):
    """scipy.signal.upfirdn along H (with ky) then along W (with kx)."""
    (upy, upx), (downy, downx) = up, down
    y = scipy.signal.upfirdn(ky, x, up=upy, down=downy, axis=1)
    return scipy.signal.upfirdn(kx, y, up=upx, down=downx, axis=2)


# --------------------------------------------------------------------------- upfirdn_2d


@pytest.mark.parametrize("up,down", [
    ((1, 1), (1, 1)), ((2, 2), (1, 1)), ((1, 1), (2, 2)), ((3, 3), (1, 1)), ((1, 1), (3, 3)),
    ((2, 1), (1, 3)), ((1, 3), (2, 1)), ((3, 2), (2, 3)),
])
def test_upfirdn_matches_scipy_separable_asymmetric(up, down):
    ky = np.array([1.0, 2.0, 5.0])          # asymmetric, length 3
    kx = np.array([3.0, -1.0, 0.5, 2.0])    # asymmetric, length 4 (non-square kernel)
    assert not np.allclose(ky, ky[::-1]) and not np.allclose(kx, kx[::-1])
    x = _rand([2, 5, 7, 3], seed=1)
    # Full padding: every output sample scipy produces is produced here too.
    pad = (len(ky) - 1, len(ky) - 1, len(kx) - 1, len(kx) - 1)
    got = upfirdn_2d(tf.constant(x), np.outer(ky, kx), up=up, down=down, pad=pad).numpy()
    want = _scipy_separable(x, ky, kx, up, down)
    (upy, upx), (downy, downx) = up, down
    # Our zero insertion appends up-1 zeros after the last sample, scipy's does not;
    # the output is therefore longer by the samples that only see those zeros.
    assert got.shape == (2, -(-(5 * upy + len(ky) - 1) // downy), -(-(7 * upx + len(kx) - 1) // downx), 3)
    assert want.shape[1] <= got.shape[1] and want.shape[2] <= got.shape[2]
    np.testing.assert_allclose(got[:, :want.shape[1], :want.shape[2]], want, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(got[:, want.shape[1]:], 0.0)
    np.testing.assert_array_equal(got[:, :, want.shape[2]:], 0.0)


def test_upfirdn_flip_kernel_is_correlation():
    ky, kx = np.array([1.0, 2.0, 5.0]), np.array([3.0, -1.0, 0.5])
    x = _rand([1, 6, 6, 2], seed=2)
    got = upfirdn_2d(tf.constant(x), np.outer(ky, kx), pad=(2, 2), flip_kernel=True).numpy()
    want = _scipy_separable(x, ky[::-1], kx[::-1], (1, 1), (1, 1))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("up,down,pad", [
    (1, 1, (1, 2, 0, 3)),
    (2, 1, (3, 1, 2, 2)),
    (1, 2, (2, 0, 1, 3)),
    ((2, 3), (3, 2), (1, 2, 3, 0)),
    (2, 2, (-1, 2, 3, -2)),     # mixed crop / pad
])
def test_upfirdn_nonseparable_matches_direct_loop(up, down, pad):
    k = np.array([[1.0, 2.0, 0.0, -1.0],
                  [0.5, 3.0, 1.0, 0.0],
                  [2.0, -1.0, 4.0, 1.5]])   # 3x4, not of rank one
    assert np.linalg.matrix_rank(k) > 1
    x = _rand([2, 6, 5, 3], seed=3)
    got = upfirdn_2d(tf.constant(x), k, up=up, down=down, pad=pad).numpy()
    want = ref.upfirdn_2d(x, k, up=up, down=down, pad=pad)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_upfirdn_negative_padding_crops():
    x = _rand([2, 7, 8, 3], seed=4)
    one = np.ones([1, 1])
    got = upfirdn_2d(tf.constant(x), one, pad=(-1, -2, -3, 0)).numpy()
    np.testing.assert_array_equal(got, x[:, 1:-2, 3:, :])
    got = upfirdn_2d(tf.constant(x), one, pad=(-2, -2)).numpy()
    np.testing.assert_array_equal(got, x[:, 2:-2, 2:-2, :])
    # Cropping happens after zero insertion and before filtering.
    got = upfirdn_2d(tf.constant(x), one, up=2, pad=(-1, -1, -2, 0)).numpy()
    u = np.zeros([2, 14, 16, 3])
    u[:, ::2, ::2] = x
    np.testing.assert_array_equal(got, u[:, 1:-1, 2:, :])
    k = np.array([[1.0, 2.0], [3.0, -4.0]])
    got = upfirdn_2d(tf.constant(x), k, pad=(-2, -1, -1, -3)).numpy()
    want = upfirdn_2d(tf.constant(x[:, 2:-1, 1:-3, :]), k, pad=(0, 0)).numpy()
    np.testing.assert_array_equal(got, want)


def test_upfirdn_float32_and_output_shape():
    x = _rand([3, 9, 4, 2], seed=5, dtype=np.float32)
    k = setup_kernel(K1331)
    y = upfirdn_2d(x, k, up=(1, 2), down=(3, 1), pad=(1, 2, 0, 1))
    assert y.dtype == tf.float32
    assert tuple(y.shape) == (3, (9 + 3 - 4) // 3 + 1, (8 + 1 - 4) // 1 + 1, 2)
    np.testing.assert_allclose(y.numpy(), ref.upfirdn_2d(x, k, (1, 2), (3, 1), (1, 2, 0, 1)), atol=1e-5)


# ----------------------------------------------------------------- filter / up / down


def test_setup_kernel():
    np.testing.assert_allclose(setup_kernel(K1331), np.outer(K1331, K1331) / 64.0, rtol=1e-7)
    k2 = np.array([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_allclose(setup_kernel(k2), k2 / 10.0, rtol=1e-7)


def _bilinear_1d_ref(x, axis):
    """[1,3,3,1] upsampling closed form: y[2j] = .75 x[j] + .25 x[j-1],
    y[2j+1] = .75 x[j] + .25 x[j+1], zeros outside the image."""
    x = np.moveaxis(x, axis, 0)
    xp = np.concatenate([np.zeros_like(x[:1]), x, np.zeros_like(x[:1])])
    y = np.empty((2 * x.shape[0],) + x.shape[1:])
    y[0::2] = 0.75 * x + 0.25 * xp[:-2]
    y[1::2] = 0.75 * x + 0.25 * xp[2:]
    return np.moveaxis(y, 0, axis)


def _down1331_1d_ref(x, axis):
    """y[j] = (x[2j-1] + 3 x[2j] + 3 x[2j+1] + x[2j+2]) / 8, zeros outside."""
    x = np.moveaxis(x, axis, 0)
    xp = np.concatenate([np.zeros_like(x[:1]), x, np.zeros_like(x[:1])])  # xp[m] = x[m-1]
    n = x.shape[0] // 2
    j = np.arange(n)
    y = (xp[2 * j] + 3 * xp[2 * j + 1] + 3 * xp[2 * j + 2] + xp[2 * j + 3]) / 8.0
    return np.moveaxis(y, 0, axis)


def _filter1331_1d_ref(x, axis):
    """filter_2d pads ((p+1)//2, p//2) = (2, 1): y[i] = (x[i-2] + 3x[i-1] + 3x[i] + x[i+1]) / 8."""
    x = np.moveaxis(x, axis, 0)
    xp = np.concatenate([np.zeros_like(x[:2]), x, np.zeros_like(x[:1])])  # xp[m] = x[m-2]
    i = np.arange(x.shape[0])
    y = (xp[i] + 3 * xp[i + 1] + 3 * xp[i + 2] + xp[i + 3]) / 8.0
    return np.moveaxis(y, 0, axis)


def test_filter_up_down_1331_closed_forms():
    x = _rand([2, 6, 8, 3], seed=6)
    xt = tf.constant(x)
    np.testing.assert_allclose(upsample_2d(xt, K1331).numpy(),
                               _bilinear_1d_ref(_bilinear_1d_ref(x, 1), 2), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(downsample_2d(xt, K1331).numpy(),
                               _down1331_1d_ref(_down1331_1d_ref(x, 1), 2), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(filter_2d(xt, K1331).numpy(),
                               _filter1331_1d_ref(_filter1331_1d_ref(x, 1), 2), rtol=1e-12, atol=1e-12)


# FIR taps are held in float32 (as in the official code), so kernels that are not
# dyadic fractions are only float32-exact even for float64 images.
TOL32 = dict(rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("k", [K1331, [1, 2, 1], [1, 3, 2, 5, 1], [2.0, 1.0]])
@pytest.mark.parametrize("factor", [2, 3])
def test_up_down_match_padding_rules(k, factor):
    x = _rand([2, 6, 6, 2], seed=7)
    xt = tf.constant(x)
    up = upsample_2d(xt, k, factor=factor, gain=1.5).numpy()
    assert up.shape == (2, 6 * factor, 6 * factor, 2)
    np.testing.assert_allclose(up, ref.upsample_2d(x, k, factor, gain=1.5), **TOL32)
    down = downsample_2d(xt, k, factor=factor, gain=0.5).numpy()
    assert down.shape == (2, 6 // factor, 6 // factor, 2)
    np.testing.assert_allclose(down, ref.downsample_2d(x, k, factor, gain=0.5), **TOL32)


@pytest.mark.parametrize("k", [K1331, [1, 2, 1], [1, 3, 2, 5, 1]])
def test_filter_2d_matches_padding_rule(k):
    # Asymmetric kernels too: the filter is a true convolution.
    x = _rand([1, 7, 5, 2], seed=8)
    kk = ref.fir_kernel(k) * 2.0
    p = kk.shape[0] - 1
    want = ref.upfirdn_2d(x, kk, pad=((p + 1) // 2, p // 2))
    got = filter_2d(tf.constant(x), k, gain=2.0).numpy()
    assert got.shape == x.shape
    np.testing.assert_allclose(got, want, **TOL32)


def test_constant_input_keeps_value_in_interior():
    v = 1.7
    x = tf.fill([1, 12, 12, 2], tf.constant(v, tf.float64))
    y = filter_2d(x, K1331, gain=3.0).numpy()
    np.testing.assert_allclose(y[:, 2:-2, 2:-2], 3.0 * v, rtol=1e-12)
    y = upsample_2d(x, K1331).numpy()
    assert y.shape == (1, 24, 24, 2)
    np.testing.assert_allclose(y[:, 2:-2, 2:-2], v, rtol=1e-12)   # gain factor**2 compensates zeros
    # For factor 3 the taps must have equal polyphase sums: [1,2,3,2,1] (3 = 1+2 = 2+1).
    y = upsample_2d(x, [1, 2, 3, 2, 1], factor=3).numpy()
    assert y.shape == (1, 36, 36, 2)
    np.testing.assert_allclose(y[:, 3:-3, 3:-3], v, rtol=1e-6)  # 1/9 taps: float32-exact only
    y = downsample_2d(x, [1, 2, 3, 2, 1], factor=3).numpy()
    np.testing.assert_allclose(y[:, 1:-1, 1:-1], v, rtol=1e-6)
    y = downsample_2d(x, K1331).numpy()
    assert y.shape == (1, 6, 6, 2)
    np.testing.assert_allclose(y[:, 1:-1, 1:-1], v, rtol=1e-12)
    # Borders see zeros: strictly smaller there.
    assert np.all(downsample_2d(x, K1331).numpy()[:, 0] < v)


@pytest.mark.parametrize("factor", [2, 3])
def test_default_kernels_are_box_and_nearest(factor):
    x = _rand([2, 6, 6, 3], seed=9)
    xt = tf.constant(x)
    pooled = x.reshape(2, 6 // factor, factor, 6 // factor, factor, 3).mean(axis=(2, 4))
    np.testing.assert_allclose(downsample_2d(xt, None, factor=factor).numpy(), pooled, **TOL32)
    nearest = np.repeat(np.repeat(x, factor, axis=1), factor, axis=2)
    np.testing.assert_allclose(upsample_2d(xt, None, factor=factor).numpy(), nearest, **TOL32)


# ------------------------------------------------------------ fused conv + resampling


@pytest.mark.parametrize("form", UPSAMPLE_CONV_FORMS)
@pytest.mark.parametrize("k", [K1331, None, [1, 2, 1]])
@pytest.mark.parametrize("ksize", [1, 3, 5])
def test_upsample_conv_2d_matches_reference(k, ksize, form):
    x = _rand([2, 5, 4, 3], seed=10)
    w = _rand([ksize, ksize, 3, 4], seed=11)
    got = upsample_conv_2d(tf.constant(x), tf.constant(w), k=k, form=form).numpy()
    assert got.shape == (2, 10, 8, 4)
    want = ref.upsample_conv_2d(x, w, k if k is not None else [1, 1])
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    if ksize == 1:  # nothing to pad for the conv: exactly upsample then conv
        np.testing.assert_allclose(got, ref.conv2d_valid(ref.upsample_2d(x, k or [1, 1]), w), rtol=1e-10,
                                   atol=1e-10)


@pytest.mark.parametrize("form", UPSAMPLE_CONV_FORMS)
@pytest.mark.parametrize("k", [[1, 2, 3, 2, 1], None])
@pytest.mark.parametrize("ksize", [1, 3])
def test_fused_resampling_factor_3(k, ksize, form):
    x = _rand([1, 4, 5, 2], seed=22)
    w = _rand([ksize, ksize, 2, 3], seed=23)
    kk = k if k is not None else [1, 1, 1]
    up = upsample_conv_2d(tf.constant(x), tf.constant(w), k=k, factor=3, form=form).numpy()
    assert up.shape == (1, 12, 15, 3)
    np.testing.assert_allclose(up, ref.upsample_conv_2d(x, w, kk, factor=3), **TOL32)
    xd = _rand([1, 9, 6, 2], seed=24)
    down = conv_downsample_2d(tf.constant(xd), tf.constant(w), k=k, factor=3).numpy()
    assert down.shape == (1, 3, 2, 3)
    np.testing.assert_allclose(down, ref.conv_downsample_2d(xd, w, kk, factor=3), **TOL32)


def test_upsample_conv_2d_differs_from_separate_ops_only_at_borders():
    x = _rand([1, 8, 8, 2], seed=12)
    w = _rand([3, 3, 2, 3], seed=13)
    separate = ref.conv2d_same(ref.upsample_2d(x, K1331), w)
    fused = upsample_conv_2d(tf.constant(x), tf.constant(w), K1331).numpy()
    np.testing.assert_allclose(fused[:, 1:-1, 1:-1], separate[:, 1:-1, 1:-1], rtol=1e-10, atol=1e-10)
    assert np.abs(fused[:, 0] - separate[:, 0]).max() > 1e-3   # padding once != padding twice
    # With a zero border the FIR tails vanish, and the two agree everywhere.
    xz = np.pad(x[:, 2:-2, 2:-2], ((0, 0), (2, 2), (2, 2), (0, 0)))
    np.testing.assert_allclose(upsample_conv_2d(tf.constant(xz), tf.constant(w), K1331).numpy(),
                               ref.conv2d_same(ref.upsample_2d(xz, K1331), w), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("form", UPSAMPLE_CONV_FORMS)
def test_upsample_conv_2d_gain(form):
    x = _rand([1, 4, 4, 2], seed=14)
    w = _rand([3, 3, 2, 2], seed=15)
    a = upsample_conv_2d(tf.constant(x), tf.constant(w), K1331, gain=2.5, form=form).numpy()
    np.testing.assert_allclose(a, 2.5 * ref.upsample_conv_2d(x, w, K1331), rtol=1e-10, atol=1e-10)


def test_upsample_conv_2d_forms_agree_in_float32_and_the_automatic_choice():
    # Many channels (the oneDNN kernels' blocked paths) in float32; both forms against numpy.
    x = _rand([2, 6, 5, 40], seed=40, dtype=np.float32)
    w = _rand([3, 3, 40, 24], seed=41, dtype=np.float32)
    want = ref.upsample_conv_2d(x.astype(np.float64), w.astype(np.float64), K1331)
    for form in UPSAMPLE_CONV_FORMS:
        got = upsample_conv_2d(tf.constant(x), tf.constant(w), K1331, form=form).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    # Rule measured in benchmarks/README.md: transposed (oneDNN on AVX-512 and AVX2 CPUs, Eigen),
    # phases whenever grouped (no grouped transposed convolution).
    assert upsample_conv_form() == "transposed" and upsample_conv_form(groups=1) == "transposed"
    assert upsample_conv_form(groups=2) == "phases"
    with pytest.raises(ValueError, match="form must be one of"):
        upsample_conv_2d(tf.constant(x), tf.constant(w), K1331, form="direct")
    with pytest.raises(ValueError, match="only without groups"):
        upsample_conv_2d(tf.constant(np.concatenate([x, x], -1)), tf.constant(w), K1331, groups=2,
                         form="transposed")


@pytest.mark.parametrize("groups", [2, 3])
def test_upsample_conv_2d_grouped_equals_per_group(groups):
    # Grouped convolutions run on the CPU only in float32.
    in_c, out_c = 2, 3
    x = _rand([2, 4, 5, groups * in_c], seed=16, dtype=np.float32)
    w = _rand([3, 3, in_c, groups * out_c], seed=17, dtype=np.float32)
    got = upsample_conv_2d(tf.constant(x), tf.constant(w), K1331, groups=groups).numpy()
    parts = [upsample_conv_2d(tf.constant(x[..., g * in_c:(g + 1) * in_c]),
                              tf.constant(w[..., g * out_c:(g + 1) * out_c]), K1331).numpy()
             for g in range(groups)]
    np.testing.assert_allclose(got, np.concatenate(parts, axis=-1), rtol=1e-5, atol=1e-5)
    want = np.concatenate([ref.upsample_conv_2d(x[..., g * in_c:(g + 1) * in_c],
                                                w[..., g * out_c:(g + 1) * out_c], K1331)
                           for g in range(groups)], axis=-1)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("k", [K1331, None, [1, 2, 1]])
@pytest.mark.parametrize("ksize", [1, 3, 5])
def test_conv_downsample_2d_matches_reference(k, ksize):
    x = _rand([2, 8, 6, 3], seed=18)
    w = _rand([ksize, ksize, 3, 4], seed=19)
    got = conv_downsample_2d(tf.constant(x), tf.constant(w), k=k).numpy()
    assert got.shape == (2, 4, 3, 4)
    want = ref.conv_downsample_2d(x, w, k if k is not None else [1, 1])
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    if ksize == 1:
        np.testing.assert_allclose(got, ref.downsample_2d(ref.conv2d_valid(x, w), k or [1, 1]), rtol=1e-10,
                                   atol=1e-10)


def test_conv_downsample_2d_differs_from_separate_ops_only_at_borders():
    x = _rand([1, 12, 12, 2], seed=20)
    w = _rand([3, 3, 2, 3], seed=21)
    separate = ref.downsample_2d(ref.conv2d_same(x, w), K1331)
    fused = conv_downsample_2d(tf.constant(x), tf.constant(w), K1331).numpy()
    np.testing.assert_allclose(fused[:, 1:-1, 1:-1], separate[:, 1:-1, 1:-1], rtol=1e-10, atol=1e-10)
    assert np.abs(fused[:, 0] - separate[:, 0]).max() > 1e-3
    xz = np.pad(x[:, 2:-2, 2:-2], ((0, 0), (2, 2), (2, 2), (0, 0)))
    np.testing.assert_allclose(conv_downsample_2d(tf.constant(xz), tf.constant(w), K1331).numpy(),
                               ref.downsample_2d(ref.conv2d_same(xz, w), K1331), rtol=1e-10, atol=1e-10)


# ------------------------------------------------------------------------ derivatives


def _num_grad(f, arrays, eps=1e-6):
    """Central finite differences of scalar f(*arrays) w.r.t. every entry of every array."""
    grads = []
    for i, a in enumerate(arrays):
        g = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            plus = [b.copy() for b in arrays]
            minus = [b.copy() for b in arrays]
            plus[i][idx] += eps
            minus[i][idx] -= eps
            g[idx] = (f(*plus) - f(*minus)) / (2 * eps)
        grads.append(g)
    return grads


CASES = {
    "upfirdn_up": (lambda x, w: upfirdn_2d(x, np.array([[1.0, 2.0, 0.5], [0.0, 1.0, 3.0]]), up=2,
                                           pad=(1, 2, 0, 1)), False),
    "upfirdn_down": (lambda x, w: upfirdn_2d(x, np.array([[1.0, 2.0, 0.5], [0.0, 1.0, 3.0]]), down=(2, 3),
                                             pad=(2, 1)), False),
    "upfirdn_updown": (lambda x, w: upfirdn_2d(x, setup_kernel([1, 2, 3]), up=(3, 2), down=(2, 3),
                                               pad=(1, 1, -1, 2)), False),
    "upsample_conv_2d": (lambda x, w: upsample_conv_2d(x, w, K1331, form="transposed"), True),
    "upsample_conv_2d_phases": (lambda x, w: upsample_conv_2d(x, w, K1331, form="phases"), True),
    "conv_downsample_2d": (lambda x, w: conv_downsample_2d(x, w, K1331), True),
}


def _case_inputs(name):
    x = _rand([1, 4, 6, 2], seed=30)
    w = _rand([3, 3, 2, 2], seed=31)
    op, _ = CASES[name]
    y = _rand(op(tf.constant(x), tf.constant(w)).shape, seed=32)
    return x, w, y


@pytest.mark.parametrize("name", sorted(CASES))
def test_first_derivatives_match_finite_differences(name):
    op, has_w = CASES[name]
    x, w, y = _case_inputs(name)

    def loss(xv, wv):  # nonlinear, so that the check is not trivially about a linear map
        return tf.reduce_sum(tf.tanh(op(xv, wv)) * y)

    xt, wt = tf.constant(x), tf.constant(w)
    with tf.GradientTape() as tape:
        tape.watch([xt, wt])
        val = loss(xt, wt)
    gx, gw = tape.gradient(val, [xt, wt])
    nx, nw = _num_grad(lambda a, b: loss(tf.constant(a), tf.constant(b)).numpy(), [x, w])
    np.testing.assert_allclose(gx.numpy(), nx, rtol=1e-6, atol=1e-7)
    if has_w:
        np.testing.assert_allclose(gw.numpy(), nw, rtol=1e-6, atol=1e-7)
    else:
        assert gw is None


@pytest.mark.parametrize("name", sorted(CASES))
def test_second_derivatives_match_finite_differences(name):
    """R1 pattern: P = |dD/dx|^2 with D = sum(tanh(op(x)) * y); dP/dx (and dP/dw)
    by double backprop against finite differences of P. Also a Hessian-vector
    product against finite differences of the first derivative."""
    op, has_w = CASES[name]
    x, w, y = _case_inputs(name)
    v = _rand(x.shape, seed=33)

    def first(xv, wv):
        with tf.GradientTape() as t1:
            t1.watch(xv)
            d = tf.reduce_sum(tf.tanh(op(xv, wv)) * y)
        return t1.gradient(d, xv)

    def penalty(xv, wv):
        g = first(xv, wv)
        return tf.reduce_sum(tf.square(g))

    xt, wt = tf.constant(x), tf.constant(w)
    with tf.GradientTape() as t2:
        t2.watch([xt, wt])
        p = penalty(xt, wt)
    px, pw = t2.gradient(p, [xt, wt])
    assert px is not None
    nx, nw = _num_grad(lambda a, b: penalty(tf.constant(a), tf.constant(b)).numpy(), [x, w], eps=1e-5)
    np.testing.assert_allclose(px.numpy(), nx, rtol=1e-5, atol=1e-6)
    if has_w:
        assert pw is not None
        np.testing.assert_allclose(pw.numpy(), nw, rtol=1e-5, atol=1e-6)

    # Hessian-vector product H v = d/dx <dD/dx, v>, vs. central differences of dD/dx.
    with tf.GradientTape() as t3:
        t3.watch(xt)
        hv_inner = tf.reduce_sum(first(xt, wt) * v)
    hv = t3.gradient(hv_inner, xt).numpy()
    eps = 1e-5
    fd = (first(tf.constant(x + eps * v), wt).numpy() - first(tf.constant(x - eps * v), wt).numpy()) / (2 * eps)
    np.testing.assert_allclose(hv, fd, rtol=1e-5, atol=1e-6)
    assert np.abs(hv).max() > 1e-3   # non-trivial second derivative
