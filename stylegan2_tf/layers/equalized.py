"""Equalized-learning-rate layers (Karras et al. 2018, used unchanged by StyleGAN2).

Weights are stored as N(0, 1/lrmul) and scaled at run time by lrmul / sqrt(fan_in);
biases are stored raw and scaled by lrmul. Storing parameters exactly as NVIDIA's
code does keeps official pickles loadable as they are, and keeps Adam's per-variable
dynamics (and every per-variable gradient) identical to theirs.

StyleGAN1 convention (config A, `gain_in_weight=True`): the activation's gain (sqrt(2)
for lrelu) multiplies the weight instead of the output, i.e. act(x @ W * sqrt(2) + b)
instead of act(x @ W + b) * sqrt(2) -- the same function only while the bias is zero.

Mixed precision: layers compute in the dtype of their input (float32 variables are
cast to it), so a float16 block just feeds them float16 activations. They are built
with `autocast=False` because Keras would otherwise cast float16 inputs back to the
layer's float32 compute dtype.
"""

import math

import keras
import tensorflow as tf

from ..ops import conv2d, conv_downsample_2d, fused_bias_act, upsample_conv_2d
from ..ops.fused_bias_act import activation_gain


def _normal(lrmul):
    return keras.initializers.RandomNormal(mean=0.0, stddev=1.0 / lrmul)


def _gains(activation, gain_in_weight):
    """-> (factor on the weight's runtime scale, gain passed to the activation)."""
    if not gain_in_weight:
        return 1.0, None
    return activation_gain(activation), 1.0


class EqualizedDense(keras.layers.Layer):
    """y = act(x @ (W * lrmul / sqrt(in)) + b * lrmul) * gain. Input of rank > 2 is
    flattened in its own (NHWC) order."""

    def __init__(self, in_features, out_features, activation="linear", lrmul=1.0, use_bias=True,
                 bias_init=0.0, clamp=None, gain_in_weight=False, **kwargs):
        super().__init__(autocast=False, **kwargs)  # see module docstring
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.activation = activation
        self.lrmul = float(lrmul)
        self.use_bias = bool(use_bias)
        self.bias_init = float(bias_init)
        self.clamp = clamp
        self.gain_in_weight = bool(gain_in_weight)
        weight_factor, self.act_gain = _gains(activation, self.gain_in_weight)
        self.weight_gain = weight_factor * self.lrmul / math.sqrt(self.in_features)
        self.weight = self.add_weight(name="weight", shape=(self.in_features, self.out_features),
                                      initializer=_normal(self.lrmul))
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(self.out_features,),
                                        initializer=keras.initializers.Constant(self.bias_init / self.lrmul))
        # Every weight exists now: no symbolic build pass on the first call.
        self.built = True

    def call(self, x):
        if x.shape.rank > 2:
            x = tf.reshape(x, [-1, self.in_features])
        x = tf.matmul(x, tf.cast(self.weight * self.weight_gain, x.dtype))
        b = self.bias * self.lrmul if self.use_bias else None
        return fused_bias_act(x, b, act=self.activation, gain=self.act_gain, clamp=self.clamp)

    def get_config(self):
        return {**super().get_config(), "in_features": self.in_features, "out_features": self.out_features,
                "activation": self.activation, "lrmul": self.lrmul, "use_bias": self.use_bias,
                "bias_init": self.bias_init, "clamp": self.clamp, "gain_in_weight": self.gain_in_weight}


class EqualizedConv2d(keras.layers.Layer):
    """NHWC convolution with equalized lr, optional 2x FIR up/down-sampling
    (`upsample_conv_2d` / `conv_downsample_2d`), bias and activation."""

    def __init__(self, in_channels, out_channels, kernel_size, activation="linear", up=False, down=False,
                 resample_kernel=(1, 3, 3, 1), use_bias=True, lrmul=1.0, clamp=None, gain_in_weight=False,
                 **kwargs):
        super().__init__(autocast=False, **kwargs)  # see module docstring
        if up and down:
            raise ValueError("EqualizedConv2d: up and down are exclusive")
        if kernel_size < 1 or kernel_size % 2 != 1:
            raise ValueError(f"EqualizedConv2d: odd kernel size expected, got {kernel_size}")
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.kernel_size = int(kernel_size)
        self.activation = activation
        self.up = bool(up)
        self.down = bool(down)
        self.resample_kernel = tuple(resample_kernel) if resample_kernel is not None else None
        self.use_bias = bool(use_bias)
        self.lrmul = float(lrmul)
        self.clamp = clamp
        self.gain_in_weight = bool(gain_in_weight)
        weight_factor, self.act_gain = _gains(activation, self.gain_in_weight)
        self.weight_gain = weight_factor * self.lrmul / math.sqrt(self.in_channels * self.kernel_size ** 2)
        self.weight = self.add_weight(
            name="weight", shape=(self.kernel_size, self.kernel_size, self.in_channels, self.out_channels),
            initializer=_normal(self.lrmul))
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(self.out_channels,), initializer="zeros")
        # Every weight exists now: no symbolic build pass on the first call.
        self.built = True

    def call(self, x):
        w = tf.cast(self.weight * self.weight_gain, x.dtype)
        if self.up:
            x = upsample_conv_2d(x, w, k=self.resample_kernel)
        elif self.down:
            x = conv_downsample_2d(x, w, k=self.resample_kernel)
        else:
            x = conv2d(x, w, padding="SAME")
        b = self.bias * self.lrmul if self.use_bias else None
        return fused_bias_act(x, b, act=self.activation, gain=self.act_gain, clamp=self.clamp)

    def get_config(self):
        return {**super().get_config(), "gain_in_weight": self.gain_in_weight,
                "in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": self.kernel_size, "activation": self.activation, "up": self.up,
                "down": self.down, "resample_kernel": self.resample_kernel, "use_bias": self.use_bias,
                "lrmul": self.lrmul, "clamp": self.clamp}
