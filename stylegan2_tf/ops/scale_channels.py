"""Per-sample channel scaling y[n, ..., c] = x[n, ..., c] * s[n, c]: the style modulation (Eq. 1)
and the demodulation (Eq. 2) of the non-fused modulated convolution, applied to the activations
(layers/modulated.py).

Reference: one broadcast multiply; TensorFlow's gradient of it makes three passes over the
activations (dy * s, dy * x, and the sum of the latter over each sample's rows).
Kernel (CPU, float32/64): the same multiply forward, and custom_ops/scale_channels.cc's gradient,
which makes dx = dy * s and ds = sum(dy * x) in one pass. Its own gradient (path-length
regularization differentiates the generator twice) is written below with the same two
functions, so derivatives of every order exist.
"""

import tensorflow as tf

from . import custom_ops, implementation

def scale_channels(x, s, impl=None):
    """x [N, ..., C] times s [N, C] broadcast over the middle axes; s is cast to x's dtype.

    impl: 'auto' | 'ref' | 'custom' as for the other ops (stylegan2_tf/ops/implementation.py); the
    kernel serves CPUs in float32/64, anything else takes the reference (same numbers)."""
    x = tf.convert_to_tensor(x)
    s = tf.cast(s, x.dtype)
    if _kernel_serves(x, s, impl):
        return _kernel(x, s)
    return _reference(x, s)


def _reference(x, s):
    # Reshape rather than s[:, None, None, :]: a strided slice, whose gradient is a scatter.
    return x * tf.reshape(s, [-1] + [1] * (x.shape.rank - 2) + [s.shape[-1]])


def _kernel_serves(x, s, impl):
    if x.shape.rank is None or x.shape.rank < 2 or s.shape.rank != 2:
        return False
    if s.shape[-1] != x.shape[-1] or s.shape[-1] is None:
        return False
    if x.shape[0] is not None and s.shape[0] is not None and x.shape[0] != s.shape[0]:
        return False  # s broadcast over the batch: the reference
    return implementation.cpu_only_kernel_fits(x.dtype) and implementation.choose("ScaleChannels", x.dtype,
                                                                                    impl) == "custom"


def _kernel(x, s):
    @tf.custom_gradient
    def forward(x, s):
        def grad(dy):
            # Named like TensorFlow's own gradients ("<op>_grad"), which a custom gradient's are not.
            with tf.name_scope("scale_channels_grad"):
                return _gradient(dy, x, s)
        return _reference(x, s), grad
    return forward(x, s)


def _gradient(dy, x, s):
    """(dy * s, the sum of dy * x over each sample's rows) from one kernel pass; differentiable."""
    @tf.custom_gradient
    def gradient(dy, x, s):
        dx, ds = custom_ops.library().sg2_scale_channels_grad(dy, x, s)

        def grad(g_dx, g_ds):
            # dx = dy * s:       d/d(dy) = g_dx * s,  d/ds = sum(g_dx * dy)  -- _gradient(g_dx, dy, s)
            # ds = sum(dy * x):  d/d(dy) = x * g_ds,  d/dx = dy * g_ds
            with tf.name_scope("scale_channels_grad_grad"):
                d_dy, d_x, d_s = tf.zeros_like(dy), tf.zeros_like(x), tf.zeros_like(s)
                if g_dx is not None:
                    d_dy, d_s = _gradient(g_dx, dy, s)
                if g_ds is not None:
                    d_dy = d_dy + _kernel(x, g_ds)
                    d_x = _kernel(dy, g_ds)
                return d_dy, d_x, d_s
        return (dx, ds), grad
    return gradient(dy, x, s)
