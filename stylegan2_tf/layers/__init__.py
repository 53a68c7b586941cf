"""Keras layers of StyleGAN2 (NHWC)."""

from .equalized import EqualizedConv2d, EqualizedDense
from .misc import MinibatchStddev, minibatch_stddev, normalize_2nd_moment
from .stylegan1 import AdaINLayer, StyleMod, fused_scale_at, instance_norm, upscale_conv2d
from .modulated import (NOISE_MODES, ModulatedConv2d, SynthesisLayer, ToRGB, check_noise_mode,
                        modulated_conv2d)

__all__ = [
    "EqualizedDense", "EqualizedConv2d", "ModulatedConv2d", "SynthesisLayer", "ToRGB", "modulated_conv2d",
    "MinibatchStddev", "minibatch_stddev", "normalize_2nd_moment", "NOISE_MODES", "check_noise_mode",
    "AdaINLayer", "StyleMod", "instance_norm", "fused_scale_at", "upscale_conv2d",
]
