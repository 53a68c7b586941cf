"""Stride-1 convolutions whose gradients can be computed as matrix products (`conv2d`, in place of
`tf.nn.conv2d`), and the filter gradient as one matrix product per tap that they and the stride-s
convolutions of ops/strided_conv_2d.py share (`filter_gradient_by_taps`).

    dW[i, j] = sum over (n, p, q) of  x_pad[n, p + i, q + j, :]^T  dY[n, p, q, :]       ([C, O])

On CPUs where TensorFlow's oneDNN kernels are on but the CPU has AVX2 and no AVX-512, oneDNN's
filter-gradient kernel (Conv2DBackpropFilter) runs far below its forward and input-gradient
kernels: 48-67 GFLOP/s at 128x128 with 128 channels, batch 8-4, on a 2-core EPYC, where its forward
convolution runs at about 175 GFLOP/s and the kh*kw products above at 95-115
(benchmarks/conv_throughput.py; figures in benchmarks/README.md). There `conv2d` computes the
filter gradient as those products ('taps'), and the input gradient as the forward convolution of dY
with the flipped, transposed kernel (through `conv2d` again, so a second derivative -- R1, path
length -- takes the same route). A 3x3 convolution and both its gradients can instead go through
Winograd's F(2x2, 3x3) ('winograd': 16 products per tile, 2.25x fewer multiply-adds): where the C++
kernels are built, through custom_ops/winograd_conv_2d.cc (F(4x4, 3x3) where that is faster: 4x
fewer), which beats TensorFlow's kernels from 32 channels on AVX-512 and AVX2 CPUs (oneDNN's and
Eigen's); elsewhere through the TensorFlow ops below, which beat them from 256
channels on AVX2 and AVX-512 CPUs alike. Everywhere else it is `tf.nn.conv2d`. All give the same
numbers up to float rounding.
"""

import numpy as np
import tensorflow as tf

from . import custom_ops, implementation
from .capabilities import cpu_conv_kernels, runs_on_cpu

# The rule, by TensorFlow's CPU convolution kernels (`capabilities.cpu_conv_kernels`) and by which
# implementation of Winograd runs ('ref': the TensorFlow ops below; 'custom': the C++ kernel,
# custom_ops/winograd_conv_2d.cc), measured with benchmarks/conv_throughput.py and
# benchmarks/train.py (float32, batch 4; benchmarks/README.md):
# - oneDNN on an AVX2-only CPU ('onednn-avx2'): the filter gradient as tap products wins from 64x64
#   outputs on (1.4-2.4x), ties at 32x32 and loses below. Winograd's filter gradient (reference
#   ops) 1.6-1.9x the taps and its forward pass 1.2-1.3x oneDNN's at 64x64 and 32x32 with 256-512
#   channels; with 128 channels it about ties, not worth its larger graph and memory. The kernel
#   (on a real AVX2 EPYC): forward + both gradients 1.2-3.1x the faster of oneDNN's kernels and the
#   taps from 32 channels at 256x256 to 512 channels at 8x8 (e.g. 128x128/128 257 against 129
#   GFLOP/s, 32x32/512 323 against 105, 256x256/32 122 against 86).
# - oneDNN on an AVX-512 CPU ('onednn'): Winograd's forward + both gradients through the reference
#   ops 1.35-1.5x oneDNN's kernels with 512 channels from 16x16 to 64x64, 1.1-1.15x with 256,
#   0.7-0.95x with 128; through the kernel (F(4x4) where WINOGRAD_F4_MIN_PIXELS below says)
#   1.9-3.0x with 64-512 channels from 32x32 on, 1.5-1.7x at 16x16 with 256-512 (F(2x2)), 1.4-1.6x
#   with 32 (64x64 to 512x512), 1.2x with 512 at 8x8; about even at 8x8 with 256 and at 4x4. The
#   taps lose.
# - Eigen's kernels (oneDNN off; measured on an AVX-512 CPU): its filter gradient wins or ties
#   against the taps everywhere; Winograd's kernel 2.1-4.1x its forward + both gradients from 32
#   channels, the reference ops slower below 256.
TAP_GRADIENT_MIN_PIXELS = {"onednn-avx2": 64 * 64}
WINOGRAD_MIN_CHANNELS = {"ref": {"onednn-avx2": 256, "onednn": 256},
                         "custom": {"onednn-avx2": 32, "onednn": 32, "eigen": 32}}
