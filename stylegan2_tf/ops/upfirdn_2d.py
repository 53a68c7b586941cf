"""Resampling of NHWC images with FIR filters, in pure TensorFlow.

`upfirdn_2d` is the one primitive: zero-insertion upsampling, padding (negative
padding crops), 2-D FIR filtering and decimation -- `scipy.signal.upfirdn` in two
dimensions. The filter is applied as a true convolution (flipped), like scipy and
NVIDIA's reference; for the symmetric kernels StyleGAN2 uses the flip is moot.

The helpers below follow the padding rules of the StyleGAN2 code exactly, so that
an image resampled here lines up pixel for pixel with one resampled there:

  filter_2d           same size, filtered
  upsample_2d         x factor, filter gain factor**2 (zero insertion loses energy)
  downsample_2d       / factor
  upsample_conv_2d    transposed conv (stride factor) then FIR, padding only once
  conv_downsample_2d  FIR then strided conv, padding only once

Everything is built from differentiable TF ops, so first and second derivatives
exist (R1 and the path-length penalty need them).
"""

import numpy as np
import tensorflow as tf

from . import custom_ops, implementation
from .conv_2d import conv2d
from .strided_conv_2d import strided_conv2d, strided_conv2d_transpose


def setup_kernel(k):
    """1-D (separable) or 2-D FIR taps -> normalised 2-D float32 kernel (sum 1)."""
    k = np.asarray(k, dtype=np.float32)
    if k.ndim == 1:
        k = np.outer(k, k)
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise ValueError(f"FIR kernel must be 1-D or square 2-D, got shape {k.shape}")
    return k / np.sum(k)


def _depthwise_filter(x, k, stride):
    """VALID 2-D convolution of every channel of NHWC `x` with the 2-D kernel `k`."""
    channels = x.shape[-1]
    kh, kw = k.shape
    if channels is None:
        raise ValueError("upfirdn_2d needs a static channel count")
    # Convolution = correlation with the flipped kernel.
    w = np.tile(k[::-1, ::-1, np.newaxis, np.newaxis], [1, 1, channels, 1])
    w = tf.constant(w, dtype=x.dtype)
    if kh == 1 and kw == 1 and float(k[0, 0]) == 1.0:
        return x[:, ::stride[0], ::stride[1], :]
    if stride[0] == stride[1]:
        return tf.nn.depthwise_conv2d(x, w, strides=[1, stride[0], stride[1], 1], padding="VALID")
    y = tf.nn.depthwise_conv2d(x, w, strides=[1, 1, 1, 1], padding="VALID")
    return y[:, ::stride[0], ::stride[1], :]


