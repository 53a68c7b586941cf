"""Small parameter-free layers: 2nd-moment normalisation, minibatch standard deviation."""

import keras
import tensorflow as tf

# Reduced-precision activation dtypes (mixed precision). What is computed from them that
# needs range or accuracy (statistics, styles, demodulation) stays in float32.
REDUCED_PRECISION = (tf.float16, tf.bfloat16)


def at_least_float32(dtype):
    """float32 for a reduced-precision dtype, else `dtype` itself."""
    return tf.float32 if dtype in REDUCED_PRECISION else dtype


def normalize_2nd_moment(x, axis=1, eps=1e-8):
    """x / sqrt(mean(x^2) + eps) -- the 'pixel norm' applied to z (and label embeddings)."""
    return x * tf.math.rsqrt(tf.reduce_mean(tf.square(x), axis=axis, keepdims=True) + eps)


def minibatch_stddev(x, group_size=4, num_features=1):
    """Append `num_features` channels holding the group standard deviation (NHWC).

    The batch N is split into groups of G = min(group_size, N) samples (None: the whole
    batch); groups interleave, i.e. sample n belongs to group n mod (N / G), exactly
    as NVIDIA's reshape [G, N/G, ...] does. For each group the per-feature stddev over
    its G members (biased, + 1e-8 under the sqrt) is averaged over pixels and over the
    channels of each of the `num_features` channel slices, then broadcast back to the
    group's members and pixels.
    """
    n = tf.shape(x)[0]
    _, height, width, channels = x.shape
    g = n if group_size is None else tf.minimum(group_size, n)
    f = num_features
    c = channels // f
    stat_dtype = at_least_float32(x.dtype)                                # statistics in >= fp32
    y = tf.reshape(tf.cast(x, stat_dtype), [g, -1, height, width, f, c])  # [G, M, H, W, F, c]
    y = y - tf.reduce_mean(y, axis=0)
    y = tf.reduce_mean(tf.square(y), axis=0)                              # [M, H, W, F, c]
    y = tf.sqrt(y + 1e-8)
    y = tf.reduce_mean(y, axis=[1, 2, 4])                                  # [M, F]
    y = tf.cast(y, x.dtype)
    y = tf.tile(y[:, tf.newaxis, tf.newaxis, :], [g, height, width, 1])   # [N, H, W, F]
    return tf.concat([x, y], axis=-1)


class MinibatchStddev(keras.layers.Layer):
    def __init__(self, group_size=4, num_features=1, **kwargs):
        super().__init__(**kwargs)
        self.group_size = None if group_size is None else int(group_size)
        self.num_features = int(num_features)
        # Every weight exists now: no symbolic build pass on the first call.
        self.built = True

    def call(self, x):
        return minibatch_stddev(x, self.group_size, self.num_features)

    def get_config(self):
        return {**super().get_config(), "group_size": self.group_size, "num_features": self.num_features}