WINOGRAD_MIN_PIXELS = {"ref": 16 * 16, "custom": 8 * 8}
# The kernel's tile: F(4x4, 3x3) (2.25 multiplies per output against F(2x2, 3x3)'s 4) from 32x32 on,
# where it measured 1.3-1.8x F(2x2)'s forward pass and filter gradient with 64-512 channels
# (AVX-512 EPYC, batch 4: e.g. 128x128/128 507 / 535 against 342 / 340 GFLOP/s, 32x32/512 606 / 603
# against 341 / 412). At 16x16 it is 1.1-1.2x F(2x2) but its float32 rounding (about 5-10x
# F(2x2)'s, within 1e-5 of the output's scale) then reaches the outputs of small networks, which
# otherwise match NVIDIA's within 2e-6 (tests/test_pytorch_pickles.py); at 8x8 it is slower.
WINOGRAD_F4_MIN_PIXELS = 32 * 32
FILTER_GRADIENT_FORMS = ("winograd", "taps", "kernel")

_cpu_kernels = "unknown"


def conv2d(x, w, padding="SAME", filter_gradient=None):
    """`tf.nn.conv2d(x, w, strides=1, padding=padding)` for NHWC x and an ungrouped kernel w
    [kh, kw, C, O]; padding: 'SAME', 'VALID' or [[top, bottom], [left, right]] (negative crops).

    filter_gradient: 'winograd' (3x3 kernels only) | 'taps' | 'kernel' | None (automatic:
    `filter_gradient_form`): how the gradient with respect to w is computed ('kernel': TensorFlow's
    own). The input gradient is TensorFlow's for 'kernel', else a `conv2d` with the same choice."""
    x = tf.convert_to_tensor(x)
    w = tf.convert_to_tensor(w, dtype=x.dtype)
    pads = _explicit_pads(padding, w.shape[0], w.shape[1])
    if min(min(pair) for pair in pads) < 0:
        x = pad_or_crop(x, tuple((min(a, 0), min(b, 0)) for a, b in pads))
        pads = tuple((max(a, 0), max(b, 0)) for a, b in pads)
    filter_gradient_was_automatic = filter_gradient is None
    if filter_gradient_was_automatic:
        filter_gradient = filter_gradient_form(x, w)
    if filter_gradient not in FILTER_GRADIENT_FORMS:
        raise ValueError(f"conv2d: filter_gradient must be one of {FILTER_GRADIENT_FORMS} or None, "
                         f"got {filter_gradient!r}")
    if filter_gradient == "winograd" and (w.shape[0], w.shape[1]) != (3, 3):
        raise ValueError(f"conv2d: filter_gradient 'winograd' needs a 3x3 kernel, got {w.shape[0]}x{w.shape[1]}")
    if filter_gradient == "kernel" or x.shape[-1] != w.shape[2]:
        return tf.nn.conv2d(x, w, strides=1, padding=_tf_padding(pads, w.shape[0], w.shape[1]))
    if None in x.shape[1:]:
        raise ValueError(f"conv2d: the {filter_gradient!r} form needs static spatial sizes and channels, got {x.shape}")
    if filter_gradient == "winograd" and _winograd_kernel_serves(x):
        return custom_ops.library().sg2_winograd_conv2d(x, w, pads=_flat(pads), tile=winograd_kernel_tile(x, w),
                                                        form_forced=not filter_gradient_was_automatic)
    return _conv2d_own_gradient(x, w, pads, filter_gradient,
                                None if filter_gradient_was_automatic else filter_gradient)


