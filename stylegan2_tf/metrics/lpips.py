"""LPIPS v0.1 with VGG16 (Zhang et al. 2018): the perceptual distance of PPL and the projector.

d(x0, x1) = sum over the five VGG taps l of mean over pixels of
            w_l . (f_l(x0) / |f_l(x0)| - f_l(x1) / |f_l(x1)|)^2
where f_l are channel vectors (normalised with eps 1e-10 added to the norm) and w_l
the learned non-negative 1x1 weights. Inputs are NHWC in [-1, 1], shifted and scaled
per channel as the `lpips` package's ScalingLayer does, at their own resolution.
"""

import keras
import tensorflow as tf

from stylegan2_tf.metrics.vgg16 import LPIPS_TAPS, VGG16Convs

LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
NORM_EPS = 1e-10


def _unit_channels(x):
    return x / (tf.sqrt(tf.reduce_sum(tf.square(x), axis=-1, keepdims=True)) + NORM_EPS)


class LPIPS(keras.Model):
    def __init__(self, width_divisor=1, **kwargs):
        super().__init__(**kwargs)
        self.vgg = VGG16Convs(width_divisor, name="features")
        channels = [conv.kernel.shape[-1] for conv in self.vgg.convs if conv.torch_index in LPIPS_TAPS]
        self.lin = [self.add_weight(shape=(c,), initializer="ones", trainable=False, name=f"lin{i}")
                    for i, c in enumerate(channels)]
        self.built = True

    def call(self, img0, img1):
        """Two [N, H, W, 3] batches in [-1, 1] -> [N] distances."""
        shift, scale = tf.constant(LPIPS_SHIFT), tf.constant(LPIPS_SCALE)
        n = tf.shape(img0)[0]
        x = (tf.concat([tf.cast(img0, tf.float32), tf.cast(img1, tf.float32)], axis=0) - shift) / scale
        taps = self.vgg(x, taps=LPIPS_TAPS)
        total = 0.0
        for f, w in zip(taps, self.lin):
            f = _unit_channels(f)
            diff = tf.square(f[:n] - f[n:])
            total += tf.reduce_mean(tf.reduce_sum(diff * w, axis=-1), axis=[1, 2])
        return total


class LPIPSDistance:
    """The callable `load_lpips` returns: `(img0, img1) -> [N]` for NHWC images in [-1, 1]."""

    def __init__(self, network, source):
        self.network, self.source = network, source
        self._fn = tf.function(lambda a, b: network(a, b), reduce_retracing=True)

    def __call__(self, img0, img1):
        img0, img1 = tf.convert_to_tensor(img0), tf.convert_to_tensor(img1)
        if img0.shape != img1.shape or img0.shape.rank != 4 or img0.shape[-1] not in (1, 3):
            raise ValueError(f"LPIPS needs two NHWC batches of equal shape with 1 or 3 channels, "
                             f"got {img0.shape} and {img1.shape}")
        if img0.shape[1] is not None and min(img0.shape[1], img0.shape[2]) < 16:
            raise ValueError(f"LPIPS needs images of at least 16x16 (VGG16 pools four times), got {img0.shape}")
        if img0.shape[-1] == 1:
            img0, img1 = tf.tile(img0, [1, 1, 1, 3]), tf.tile(img1, [1, 1, 1, 3])
        return self._fn(img0, img1)
