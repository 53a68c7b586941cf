"""NVIDIA's TF1 network pickles -> our network configs.

Four families of official pickles are understood, told apart by their build functions:
  'stylegan2'      NVlabs/stylegan2       G_main + G_synthesis_stylegan2, D_stylegan2 (configs E, F)
  'stylegan2-ada'  NVlabs/stylegan2-ada   G_main + G_synthesis, D_main
  'stylegan1'      NVlabs/stylegan2       G_style + G_synthesis, D_basic (config A, growing)
  'revised'        NVlabs/stylegan2       G_main + G_synthesis_stylegan_revised, D_stylegan
                                          (configs B-D, growing)
Their static kwargs (which omit every argument left at its default) are turned into our configs
with each family's own defaults; settings we do not build are refused with one clear error.
The variables are matched to ours in `tf1_format`.
"""

from ..networks import DiscriminatorConfig, GeneratorConfig
from .unpickler import NetworkPickleError, NetworkState

# Build-function names -> family: (G build function, synthesis build function) and D's.
G_FUNCS = {("G_main", "G_synthesis_stylegan2"): "stylegan2", ("G_main", "G_synthesis"): "stylegan2-ada",
           ("G_style", "G_synthesis"): "stylegan1", ("G_main", "G_synthesis_stylegan_revised"): "revised"}
D_FUNCS = {"D_stylegan2": "stylegan2", "D_main": "stylegan2-ada", "D_basic": "stylegan1", "D_stylegan": "revised"}
G_ARCHITECTURE = {"stylegan1": "stylegan1", "revised": "revised"}   # the growing families' fixed layouts
D_ARCHITECTURE = {"stylegan1": "basic", "revised": "stylegan"}

# Defaults of the official build functions for the keywords we read.
_G_DEFAULTS = {
    "stylegan2": dict(latent_size=512, label_size=0, dlatent_size=512, mapping_layers=8, mapping_fmaps=512,
                      mapping_lrmul=0.01, mapping_nonlinearity="lrelu", normalize_latents=True,
                      num_channels=3, resolution=1024, fmap_base=16 << 10, fmap_decay=1.0, fmap_min=1,
                      fmap_max=512, architecture="skip", nonlinearity="lrelu", resample_kernel=[1, 3, 3, 1],
                      fused_modconv=True, dlatent_avg_beta=0.995),
    "stylegan2-ada": dict(latent_size=512, label_size=0, dlatent_size=512, mapping_layers=8, mapping_fmaps=None,
                          mapping_lrmul=0.01, mapping_nonlinearity="lrelu", normalize_latents=True,
                          label_fmaps=None, num_channels=3, resolution=1024, fmap_base=16384, fmap_decay=1,
                          fmap_min=1, fmap_max=512, fmap_const=None, use_noise=True, architecture="skip",
                          nonlinearity="lrelu", num_fp16_res=0, conv_clamp=None, resample_kernel=[1, 3, 3, 1],
                          fused_modconv=False, dlatent_avg_beta=0.995),
    # G_style + networks_stylegan.G_mapping / G_synthesis
    "stylegan1": dict(latent_size=512, label_size=0, dlatent_size=512, mapping_layers=8, mapping_fmaps=512,
                      mapping_lrmul=0.01, mapping_nonlinearity="lrelu", normalize_latents=True,
                      num_channels=3, resolution=1024, fmap_base=8192, fmap_decay=1.0, fmap_min=1,
                      fmap_max=512, nonlinearity="lrelu", use_noise=True, fused_scale="auto",
                      dlatent_avg_beta=0.995, use_styles=True, const_input_layer=True, use_wscale=True,
                      use_pixel_norm=False, use_instance_norm=True, blur_filter=[1, 2, 1]),
    # G_main + G_synthesis_stylegan_revised
    "revised": dict(latent_size=512, label_size=0, dlatent_size=512, mapping_layers=8, mapping_fmaps=512,
                    mapping_lrmul=0.01, mapping_nonlinearity="lrelu", normalize_latents=True,
                    num_channels=3, resolution=1024, fmap_base=16 << 10, fmap_decay=1.0, fmap_min=1,
                    fmap_max=512, nonlinearity="lrelu", resample_kernel=[1, 3, 3, 1], fused_modconv=True,
                    dlatent_avg_beta=0.995),
}
# Settings of the StyleGAN1 build functions that change the network, with the only value we build.
_STYLEGAN1_FIXED = dict(use_styles=True, const_input_layer=True, use_wscale=True, use_pixel_norm=False,
                        use_instance_norm=True, blur_filter=[1, 2, 1])