def filter_gradient_form(x, w, kernels="auto", winograd="auto"):
    """The form measured to be fastest for this convolution (float32 on a CPU): 'winograd' for 3x3
    kernels with at least WINOGRAD_MIN_CHANNELS input and output channels and outputs of at least
    WINOGRAD_MIN_PIXELS; else 'taps' for outputs of at least TAP_GRADIENT_MIN_PIXELS; else 'kernel'.
    kernels: TensorFlow's CPU kernel family as `capabilities.cpu_conv_kernels` names it ('auto':
    ask, and 'kernel' wherever x is not computed on a CPU, and inside `use_implementation('ref')`:
    every export traces there, and an exported graph keeps TensorFlow's Conv2D, which its runtime
    (TFLite, TF.js, ONNX, a GPU) runs its own way). winograd: the implementation Winograd's form
    would run, 'ref' or 'custom' ('auto': the kernel where it serves x)."""
    height, width = x.shape[1], x.shape[2]
    if x.dtype != tf.float32 or height is None or width is None or x.shape[-1] != w.shape[2]:
        return "kernel"
    if kernels == "auto":
        if not runs_on_cpu(x) or implementation.forced() == "ref":
            return "kernel"
        kernels = cpu_kernel_family()
    if winograd == "auto":
        winograd = "custom" if _winograd_kernel_serves(x) else "ref"
    if ((w.shape[0], w.shape[1]) == (3, 3) and height * width >= WINOGRAD_MIN_PIXELS[winograd]
            and min(w.shape[2], w.shape[3]) >= WINOGRAD_MIN_CHANNELS[winograd].get(kernels, float("inf"))):
        return "winograd"
    if height * width >= TAP_GRADIENT_MIN_PIXELS.get(kernels, float("inf")):
        return "taps"
    return "kernel"


def cpu_kernel_family():
    """TensorFlow's CPU convolution kernel family (`capabilities.cpu_conv_kernels`), asked once."""
    global _cpu_kernels
    if _cpu_kernels == "unknown":
        _cpu_kernels = cpu_conv_kernels()
    return _cpu_kernels


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


def pad_or_crop(x, pads):
    """x padded with zeros by pads ((top, bottom), (left, right)); negative amounts crop."""
    (top, bottom), (left, right) = pads
    if min(top, bottom, left, right) < 0:
        x = x[:, max(-top, 0):x.shape[1] - max(-bottom, 0), max(-left, 0):x.shape[2] - max(-right, 0), :]
        top, bottom, left, right = (max(v, 0) for v in (top, bottom, left, right))
    if top or bottom or left or right:
        x = tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]])
    return x


# The name scope of the tap products' ops (benchmarks/op_profile.py counts the MatMuls inside it as
# convolutions: they are a convolution's filter gradient).
FILTER_GRADIENT_TAPS_SCOPE = "filter_gradient_taps"


def tap_filter_gradient(x, dy, pads, kernel_size):
    """The filter gradient [kh, kw, C, O] of the stride-1 convolution of x [N, H, W, C] padded by
    pads, given the output gradient dy [N, Ho, Wo, O]: one [C, rows] x [rows, O] product per tap."""
    return filter_gradient_by_taps(pad_or_crop(x, pads), dy, kernel_size)


def filter_gradient_by_taps(x, dy, kernel_size, stride=1):
    """The filter gradient [kh, kw, C, O] of the stride-s 'VALID' convolution of x [N, H, W, C], given
    the output gradient dy [N, Ho, Wo, O]: dW[i, j] = sum over (n, p, q) of x[n, s p + i, s q + j]^T
    dY[n, p, q], one [C, rows] x [rows, O] product per tap over x's s*s stride phases."""
    with tf.name_scope(FILTER_GRADIENT_TAPS_SCOPE):
        return _filter_gradient_by_taps(x, dy, kernel_size, stride)


