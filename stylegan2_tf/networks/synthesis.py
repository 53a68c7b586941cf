"""Synthesis network g: w [N, num_ws, w_dim] -> image [N, R, R, C] (NHWC).

Per resolution 2^r a block holds Conv0_up (2x up, ws[2r-5]) and Conv1 (ws[2r-4]);
ToRGB of resolution 2^r reads ws[2r-3]. The 4x4 block is a learned constant and
one conv (ws[0]), ToRGB ws[1]. Architectures (paper, Fig. 7 / Table 2):
  orig    ToRGB only at the last resolution
  skip    ToRGB at every resolution; RGB outputs upsampled ([1,3,3,1] FIR) and summed
  resnet  residual blocks: (main + 1x1 up-conv skip) / sqrt(2); ToRGB at the end

Mixed precision (config.num_fp16_res): blocks at resolution >= config.fp16_resolution
carry float16 features (or config.mixed_dtype's); the RGB accumulator and the output stay
float32 (the network's dtype). conv_clamp clamps every SynthesisLayer and ToRGB output.
In resnet blocks NVIDIA's code applies sqrt(0.5) inside Conv1's epilogue with clamp
conv_clamp*sqrt(0.5); clamping first and scaling the sum afterwards is the same arithmetic.
"""

import math

import keras
import tensorflow as tf

from ..layers import EqualizedConv2d, SynthesisLayer, ToRGB, check_noise_mode
from ..ops import stateless_random, upsample_2d
from .config import ConfigSerializable, GeneratorConfig

INV_SQRT2 = 1.0 / math.sqrt(2.0)


class SynthesisBlock(keras.layers.Layer):
    """One resolution of the synthesis network (the 4x4 block holds the constant)."""

    def __init__(self, config: GeneratorConfig, res_log2, in_channels, out_channels, **kwargs):
        super().__init__(autocast=False, **kwargs)  # x may be float16 (see layers/equalized.py)
        cfg = config
        self.res_log2 = int(res_log2)
        self.resolution = 2 ** self.res_log2
        self.use_fp16 = cfg.use_fp16(self.resolution)
        self.activation_dtype = tf.as_dtype(cfg.activation_dtype(self.resolution, self.compute_dtype))
        self.architecture = cfg.architecture
        self.resample_kernel = cfg.resample_kernel
        self.is_last = self.res_log2 == cfg.resolution_log2
        common = dict(w_dim=cfg.w_dim, resolution=self.resolution, use_noise=cfg.use_noise,
                      activation=cfg.activation, resample_kernel=cfg.resample_kernel,
                      fused_modconv=cfg.fused_modconv, conv_clamp=cfg.conv_clamp)
        self.const = None
        self.conv0 = None
        self.skip = None
        if self.res_log2 == 2:
            const_ch = cfg.fmap_const if cfg.fmap_const is not None else out_channels
            self.const = self.add_weight(name="const", shape=(4, 4, const_ch),
                                         initializer=keras.initializers.RandomNormal(0.0, 1.0))
            self.conv1 = SynthesisLayer(const_ch, out_channels, name="conv1", **common)
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, up=True, name="conv0", **common)
            self.conv1 = SynthesisLayer(out_channels, out_channels, name="conv1", **common)
            if self.architecture == "resnet":
                self.skip = EqualizedConv2d(in_channels, out_channels, 1, up=True, use_bias=False,
                                            resample_kernel=cfg.resample_kernel, name="skip")
        self.torgb = None
        if self.architecture in ("skip", "revised") or self.is_last:  # 'revised': one per level of detail
            self.torgb = ToRGB(out_channels, cfg.img_channels, cfg.w_dim, fused_modconv=cfg.fused_modconv,
                               conv_clamp=cfg.conv_clamp, name="torgb")
        # Every weight exists now: no symbolic build pass on the first call.
        self.built = True

    def features(self, x, ws, noise_mode="random", fused_modconv=None, noise_seed=None):
        """The block's feature maps from the previous block's (None for 4x4)."""
        r = self.res_log2

        def layer_seed(idx):
            if noise_seed is None:
                return None
            return stateless_random.fold_in(noise_seed, idx)

        dtype = self.activation_dtype
        if self.const is not None:
            x = tf.tile(tf.cast(self.const, dtype)[tf.newaxis], [tf.shape(ws)[0], 1, 1, 1])
            return self.conv1(x, ws[:, 0], noise_mode=noise_mode, fused_modconv=fused_modconv,
                              noise_seed=layer_seed(0))
        x = tf.cast(x, dtype)
        t = x
        x = self.conv0(x, ws[:, 2 * r - 5], noise_mode=noise_mode, fused_modconv=fused_modconv,
                       noise_seed=layer_seed(2 * r - 5))
        x = self.conv1(x, ws[:, 2 * r - 4], noise_mode=noise_mode, fused_modconv=fused_modconv,
                       noise_seed=layer_seed(2 * r - 4))
        if self.skip is not None:
            x = (x + self.skip(t)) * INV_SQRT2
        return x

    def to_rgb(self, x, ws, fused_modconv=None):
        """ToRGB of features x, in ws's dtype (float32, or float64)."""
        return tf.cast(self.torgb(x, ws[:, 2 * self.res_log2 - 3], fused_modconv=fused_modconv), ws.dtype)

    def call(self, x, img, ws, noise_mode="random", fused_modconv=None, noise_seed=None):
        """x: features (None for 4x4), img: running RGB (skip) or None, ws: [N, num_ws, w_dim].
        noise_seed: optional [2] int32 seed; layer i draws its noise from fold_in(seed, i)."""
        x = self.features(x, ws, noise_mode=noise_mode, fused_modconv=fused_modconv, noise_seed=noise_seed)
        # img (the RGB sum) stays in the network's dtype, ws's: float32 (or float64).
        if img is not None:
            img = upsample_2d(img, k=self.resample_kernel)
        if self.torgb is not None:
            y = self.to_rgb(x, ws, fused_modconv=fused_modconv)
            img = y if img is None else img + y
        return x, img


class SynthesisNetwork(ConfigSerializable, keras.layers.Layer):
    config_class = GeneratorConfig

    def __init__(self, config: GeneratorConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        cfg = config
        self.num_ws = cfg.num_ws
        self.blocks = []
        for r in range(2, cfg.resolution_log2 + 1):
            in_ch = cfg.nf(r - 2) if r > 2 else 0
            self.blocks.append(SynthesisBlock(cfg, r, in_ch, cfg.nf(r - 1), name=f"b{2 ** r}"))
        # Every weight exists now: no symbolic build pass on the first call.
        self.built = True

    def call(self, ws, noise_mode="random", fused_modconv=None, noise_seed=None):
        check_noise_mode(noise_mode)
        ws = tf.cast(ws, self.compute_dtype)
        x = img = None
        for block in self.blocks:
            x, img = block(x, img, ws, noise_mode=noise_mode, fused_modconv=fused_modconv, noise_seed=noise_seed)
        return img
