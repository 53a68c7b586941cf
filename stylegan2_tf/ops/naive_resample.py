"""Image-level resampling of progressive growing: nearest-neighbour up, box-average down, and the
fade of the reals between two levels of detail (NHWC).

The official configs A-D move whole images between levels of detail with these two
(TF1 `upscale2d` / `downscale2d` of StyleGAN, `naive_upsample_2d` /
`naive_downsample_2d` of StyleGAN2); the [1,3,3,1] FIR is used only inside layers.
Their gradients are each other's transposes, which TF derives from reshape/tile/mean.
"""

import tensorflow as tf


def nearest_upsample_2d(x, factor=2):
    """Repeat every pixel factor x factor times: [N, H, W, C] -> [N, H*f, W*f, C]."""
    factor = int(factor)
    if factor == 1:
        return x
    _, h, w, c = x.shape
    x = tf.reshape(x, [-1, h, 1, w, 1, c])
    x = tf.tile(x, [1, 1, factor, 1, factor, 1])
    return tf.reshape(x, [-1, h * factor, w * factor, c])


def box_downsample_2d(x, factor=2):
    """Average factor x factor blocks: [N, H, W, C] -> [N, H/f, W/f, C]."""
    factor = int(factor)
    if factor == 1:
        return x
    _, h, w, c = x.shape
    if h % factor or w % factor:
        raise ValueError(f"box_downsample_2d: {h}x{w} is not divisible by {factor}")
    x = tf.reshape(x, [-1, h // factor, factor, w // factor, factor, c])
    return tf.reduce_mean(x, axis=[2, 4])


def fade_reals(x, lod, level):
    """Reals as the official `process_reals` feeds them to a growing D at `lod` (x: a
    full-resolution NHWC batch): averaged to the level's resolution R / 2^level (level =
    floor(lod), static), faded towards their next-coarser version by lod - level, and
    nearest-upsampled back to R.

    NVIDIA's dataset tool stores each lower resolution rounded to uint8; averaging the full
    resolution here skips that rounding (differences below one grey level)."""
    factor = 2 ** int(level)
    x = box_downsample_2d(x, factor)
    t = tf.cast(lod, x.dtype) - float(level)
    if x.shape[1] >= 2:
        coarse = nearest_upsample_2d(box_downsample_2d(x, 2), 2)
        x = x + (coarse - x) * t
    return nearest_upsample_2d(x, factor)