def _filter_gradient_by_taps(x, dy, kernel_size, stride):
    kh, kw = kernel_size
    height, width, channels = x.shape[1:]
    out_h, out_w, outputs = dy.shape[1:]
    # Tap (i, j) pairs dY[p, q] with stride phase (i mod s, j mod s) of x at [p + i // s, q + j // s].
    # Every phase sits on one grid of Ho + (kh - 1) // s rows and Wo + (kw - 1) // s columns (the
    # most any phase's taps reach): the channel groups of one space-to-depth copy of x, padded or
    # cropped to s times that grid (at stride 1, x itself). Both sides are flattened to rows of the
    # grid, so that each tap reads a contiguous slice of its phase's rows (which TensorFlow can hand
    # out without copying) instead of a strided window copied out kh*kw times. dY's rows outside
    # Ho x Wo are zeros, which drops the pairs that wrap past a row's or an image's end; the price is
    # (grid rows)/(Ho*Wo) as many multiply-adds (1.03x at 128x128 with a 3x3 kernel, stride 1).
    grid_h, grid_w = out_h + (kh - 1) // stride, out_w + (kw - 1) // stride
    x = pad_or_crop(x, ((0, stride * grid_h - height), (0, stride * grid_w - width)))
    if stride == 1:
        phases = [tf.reshape(x, [-1, channels])]
    else:
        phases = tf.split(tf.reshape(tf.nn.space_to_depth(x, stride), [-1, stride * stride * channels]),
                          stride * stride, axis=1)
    dy_rows = tf.reshape(tf.pad(dy, [[0, 0], [0, grid_h - out_h], [0, grid_w - out_w], [0, 0]]), [-1, outputs])
    rows = dy_rows.shape[0] - ((kh - 1) // stride) * grid_w - (kw - 1) // stride
    dy_rows = dy_rows[:rows]
    taps = []
    for i in range(kh):
        for j in range(kw):
            shift = (i // stride) * grid_w + j // stride
            phase = phases[(i % stride) * stride + j % stride]
            taps.append(tf.matmul(phase[shift:shift + rows], dy_rows, transpose_a=True))
    return tf.reshape(tf.stack(taps), [kh, kw, channels, outputs])


# Winograd's F(2x2, 3x3) (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks",
# 2016): a 2x2 output tile of a 3x3 convolution is A^T [(G g G^T) * (B^T d B)] A for the 4x4 input
# tile d (rows and columns 2p..2p+3): 16 products [tiles, C] x [C, O], 4x4 = 16 multiply-adds per
# tile where the direct convolution takes 9 x 4 = 36 (2.25x fewer), plus the transforms. Its filter
# gradient is G^T [sum over tiles of (B^T d B) * (A dY_tile A^T)] G: 16 products [C, tiles] x
# [tiles, O]. Each two-sided transform is one product with a Kronecker product (B^T d B flattened
# is (B^T kron B^T) d flattened), and the 16 products are one batched product, so a convolution
# adds a dozen ops to the graph, not a hundred. The sign of A's last column and G's last row are
# flipped together (the product is the same; A^T then has only ones and one minus one).
_WINOGRAD_BT = ((1.0, 0.0, -1.0, 0.0), (0.0, 1.0, 1.0, 0.0), (0.0, -1.0, 1.0, 0.0), (0.0, 1.0, 0.0, -1.0))
_WINOGRAD_AT = ((1.0, 1.0, 1.0, 0.0), (0.0, 1.0, -1.0, 1.0))
_WINOGRAD_G = ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, -1.0))


def _two_sided(matrix, dtype, transpose=False):
    """matrix kron matrix (its transpose with transpose=True) as a constant: M t M^T of a tile t
    flattened row by row is (M kron M) times t flattened."""
    m = np.asarray(matrix)
    m = np.kron(m, m)
    return tf.constant(m.T if transpose else m, dtype)


def _winograd_grid(x, pads):
    """x padded by pads, plus one zero row / column where the output side (padded side - 2) is
    odd, so that the outputs tile into 2x2; and the output size (out_h, out_w) before that."""
    xp = pad_or_crop(x, pads)
    out_h, out_w = xp.shape[1] - 2, xp.shape[2] - 2
    if out_h % 2 or out_w % 2:
        xp = tf.pad(xp, [[0, 0], [0, out_h % 2], [0, out_w % 2], [0, 0]])
    return xp, out_h, out_w


