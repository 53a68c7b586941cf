"""Stride-s 'VALID' convolutions (`strided_conv2d`) and their adjoint, the transposed convolution
(`strided_conv2d_transpose`): the resampling convolutions of ops/upfirdn_2d.py (D's down-sampling
convolution after its FIR, G's transposed up-sampling convolution). Where the rule below says so,
their filter gradient is one matrix product per tap over the input's stride phases
(`conv_2d.filter_gradient_by_taps`) in place of TensorFlow's kernel; the forward pass and the input
gradient are TensorFlow's either way, and the numbers are the same up to float rounding.
"""

import tensorflow as tf

from . import implementation
from .capabilities import runs_on_cpu
from .conv_2d import cpu_kernel_family, filter_gradient_by_taps

# oneDNN's filter gradient for these (Conv2DBackpropFilter with strides) runs far below its forward
# and input-gradient kernels: 50-85 GFLOP/s for a stride-2 3x3 kernel from 128x128 to 512x512 inputs
# with 64-256 channels on an AVX-512 CPU, batch 4, where its forward convolution runs at about 200
# (benchmarks/README.md). The same sum as one [C, rows] x [rows, O] product per tap over the input's
# stride phases ('phases': tap (i, j) reads phase (i mod s, j mod s) of x shifted by
# (i // s, j // s), so each phase is a stride-1 filter gradient with its own taps) ran 1.04-2.6x oneDNN's from 64
# channels at every size from 8x8 to 512x512, and 0.6-0.7x with 32 channels at 1024x1024 (forward +
# both gradients 1.06-1.8x from 32x32 to 512x512, most from 128x128 to 256x256). On a real AVX2 EPYC
# (oneDNN's strided filter gradient at 15-19 GFLOP/s from 128x128 to 512x512 inputs): 1.6-5.5x from
# 64x64 at every channel count (forward + both gradients 1.2-3.0x), 1.15-1.4x at 32x32 and 16x16
# with 512 channels. Eigen's kernel (oneDNN off) beats it everywhere, on both. Below 32x32 (64x64 on
# AVX2, where the small sizes gain least) the gain is a few milliseconds against some 30 more graph
# ops per convolution and order (time to the first step), so the rule starts there. The forward and
# input-gradient convolutions stay TensorFlow's.
STRIDED_PHASES_MIN_CHANNELS = {"onednn": 64, "onednn-avx2": 1}
STRIDED_PHASES_MIN_PIXELS = {"onednn": 32 * 32, "onednn-avx2": 64 * 64}
STRIDED_FILTER_GRADIENT_FORMS = ("phases", "kernel")


def strided_filter_gradient_form(x, w, kernels="auto", x_shape=None):
    """'phases' or 'kernel' (TensorFlow's) for the filter gradient of a stride-s convolution of an
    input of x's shape (or x_shape) with w [kh, kw, C, O]; x says the dtype and device. kernels: as in
    `conv_2d.filter_gradient_form`."""
    shape = tuple(x.shape if x_shape is None else x_shape)
    if x.dtype != tf.float32 or None in shape or shape[-1] != w.shape[2]:
        return "kernel"
    if kernels == "auto":
        if not runs_on_cpu(x) or implementation.forced() == "ref":
            return "kernel"
        kernels = cpu_kernel_family()
    if (shape[-1] >= STRIDED_PHASES_MIN_CHANNELS.get(kernels, float("inf"))
            and shape[1] * shape[2] >= STRIDED_PHASES_MIN_PIXELS.get(kernels, float("inf"))):
        return "phases"
    return "kernel"


def strided_conv2d(x, w, stride, filter_gradient=None):
    """`tf.nn.conv2d(x, w, strides=stride, padding='VALID')` for NHWC x and an ungrouped kernel w
    [kh, kw, C, O]. filter_gradient: 'phases' | 'kernel' | None (automatic:
    `strided_filter_gradient_form`); the input gradient is TensorFlow's transposed convolution
    either way (`strided_conv2d_transpose`, whose own filter gradient takes the same form)."""
    x = tf.convert_to_tensor(x)
    w = tf.convert_to_tensor(w, dtype=x.dtype)
    form = _strided_form(x, w, x.shape, filter_gradient)
    if form == "kernel":
        return tf.nn.conv2d(x, w, strides=stride, padding="VALID")
    return _strided_conv2d_phases(x, w, stride)


def strided_conv2d_transpose(y, w, x_shape, stride, filter_gradient=None):
    """The adjoint of `strided_conv2d` for inputs of x_shape ([N, H, W, C]; N may be None):
    `tf.nn.conv2d_transpose(y, w, x_shape, strides=stride, padding='VALID')` with w [kh, kw, C, O]
    and y [N, Ho, Wo, O]. filter_gradient: as in `strided_conv2d` (the filter gradient reads the
    gradient of the result, of x_shape)."""
    y = tf.convert_to_tensor(y)
    w = tf.convert_to_tensor(w, dtype=y.dtype)
    x_shape = [y.shape[0] if x_shape[0] is None else x_shape[0], *x_shape[1:]]
    form = _strided_form(y, w, x_shape, filter_gradient)
    if form == "kernel":
        return tf.nn.conv2d_transpose(y, w, _dynamic_batch(y, x_shape), strides=stride, padding="VALID")
    return _strided_conv2d_transpose_phases(y, w, x_shape, stride)


def _strided_form(x, w, x_shape, filter_gradient):
    if filter_gradient is None:
        filter_gradient = strided_filter_gradient_form(x, w, x_shape=x_shape)
    if filter_gradient not in STRIDED_FILTER_GRADIENT_FORMS:
        raise ValueError(f"strided convolution: filter_gradient must be one of {STRIDED_FILTER_GRADIENT_FORMS} "
                         f"or None, got {filter_gradient!r}")
    if filter_gradient == "phases" and (None in tuple(x_shape) or x_shape[-1] != w.shape[2]):
        raise ValueError(f"strided convolution: the 'phases' form needs a static input shape and an ungrouped "
                         f"kernel, got input {tuple(x_shape)} and kernel {tuple(w.shape)}")
    return filter_gradient


def _dynamic_batch(like, shape):
    return [tf.shape(like)[0], *shape[1:]] if shape[0] is None else list(shape)


def _strided_conv2d_phases(x, w, stride):
    kernel_size = (w.shape[0], w.shape[1])

    @tf.custom_gradient
    def forward(x, w):
        def gradient(dy):
            with tf.name_scope("strided_conv2d_grad"):   # a gradient's scope, as the profiler reads it
                return (_strided_conv2d_transpose_phases(dy, w, x.shape, stride),
                        filter_gradient_by_taps(x, dy, kernel_size, stride))
        return tf.nn.conv2d(x, w, strides=stride, padding="VALID"), gradient

    return forward(x, w)


def _strided_conv2d_transpose_phases(y, w, x_shape, stride):
    kernel_size = (w.shape[0], w.shape[1])

    @tf.custom_gradient
    def forward(y, w):
        # The transposed convolution is linear in y and w: its gradient is, for y, the forward
        # convolution of g, and for w, the filter gradient of that convolution taken at y.
        def gradient(g):
            with tf.name_scope("strided_conv2d_transpose_grad"):
                return _strided_conv2d_phases(g, w, stride), filter_gradient_by_taps(g, y, kernel_size, stride)
        return tf.nn.conv2d_transpose(y, w, list(x_shape), strides=stride, padding="VALID"), gradient

    return forward(y, w)
