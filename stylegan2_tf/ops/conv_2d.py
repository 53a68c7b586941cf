"""Stride-1 `tf.nn.conv2d` whose filter gradient can be computed as matrix products.

    dW[i, j] = sum over (n, p, q) of  x_pad[n, p + i, q + j, :]^T  dY[n, p, q, :]       ([C, O])

On CPUs where TensorFlow's oneDNN kernels are on but the CPU has AVX2 and no AVX-512, oneDNN's
filter-gradient kernel (Conv2DBackpropFilter) runs far below its forward and input-gradient
kernels: 48-67 GFLOP/s at 128x128 with 128 channels, batch 8-4, on a 2-core EPYC, where its forward
convolution runs at about 175 GFLOP/s and the kh*kw products above at 95-115
(benchmarks/conv_throughput.py; figures in benchmarks/README.md). There `conv2d` computes the
filter gradient as those products ('taps'; on request, a 3x3 convolution and its filter gradient
go through the 16 products of Winograd's F(2x2, 3x3) instead: 'winograd', 2.25x fewer
multiply-adds), and the input gradient as the forward convolution of dY with the flipped,
transposed kernel (through `conv2d` again, so a second derivative -- R1, path length -- takes the
same route). Everywhere else it is `tf.nn.conv2d`. All give the same numbers up to float rounding.
"""

import tensorflow as tf

from .capabilities import cpu_conv_kernels, runs_on_cpu

# The rule, measured with benchmarks/conv_throughput.py on an AVX2-only CPU with oneDNN on
# (float32, batch 4): the filter gradient as tap products wins from 64x64 outputs on (1.4-2.4x), ties
# at 32x32 and loses below. With oneDNN off, Eigen's filter gradient wins or ties at every size; on
# AVX-512 CPUs none of this is measured, so the rule stays off there.
TAP_GRADIENT_MIN_PIXELS = 64 * 64
# Winograd's F(2x2, 3x3) for the whole convolution (forward, input and filter gradient), for 3x3
# kernels with at least 128 input and output channels, measured there: its filter gradient 1.1-2.0x
# the taps, forward + both gradients 1.5-2.0x the faster of the kernel and the taps at 64x64-32x32,
# 1.1-1.5x at 16x16, 0.9-1.0x at 128x128. A 128x128 training step with it ran 1.12-1.23x faster,
# but its many small ops (16 products and the transforms per convolution, again in each derivative)
# more than doubled the time to the first step (tracing and graph optimisation: 105-113 s against
# 44-61 s; benchmarks/README.md), so the rule leaves it off (AUTOMATIC_WINOGRAD) until its graph
# is smaller; filter_gradient='winograd' asks for it.
AUTOMATIC_WINOGRAD = False
WINOGRAD_MIN_PIXELS = 16 * 16
WINOGRAD_MIN_CHANNELS = 128
FILTER_GRADIENT_FORMS = ("winograd", "taps", "kernel")

_tap_gradient_machine = None


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
        x = _pad_or_crop(x, tuple((min(a, 0), min(b, 0)) for a, b in pads))
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
        raise ValueError("conv2d: the tap form of the filter gradient needs static spatial sizes and channels")
    return _conv2d_own_gradient(x, w, pads, filter_gradient,
                                None if filter_gradient_was_automatic else filter_gradient)