def _winograd_input(xp):
    """B^T d B of every 4x4 tile d (rows and columns 2p..2p+3) of xp [N, 2m + 2, 2n + 2, C]:
    [16, N*m*n, C]."""
    height, width, channels = xp.shape[1:]
    m, n = (height - 2) // 2, (width - 2) // 2
    pairs = tf.reshape(xp, [-1, m + 1, 2, width, channels])          # rows 2p and 2p + 1
    rows = tf.concat([pairs[:, :m], pairs[:, 1:]], axis=2)              # rows 2p..2p+3: [N, m, 4, W, C]
    pairs = tf.reshape(rows, [-1, m, 4, n + 1, 2, channels])
    tiles = tf.concat([pairs[:, :, :, :n], pairs[:, :, :, 1:]], axis=4)  # [N, m, 4, n, 4, C]
    tiles = tf.reshape(tf.transpose(tiles, [2, 4, 0, 1, 3, 5]), [16, -1])
    return tf.reshape(tf.matmul(_two_sided(_WINOGRAD_BT, xp.dtype), tiles), [16, -1, channels])


def _winograd_output(products, m, n):
    """A^T M A of every tile's 16 products [16, N*m*n, O]: the outputs [N, 2m, 2n, O]."""
    outputs = products.shape[-1]
    y = tf.matmul(_two_sided(_WINOGRAD_AT, products.dtype), tf.reshape(products, [16, -1]))
    y = tf.transpose(tf.reshape(y, [2, 2, -1, m, n, outputs]), [2, 3, 0, 4, 1, 5])
    return tf.reshape(y, [-1, 2 * m, 2 * n, outputs])


def _winograd_output_gradient(dy):
    """A dY A^T of every 2x2 tile of dy [N, 2m, 2n, O] (the adjoint of `_winograd_output`):
    [16, N*m*n, O]."""
    height, width, outputs = dy.shape[1:]
    m, n = height // 2, width // 2
    tiles = tf.transpose(tf.reshape(dy, [-1, m, 2, n, 2, outputs]), [2, 4, 0, 1, 3, 5])
    d = tf.matmul(_two_sided(_WINOGRAD_AT, dy.dtype, transpose=True), tf.reshape(tiles, [4, -1]))
    return tf.reshape(d, [16, -1, outputs])


