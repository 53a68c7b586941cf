"""Reference ops in pure TensorFlow (NHWC), differentiable to any order."""

from .conv_2d import conv2d
from .fused_bias_act import ACTIVATIONS, activation_gain, fused_bias_act
from .naive_resample import box_downsample_2d, fade_reals, nearest_upsample_2d
from .upfirdn_2d import (conv_downsample_2d, downsample_2d, filter_2d, setup_kernel, upfirdn_2d,
                         upsample_2d, upsample_conv_2d)

__all__ = [
    "conv2d", "ACTIVATIONS", "activation_gain", "fused_bias_act", "setup_kernel", "upfirdn_2d", "filter_2d",
    "upsample_2d", "downsample_2d", "upsample_conv_2d", "conv_downsample_2d",
    "nearest_upsample_2d", "box_downsample_2d", "fade_reals",
]