def upfirdn_2d(x, k, up=1, down=1, pad=(0, 0), flip_kernel=False, impl=None):
    """Upsample, pad, FIR-filter and downsample a batch of NHWC images.

    Args:
      x: [N, H, W, C] tensor.
      k: 2-D FIR kernel (numpy, [kh, kw]); used as given (not normalised).
      up, down: int or (up_y, up_x) / (down_y, down_x).
      pad: (pad0, pad1) for both axes, or (pad_y0, pad_y1, pad_x0, pad_x1);
        negative values crop.
      flip_kernel: correlate instead of convolve.
      impl: 'auto' | 'ref' | 'custom' (default: $STYLEGAN2_TF_OPS, else implementation.DEFAULT_IMPL);
        see stylegan2_tf/ops/implementation.py.
    Returns:
      [N, (H*up_y + pad_y0 + pad_y1 - kh) // down_y + 1, (same for W), C].
    """
    x = tf.convert_to_tensor(x)
    k = np.asarray(k, dtype=np.float32)
    if k.ndim != 2 or k.size == 0:
        raise ValueError(f"upfirdn_2d expects a non-empty 2-D kernel, got shape {k.shape}")
    if x.shape.rank != 4:
        raise ValueError(f"upfirdn_2d: x must be [N, H, W, C], got shape {x.shape}")
    if not x.dtype.is_floating:
        raise ValueError(f"upfirdn_2d: x must be floating point, got {x.dtype.name}")
    if flip_kernel:
        k = k[::-1, ::-1]
    upy, upx = (up, up) if np.isscalar(up) else up
    downy, downx = (down, down) if np.isscalar(down) else down
    if len(pad) == 2:
        pady0, pady1, padx0, padx1 = pad[0], pad[1], pad[0], pad[1]
    else:
        pady0, pady1, padx0, padx1 = pad
    for v in (upy, upx, downy, downx):
        if int(v) != v or v < 1:
            raise ValueError(f"upfirdn_2d: up/down factors must be positive integers, got {up}, {down}")
    upy, upx, downy, downx = int(upy), int(upx), int(downy), int(downx)
    pady0, pady1, padx0, padx1 = int(pady0), int(pady1), int(padx0), int(padx1)
    in_h, in_w = x.shape[1], x.shape[2]
    for size, u, p0, p1, taps, axis in ((in_h, upy, pady0, pady1, k.shape[0], "rows"),
                                        (in_w, upx, padx0, padx1, k.shape[1], "columns")):
        if size is not None and size * u + p0 + p1 < taps:
            raise ValueError(f"upfirdn_2d: padding ({p0}, {p1}) leaves {size * u + p0 + p1} {axis} for a "
                             f"{taps}-tap filter (input {in_h}x{in_w}, up {u}): nothing to filter")
    if in_h is not None and in_w is not None:
        if implementation.choose("UpFirDn2D", x.dtype, impl) == "custom":
            return _kernel(x, k, (upy, upx), (downy, downx), (pady0, pady1, padx0, padx1))
    elif implementation.requested(impl) == "custom":     # the argument, $STYLEGAN2_TF_OPS or a forced block
        raise custom_ops.CustomOpsError("UpFirDn2D: the kernel needs static image sizes")

    _, in_h, in_w, channels = x.shape
    # 1. Zero insertion: each pixel followed by (up - 1) zeros.
    if upy > 1 or upx > 1:
        # Columns, then rows, each with a 4-D pad: TFLite and TF.js pad no more dimensions.
        n = tf.shape(x)[0]
        x = tf.reshape(x, [n * in_h, in_w, 1, channels])
        x = tf.pad(x, [[0, 0], [0, 0], [0, upx - 1], [0, 0]])
        x = tf.reshape(x, [n, in_h, 1, in_w * upx * channels])
        x = tf.pad(x, [[0, 0], [0, 0], [0, upy - 1], [0, 0]])
        x = tf.reshape(x, [n, in_h * upy, in_w * upx, channels])
    # 2. Pad with zeros (positive) or crop (negative).
    x = tf.pad(x, [[0, 0], [max(pady0, 0), max(pady1, 0)], [max(padx0, 0), max(padx1, 0)], [0, 0]])
    h, w = x.shape[1], x.shape[2]
    x = x[:, max(-pady0, 0): h - max(-pady1, 0), max(-padx0, 0): w - max(-padx1, 0), :]
    # 3.+4. FIR filter and decimate.
    return _depthwise_filter(x, k, (downy, downx))


