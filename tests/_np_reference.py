"""Plain-numpy reference implementations used by the op and layer tests.

Everything here is written directly from the definitions (zero insertion, padding,
true convolution, decimation; tf.nn.conv2d's cross-correlation) in float64, with no
TensorFlow involved, so that the TF ops can be checked against it.
"""

import numpy as np


def _pair(v):
    return (v, v) if np.isscalar(v) else tuple(v)


def fir_kernel(k):
    """Separable taps -> 2-D kernel normalised to sum 1 (StyleGAN2 convention)."""
    k = np.asarray(k, dtype=np.float64)
    if k.ndim == 1:
        k = np.outer(k, k)
    return k / k.sum()


def upfirdn_2d(x, k, up=1, down=1, pad=(0, 0)):
    """Zero-insert (each sample followed by up-1 zeros), pad (negative: crop),
    convolve (flipped kernel) over the valid region, keep every down-th sample.
    x: [N, H, W, C]; k: [kh, kw]; pad: (p0, p1) or (py0, py1, px0, px1)."""
    x = np.asarray(x, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    upy, upx = _pair(up)
    downy, downx = _pair(down)
    py0, py1, px0, px1 = (pad[0], pad[1], pad[0], pad[1]) if len(pad) == 2 else pad
    n, h, w, c = x.shape
    u = np.zeros((n, h * upy, w * upx, c))
    u[:, ::upy, ::upx, :] = x
    u = np.pad(u, ((0, 0), (max(py0, 0), max(py1, 0)), (max(px0, 0), max(px1, 0)), (0, 0)))
    u = u[:, max(-py0, 0): u.shape[1] - max(-py1, 0), max(-px0, 0): u.shape[2] - max(-px1, 0), :]
    kh, kw = k.shape
    oh, ow = u.shape[1] - kh + 1, u.shape[2] - kw + 1
    out = np.zeros((n, oh, ow, c))
    # y[i, j] = sum_{a, b} u[i + a, j + b] * k[kh - 1 - a, kw - 1 - b]   (true convolution)
    for a in range(kh):
        for b in range(kw):
            out += u[:, a:a + oh, b:b + ow, :] * k[kh - 1 - a, kw - 1 - b]
    return out[:, ::downy, ::downx, :]


def conv2d_valid(x, w, stride=1):
    """tf.nn.conv2d(..., padding='VALID') semantics (cross-correlation).
    x: [N, H, W, I]; w: [kh, kw, I, O]."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    kh, kw = w.shape[:2]
    oh, ow = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    out = np.zeros((x.shape[0], oh, ow, w.shape[3]))
    for a in range(kh):
        for b in range(kw):
            out += np.einsum("nhwi,io->nhwo", x[:, a:a + oh, b:b + ow, :], w[a, b])
    return out[:, ::stride, ::stride, :]


def conv2d_same(x, w):
    """'SAME' cross-correlation with an odd square kernel (zero padding r = (k-1)/2)."""
    r = (w.shape[0] - 1) // 2
    return conv2d_valid(np.pad(x, ((0, 0), (r, r), (r, r), (0, 0))), w)


def upsample_pads(kernel_size, factor):
    """Padding of StyleGAN2's upsample_2d: p = kh - factor, ((p+1)//2 + factor - 1, p//2)."""
    p = kernel_size - factor
    return (p + 1) // 2 + factor - 1, p // 2


def downsample_pads(kernel_size, factor):
    """Padding of StyleGAN2's downsample_2d: p = kh - factor, ((p+1)//2, p//2)."""
    p = kernel_size - factor
    return (p + 1) // 2, p // 2


def upsample_2d(x, k, factor=2, gain=1.0):
    kk = fir_kernel(k) * gain * factor ** 2
    return upfirdn_2d(x, kk, up=factor, pad=upsample_pads(kk.shape[0], factor))


def downsample_2d(x, k, factor=2, gain=1.0):
    kk = fir_kernel(k) * gain
    return upfirdn_2d(x, kk, down=factor, pad=downsample_pads(kk.shape[0], factor))


def upsample_conv_2d(x, w, k, factor=2):
    """Upsample then convolve, padding only once: the FIR-upsampled image is
    computed on a canvas r = (kw-1)/2 pixels larger on every side (the filter's
    tails are kept instead of being replaced by the conv's zero padding), then a
    VALID convolution with `w` brings it back to H*factor x W*factor."""
    kk = fir_kernel(k) * factor ** 2
    r = (w.shape[0] - 1) // 2
    p0, p1 = upsample_pads(kk.shape[0], factor)
    return conv2d_valid(upfirdn_2d(x, kk, up=factor, pad=(p0 + r, p1 + r)), w)


def conv_downsample_2d(x, w, k, factor=2):
    """FIR-filter on a canvas r = (kw-1)/2 larger on every side, then a VALID
    convolution with stride `factor` (padding only once)."""
    kk = fir_kernel(k)
    r = (w.shape[0] - 1) // 2
    p0, p1 = downsample_pads(kk.shape[0], factor)
    return conv2d_valid(upfirdn_2d(x, kk, pad=(p0 + r, p1 + r)), w, stride=factor)
