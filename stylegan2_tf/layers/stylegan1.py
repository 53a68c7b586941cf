"""Layers of the StyleGAN1 generator (Karras et al. 2019), the paper's config A.

One synthesis layer is (official `G_synthesis` of `networks_stylegan.py`):
  [conv 3x3 | nearest 2x up + conv 3x3 + [1,2,1] blur]   (none for the learned constant)
  + noise * per-channel weight -> + bias -> lrelu(0.2) -> instance norm -> AdaIN style
where AdaIN is x * (s0 + 1) + s1 with [s0, s1] = StyleMod(w), a dense layer of gain 1.
The lrelu's sqrt(2) is folded into the conv weight's runtime scale (StyleGAN1
convention, see equalized.py). At output resolutions >= 128 the official code fuses
the up-sampling into a transposed convolution ('fused_scale'), which equals nearest
up-sampling + a convolution with the *spatially flipped* kernel; `fused_scale=True`
reproduces that, so the stored weights mean the same as in NVIDIA's pickles.
"""

import math

import keras
import tensorflow as tf

from ..ops import filter_2d, fused_bias_act, nearest_upsample_2d
from .equalized import EqualizedDense
from .misc import at_least_float32
from .modulated import check_noise_mode, noise_input

INSTANCE_NORM_EPS = 1e-8
BLUR_KERNEL = (1, 2, 1)


def fused_scale_at(resolution):
    """The official fused_scale='auto' rule: fused where the (output) resolution is >= 128."""
    return int(resolution) >= 128


def instance_norm(x, eps=INSTANCE_NORM_EPS):
    """(x - mean) / sqrt(var + eps) per sample and channel over H, W (NHWC; in >= float32)."""
    dtype = x.dtype
    x = tf.cast(x, at_least_float32(dtype))
    x = x - tf.reduce_mean(x, axis=[1, 2], keepdims=True)
    x = x * tf.math.rsqrt(tf.reduce_mean(tf.square(x), axis=[1, 2], keepdims=True) + eps)
    return tf.cast(x, dtype)


def upscale_conv2d(x, kernel, fused_scale=False):
    """Nearest 2x up-sampling + 'SAME' 3x3 convolution (NHWC). fused_scale: the official fused
    op (a transposed convolution with the padded, summed kernel), which is the same as
    convolving with the spatially flipped kernel."""
    if fused_scale:
        kernel = kernel[::-1, ::-1]
    return tf.nn.conv2d(nearest_upsample_2d(x), kernel, strides=1, padding="SAME")


class StyleMod(keras.layers.Layer):
    """AdaIN's style: x * (s0 + 1) + s1, [s0, s1] = dense(w) (official `StyleMod`)."""

    def __init__(self, channels, w_dim, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.w_dim = int(w_dim)
        self.dense = EqualizedDense(self.w_dim, 2 * self.channels, name="dense")
        self.built = True

    def call(self, x, w):
        style = tf.cast(self.dense(w), x.dtype)
        scale, shift = style[:, :self.channels], style[:, self.channels:]
        return x * (scale[:, tf.newaxis, tf.newaxis, :] + 1.0) + shift[:, tf.newaxis, tf.newaxis, :]

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "w_dim": self.w_dim}


class AdaINLayer(keras.layers.Layer):
    """One StyleGAN1 synthesis layer (see module docstring). in_channels=None: no
    convolution (the epilogue of the learned 4x4 constant)."""

    def __init__(self, in_channels, out_channels, w_dim, resolution, up=False, fused_scale=False,
                 use_noise=True, activation="lrelu", **kwargs):
        super().__init__(**kwargs)
        self.in_channels = None if in_channels is None else int(in_channels)
        self.out_channels = int(out_channels)
        self.w_dim = int(w_dim)
        self.resolution = int(resolution)
        self.up = bool(up)
        self.fused_scale = bool(fused_scale)
        self.use_noise = bool(use_noise)
        self.activation = activation
        self.weight = None
        if self.in_channels is not None:
            self.weight = self.add_weight(name="weight", shape=(3, 3, self.in_channels, self.out_channels),
                                          initializer=keras.initializers.RandomNormal(0.0, 1.0))
            # He gain sqrt(2) in the weight (StyleGAN1); the activation then has gain 1.
            self.weight_gain = math.sqrt(2.0) / math.sqrt(9 * self.in_channels)
        if self.use_noise:
            self.noise_const = self.add_weight(name="noise_const", shape=(self.resolution, self.resolution),
                                               initializer=keras.initializers.RandomNormal(0.0, 1.0),
                                               trainable=False)
            self.noise_strength = self.add_weight(name="noise_strength", shape=(self.out_channels,),
                                                  initializer="zeros")
        self.bias = self.add_weight(name="bias", shape=(self.out_channels,), initializer="zeros")
        self.style = StyleMod(self.out_channels, self.w_dim, name="style")
        self.built = True

    def call(self, x, w, noise_mode="random", noise_seed=None):
        check_noise_mode(noise_mode)
        if self.weight is not None:
            kernel = tf.cast(self.weight * self.weight_gain, x.dtype)
            if self.up:
                x = filter_2d(upscale_conv2d(x, kernel, self.fused_scale), BLUR_KERNEL)
            else:
                x = tf.nn.conv2d(x, kernel, strides=1, padding="SAME")
        if self.use_noise and noise_mode != "none":
            noise = noise_input(noise_mode, tf.shape(x)[0], self.noise_const, noise_seed)
            x = x + tf.cast(noise, x.dtype) * tf.cast(self.noise_strength, x.dtype)
        x = fused_bias_act(x, self.bias, act=self.activation, gain=1.0)
        x = instance_norm(x)
        return self.style(x, w)

    def get_config(self):
        return {**super().get_config(), "in_channels": self.in_channels, "out_channels": self.out_channels,
                "w_dim": self.w_dim, "resolution": self.resolution, "up": self.up,
                "fused_scale": self.fused_scale, "use_noise": self.use_noise, "activation": self.activation}
