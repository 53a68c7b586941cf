"""The paper's configurations (NVlabs/stylegan2 run_training.py, Table 1 and Table 2).

  config-a                      StyleGAN1 G_style + D_basic, progressive growing, R1 every
                                minibatch (not lazy), no path length; fmap_base 8192
  config-b                      + weight demodulation: revised synthesis + D_stylegan
  config-c                      + lazy regularization
  config-d                      + path length regularization
  config-e                      fmap_base 8192,  R1 gamma 100, no growing, skip G / resnet D
  config-f                      fmap_base 16384, R1 gamma 10
  config-e-G{orig,skip,resnet}-D{orig,skip,resnet}   Table 2's architecture grid (config E)
Common: global batch 32, 4 per GPU, Adam lr 0.002 beta1 0 beta2 0.99 eps 1e-8, lazy
regularization (G every 4, D every 16 minibatches), path length weight 2 on half
batches, style mixing 0.9, G EMA half-life 10 kimg, mapping lrmul 0.01 (the defaults of
TrainingOptions). Configs A-D grow from 8x8 (600 kimg per resolution + 600 kimg fade), with
the official per-resolution minibatch and learning rate (schedule.py).
"""

from ..networks import DiscriminatorConfig, GeneratorConfig

ARCHS = ("orig", "skip", "resnet")
GROWING_CONFIGS = ("config-a", "config-b", "config-c", "config-d")
CONFIGS = GROWING_CONFIGS + ("config-e", "config-f") + tuple(f"config-e-G{g}-D{d}" for g in ARCHS for d in ARCHS)
# How labels enter conditional networks (TrainingOptions.label_style), as (G label_mode, D label_mode):
#   ada        NVlabs/stylegan2-ada: G embeds c (normalised beside z), D projects onto an embedding
#              of c (cmap) -- what stylegan2-ada-pytorch trains and its legacy.py converts
#   stylegan2  NVlabs/stylegan2: G concatenates c @ W to z, D projects its per-class outputs onto c
LABEL_MODES = {"ada": ("embed", "cmap"), "stylegan2": ("concat", "project")}
LABEL_STYLES = tuple(LABEL_MODES)
# Default conv clamp of float16 blocks (NVlabs/stylegan2-ada's value).
FP16_CONV_CLAMP = 256.0


def is_progressive(config):
    """Configs A-D grow progressively."""
    return config in GROWING_CONFIGS


def has_lazy_regularization(config):
    """Configs A and B regularize every minibatch, in the main step (not lazily)."""
    return config not in ("config-a", "config-b")


def has_path_length(config):
    """Path-length regularization: configs D, E and F."""
    return config not in ("config-a", "config-b", "config-c")


def default_r1_gamma(config):
    return 100.0 if config.startswith("config-e") else 10.0


def default_label_style(config):
    """Configs A-D: NVlabs/stylegan2's (their growing D projects); the others: NVlabs/stylegan2-ada's."""
    return "stylegan2" if is_progressive(config) else "ada"


def architectures(config):
    """(G architecture, D architecture) of a config."""
    if config == "config-a":
        return "stylegan1", "basic"
    if is_progressive(config):
        return "revised", "stylegan"
    if config.startswith("config-e-"):
        g, d = config.split("-")[2:4]
        return g[1:], d[1:]
    return "skip", "resnet"


def network_configs(opts, resolution, channels, c_dim):
    """(GeneratorConfig, DiscriminatorConfig) of TrainingOptions `opts` for a dataset of
    `resolution`² images with `channels` channels and `c_dim` label entries. The network
    configs check their own rules (ValueError)."""
    fmap_base = opts.fmap_base or (16384 if opts.config == "config-f" else 8192)
    g_arch, d_arch = architectures(opts.config)
    # (Unconditional networks keep NVlabs/stylegan2's modes, unused: their snapshots stay in that format.)
    g_labels, d_labels = LABEL_MODES[opts.labels if c_dim else "stylegan2"]
    g_kw = dict(img_resolution=resolution, img_channels=channels, c_dim=c_dim, fmap_base=fmap_base,
                architecture=g_arch, label_mode=g_labels, fused_modconv=opts.fused_modconv)
    d_kw = dict(img_resolution=resolution, img_channels=channels, c_dim=c_dim, fmap_base=fmap_base,
                architecture=d_arch, label_mode=d_labels, mbstd_group_size=4)
    if opts.fmap_max:
        g_kw["fmap_max"] = d_kw["fmap_max"] = opts.fmap_max
    if opts.mapping_layers:
        g_kw["mapping_layers"] = opts.mapping_layers
    if opts.latent_dim:
        g_kw.update(z_dim=opts.latent_dim, w_dim=opts.latent_dim, mapping_fmaps=opts.latent_dim)
    for kw in (g_kw, d_kw):
        kw.update(precision(opts))
    return GeneratorConfig(**g_kw), DiscriminatorConfig(**d_kw)


def precision(opts, network_clamp=None):
    """The network-config precision fields of TrainingOptions `opts`: float16 (or bfloat16) in the
    --fp16-res highest resolutions, and the conv clamp: --conv-clamp, else the one a network was
    trained with (`network_clamp`), else 256 with float16 blocks (NVlabs/stylegan2-ada), else none."""
    clamp = opts.conv_clamp if opts.conv_clamp is not None else network_clamp
    if clamp is None and opts.fp16_res > 0:
        clamp = FP16_CONV_CLAMP
    return dict(num_fp16_res=int(opts.fp16_res), mixed_dtype=opts.mixed_dtype,
                conv_clamp=None if clamp is None else float(clamp))

