"""Resampling for the augmentation pipeline, on images whose size is known only at run time (the
geometric transforms pad by a data-dependent margin): separable FIR up/down-sampling and bilinear
sampling at arbitrary points with zeros outside (PyTorch's grid_sample, align_corners=False).
NHWC throughout."""

import tensorflow as tf


def _taps_filter(taps, channels, axis, flip):
    """Depthwise filter [kh, kw, C, 1] applying 1-D `taps` along axis 1 (rows) or 2 (columns);
    flip: a true convolution (depthwise_conv2d correlates)."""
    taps = tf.constant(taps[::-1] if flip else taps, tf.float32)
    shape = [-1, 1, 1, 1] if axis == 1 else [1, -1, 1, 1]
    return tf.tile(tf.reshape(taps, shape), [1, 1, channels, 1])


def separable_fir(x, taps, up=1, down=1, pad=(0, 0), gain=1.0, convolve=True):
    """Upsample (zeros between pixels), pad (negative: crop), filter with `taps` along the columns
    then along the rows, downsample; both axes alike. gain scales the 2-D response (each pass by
    sqrt(gain)). x [N, H, W, C] with static C; H and W may be dynamic."""
    channels = x.shape[-1]
    taps = taps * (gain ** 0.5)
    if up > 1:
        n, h, w = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
        x = tf.stack([x] + [tf.zeros_like(x)] * (up - 1), axis=3)           # [N, H, W, up, C]
        x = tf.reshape(x, [n, h, w * up, channels])
        x = tf.stack([x] + [tf.zeros_like(x)] * (up - 1), axis=2)           # [N, H, up, W*up, C]
        x = tf.reshape(x, [n, h * up, w * up, channels])
    p0, p1 = pad
    x = tf.pad(x, [[0, 0], [max(p0, 0), max(p1, 0)], [max(p0, 0), max(p1, 0)], [0, 0]])
    if p0 < 0 or p1 < 0:
        h, w = tf.shape(x)[1], tf.shape(x)[2]
        x = x[:, max(-p0, 0):h - max(-p1, 0), max(-p0, 0):w - max(-p1, 0), :]
    x = tf.nn.depthwise_conv2d(x, _taps_filter(taps, channels, 2, convolve), [1, 1, 1, 1], "VALID")
    x = tf.nn.depthwise_conv2d(x, _taps_filter(taps, channels, 1, convolve), [1, 1, 1, 1], "VALID")
    # (Decimated afterwards: TensorFlow's own depthwise kernel takes equal strides only.)
    return x[:, ::down, ::down, :] if down > 1 else x


def bilinear_sample(images, ix, iy):
    """images [N, Hi, Wi, C] sampled at pixel coordinates (ix, iy) [N, Ho, Wo] (pixel centres at
    integers); points outside read zeros. The four neighbours are weighted and summed in the
    order north-west, north-east, south-west, south-east."""
    n, hi, wi = tf.shape(images)[0], tf.shape(images)[1], tf.shape(images)[2]
    flat = tf.reshape(images, [n, -1, images.shape[-1]])
    x0, y0 = tf.floor(ix), tf.floor(iy)
    x1, y1 = x0 + 1, y0 + 1
    out = None
    for xs, ys, weight in ((x0, y0, (x1 - ix) * (y1 - iy)), (x1, y0, (ix - x0) * (y1 - iy)),
                           (x0, y1, (x1 - ix) * (iy - y0)), (x1, y1, (ix - x0) * (iy - y0))):
        xi, yi = tf.cast(xs, tf.int32), tf.cast(ys, tf.int32)
        inside = (xi >= 0) & (xi < wi) & (yi >= 0) & (yi < hi)
        index = tf.where(inside, yi * wi + xi, 0)
        values = tf.gather(flat, index, batch_dims=1)                      # [N, Ho, Wo, C]
        term = values * tf.where(inside, weight, 0.0)[..., None]
        out = term if out is None else out + term
    return out
