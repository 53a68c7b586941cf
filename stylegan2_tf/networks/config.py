"""One config object per network.

Defaults are the official StyleGAN2 config F (NVlabs/stylegan2, 1024x1024). Names
follow NVIDIA's PyTorch port (z_dim, w_dim, c_dim, img_resolution, ...); the
official TF1 keyword names are mapped onto them by `stylegan2_tf.official`.
"""

import dataclasses
import math
from dataclasses import dataclass
from typing import Optional, Tuple

ARCHITECTURES = ("orig", "skip", "resnet")
# Progressive growing (paper Table 1, configs A-D; see networks/lod.py):
#   G 'stylegan1'  config A: StyleGAN1 synthesis (AdaIN), official `G_style`
#   G 'revised'    configs B-D: modulation/demodulation, `G_synthesis_stylegan_revised`
#   D 'basic'      config A: StyleGAN1 discriminator, official `D_basic`
#   D 'stylegan'   configs B-D: official `D_stylegan`
PROGRESSIVE_G_ARCHITECTURES = ("stylegan1", "revised")
PROGRESSIVE_D_ARCHITECTURES = ("basic", "stylegan")
# The activations' dtype in the `num_fp16_res` blocks: float16 (NVlabs/stylegan2-ada, GPUs) or
# bfloat16 (float32's exponent range, so no loss scaling; fast on CPUs with AVX512-BF16/AMX
# and on GPUs from Ampere on).
MIXED_DTYPES = ("float16", "bfloat16")


def _log2_resolution(res):
    log2 = int(round(math.log2(res))) if res and res > 0 else -1
    if res < 4 or 2 ** log2 != res:
        raise ValueError(f"resolution must be a power of two >= 4, got {res}")
    return log2


@dataclass
class _Config:
    def to_dict(self):
        d = dataclasses.asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}

    @classmethod
    def from_dict(cls, d):
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown fields {sorted(unknown)}")
        kw = dict(d)
        if kw.get("resample_kernel") is not None:
            kw["resample_kernel"] = tuple(kw["resample_kernel"])
        return cls(**kw)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def nf(self, stage):
        """Feature maps at stage (4x4 is stage 1): clip(fmap_base / 2^(stage*decay), min, max)."""
        return int(min(max(int(self.fmap_base / (2.0 ** (stage * self.fmap_decay))), self.fmap_min),
                       self.fmap_max))

    @property
    def resolution_log2(self):
        return _log2_resolution(self.img_resolution)

    @property
    def fp16_resolution(self):
        """Lowest resolution computed in float16: the `num_fp16_res` highest ones, never
        4x4 (num_fp16_res = 0 gives 2 * img_resolution, i.e. none)."""
        return max(2 ** (self.resolution_log2 + 1 - self.num_fp16_res), 8)

    def use_fp16(self, resolution):
        """Whether the block at `resolution` computes in `mixed_dtype` (its weights stay float32)."""
        return resolution >= self.fp16_resolution

    def activation_dtype(self, resolution, default):
        """The dtype name the block at `resolution` computes in: `mixed_dtype` in the
        `num_fp16_res` highest resolutions, else `default` (the network's compute dtype)."""
        return self.mixed_dtype if self.use_fp16(resolution) else default

    @property
    def progressive(self):
        """Whether the network grows progressively (has a lod variable)."""
        return self.architecture in PROGRESSIVE_G_ARCHITECTURES + PROGRESSIVE_D_ARCHITECTURES

    @property
    def max_lod(self):
        return self.resolution_log2 - 2

    def _check_precision(self):
        if self.progressive and (self.num_fp16_res or self.conv_clamp is not None):
            raise ValueError(f"architecture {self.architecture!r} (progressive growing) trains in float32: "
                             f"num_fp16_res and conv_clamp are not supported")
        if self.num_fp16_res < 0:
            raise ValueError(f"num_fp16_res must be >= 0, got {self.num_fp16_res}")
        if self.mixed_dtype not in MIXED_DTYPES:
            raise ValueError(f"mixed_dtype must be one of {MIXED_DTYPES}, got {self.mixed_dtype!r}")
        if self.conv_clamp is not None and not self.conv_clamp > 0:
            raise ValueError(f"conv_clamp must be > 0 or None, got {self.conv_clamp}")


