"""Where NVIDIA's PyTorch float64 numbers differ from this port's float64 arithmetic, and how a test
makes the port compute PyTorch's version, to compare float64 against float64 at ~1e-13 instead of
at the ~1e-8 those differences leave.

The port follows NVIDIA's TF1 code. stylegan2-ada-pytorch (which computed the float64 references
in tests/fixtures/stylegan2_pkl and tests/fixtures/variants) differs from it in four places, each
of relative size ~1e-8, invisible in float32:

1. Demodulation epsilon. TF1 adds 1e-8 to the sum of squares of the weights times their runtime
   gain 1/sqrt(fan_in); PyTorch's modulated_conv2d to that of the weights without the gain (the
   gain cancels in the demodulated result). PyTorch's arithmetic is the port's with the epsilon
   divided by fan_in.
2. lrelu slope. TensorFlow's LeakyRelu op holds alpha as a float32 attribute (0.2 -> 0.200000003),
   in float64 too; PyTorch multiplies by 0.2 in the tensor's precision.
3. Truncation. TF1 multiplies by psi as a float32 array (0.7 -> 0.699999988), as the port does;
   PyTorch's lerp takes psi in the tensor's precision.
4. Modulation bias. legacy.py converts TF1's mod_bias by adding the 1 in float32
   (float32(mod_bias + 1)); TF1 and the port add it at run time. Only the fixtures made from a
   stylegan2_pkl pickle keep this rounding: tests/fixtures/variants/make_references.py redoes the
   addition in float64.
"""

import contextlib

import numpy as np
import tensorflow as tf

import stylegan2_tf.layers.modulated as modulated
import stylegan2_tf.networks.mapping as mapping
from stylegan2_tf.ops import implementation


@contextlib.contextmanager
def exact_lrelu_slope():
    """Inside: the reference ops, lrelu with the slope 0.2 in the tensor's precision (2; also what
    TF1's StyleGAN1 code computes, max(x, 0.2 x))."""
    leaky_relu = tf.nn.leaky_relu
    tf.nn.leaky_relu = lambda x, alpha=0.2, name=None: tf.where(x > 0, x, x * tf.constant(alpha, x.dtype))
    try:
        with implementation.use_implementation("ref"):   # the kernel's slope is the op's
            yield
    finally:
        tf.nn.leaky_relu = leaky_relu


@contextlib.contextmanager
def pytorch_demodulation_epsilon():
    """Inside: the demodulation epsilon where PyTorch adds it (1)."""
    modulated_conv2d, eps = modulated.modulated_conv2d, modulated.DEMODULATION_EPS

    def with_pytorch_epsilon(x, weight, styles, *args, **kwargs):
        ksize, _, in_ch, _ = weight.shape
        modulated.DEMODULATION_EPS = eps / (ksize * ksize * in_ch)
        try:
            return modulated_conv2d(x, weight, styles, *args, **kwargs)
        finally:
            modulated.DEMODULATION_EPS = eps

    modulated.modulated_conv2d = with_pytorch_epsilon
    try:
        yield
    finally:
        modulated.modulated_conv2d = modulated_conv2d


@contextlib.contextmanager
def exact_truncation_psi():
    """Inside: psi in float64 (3)."""
    dtype, mapping.TRUNCATION_PSI_DTYPE = mapping.TRUNCATION_PSI_DTYPE, tf.float64
    try:
        yield
    finally:
        mapping.TRUNCATION_PSI_DTYPE = dtype


@contextlib.contextmanager
def pytorch_float64_arithmetic():
    """Inside: PyTorch's arithmetic (1, 2 and 3)."""
    with exact_lrelu_slope(), pytorch_demodulation_epsilon(), exact_truncation_psi():
        yield


def round_modulation_biases_like_legacy(net):
    """Rounds every mod_bias of `net` (float64) as legacy.py's conversion does (4): afterwards
    mod_bias + 1 equals float32(mod_bias + 1) exactly."""
    rounded = 0
    for layer in net._flatten_layers(include_self=True):
        if isinstance(layer, modulated.ModulatedConv2d):
            b = layer.affine.bias
            b.assign(np.float32(b.numpy() + 1).astype(np.float64) - 1)
            rounded += 1
    assert rounded, "no modulated convolutions found"
