"""stylegan2_tf.ops.strided_conv_2d: the stride-s convolution and its adjoint against tf.nn.conv2d and
tf.nn.conv2d_transpose with their registered gradients (float64, to second order), the filter
gradient by taps against its definition, the rule, and the resampling ops' graphs."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import conv_derivatives

import stylegan2_tf.ops.conv_2d as conv2d_module
import stylegan2_tf.ops.strided_conv_2d as strided_module
from stylegan2_tf.ops.conv_2d import filter_gradient_by_taps
from stylegan2_tf.ops.implementation import use_implementation
from stylegan2_tf.ops.strided_conv_2d import strided_conv2d, strided_conv2d_transpose, strided_filter_gradient_form

STRIDED_CASES = [  # (x shape, kernel shape, stride)
    ((2, 9, 11, 3), (3, 3, 3, 4), 2),    # D's down-sampling convolution (odd sides, as after its FIR)
    ((1, 10, 8, 2), (3, 3, 2, 5), 2),    # even sides: the last row and column are never read
    ((2, 7, 7, 3), (1, 1, 3, 2), 2),     # taps in one phase only
    ((1, 11, 9, 2), (2, 3, 2, 3), 2),
    ((2, 13, 12, 2), (4, 4, 2, 3), 3),
    ((1, 8, 9, 3), (3, 3, 3, 2), 3),
]


@pytest.mark.parametrize("x_shape,w_shape,stride", STRIDED_CASES)
def test_strided_convolution_and_its_adjoint_equal_tf_to_second_order(x_shape, w_shape, stride):
    """strided_conv2d and strided_conv2d_transpose with either filter gradient against tf.nn.conv2d
    and tf.nn.conv2d_transpose with TensorFlow's registered gradients (float64): values, first
    derivatives and the second derivatives R1 takes."""
    rng = np.random.default_rng(sum(x_shape) * 7 + sum(w_shape) + stride)
    x = tf.constant(rng.standard_normal(x_shape))
    w = tf.constant(rng.standard_normal(w_shape))
    y = tf.nn.conv2d(x, w, stride, "VALID")
    probe = tf.constant(rng.standard_normal(y.shape))
    want = conv_derivatives(lambda a, b: tf.nn.conv2d(a, b, stride, "VALID"), x, w, probe)
    # The adjoint maps y-shaped inputs to x-shaped results; probed with an x-shaped tensor.
    x_probe = tf.constant(rng.standard_normal(x_shape))
    want_t = conv_derivatives(lambda a, b: tf.nn.conv2d_transpose(a, b, x_shape, stride, "VALID"), y, w, x_probe)
    for form in ("phases", "kernel"):
        got = conv_derivatives(lambda a, b: strided_conv2d(a, b, stride, filter_gradient=form), x, w, probe)
        got_t = conv_derivatives(lambda a, b: strided_conv2d_transpose(a, b, x_shape, stride, filter_gradient=form),
                             y, w, x_probe)
        for name, g, r in zip(("y", "dx", "dw", "d2x", "d2w") * 2, got + got_t, want + want_t):
            np.testing.assert_allclose(g.numpy(), r.numpy(), rtol=1e-12, atol=1e-12, err_msg=f"{form} {name}")


@pytest.mark.parametrize("stride,kernel_size", [(1, (3, 3)), (2, (3, 3)), (3, (4, 2))])
def test_filter_gradient_by_taps_is_the_sum_over_positions(stride, kernel_size):
    """filter_gradient_by_taps (the taps of conv_2d at stride 1, per stride phase above) against the
    definition, summed in numpy (float64)."""
    rng = np.random.default_rng(5 + stride)
    kh, kw = kernel_size
    x = rng.standard_normal((2, 11, 10, 3))
    out_h, out_w = (11 - kh) // stride + 1, (10 - kw) // stride + 1
    dy = rng.standard_normal((2, out_h, out_w, 2))
    want = np.zeros((kh, kw, 3, 2))
    for i in range(kh):
        for j in range(kw):
            window = x[:, i:i + stride * (out_h - 1) + 1:stride, j:j + stride * (out_w - 1) + 1:stride]
            want[i, j] = np.einsum("npqc,npqo->co", window, dy)
    got = filter_gradient_by_taps(tf.constant(x), tf.constant(dy), kernel_size, stride).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_strided_filter_gradient_rule():
    """The phases from 64 channels and 32x32 inputs with oneDNN on an AVX-512 CPU, from 64x64 inputs on
    AVX2; TensorFlow's kernel with Eigen, for other dtypes, unknown sizes and
    off CPUs."""
    def form(side, channels, kernels, dtype=tf.float32, x_shape=None, w_channels=None):
        x = tf.zeros([4, side, side, channels], dtype)
        w = tf.zeros([3, 3, w_channels or (x_shape or x.shape)[-1], 8], dtype)
        return strided_filter_gradient_form(x, w, kernels, x_shape)
    assert form(129, 64, "onednn") == "phases" and form(32, 512, "onednn") == "phases"
    assert form(1025, 32, "onednn") == "kernel" and form(31, 512, "onednn") == "kernel"
    assert form(65, 16, "onednn-avx2") == "phases" and form(64, 512, "onednn-avx2") == "phases"
    assert form(63, 512, "onednn-avx2") == "kernel" and form(33, 512, "onednn-avx2") == "kernel"
    assert form(129, 256, "eigen") == "kernel" and form(129, 256, None) == "kernel"
    assert form(129, 256, "onednn", dtype=tf.float64) == "kernel"
    assert form(129, 256, "onednn", x_shape=(None, 129, 129, 256)) == "kernel"
    assert form(9, 64, "onednn", x_shape=(4, 129, 129, 256)) == "phases"
    assert form(129, 256, "onednn", w_channels=128) == "kernel"   # grouped
    with use_implementation("ref"):
        assert form(129, 256, "auto") == "kernel"


@pytest.mark.parametrize("kind", ["down", "up"])
def test_resampling_convolutions_take_the_phases_where_the_rule_says(monkeypatch, kind):
    """conv_downsample_2d and upsample_conv_2d's transposed form: the graph of their gradients holds
    TensorFlow's strided filter gradient (Conv2DBackpropFilter) only where the rule says 'kernel'."""
    from stylegan2_tf.ops import conv_downsample_2d, upsample_conv_2d
    monkeypatch.setattr(strided_module, "runs_on_cpu", lambda x: True)
    x = tf.zeros([2, 32, 32, 64]) if kind == "down" else tf.zeros([2, 16, 16, 64])
    w = tf.zeros([3, 3, 64, 64])

    def op_types():
        def grads(x, w):
            with tf.GradientTape() as tape:
                tape.watch([x, w])
                if kind == "down":
                    y = conv_downsample_2d(x, w, k=[1, 3, 3, 1])
                else:
                    y = upsample_conv_2d(x, w, k=[1, 3, 3, 1], form="transposed")
                total = tf.reduce_sum(y)
            return tape.gradient(total, [x, w])
        graph = tf.function(grads).get_concrete_function(tf.TensorSpec(x.shape), tf.TensorSpec(w.shape)).graph
        return {op.type for op in graph.get_operations()}
    monkeypatch.setattr(conv2d_module, "_cpu_kernels", "onednn")
    assert "Conv2DBackpropFilter" not in op_types()
    monkeypatch.setattr(conv2d_module, "_cpu_kernels", "eigen")
    assert "Conv2DBackpropFilter" in op_types()


def test_bad_strided_form():
    with pytest.raises(ValueError, match="filter_gradient must be one of"):
        strided_conv2d(tf.zeros([1, 5, 5, 1]), tf.zeros([3, 3, 1, 1]), 2, filter_gradient="taps")
    with pytest.raises(ValueError, match="'phases' form needs a static input shape and an ungrouped kernel"):
        strided_conv2d_transpose(tf.zeros([1, 2, 2, 2]), tf.zeros([3, 3, 1, 2]), [1, 5, 5, 2], 2,
                                 filter_gradient="phases")
    unknown_batch = tf.function(lambda y: strided_conv2d(y, tf.zeros([3, 3, 1, 1]), 2, filter_gradient="phases"))
    with pytest.raises(ValueError, match="'phases' form needs a static input shape"):
        unknown_batch.get_concrete_function(tf.TensorSpec([None, 5, 5, 1]))
