"""Image preparation shared by the metrics, done exactly as the official pipelines do."""

import tensorflow as tf


def quantize_to_uint8(images):
    """Generator output in [-1, 1] -> uint8, as NVIDIA's metrics feed fakes to a feature
    network: x * 127.5 + 128, clamped to [0, 255], truncated (not rounded)."""
    x = tf.cast(images, tf.float32) * 127.5 + 128.0
    return tf.cast(tf.clip_by_value(x, 0.0, 255.0), tf.uint8)


def resize_bilinear_legacy(images, size):
    """TF1's `ResizeBilinear` with align_corners=False and no half-pixel centres: source
    coordinate = destination index * (in / out). This is what the 2015 Inception graph
    does internally (`tf.image.resize` uses half-pixel centres and differs)."""
    images = tf.cast(images, tf.float32)
    if tuple(images.shape[1:3]) == tuple(size):
        return images
    return tf.raw_ops.ResizeBilinear(images=images, size=tf.constant(size, tf.int32),
                                     align_corners=False, half_pixel_centers=False)


def ppl_crop(images):
    """The FFHQ face crop of the ppl_* metrics (NHWC): rows [3c, 7c), columns [2c, 6c), c = H // 8."""
    c = int(images.shape[1]) // 8
    return images[:, c * 3:c * 7, c * 2:c * 6, :]


def box_downsample_to(images, target=256):
    """Average non-overlapping f x f boxes, f = H // target, when f > 1 (NHWC)."""
    h, w = int(images.shape[1]), int(images.shape[2])
    f = h // target
    if f <= 1:
        return images
    x = tf.reshape(images, [-1, h // f, f, w // f, f, images.shape[3]])
    return tf.reduce_mean(x, axis=[2, 4])