def filter_2d(x, k, gain=1.0, impl=None):
    """Filter NHWC images with FIR taps `k`; constant input is scaled by `gain`."""
    k = setup_kernel(k) * gain
    p = k.shape[0] - 1
    return upfirdn_2d(x, k, pad=((p + 1) // 2, p // 2), impl=impl)


def upsample_2d(x, k=None, factor=2, gain=1.0, impl=None):
    """Upsample NHWC images by `factor` with FIR taps `k` (default: nearest)."""
    if k is None:
        k = [1] * factor
    k = setup_kernel(k) * (gain * factor ** 2)
    p = k.shape[0] - factor
    return upfirdn_2d(x, k, up=factor, pad=((p + 1) // 2 + factor - 1, p // 2), impl=impl)


def downsample_2d(x, k=None, factor=2, gain=1.0, impl=None):
    """Downsample NHWC images by `factor` with FIR taps `k` (default: box)."""
    if k is None:
        k = [1] * factor
    k = setup_kernel(k) * gain
    p = k.shape[0] - factor
    return upfirdn_2d(x, k, down=factor, pad=((p + 1) // 2, p // 2), impl=impl)


UPSAMPLE_CONV_FORMS = ("phases", "transposed")

# The phase form interleaves its f*f phase outputs with one extra copy of the output; the
# transposed convolution writes the output directly. Measured on CPUs, forward + backward
# (benchmarks/upsample_conv.py, figures in benchmarks/README.md):
# - oneDNN on an AVX-512 CPU: the transposed form wins at every size and channel count (1.1-1.5x),
#   since its filter gradient is `strided_conv2d_transpose`'s tap products per stride phase (before
#   that, the phase form won with 512 channels from 64x64 on, 1.05-1.25x). Forward only
#   (generation), the two tie at 64x64 with 512 channels and the phase form leads 1.1x at 128x128.
# - oneDNN on an AVX2-only CPU (a real AVX2 EPYC): the transposed form wins too, 1.1-1.5x from
#   64x64 to 512x512 outputs with 32-512 channels (before the transposed form's filter gradient
#   took the stride phases, the phase form won there). Forward only, the phase form leads at 8x8 to
#   32x32 and at 256x256, the transposed form at 64x64 and 128x128 (1.1x).
# - Eigen's kernels (oneDNN off): the transposed form wins everywhere (1.1-1.6x from 64x64 on).


def upsample_conv_form(groups=1):
    """The form `upsample_conv_2d` uses by default: 'transposed', or 'phases' for grouped
    convolutions (the fused modulated convolution), which need no grouped transposed convolution."""
    return "phases" if groups != 1 else "transposed"


def upsample_conv_2d(x, w, k=None, factor=2, gain=1.0, groups=1, impl=None, form=None):
    """`upsample_2d` followed by a 'SAME' convolution with `w`, padding once.

    Args:
      x: [N, H, W, groups * in_c].
      w: [kh, kw, in_c, groups * out_c] -- conv2d layout; with groups > 1 group g
        maps input channels [g*in_c, (g+1)*in_c) to outputs [g*out_c, (g+1)*out_c).
      form: 'phases' | 'transposed' | None (automatic, `upsample_conv_form`): how the
        transposed convolution is computed; both give the same numbers.
    Returns:
      [N, H * factor, W * factor, groups * out_c].
    """
    x = tf.convert_to_tensor(x)
    w = tf.convert_to_tensor(w, dtype=x.dtype)
    kh, kw, in_c, out_total = w.shape
    if kh != kw:
        raise ValueError("upsample_conv_2d needs a square conv kernel")
    if x.shape[-1] != groups * in_c or out_total % groups:
        raise ValueError(f"upsample_conv_2d: x has {x.shape[-1]} channels, w is {w.shape}, groups={groups}")
    if form is None:
        form = upsample_conv_form(groups)
    if form not in UPSAMPLE_CONV_FORMS or (form == "transposed" and groups != 1):
        raise ValueError(f"upsample_conv_2d: form must be one of {UPSAMPLE_CONV_FORMS} ('transposed' only "
                         f"without groups), got {form!r} with groups={groups}")
    if k is None:
        k = [1] * factor
    k = setup_kernel(k) * (gain * factor ** 2)
    p = (k.shape[0] - factor) - (kw - 1)

    # Zero insertion + 'full' convolution with w (a transposed convolution), then the
    # FIR with padding (pad0, pad1); the FIR pads (or crops) what the convolution left.
    # The official code pads (p // 2 + 1) at the end, which equals p // 2 + factor - 1
    # for factor 2 (the only factor StyleGAN2 uses) but yields H * factor - (factor - 2)
    # rows otherwise; the general form keeps factor 2 bit-identical.
    pad0 = (p + 1) // 2 + factor - 1
    pad1 = p // 2 + factor - 1
    if form == "transposed":
        # Full correlation with w: conv2d_transpose convolves, so flip the taps.
        in_h, in_w = x.shape[1], x.shape[2]
        y = strided_conv2d_transpose(x, tf.transpose(tf.reverse(w, [0, 1]), [0, 1, 3, 2]),
                                     [x.shape[0], (in_h - 1) * factor + kh, (in_w - 1) * factor + kw, out_total],
                                     factor)
        return upfirdn_2d(y, k, pad=(pad0, pad1), impl=impl)
    y, crop = _transposed_conv_phases(x, w, factor, pad0, pad1)
    return upfirdn_2d(y, k, pad=tuple(-c for c in crop), impl=impl)


def _taps(w, sy, sx, step):
    """w[sy::step, sx::step] as one gather of whole [in, out] matrices (TF's strided
    slice copies element by element, ~10x slower for conv kernels)."""
    kh, kw = w.shape[0], w.shape[1]
    rows, cols = range(sy, kh, step), range(sx, kw, step)
    if len(rows) == kh and len(cols) == kw:
        return w
    flat = tf.reshape(w, [kh * kw, w.shape[2], w.shape[3]])
    taps = tf.gather(flat, [r * kw + c for r in rows for c in cols])
    return tf.reshape(taps, [len(rows), len(cols), w.shape[2], w.shape[3]])


def _transposed_conv_phases(x, w, factor, pad0, pad1):
    """Stride-`factor` transposed convolution of x with the conv2d-layout kernel w
    (grouped if x has more channels than w's input dim), zero-padded by (pad0, pad1)
    on both spatial axes, in polyphase form: output row f*i + a only sees the taps
    w[s_a::f] (s_a = (kh-1-a) mod f), so each of the f*f output phases is an ordinary
    stride-1 convolution of x at input resolution, and the phases are interleaved.
    Same multiply-adds as conv2d_transpose, as forward convolutions, and the zero
    padding the FIR needs comes from padding x.

    Returns (grid, (top, bottom, left, right)): the grid covers whole phase periods; the
    result is the grid cropped by those amounts (left to the FIR that follows, which
    crops for free; a separate slice costs a copy and a gradient scatter)."""
    kh, kw, in_c, out_total = w.shape
    in_h, in_w = x.shape[1], x.shape[2]
    grouped = x.shape[-1] != in_c

    def axis_plan(size, ksize):
        # Grid rows m = factor * i + a for i in [i0, i1) cover m in [-pad0, L + pad1).
        length = (size - 1) * factor + ksize
        i0 = -((pad0 + factor - 1) // factor)      # floor(-pad0 / factor)
        i1 = -(-(length + pad1) // factor)           # ceil((length + pad1) / factor)
        g0 = -pad0 - factor * i0                     # first needed grid row
        return i0, i1, g0, g0 + length + pad0 + pad1

    (i0, i1, gy0, gy1), (j0, j1, gx0, gx1) = axis_plan(in_h, kh), axis_plan(in_w, kw)
    n = tf.shape(x)[0]

    def axis_window(size, ksize, a, lo_out, hi_out):
        # Phase a: taps w[s::factor]; output i reads x[i - (nq - 1) + r], r < nq.
        nq = -(-(ksize - a) // factor)
        s = (ksize - 1 - a) % factor
        lo, hi = lo_out - nq + 1, hi_out               # x rows [lo, hi) are read
        return nq, s, max(lo, 0), min(hi, size), max(-lo, 0), max(hi - size, 0)

    rows = []
    for a in range(factor):
        nqy, sy, ya, yb, pya, pyb = axis_window(in_h, kh, a, i0, i1)
        cols = []
        for b in range(factor):
            nqx, sx, xa, xb, pxa, pxb = axis_window(in_w, kw, b, j0, j1)
            if nqy <= 0 or nqx <= 0:  # the kernel has no tap in this phase
                cols.append(tf.zeros([n, i1 - i0, j1 - j0, out_total], x.dtype))
                continue
            xs = x
            if ya > 0 or yb < in_h or xa > 0 or xb < in_w:
                xs = x[:, ya:yb, xa:xb, :]
            padding = [[pya, pyb], [pxa, pxb]]
            if grouped and any(v for pair in padding for v in pair):
                # TF on CPU has no gradient for grouped convs with explicit padding
                xs, padding = tf.pad(xs, [[0, 0], *padding, [0, 0]]), "VALID"
            cols.append(conv2d(xs, _taps(w, sy, sx, factor), padding=padding))
        rows.append(tf.stack(cols, axis=3))                   # [N, I, W', factor, C]
    t = tf.stack(rows, axis=2)                                # [N, I, factor, J, factor, C]
    t = tf.reshape(t, [n, (i1 - i0) * factor, (j1 - j0) * factor, out_total])
    return t, (gy0, t.shape[1] - gy1, gx0, t.shape[2] - gx1)


def conv_downsample_2d(x, w, k=None, factor=2, gain=1.0, impl=None):
    """FIR filter then a strided 'VALID' conv with `w`: conv then `downsample_2d`,
    with the padding of both done once up front."""
    x = tf.convert_to_tensor(x)
    w = tf.convert_to_tensor(w, dtype=x.dtype)
    kh, kw = w.shape[0], w.shape[1]
    if kh != kw:
        raise ValueError("conv_downsample_2d needs a square conv kernel")
    if k is None:
        k = [1] * factor
    k = setup_kernel(k) * gain
    p = (k.shape[0] - factor) + (kw - 1)
    pad = ((p + 1) // 2, p // 2)
    if kw == 1:
        # A 1x1 convolution (the resnet discriminator's skip) reads only the pixels the stride
        # keeps, so the FIR computes just those (factor^2 fewer): the same sums.
        return tf.nn.conv2d(upfirdn_2d(x, k, down=factor, pad=pad, impl=impl), w, strides=1, padding="VALID")
    x = upfirdn_2d(x, k, pad=pad, impl=impl)
    return strided_conv2d(x, w, factor)


# The C++ kernel (custom_ops/upfirdn_2d.cc) with its gradient (the adjoint, to any order).

def _kernel(x, k, up, down, pad):
    """The kernel. x: [N, H, W, C] with static H, W; k: 2-D numpy filter (used as a true
    convolution, as the reference); up, down: (y, x); pad: (y0, y1, x0, x1), negative crops."""
    (upy, upx), (downy, downx), (py0, py1, px0, px1) = up, down, pad
    return custom_ops.library().sg2_up_fir_dn2d(x, tf.constant(k, x.dtype), upx=upx, upy=upy, downx=downx,
                                                downy=downy, padx0=px0, padx1=px1, pady0=py0, pady1=py1)


# Registered by op type rather than wrapped in tf.custom_gradient, which would add an IdentityN and,
# on the way back, zero tensors to the traced graph at every call (fused_bias_act.py says more).
@tf.RegisterGradient("Sg2UpFirDn2D")
def _upfirdn_2d_grad(op, dy):
    """The adjoint: the flipped filter, up and down swapped, the padding mirrored so that the result
    has x's size. Linear in dy, so every higher derivative is this op again."""
    x, f = op.inputs
    upx, upy, downx, downy = (op.get_attr(a) for a in ("upx", "upy", "downx", "downy"))
    px0, py0 = op.get_attr("padx0"), op.get_attr("pady0")
    kh, kw = f.shape
    (in_h, in_w), (out_h, out_w) = x.shape[1:3], op.outputs[0].shape[1:3]
    pad = (kh - 1 - py0, in_h * upy - out_h * downy + py0 - upy + 1,
           kw - 1 - px0, in_w * upx - out_w * downx + px0 - upx + 1)
    dx = custom_ops.library().sg2_up_fir_dn2d(dy, tf.reverse(f, [0, 1]), upx=downx, upy=downy, downx=upx,
                                              downy=upy, padx0=pad[2], padx1=pad[3], pady0=pad[0], pady1=pad[1])
    return dx, None
