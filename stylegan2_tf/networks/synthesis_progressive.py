"""Synthesis networks that grow progressively (paper configs A-D), with a `lod` variable.

  'stylegan1'  config A, official `G_synthesis` of networks_stylegan.py: AdaIN layers
               (layers/stylegan1.py), one noise map and one style per layer (two per
               resolution, 4x4 included), linear ToRGB_lod<k> without styles.
  'revised'    configs B-D, official `G_synthesis_stylegan_revised`: the StyleGAN2
               layers of synthesis.py (modulation/demodulation, noise and bias outside
               the style block) with a modulated ToRGB_lod<k> at every resolution.

At level k (lod in [k, k+1]) the blocks 4x4 .. R/2^k run; the image is
  lerp(ToRGB(block R/2^k), up2(ToRGB(block R/2^(k+1))), lod - k)
nearest-neighbour up-sampled by 2^k to the full resolution R (networks/lod.py). The
finest level is 8x8 (k <= log2 R - 3): lod = log2 R - 2 is its fade at t = 1, which
gives the 4x4 ToRGB up to rounding, as in the official recursive structure.
"""

import keras
import tensorflow as tf

from ..layers import AdaINLayer, EqualizedConv2d, check_noise_mode, fused_scale_at
from ..ops import nearest_upsample_2d, stateless_random
from .config import ConfigSerializable, GeneratorConfig
from .lod import add_lod_variable, evaluate_at_level, lerp
from .synthesis import SynthesisBlock


class StyleGAN1Block(keras.layers.Layer):
    """One resolution of config A's synthesis: [Const | Conv0_up] + Conv(1), and ToRGB_lod<k>.
    Layer (noise and style) indices: 4x4 Const 0 and Conv 1; at 2^r Conv0_up 2r-4, Conv1 2r-3."""

    def __init__(self, config: GeneratorConfig, res_log2, in_channels, out_channels, **kwargs):
        super().__init__(**kwargs)
        cfg = config
        self.res_log2 = int(res_log2)
        self.resolution = 2 ** self.res_log2
        common = dict(w_dim=cfg.w_dim, resolution=self.resolution, use_noise=cfg.use_noise,
                      activation=cfg.activation)
        self.const = None
        if self.res_log2 == 2:
            # Official initialisation: ones.
            self.const = self.add_weight(name="const", shape=(4, 4, out_channels), initializer="ones")
            self.conv0 = AdaINLayer(None, out_channels, name="conv0", **common)
        else:
            fused = fused_scale_at(self.resolution) if cfg.fused_scale is None else cfg.fused_scale
            self.conv0 = AdaINLayer(in_channels, out_channels, up=True, fused_scale=fused, name="conv0", **common)
        self.conv1 = AdaINLayer(out_channels, out_channels, name="conv1", **common)
        self.torgb = EqualizedConv2d(out_channels, cfg.img_channels, 1, name="torgb")
        self.built = True

    def features(self, x, ws, noise_mode="random", fused_modconv=None, noise_seed=None):
        del fused_modconv  # no modulated convolutions here
        first = 0 if self.res_log2 == 2 else 2 * self.res_log2 - 4

        def seed(idx):
            if noise_seed is None:
                return None
            return stateless_random.fold_in(noise_seed, idx)

        if self.const is not None:
            x = tf.tile(tf.cast(self.const, ws.dtype)[tf.newaxis], [tf.shape(ws)[0], 1, 1, 1])
        x = self.conv0(x, ws[:, first], noise_mode=noise_mode, noise_seed=seed(first))
        return self.conv1(x, ws[:, first + 1], noise_mode=noise_mode, noise_seed=seed(first + 1))

    def to_rgb(self, x, ws, fused_modconv=None):
        del ws, fused_modconv  # StyleGAN1's ToRGB has no style
        return self.torgb(x)


class ProgressiveSynthesisNetwork(ConfigSerializable, keras.layers.Layer):
    """w [N, num_ws, w_dim] -> image [N, R, R, C] at the level of detail `lod`."""

    config_class = GeneratorConfig

    def __init__(self, config: GeneratorConfig, **kwargs):
        super().__init__(**kwargs)
        if not config.progressive:
            raise ValueError(f"ProgressiveSynthesisNetwork: architecture {config.architecture!r} does not grow")
        self.config = config
        cfg = config
        self.num_ws = cfg.num_ws
        block_class = StyleGAN1Block if cfg.stylegan1 else SynthesisBlock
        self.blocks = []
        for r in range(2, cfg.resolution_log2 + 1):
            in_ch = cfg.nf(r - 2) if r > 2 else 0
            self.blocks.append(block_class(cfg, r, in_ch, cfg.nf(r - 1), name=f"b{2 ** r}"))
        self.lod = add_lod_variable(self)
        self.built = True

    @property
    def num_levels(self):
        """Levels of detail that run blocks of their own: 0 .. log2(R) - 3."""
        return self.config.resolution_log2 - 2

    def call(self, ws, noise_mode="random", fused_modconv=None, noise_seed=None, lod=None, level=None):
        """lod: the level of detail (default: this network's `lod` variable; G passes its own);
        level: optional static level (see networks/lod.py)."""
        check_noise_mode(noise_mode)
        ws = tf.cast(ws, self.compute_dtype)
        lod = self.lod if lod is None else lod
        kw = dict(noise_mode=noise_mode, fused_modconv=fused_modconv, noise_seed=noise_seed)
        return evaluate_at_level(lod, self.num_levels, lambda k: self._image_at_level(ws, lod, k, kw), level)

    def _image_at_level(self, ws, lod, k, kw):
        top = self.config.resolution_log2 - k   # log2 of the finest resolution that runs
        x = prev = None
        for block in self.blocks[:top - 1]:
            prev = x
            x = block.features(x, ws, **kw)
        img = self.blocks[top - 2].to_rgb(x, ws, kw["fused_modconv"])
        lower = nearest_upsample_2d(self.blocks[top - 3].to_rgb(prev, ws, kw["fused_modconv"]))
        t = tf.cast(lod, ws.dtype) - k
        return nearest_upsample_2d(lerp(img, lower, t), 2 ** k)