_D_DEFAULTS = {
    "stylegan2": dict(num_channels=3, resolution=1024, label_size=0, fmap_base=16 << 10, fmap_decay=1.0,
                      fmap_min=1, fmap_max=512, architecture="resnet", nonlinearity="lrelu",
                      mbstd_group_size=4, mbstd_num_features=1, resample_kernel=[1, 3, 3, 1]),
    "stylegan2-ada": dict(num_channels=3, resolution=1024, label_size=0, fmap_base=16384, fmap_decay=1,
                          fmap_min=1, fmap_max=512, mapping_layers=0, mapping_fmaps=None, mapping_lrmul=0.1,
                          architecture="resnet", nonlinearity="lrelu", mbstd_group_size=None,
                          mbstd_num_features=1, num_fp16_res=0, conv_clamp=None, resample_kernel=[1, 3, 3, 1],
                          use_pagan=False, score_max=1, use_spectral_norm=False),
    "stylegan1": dict(num_channels=1, resolution=32, label_size=0, fmap_base=8192, fmap_decay=1.0, fmap_min=1,
                      fmap_max=512, nonlinearity="lrelu", mbstd_group_size=4, mbstd_num_features=1,
                      use_wscale=True, fused_scale="auto", blur_filter=[1, 2, 1]),
    "revised": dict(num_channels=3, resolution=1024, label_size=0, fmap_base=16 << 10, fmap_decay=1.0,
                    fmap_min=1, fmap_max=512, nonlinearity="lrelu", mbstd_group_size=4, mbstd_num_features=1,
                    resample_kernel=[1, 3, 3, 1]),
}


def _kwargs(net: NetworkState, defaults):
    kw = dict(defaults)
    kw.update(net.static_kwargs)
    return kw


def _kernel(k):
    return tuple(int(v) if float(v).is_integer() else float(v) for v in k) if k is not None else None


def generator_family(net: NetworkState, where="G"):
    comps = net.components
    if "synthesis" not in comps or "mapping" not in comps:
        if net.build_func_name not in {g for g, _ in G_FUNCS}:
            raise NetworkPickleError(f"{where}: build function {net.build_func_name!r} is not supported "
                                     f"(supported: G_main, G_style)")
        raise NetworkPickleError(f"{where}: expected 'synthesis' and 'mapping' components, found {sorted(comps)}")
    key = (net.build_func_name, comps["synthesis"].build_func_name)
    if key not in G_FUNCS:
        known = ", ".join(f"{g} + {sy}" for g, sy in G_FUNCS)
        raise NetworkPickleError(f"{where}: {key[0]} with synthesis network {key[1]!r} is not supported "
                                 f"(supported: {known})")
    if comps["mapping"].build_func_name != "G_mapping":
        raise NetworkPickleError(f"{where}: mapping network {comps['mapping'].build_func_name!r} is not supported")
    return G_FUNCS[key]


def _check_fixed(kw, fixed, where):
    for key, value in fixed.items():
        if kw.get(key, value) != value:
            raise NetworkPickleError(f"{where}: {key}={kw[key]!r} is not supported (only {value!r})")


def _fused_scale(kw, where):
    value = kw.get("fused_scale", "auto")
    if value == "auto":
        return None
    if isinstance(value, bool):
        return value
    raise NetworkPickleError(f"{where}: fused_scale={value!r} is not supported (True, False or 'auto')")


def _w_avg_beta(kw):
    # G_main's argument is dlatent_avg_beta; NVIDIA's PyTorch converter also reads w_avg_beta.
    beta = kw.get("w_avg_beta", kw.get("dlatent_avg_beta"))
    return 1.0 if beta is None else float(beta)