def filter_gradient_form(x, w):
    """Where a formulation is measured to beat the kernel for this convolution (float32, on a CPU
    whose oneDNN kernels are AVX2 ones): 'taps' for outputs of at least TAP_GRADIENT_MIN_PIXELS, else
    'kernel'; with AUTOMATIC_WINOGRAD, 'winograd' for 3x3 kernels with at least WINOGRAD_MIN_CHANNELS
    input and output channels and outputs of at least WINOGRAD_MIN_PIXELS."""
    height, width = x.shape[1], x.shape[2]
    if x.dtype != tf.float32 or height is None or width is None or x.shape[-1] != w.shape[2]:
        return "kernel"
    winograd = (AUTOMATIC_WINOGRAD and (w.shape[0], w.shape[1]) == (3, 3)
                and min(w.shape[2], w.shape[3]) >= WINOGRAD_MIN_CHANNELS and height * width >= WINOGRAD_MIN_PIXELS)
    if not winograd and height * width < TAP_GRADIENT_MIN_PIXELS:
        return "kernel"
    if not runs_on_cpu(x) or not _avx2_onednn_machine():
        return "kernel"
    return "winograd" if winograd else "taps"


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
    pads, given the output gradient dy [N, Ho, Wo, O]: one [C, rows] x [rows, O] product per tap."""
    kh, kw = kernel_size
    xp = _pad_or_crop(x, pads)
    padded_h, padded_w, channels = xp.shape[1], xp.shape[2], xp.shape[3]
    out_h, out_w, outputs = dy.shape[1], dy.shape[2], dy.shape[3]
    # Both sides flattened to rows of one padded image grid: tap (i, j) pairs row r of dY with row
    # r + i*Wp + j of x, a contiguous slice of x's rows (which TensorFlow can hand out without
    # copying) instead of a strided window copied out nine times. dY's rows outside the Ho x Wo
    # outputs are zeros, which drops the pairs that wrap past a row's or an image's end; the price is
    # (Hp*Wp)/(Ho*Wo) as many multiply-adds (1.03x at 128x128 with a 3x3 kernel).
    x_rows = tf.reshape(xp, [-1, channels])
    dy_rows = tf.reshape(tf.pad(dy, [[0, 0], [0, padded_h - out_h], [0, padded_w - out_w], [0, 0]]), [-1, outputs])
    rows = dy_rows.shape[0] - (kh - 1) * padded_w - (kw - 1)
    dy_rows = dy_rows[:rows]
    taps = [tf.matmul(x_rows[i * padded_w + j:i * padded_w + j + rows], dy_rows, transpose_a=True)
            for i in range(kh) for j in range(kw)]
    return tf.reshape(tf.stack(taps), [kh, kw, channels, outputs])


# Winograd's F(2x2, 3x3) (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks",
# 2016): a 2x2 output tile of a 3x3 convolution is A^T [(G g G^T) * (B^T d B)] A for the 4x4 input
# tile d (rows and columns 2p..2p+3): 16 products [tiles, C] x [C, O], 4x4 = 16 multiply-adds per
# tile where the direct convolution takes 9 x 4 = 36 (2.25x fewer), plus additions. Its filter
# gradient is G^T [sum over tiles of (B^T d B) * (A dY_tile A^T)] G: 16 products [C, tiles] x
# [tiles, O]. B^T, A^T and G below, with the sign of A's last column and G's last row flipped
# together (the product is the same; the dY side is then sums of phases only).
_WINOGRAD_G = ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, -1.0))


def _winograd_input_rows(v, axis):
    """B^T applied along axis (length 2m + 2): the 4 components [.., m, ..] of d0..d3 = rows 2p..2p+3."""
    even, odd = _phases(v, axis)
    last = v.shape[axis] // 2
    d0, d2 = _rows(even, axis, 0, last - 1), _rows(even, axis, 1, last)
    d1, d3 = _rows(odd, axis, 0, last - 1), _rows(odd, axis, 1, last)
    return d0 - d2, d1 + d2, d2 - d1, d1 - d3


def _winograd_output(m, axis):
    """A^T applied along axis to the 4 components m: the outputs 2p (m0 + m1 + m2) and 2p + 1
    (m1 - m2 + m3, the flipped sign), interleaved."""
    y0, y1 = m[0] + m[1] + m[2], m[1] - m[2] + m[3]
    shape = y0.shape.as_list()
    return tf.reshape(tf.stack([y0, y1], axis=axis + 1), shape[:axis] + [2 * shape[axis]] + shape[axis + 1:])


def _winograd_output_rows(v, axis):
    """A (the adjoint of A^T) applied along axis (length 2m), the last one negated: dy0, dy0 + dy1,
    dy0 - dy1, dy1."""
    dy0, dy1 = _phases(v, axis)
    return dy0, dy0 + dy1, dy0 - dy1, dy1


def _phases(v, axis):
    """The even and the odd rows along axis (of even length): a reshape and one unstack, which copies
    whole rows where a slice with step 2 copies element by element (several times slower here)."""
    shape = v.shape.as_list()
    return tf.unstack(tf.reshape(v, shape[:axis] + [shape[axis] // 2, 2] + shape[axis + 1:]), axis=axis + 1)


def _rows(v, axis, start, stop):
    """v[..., start:stop, ...] along axis."""
    index = [slice(None)] * v.shape.rank
    index[axis] = slice(start, stop)
    return v[tuple(index)]


def _winograd_grid(x, pads):
    """x padded by pads, plus one zero row / column where the output side (padded side - 2) is
    odd, so that the outputs tile into 2x2; and the output size (out_h, out_w) before that."""
    xp = _pad_or_crop(x, pads)
    out_h, out_w = xp.shape[1] - 2, xp.shape[2] - 2
    if out_h % 2 or out_w % 2:
        xp = tf.pad(xp, [[0, 0], [0, out_h % 2], [0, out_w % 2], [0, 0]])
    return xp, out_h, out_w


def _winograd_kernel(w):
    """G w G^T for a [3, 3, C, O] kernel: [4, 4, C, O]."""
    channels, outputs = w.shape[2], w.shape[3]
    g = tf.constant(_WINOGRAD_G, w.dtype)
    return tf.reshape(tf.einsum("ki,ijz,lj->klz", g, tf.reshape(w, [3, 3, channels * outputs]), g),
                      [4, 4, channels, outputs])


def winograd_conv2d(x, w, pads):
    """The stride-1 convolution of x padded by pads with a 3x3 kernel, through Winograd's
    F(2x2, 3x3): the same sums in another order (float rounding apart)."""
    xp, out_h, out_w = _winograd_grid(x, pads)   # an odd side computes one more output, then drops it
    channels, outputs = x.shape[-1], w.shape[-1]
    u = _winograd_kernel(w)
    rows = []
    for k, x_row in enumerate(_winograd_input_rows(xp, 1)):
        tiles = []
        for j, x_tile in enumerate(_winograd_input_rows(x_row, 2)):
            shape = x_tile.shape.as_list()
            tiles.append(tf.reshape(tf.matmul(tf.reshape(x_tile, [-1, channels]), u[k, j]), shape[:3] + [outputs]))
        rows.append(_winograd_output(tiles, 2))
    y = _winograd_output(rows, 1)
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
    products = []
    for x_row, dy_row in zip(_winograd_input_rows(xp, 1), _winograd_output_rows(dy, 1)):
        for x_tile, dy_tile in zip(_winograd_input_rows(x_row, 2), _winograd_output_rows(dy_row, 2)):
            products.append(tf.matmul(tf.reshape(x_tile, [-1, channels]), tf.reshape(dy_tile, [-1, outputs]),
                                      transpose_a=True))
    g = tf.constant(_WINOGRAD_G, x.dtype)
    products = tf.reshape(tf.stack(products), [4, 4, channels * outputs])
    return tf.reshape(tf.einsum("ki,klz,lj->ijz", g, products, g), [3, 3, channels, outputs])


def _conv2d_own_gradient(x, w, pads, form, input_gradient_form):
    kh, kw = w.shape[0], w.shape[1]
    # The input gradient is the 'full' correlation of dY with the kernel turned by 180 degrees
    # (input and output channels swapped), cropped by the forward padding.
    input_pads = tuple((k - 1 - a, k - 1 - b) for k, (a, b) in zip((kh, kw), pads))

    @tf.custom_gradient
    def forward(x, w):
        if form == "winograd":
            y = winograd_conv2d(x, w, pads)
        else:
            y = tf.nn.conv2d(x, w, strides=1, padding=_tf_padding(pads, kh, kw))

        def gradient(dy):
            w_turned = tf.transpose(tf.reverse(w, [0, 1]), [0, 1, 3, 2])
            dx = conv2d(dy, w_turned, padding=input_pads, filter_gradient=input_gradient_form)
            if form == "winograd":
                return dx, winograd_filter_gradient(x, dy, pads)
            return dx, tap_filter_gradient(x, dy, pads, (kh, kw))
        return y, gradient

    return forward(x, w)
