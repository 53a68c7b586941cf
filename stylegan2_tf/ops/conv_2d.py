"""Stride-1 `tf.nn.conv2d` whose filter gradient can be computed as one matrix product per tap.

    dW[i, j] = sum over (n, p, q) of  x_pad[n, p + i, q + j, :]^T  dY[n, p, q, :]       ([C, O])

On CPUs where TensorFlow's oneDNN kernels are on but the CPU has AVX2 and no AVX-512, oneDNN's
filter-gradient kernel (Conv2DBackpropFilter) runs far below its forward and input-gradient
kernels on large images: 48-67 GFLOP/s at 128x128 with 128 channels, batch 8-4, on a 2-core EPYC, where
its forward convolution runs at about 175 GFLOP/s and the kh*kw products above at 115
(benchmarks/conv_throughput.py; figures in benchmarks/README.md). There `conv2d` computes the
filter gradient as those products, and the input gradient as the forward convolution of dY with the
flipped, transposed kernel (through `conv2d` again, so a second derivative -- R1, path length --
takes the same route). Everywhere else it is `tf.nn.conv2d`. Both give the same numbers up to float
rounding.
"""

import tensorflow as tf

from .capabilities import cpu_conv_kernels, runs_on_cpu

# The rule, measured with benchmarks/conv_throughput.py on an AVX2-only CPU with oneDNN on
# (float32): the tap products win from 64x64 outputs on (1.4-2.4x), tie at 32x32 and lose below.
# With oneDNN off, Eigen's filter gradient wins or ties at every size; on AVX-512 CPUs it is not measured,
# so the rule stays off there.
TAP_GRADIENT_MIN_PIXELS = 64 * 64

_tap_gradient_machine = None


def conv2d(x, w, padding="SAME", filter_gradient=None):
    """`tf.nn.conv2d(x, w, strides=1, padding=padding)` for NHWC x and an ungrouped kernel w
    [kh, kw, C, O]; padding: 'SAME', 'VALID' or [[top, bottom], [left, right]] (negative crops).

    filter_gradient: 'taps' | 'kernel' | None (automatic: `filter_gradient_form`): how the
    gradient with respect to w is computed ('kernel': TensorFlow's own)."""
    x = tf.convert_to_tensor(x)
    w = tf.convert_to_tensor(w, dtype=x.dtype)
    pads = _explicit_pads(padding, w.shape[0], w.shape[1])
    if min(min(pair) for pair in pads) < 0:
        x = _pad_or_crop(x, tuple((min(a, 0), min(b, 0)) for a, b in pads))
        pads = tuple((max(a, 0), max(b, 0)) for a, b in pads)
    filter_gradient_was_automatic = filter_gradient is None
    if filter_gradient_was_automatic:
        filter_gradient = filter_gradient_form(x, w)
    if filter_gradient not in ("taps", "kernel"):
        raise ValueError(f"conv2d: filter_gradient must be 'taps', 'kernel' or None, got {filter_gradient!r}")
    if filter_gradient == "kernel" or x.shape[-1] != w.shape[2]:
        return tf.nn.conv2d(x, w, strides=1, padding=_tf_padding(pads, w.shape[0], w.shape[1]))
    if None in x.shape[1:]:
        raise ValueError("conv2d: the tap form of the filter gradient needs static spatial sizes and channels")
    return _conv2d_tap_filter_gradient(x, w, pads, None if filter_gradient_was_automatic else "taps")


def filter_gradient_form(x, w):
    """'taps' where the tap products are measured to beat the kernel for this convolution
    (float32, on a CPU whose oneDNN kernels are AVX2 ones, outputs of at least
    TAP_GRADIENT_MIN_PIXELS), else 'kernel'."""
    height, width = x.shape[1], x.shape[2]
    if x.dtype != tf.float32 or height is None or width is None or x.shape[-1] != w.shape[2]:
        return "kernel"
    if height * width < TAP_GRADIENT_MIN_PIXELS or not runs_on_cpu(x) or not _avx2_onednn_machine():
        return "kernel"
    return "taps"


def _avx2_onednn_machine():
    global _tap_gradient_machine
    if _tap_gradient_machine is None:
        _tap_gradient_machine = cpu_conv_kernels() == "onednn-avx2"
    return _tap_gradient_machine


def _explicit_pads(padding, kh, kw):
    """((top, bottom), (left, right)) for a stride-1 convolution with a kh x kw kernel."""
    if padding == "VALID":
        return (0, 0), (0, 0)
    if padding == "SAME":
        return ((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2)
    (top, bottom), (left, right) = padding
    return (int(top), int(bottom)), (int(left), int(right))


def _tf_padding(pads, kh, kw):
    """tf.nn.conv2d's padding argument for non-negative pads: 'VALID' / 'SAME' where they are."""
    if pads == ((0, 0), (0, 0)):
        return "VALID"
    if pads == _explicit_pads("SAME", kh, kw):
        return "SAME"
    return [[0, 0], list(pads[0]), list(pads[1]), [0, 0]]


def _pad_or_crop(x, pads):
    """x padded with zeros by pads ((top, bottom), (left, right)); negative amounts crop."""
    (top, bottom), (left, right) = pads
    if min(top, bottom, left, right) < 0:
        x = x[:, max(-top, 0):x.shape[1] - max(-bottom, 0), max(-left, 0):x.shape[2] - max(-right, 0), :]
        top, bottom, left, right = (max(v, 0) for v in (top, bottom, left, right))
    if top or bottom or left or right:
        x = tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]])
    return x


def tap_filter_gradient(x, dy, pads, kernel_size):
    """The filter gradient [kh, kw, C, O] of the stride-1 convolution of x [N, H, W, C] padded by
    pads, given the output gradient dy [N, Ho, Wo, O]: one [C, N*Ho*Wo] x [N*Ho*Wo, O] product per
    tap."""
    kh, kw = kernel_size
    xp = _pad_or_crop(x, pads)
    out_h, out_w, channels, outputs = dy.shape[1], dy.shape[2], x.shape[-1], dy.shape[-1]
    dy_rows = tf.reshape(dy, [-1, outputs])
    taps = [tf.matmul(tf.reshape(xp[:, i:i + out_h, j:j + out_w, :], [-1, channels]), dy_rows, transpose_a=True)
            for i in range(kh) for j in range(kw)]
    return tf.reshape(tf.stack(taps), [kh, kw, channels, outputs])


def _conv2d_tap_filter_gradient(x, w, pads, input_gradient_form):
    kh, kw = w.shape[0], w.shape[1]
    # The input gradient is the 'full' correlation of dY with the kernel turned by 180 degrees
    # (input and output channels swapped), cropped by the forward padding.
    input_pads = tuple((k - 1 - a, k - 1 - b) for k, (a, b) in zip((kh, kw), pads))

    @tf.custom_gradient
    def forward(x, w):
        y = tf.nn.conv2d(x, w, strides=1, padding=_tf_padding(pads, kh, kw))

        def gradient(dy):
            w_turned = tf.transpose(tf.reverse(w, [0, 1]), [0, 1, 3, 2])
            dx = conv2d(dy, w_turned, padding=input_pads, filter_gradient=input_gradient_form)
            return dx, tap_filter_gradient(x, dy, pads, (kh, kw))
        return y, gradient

    return forward(x, w)