def generator_config(net: NetworkState, where="G") -> GeneratorConfig:
    family = generator_family(net, where)
    kw = _kwargs(net, _G_DEFAULTS[family])
    # The mapping component's own kwargs are authoritative for mapping settings.
    kw.update({k: v for k, v in net.components["mapping"].static_kwargs.items() if k != "dlatent_broadcast"})
    if kw.get("dtype", "float32") not in ("float32", "float16"):
        raise NetworkPickleError(f"{where}: unsupported dtype {kw['dtype']!r}")
    ada = family == "stylegan2-ada"
    if family == "stylegan1":
        _check_fixed(kw, _STYLEGAN1_FIXED, where)
        if kw.get("use_noise", True) not in (True, 1):
            raise NetworkPickleError(f"{where}: use_noise={kw['use_noise']!r} is not supported")
    mapping_fmaps = kw["mapping_fmaps"]
    if mapping_fmaps is None:
        mapping_fmaps = kw["dlatent_size"]
    try:
        return GeneratorConfig(
            z_dim=int(kw["latent_size"]), c_dim=int(kw["label_size"]), w_dim=int(kw["dlatent_size"]),
            img_resolution=int(kw["resolution"]), img_channels=int(kw["num_channels"]),
            mapping_layers=int(kw["mapping_layers"]), mapping_fmaps=int(mapping_fmaps),
            mapping_lrmul=float(kw["mapping_lrmul"]), mapping_activation=kw["mapping_nonlinearity"],
            normalize_latents=bool(kw["normalize_latents"]),
            label_mode="embed" if ada else "concat",
            label_fmaps=(None if kw.get("label_fmaps") is None else int(kw["label_fmaps"])),
            w_avg_beta=_w_avg_beta(kw),
            fmap_base=int(kw["fmap_base"]), fmap_decay=float(kw["fmap_decay"]), fmap_min=int(kw["fmap_min"]),
            fmap_max=int(kw["fmap_max"]),
            fmap_const=(None if kw.get("fmap_const") is None else int(kw["fmap_const"])),
            architecture=G_ARCHITECTURE.get(family) or kw["architecture"], activation=kw["nonlinearity"],
            resample_kernel=_kernel(kw.get("resample_kernel", [1, 3, 3, 1])),
            use_noise=bool(kw.get("use_noise", True)), fused_scale=_fused_scale(kw, where),
            # NVIDIA's fused_modconv only picks an implementation (same numbers); ours is chosen per device.
            fused_modconv=None,
            conv_clamp=(None if kw.get("conv_clamp") is None else float(kw["conv_clamp"])),
            num_fp16_res=int(kw.get("num_fp16_res", 0) or 0))
    except (ValueError, TypeError, KeyError) as e:
        raise NetworkPickleError(f"{where}: unsupported generator configuration ({e})") from None


def discriminator_config(net: NetworkState, where="D") -> DiscriminatorConfig:
    if net.build_func_name not in D_FUNCS:
        raise NetworkPickleError(
            f"{where}: discriminator {net.build_func_name!r} is not supported (supported: {sorted(D_FUNCS)})")
    family = D_FUNCS[net.build_func_name]
    kw = _kwargs(net, _D_DEFAULTS[family])
    for key, bad in (("use_pagan", True), ("use_spectral_norm", True)):
        if kw.get(key) == bad:
            raise NetworkPickleError(f"{where}: {key}=True is not supported (extra discriminator layers)")
    if kw.get("score_max", 1) != 1:
        raise NetworkPickleError(f"{where}: score_max={kw['score_max']} (auxiliary rotation) is not supported")
    ada = family == "stylegan2-ada"
    if family == "stylegan1":
        _check_fixed(kw, dict(use_wscale=True, blur_filter=[1, 2, 1]), where)
        _fused_scale(kw, where)   # validated only: D's fused form computes the same
    if ada:
        group = kw["mbstd_group_size"]
        num_features = int(kw["mbstd_num_features"])
    else:  # NVlabs/stylegan2: group size <= 1 disables the layer
        group = kw["mbstd_group_size"]
        num_features = int(kw["mbstd_num_features"]) if group is not None and group > 1 else 0
    try:
        return DiscriminatorConfig(
            c_dim=int(kw["label_size"]), img_resolution=int(kw["resolution"]),
            img_channels=int(kw["num_channels"]), fmap_base=int(kw["fmap_base"]),
            fmap_decay=float(kw["fmap_decay"]), fmap_min=int(kw["fmap_min"]), fmap_max=int(kw["fmap_max"]),
            architecture=D_ARCHITECTURE.get(family) or kw["architecture"], activation=kw["nonlinearity"],
            resample_kernel=_kernel(kw.get("resample_kernel", [1, 3, 3, 1])),
            mbstd_group_size=None if group is None else int(group), mbstd_num_features=num_features,
            label_mode="cmap" if ada else "project",
            mapping_layers=int(kw.get("mapping_layers", 0)) if ada else 0,
            mapping_fmaps=(None if kw.get("mapping_fmaps") is None else int(kw["mapping_fmaps"])),
            mapping_lrmul=float(kw.get("mapping_lrmul", 0.1)),
            conv_clamp=(None if kw.get("conv_clamp") is None else float(kw["conv_clamp"])),
            num_fp16_res=int(kw.get("num_fp16_res", 0) or 0))
    except (ValueError, TypeError, KeyError) as e:
        raise NetworkPickleError(f"{where}: unsupported discriminator configuration ({e})") from None
