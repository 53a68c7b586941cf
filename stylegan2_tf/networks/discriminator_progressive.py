"""Discriminators that grow progressively (paper configs A-D), with a `lod` variable.

  'basic'     config A, official `D_basic` (networks_stylegan.py): StyleGAN1 layers
              (activation gain in the weights), Conv1_down = [1,2,1] blur, conv 3x3,
              2x2 box average; 4x4: minibatch stddev, Conv, Dense0, Dense1.
  'stylegan'  configs B-D, official `D_stylegan`: the StyleGAN2 layers of
              discriminator.py (Conv1_down with the [1,3,3,1] FIR), 4x4 epilogue
              minibatch stddev, Conv, Dense0, Output.
Each resolution has its FromRGB_lod<k>. D takes full-resolution images at every lod
and box-averages them to the level's resolution: at level k the input enters through
FromRGB_lod<k> at R/2^k, and while fading (lod - k = t > 0) the first block's output
is lerped with FromRGB_lod<k+1> of the image averaged once more. 'basic' grows down
to a 4x4-only level (k = log2 R - 2); 'stylegan' stops at 8x8 and reaches the 4x4
level as the fade's t = 1, as the official recursive structures do.
"""

import keras
import tensorflow as tf

from ..layers import EqualizedConv2d
from ..ops import box_downsample_2d, filter_2d
from .config import DiscriminatorConfig
from .lod import add_lod_variable, evaluate_at_level, lerp

BLUR_KERNEL = (1, 2, 1)


class StyleGAN1DiscriminatorBlock(keras.layers.Layer):
    """Config A's block at 2^r: FromRGB_lod<k>, Conv0, Conv1_down (blur, conv, 2x2 box average)."""

    def __init__(self, config: DiscriminatorConfig, res_log2, **kwargs):
        super().__init__(**kwargs)
        cfg = config
        self.res_log2 = int(res_log2)
        in_ch, out_ch = cfg.nf(res_log2 - 1), cfg.nf(res_log2 - 2)
        common = dict(activation=cfg.activation, gain_in_weight=True)
        self.fromrgb = EqualizedConv2d(cfg.img_channels, in_ch, 1, name="fromrgb", **common)
        self.conv0 = EqualizedConv2d(in_ch, in_ch, 3, name="conv0", **common)
        # A 'SAME' conv followed by a 2x2 box average, which is also what the official fused
        # (>= 128 px) form computes: conv_downsample_2d with the box filter [1, 1].
        self.conv1 = EqualizedConv2d(in_ch, out_ch, 3, down=True, resample_kernel=(1, 1), name="conv1", **common)
        self.built = True

    def features(self, x):
        return self.conv1(filter_2d(self.conv0(x), BLUR_KERNEL))


class ProgressiveDiscriminatorBody(keras.layers.Layer):
    """Image [N, R, R, C] -> the 4x4 epilogue's input, at the level of detail `lod`."""

    def __init__(self, config: DiscriminatorConfig, block_class, **kwargs):
        super().__init__(**kwargs)
        cfg = config
        self.config = cfg
        self.basic = cfg.architecture == "basic"
        self.blocks = [block_class(cfg, r, name=f"b{2 ** r}") for r in range(cfg.resolution_log2, 2, -1)]
        self.fromrgb4 = EqualizedConv2d(cfg.img_channels, cfg.nf(1), 1, activation=cfg.activation,
                                        gain_in_weight=self.basic, name="fromrgb4")
        self.lod = add_lod_variable(self)
        self.built = True

    @property
    def num_levels(self):
        """'basic': levels 0 .. log2(R) - 2 (4x4 included); 'stylegan': 0 .. log2(R) - 3."""
        return self.config.resolution_log2 - (1 if self.basic else 2)

    def block(self, res_log2):
        return self.blocks[self.config.resolution_log2 - res_log2]

    def _fromrgb(self, img, res_log2):
        layer = self.fromrgb4 if res_log2 == 2 else self.block(res_log2).fromrgb
        return layer(box_downsample_2d(img, 2 ** (self.config.resolution_log2 - res_log2)))

    def call(self, img, lod=None, level=None):
        lod = self.lod if lod is None else lod
        return evaluate_at_level(lod, self.num_levels, lambda k: self._features_at_level(img, lod, k), level)

    def _features_at_level(self, img, lod, k):
        top = self.config.resolution_log2 - k   # log2 of the finest resolution that runs
        x = self._fromrgb(img, top)
        if top > 2:
            x = self.block(top).features(x)
            x = lerp(x, self._fromrgb(img, top - 1), tf.cast(lod, x.dtype) - k)
            for r in range(top - 1, 2, -1):
                x = self.block(r).features(x)
        return x