def winograd_conv2d(x, w, pads):
    """The stride-1 convolution of x padded by pads with a 3x3 kernel, through Winograd's
    F(2x2, 3x3): the same sums in another order (float rounding apart)."""
    xp, out_h, out_w = _winograd_grid(x, pads)   # an odd side computes one more output, then drops it
    channels, outputs = w.shape[2], w.shape[3]
    u = tf.reshape(tf.matmul(_two_sided(_WINOGRAD_G, w.dtype), tf.reshape(w, [9, channels * outputs])),
                   [16, channels, outputs])
    products = tf.matmul(_winograd_input(xp), u)
    y = _winograd_output(products, (xp.shape[1] - 2) // 2, (xp.shape[2] - 2) // 2)
    if y.shape[1] != out_h or y.shape[2] != out_w:
        y = y[:, :out_h, :out_w, :]
    return y


def winograd_filter_gradient(x, dy, pads):
    """tap_filter_gradient for a 3x3 kernel, through Winograd's F(2x2, 3x3): the same sum in another
    order (float rounding apart)."""
    xp, out_h, out_w = _winograd_grid(x, pads)   # an odd side's extra output gets a zero dY
    channels, outputs = x.shape[-1], dy.shape[-1]
    if out_h % 2 or out_w % 2:
        dy = tf.pad(dy, [[0, 0], [0, out_h % 2], [0, out_w % 2], [0, 0]])
    products = tf.matmul(_winograd_input(xp), _winograd_output_gradient(dy), transpose_a=True)  # [16, C, O]
    dw = tf.matmul(_two_sided(_WINOGRAD_G, x.dtype, transpose=True), tf.reshape(products, [16, channels * outputs]))
    return tf.reshape(dw, [3, 3, channels, outputs])


def _input_gradient(dy, w, pads, form):
    """The gradient of the stride-1 convolution of x padded by pads with w, with respect to x: the
    'full' correlation of dY with the kernel turned by 180 degrees (input and output channels
    swapped), cropped by the forward padding; through `conv2d`, so that it has gradients too."""
    kh, kw = w.shape[0], w.shape[1]
    input_pads = tuple((k - 1 - a, k - 1 - b) for k, (a, b) in zip((kh, kw), pads))
    w_turned = tf.transpose(tf.reverse(w, [0, 1]), [0, 1, 3, 2])
    return conv2d(dy, w_turned, padding=input_pads, filter_gradient=form)


def _conv2d_own_gradient(x, w, pads, form, input_gradient_form):
    kh, kw = w.shape[0], w.shape[1]

    @tf.custom_gradient
    def forward(x, w):
        if form == "winograd":
            y = winograd_conv2d(x, w, pads)
        else:
            y = tf.nn.conv2d(x, w, strides=1, padding=_tf_padding(pads, kh, kw))

        def gradient(dy):
            with tf.name_scope("conv2d_grad"):   # a gradient's scope, as the profiler reads it
                dx = _input_gradient(dy, w, pads, input_gradient_form)
                if form == "winograd":
                    return dx, winograd_filter_gradient(x, dy, pads)
                return dx, tap_filter_gradient(x, dy, pads, (kh, kw))
        return y, gradient

    return forward(x, w)


# The kernel (custom_ops/winograd_conv_2d.h and .cc, CPU, float32/64): the same F(2x2, 3x3), or F(4x4,
# 3x3) (`winograd_kernel_tile`), one block of tiles at a time, the transformed tiles kept in the
# cache instead of passed through memory as tensors 4x the input's size; padding read as zeros. Its
# two ops carry their gradients by type.

def winograd_kernel_tile(x, w):
    """The output tile side of the kernel's Winograd for x [N, H, W, C] and w [3, 3, C, O]: 4 for
    F(4x4, 3x3), 2 for F(2x2, 3x3) (WINOGRAD_F4_MIN_PIXELS above)."""
    return 4 if x.shape[1] * x.shape[2] >= WINOGRAD_F4_MIN_PIXELS else 2


def _winograd_kernel_serves(x):
    return (implementation.cpu_only_kernel_fits(x.dtype)
            and implementation.choose("WinogradConv2D", x.dtype) == "custom")


def _flat(pads):
    (top, bottom), (left, right) = pads
    return [top, bottom, left, right]


def _kernel_attrs(op):
    """(pads ((top, bottom), (left, right)), the form its gradients' convolutions take)."""
    top, bottom, left, right = op.get_attr("pads")
    return ((top, bottom), (left, right)), ("winograd" if op.get_attr("form_forced") else None)


@tf.RegisterGradient("Sg2WinogradConv2D")
def _winograd_conv2d_gradient(op, dy):
    x, w = op.inputs
    pads, form = _kernel_attrs(op)
    dw = custom_ops.library().sg2_winograd_filter_gradient(x, dy, pads=_flat(pads), tile=op.get_attr("tile"),
                                                           form_forced=form is not None)
    return _input_gradient(dy, w, pads, form), dw


@tf.RegisterGradient("Sg2WinogradFilterGradient")
def _winograd_filter_gradient_gradient(op, g):
    # dW is bilinear in x and dY with <g, dW(x, dY)> = <conv(x padded, g), dY>: its gradient is, for
    # dY, the convolution of x with g, and for x, that convolution's input gradient taken at dY.
    x, dy = op.inputs
    pads, form = _kernel_attrs(op)
    return _input_gradient(dy, g, pads, form), conv2d(x, g, padding=pads, filter_gradient=form)

