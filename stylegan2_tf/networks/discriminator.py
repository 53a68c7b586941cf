"""Discriminator D(img, c) -> logits [N, 1] (NHWC input).

Per resolution 2^r (from the top down to 8x8) a block holds Conv0 (3x3, nf(r-1))
and Conv1_down (3x3 + 2x FIR down, nf(r-2)). Architectures:
  orig    FromRGB only at the top resolution
  skip    FromRGB at every resolution from the image downsampled ([1,3,3,1] FIR), summed
  resnet  residual blocks: (main + 1x1 down-conv skip) / sqrt(2) -- configs E and F
Epilogue at 4x4: minibatch stddev, Conv 3x3, Dense0 (flattened 4x4 features), Output.
A 4x4 D has no blocks: its epilogue's FromRGB ('skip', the only architecture allowed there)
gives the features.

Mixed precision (config.num_fp16_res): blocks at resolution >= config.fp16_resolution
compute in float16 or config.mixed_dtype (their input features and image are cast on
entry); the epilogue and the scores are float32. conv_clamp clamps FromRGB, Conv0 and
Conv1 of every block and the epilogue's Conv, not the 4x4 FromRGB of 'skip' (as NVIDIA's
code). In resnet blocks NVIDIA's code scales Conv1 by sqrt(0.5) inside its epilogue with
clamp conv_clamp*sqrt(0.5); clamping first and scaling the sum afterwards is the same.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from ..layers import EqualizedConv2d, EqualizedDense, minibatch_stddev, normalize_2nd_moment
from ..ops import downsample_2d
from .config import ConfigSerializable, DiscriminatorConfig
from .discriminator_progressive import ProgressiveDiscriminatorBody, StyleGAN1DiscriminatorBlock
from .lod import check_lod

INV_SQRT2 = 1.0 / math.sqrt(2.0)


class DiscriminatorBlock(keras.layers.Layer):
    def __init__(self, config: DiscriminatorConfig, res_log2, **kwargs):
        super().__init__(autocast=False, **kwargs)  # x may be float16 (see layers/equalized.py)
        cfg = config
        self.res_log2 = int(res_log2)
        self.use_fp16 = cfg.use_fp16(2 ** self.res_log2)
        self.activation_dtype = tf.as_dtype(cfg.activation_dtype(2 ** self.res_log2, self.compute_dtype))
        self.architecture = cfg.architecture
        self.resample_kernel = cfg.resample_kernel
        in_ch, mid_ch, out_ch = cfg.nf(res_log2 - 1), cfg.nf(res_log2 - 1), cfg.nf(res_log2 - 2)
        self.fromrgb = None
        # 'stylegan' (progressive): one FromRGB per level of detail.
        if cfg.architecture in ("skip", "stylegan") or res_log2 == cfg.resolution_log2:
            self.fromrgb = EqualizedConv2d(cfg.img_channels, in_ch, 1, activation=cfg.activation,
                                           clamp=cfg.conv_clamp, name="fromrgb")
        self.conv0 = EqualizedConv2d(in_ch, mid_ch, 3, activation=cfg.activation, clamp=cfg.conv_clamp,
                                     name="conv0")
        self.conv1 = EqualizedConv2d(mid_ch, out_ch, 3, activation=cfg.activation, down=True,
                                     resample_kernel=cfg.resample_kernel, clamp=cfg.conv_clamp, name="conv1")
        self.skip = None
        if cfg.architecture == "resnet":
            self.skip = EqualizedConv2d(in_ch, out_ch, 1, down=True, use_bias=False,
                                        resample_kernel=cfg.resample_kernel, name="skip")
        # Every weight exists now: no symbolic build pass on the first call.
        self.built = True

    def features(self, x):
        """Conv0, Conv1_down (and the residual skip) of features x."""
        t = x
        x = self.conv1(self.conv0(x))
        if self.skip is not None:
            x = (x + self.skip(t)) * INV_SQRT2
        return x

    def call(self, x, img):
        dtype = self.activation_dtype
        if x is not None:
            x = tf.cast(x, dtype)
        if self.fromrgb is not None:
            img = tf.cast(img, dtype)
            y = self.fromrgb(img)
            x = y if x is None else x + y
        x = self.features(x)
        if self.architecture == "skip":
            img = downsample_2d(img, k=self.resample_kernel)
        return x, img


class DiscriminatorEpilogue(keras.layers.Layer):
    """4x4: [FromRGB (skip)], minibatch stddev, Conv, Dense0, Output (config A's D_basic: Dense1,
    with StyleGAN1's activation gains in the weights)."""

    def __init__(self, config: DiscriminatorConfig, **kwargs):
        super().__init__(autocast=False, **kwargs)  # casts its float16 input itself
        cfg = config
        self.config = cfg
        ch = cfg.nf(1)
        self.fromrgb = None
        if cfg.architecture == "skip":
            self.fromrgb = EqualizedConv2d(cfg.img_channels, ch, 1, activation=cfg.activation, name="fromrgb")
        mbstd = cfg.mbstd_num_features
        stylegan1 = cfg.architecture == "basic"
        self.conv = EqualizedConv2d(ch + mbstd, ch, 3, activation=cfg.activation, clamp=cfg.conv_clamp,
                                    gain_in_weight=stylegan1, name="conv")
        # Dense0 sees the 4x4 map flattened in NHWC order (official pickles are C,H,W:
        # their rows are permuted on import).
        self.fc = EqualizedDense(ch * 16, cfg.nf(0), activation=cfg.activation, gain_in_weight=stylegan1,
                                 name="fc")
        if cfg.c_dim > 0 and cfg.label_mode == "cmap":
            out_dim = cfg.cmap_dim
        else:
            out_dim = max(cfg.c_dim, 1)
        self.out = EqualizedDense(cfg.nf(0), out_dim, name="out")
        # Every weight exists now: no symbolic build pass on the first call.
        self.built = True

    def call(self, x, img, cmap=None):
        cfg = self.config
        if x is not None:   # None only at 4x4 (no blocks)
            x = tf.cast(x, self.compute_dtype)  # float32 (the network's dtype) from here on
        if self.fromrgb is not None:
            y = self.fromrgb(tf.cast(img, self.compute_dtype))
            x = y if x is None else x + y
        if cfg.mbstd_num_features > 0:
            x = minibatch_stddev(x, cfg.mbstd_group_size, cfg.mbstd_num_features)
        x = self.conv(x)
        x = self.fc(tf.reshape(x, [-1, 16 * x.shape[-1]]))
        x = self.out(x)
        if cmap is not None:
            x = tf.reduce_sum(x * cmap, axis=1, keepdims=True)
            if cfg.label_mode == "cmap":
                x = x * (1.0 / math.sqrt(cfg.cmap_dim))
        return x


class Discriminator(ConfigSerializable, keras.Model):
    config_class = DiscriminatorConfig

    def __init__(self, config: DiscriminatorConfig = None, **kwargs):
        super().__init__(**kwargs)
        self.config = config if config is not None else DiscriminatorConfig()
        cfg = self.config
        self.embed = None
        self.label_mapping = []
        if cfg.c_dim > 0 and cfg.label_mode == "cmap":
            self.embed = EqualizedDense(cfg.c_dim, cfg.cmap_dim, name="embed")
            for idx in range(cfg.mapping_layers):
                self.label_mapping.append(EqualizedDense(cfg.cmap_dim, cfg.cmap_dim, activation=cfg.activation,
                                                         lrmul=cfg.mapping_lrmul, name=f"mapping{idx}"))
        self.body = None
        self.lod = None
        if cfg.progressive:
            block_class = StyleGAN1DiscriminatorBlock if cfg.architecture == "basic" else DiscriminatorBlock
            self.body = ProgressiveDiscriminatorBody(cfg, block_class, name="progressive")
            self.blocks = self.body.blocks
            self.lod = self.body.lod
        else:
            self.blocks = [DiscriminatorBlock(cfg, r, name=f"b{2 ** r}")
                           for r in range(cfg.resolution_log2, 2, -1)]
        self.epilogue = DiscriminatorEpilogue(cfg, name="b4")
        # Every weight exists now: no symbolic build pass on the first call.
        self.built = True

    def call(self, img, c=None, training=False, level=None):
        """level: optional static level of detail (progressive nets; see networks/lod.py)."""
        cfg = self.config
        img = tf.cast(img, self.compute_dtype)
        cmap = None
        if cfg.c_dim > 0:
            if c is None:
                raise ValueError(f"this discriminator is conditional (c_dim={cfg.c_dim}): pass labels c")
            cmap = tf.cast(c, img.dtype)
            if self.embed is not None:
                cmap = normalize_2nd_moment(self.embed(cmap))
                for layer in self.label_mapping:
                    cmap = layer(cmap)
        x, img = self.epilogue_input(img, level=level)
        return self.epilogue(x, img, cmap)

    def epilogue_input(self, img, level=None):
        """(features, image) entering the 4x4 epilogue."""
        img = tf.cast(img, self.compute_dtype)
        if self.body is not None:
            return self.body(img, level=level), None
        x = None
        for block in self.blocks:
            x, img = block(x, img)
        return x, img

    def set_lod(self, lod):
        """Set D's level of detail (progressive nets only)."""
        if self.lod is None:
            raise ValueError(f"{self.name}: architecture {self.config.architecture!r} has no level of detail")
        self.lod.assign(check_lod(lod, self.config.img_resolution))

    def build_weights(self):
        r = self.config.img_resolution
        img = np.zeros([1, r, r, self.config.img_channels], np.float32)
        c = np.zeros([1, self.config.c_dim], np.float32) if self.config.c_dim else None
        self(img, c=c)
        return self