@dataclass
class GeneratorConfig(_Config):
    z_dim: int = 512
    c_dim: int = 0
    w_dim: int = 512
    img_resolution: int = 1024
    img_channels: int = 3
    # Mapping network.
    mapping_layers: int = 8
    mapping_fmaps: int = 512
    mapping_lrmul: float = 0.01
    mapping_activation: str = "lrelu"
    normalize_latents: bool = True
    # How labels enter the mapping network: 'concat' (NVlabs/stylegan2: z' = [z, c @ W]
    # before normalisation) or 'embed' (NVlabs/stylegan2-ada: [norm(z), norm(dense(c))]).
    label_mode: str = "embed"
    label_fmaps: Optional[int] = None  # embedding size, None = z_dim
    w_avg_beta: float = 0.995
    # Synthesis network.
    fmap_base: int = 16384
    fmap_decay: float = 1.0
    fmap_min: int = 1
    fmap_max: int = 512
    fmap_const: Optional[int] = None
    architecture: str = "skip"
    activation: str = "lrelu"
    resample_kernel: Tuple[int, ...] = (1, 3, 3, 1)
    use_noise: bool = True
    # Modulated-conv form: None = automatic (fused on GPUs, non-fused on CPUs), True/False forces it
    # (stylegan2_tf.layers.modulated.use_fused_form). Same numbers either way.
    fused_modconv: Optional[bool] = None
    # Mixed precision (NVlabs/stylegan2-ada): float16 (or bfloat16: mixed_dtype) activations in
    # the `num_fp16_res` highest-resolution blocks; conv/ToRGB outputs clamped to +-conv_clamp
    # (None = off).
    conv_clamp: Optional[float] = None
    num_fp16_res: int = 0
    mixed_dtype: str = "float16"  # of those blocks' activations (MIXED_DTYPES)
    # Config A only: up-convolutions fused with the up-sampling (official fused_scale; None =
    # 'auto', i.e. at resolutions >= 128). Changes which way the stored kernels are read.
    fused_scale: Optional[bool] = None

    def __post_init__(self):
        self.resolution_log2  # validates
        allowed = ARCHITECTURES + PROGRESSIVE_G_ARCHITECTURES
        if self.architecture not in allowed:
            raise ValueError(f"generator architecture must be one of {allowed}, got {self.architecture!r}")
        if self.label_mode not in ("concat", "embed"):
            raise ValueError(f"label_mode must be 'concat' or 'embed', got {self.label_mode!r}")
        if self.mapping_layers < 1:
            raise ValueError("mapping_layers must be >= 1")
        self._check_precision()

    @property
    def num_ws(self):
        return 2 * self.resolution_log2 - 2

    @property
    def stylegan1(self):
        """Config A's StyleGAN1 conventions (AdaIN synthesis, activation gain in the weights)."""
        return self.architecture == "stylegan1"

    @property
    def default_truncation(self):
        """(psi, cutoff) the official generators use when none is given: G_style (config A)
        0.7 on the first 8 layers, G_main (configs B-F) 0.5 on all."""
        return (0.7, 8) if self.stylegan1 else (0.5, None)


@dataclass
class DiscriminatorConfig(_Config):
    c_dim: int = 0
    img_resolution: int = 1024
    img_channels: int = 3
    fmap_base: int = 16384
    fmap_decay: float = 1.0
    fmap_min: int = 1
    fmap_max: int = 512
    architecture: str = "resnet"
    activation: str = "lrelu"
    resample_kernel: Tuple[int, ...] = (1, 3, 3, 1)
    mbstd_group_size: Optional[int] = 4  # None = whole minibatch
    mbstd_num_features: int = 1          # 0 = no minibatch-stddev layer
    # Conditioning: 'project' (NVlabs/stylegan2: sum(out * c)) or 'cmap'
    # (NVlabs/stylegan2-ada: sum(out * norm(embed(c))) / sqrt(cmap_dim)).
    label_mode: str = "cmap"
    mapping_layers: int = 0              # extra label-mapping layers ('cmap')
    mapping_fmaps: Optional[int] = None  # cmap_dim, None = nf(0)
    mapping_lrmul: float = 0.1
    # Mixed precision, as in GeneratorConfig (the 4x4 epilogue always runs in float32).
    conv_clamp: Optional[float] = None
    num_fp16_res: int = 0
    mixed_dtype: str = "float16"  # of those blocks' activations (MIXED_DTYPES)

    def __post_init__(self):
        # At 4x4 D is its epilogue alone, and only 'skip' gives it features (FromRGB of the image),
        # as in NVlabs/stylegan2's D at 4x4.
        if self.resolution_log2 == 2 and self.architecture != "skip":
            raise ValueError(f"a 4x4 discriminator has no blocks: only architecture 'skip' gives it features, "
                             f"got {self.architecture!r}")
        allowed = ARCHITECTURES + PROGRESSIVE_D_ARCHITECTURES
        if self.architecture not in allowed:
            raise ValueError(f"discriminator architecture must be one of {allowed}, got {self.architecture!r}")
        if self.progressive and self.c_dim and self.label_mode != "project":
            raise ValueError(f"discriminator architecture {self.architecture!r} conditions with "
                             f"label_mode 'project' only")
        if self.label_mode not in ("project", "cmap"):
            raise ValueError(f"label_mode must be 'project' or 'cmap', got {self.label_mode!r}")
        self._check_precision()

    @property
    def cmap_dim(self):
        return self.mapping_fmaps if self.mapping_fmaps is not None else self.nf(0)


class ConfigSerializable:
    """get_config/from_config for Keras layers and models built from one config object."""

    config_class = None

    def get_config(self):
        return {**super().get_config(), "config": self.config.to_dict()}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls(cls.config_class.from_dict(config.pop("config")), **config)


CONFIG_F = dict(fmap_base=16384)
CONFIG_E = dict(fmap_base=8192)
