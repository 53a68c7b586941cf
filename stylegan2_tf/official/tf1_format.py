"""NVIDIA's TF1 network format <-> our Keras networks.

Four families of official pickles are understood:
  'stylegan2'      NVlabs/stylegan2       G_main + G_synthesis_stylegan2, D_stylegan2 (configs E, F)
  'stylegan2-ada'  NVlabs/stylegan2-ada   G_main + G_synthesis, D_main
  'stylegan1'      NVlabs/stylegan2       G_style + G_synthesis, D_basic (config A, growing)
  'revised'        NVlabs/stylegan2       G_main + G_synthesis_stylegan_revised, D_stylegan
                                          (configs B-D, growing)
The growing families store a `lod` variable in G, G_synthesis and D; all of them must
hold the same value, which becomes the networks' level of detail.
Their static kwargs (which omit every argument left at its default) are turned into
our configs with each family's own defaults, and every variable is matched by name
to one of ours through a single table -- used for reading here and for writing
snapshots in the official layout. NCHW tensors are transposed to NHWC; D's Dense0
rows, flattened in C,H,W order by TF1, are permuted to our H,W,C order.
"""

import numpy as np

from ..networks import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig
from ..networks.lod import LodError, check_lod
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


# ---------------------------------------------------------------------------------------------
# Variable tables: [(tf1 scope path, our variable, to_ours(np) -> np, to_tf1(np) -> np)].

def _same(a):
    return a


def _nchw_const_to_ours(a):   # [1, C, 4, 4] -> [4, 4, C]
    return np.transpose(a[0], [1, 2, 0])


def _ours_const_to_nchw(a):
    return np.transpose(a, [2, 0, 1])[np.newaxis]


def _noise_to_ours(a):        # [1, 1, R, R] -> [R, R]
    return a[0, 0]


def _ours_noise_to_nchw(a):
    return a[np.newaxis, np.newaxis]


def _scalar_to_ours(a):
    return np.asarray(a, np.float32).reshape(())


def _ours_scalar_to_tf1(a):
    return np.float32(a)


def _dense0_rows(channels):
    # TF1 flattens [C, 4, 4]; ours flattens [4, 4, C].
    def to_ours(a):
        return a.reshape(channels, 4, 4, -1).transpose(1, 2, 0, 3).reshape(16 * channels, -1)

    def to_tf1(a):
        return a.reshape(4, 4, channels, -1).transpose(2, 0, 1, 3).reshape(16 * channels, -1)
    return to_ours, to_tf1


def _modconv_rows(scope, modconv, rows):
    rows.append((f"{scope}/weight", modconv.weight, _same, _same))
    rows.append((f"{scope}/mod_weight", modconv.affine.weight, _same, _same))
    rows.append((f"{scope}/mod_bias", modconv.affine.bias, _same, _same))


def _synthesis_layer_rows(scope, layer, rows, noise_index, noise_rows):
    _modconv_rows(scope, layer.conv, rows)
    if layer.use_noise:
        rows.append((f"{scope}/noise_strength", layer.noise_strength, _scalar_to_ours, _ours_scalar_to_tf1))
        noise_rows.append((f"noise{noise_index}", layer.noise_const, _noise_to_ours, _ours_noise_to_nchw))
    rows.append((f"{scope}/bias", layer.bias, _same, _same))


def _dense_rows(scope, dense, rows):
    rows.append((f"{scope}/weight", dense.weight, _same, _same))
    if dense.use_bias:
        rows.append((f"{scope}/bias", dense.bias, _same, _same))


def _adain_layer_rows(scope, layer, rows, noise_index, noise_rows):
    """Config A: [weight], Noise/weight, bias, StyleMod/{weight,bias} (official order)."""
    if layer.weight is not None:
        rows.append((f"{scope}/weight", layer.weight, _same, _same))
    if layer.use_noise:
        rows.append((f"{scope}/Noise/weight", layer.noise_strength, _same, _same))
        noise_rows.append((f"noise{noise_index}", layer.noise_const, _noise_to_ours, _ours_noise_to_nchw))
    rows.append((f"{scope}/bias", layer.bias, _same, _same))
    _dense_rows(f"{scope}/StyleMod", layer.style.dense, rows)


def _synthesis_rows(G):
    """(noise rows, layer rows) of the synthesis network, in the official variable order."""
    cfg = G.config
    synth, noise = [], []
    for block in G.synthesis.blocks:
        r = block.resolution
        scope = f"{r}x{r}"
        if cfg.stylegan1:
            if block.const is not None:
                synth.append((f"{scope}/Const/const", block.const, _nchw_const_to_ours, _ours_const_to_nchw))
                _adain_layer_rows(f"{scope}/Const", block.conv0, synth, 0, noise)
                _adain_layer_rows(f"{scope}/Conv", block.conv1, synth, 1, noise)
            else:
                _adain_layer_rows(f"{scope}/Conv0_up", block.conv0, synth, 2 * block.res_log2 - 4, noise)
                _adain_layer_rows(f"{scope}/Conv1", block.conv1, synth, 2 * block.res_log2 - 3, noise)
        elif block.const is not None:
            synth.append((f"{scope}/Const/const", block.const, _nchw_const_to_ours, _ours_const_to_nchw))
            _synthesis_layer_rows(f"{scope}/Conv", block.conv1, synth, 0, noise)
        else:
            _synthesis_layer_rows(f"{scope}/Conv0_up", block.conv0, synth, 2 * block.res_log2 - 5, noise)
            _synthesis_layer_rows(f"{scope}/Conv1", block.conv1, synth, 2 * block.res_log2 - 4, noise)
            if block.skip is not None:
                synth.append((f"{scope}/Skip/weight", block.skip.weight, _same, _same))
        if block.torgb is None:
            continue
        torgb = f"ToRGB_lod{cfg.resolution_log2 - block.res_log2}" if cfg.progressive else f"{scope}/ToRGB"
        if cfg.stylegan1:
            _dense_like_conv(torgb, block.torgb, synth)
        else:
            _modconv_rows(torgb, block.torgb.conv, synth)
            synth.append((f"{torgb}/bias", block.torgb.bias, _same, _same))
    noise.sort(key=lambda row: int(row[0][5:]))
    return noise, synth


def generator_tables(G: Generator):
    """-> (main, synthesis, mapping) tables; names are local to each TF1 network. The `lod`
    variables of growing networks are not in the tables (see read_lod / the writer)."""
    noise, synth = _synthesis_rows(G)
    mapping = []
    m = G.mapping
    if m.label_concat is not None:
        mapping.append(("LabelConcat/weight", m.label_concat, _same, _same))
    if m.embed is not None:
        _dense_rows("LabelEmbed", m.embed, mapping)
    for idx, dense in enumerate(m.dense):
        _dense_rows(f"Dense{idx}", dense, mapping)
    main = [("dlatent_avg", m.w_avg, _same, _same)]
    return main, noise + synth, mapping


def discriminator_table(D: Discriminator):
    cfg = D.config
    rows = []
    if D.embed is not None:
        _dense_rows("LabelEmbed", D.embed, rows)
        for idx, layer in enumerate(D.label_mapping):
            _dense_rows(f"Mapping{idx}", layer, rows)
    for block in D.blocks:
        r = 2 ** block.res_log2
        scope = f"{r}x{r}"
        if block.fromrgb is not None:
            name = f"FromRGB_lod{cfg.resolution_log2 - block.res_log2}" if cfg.progressive else f"{scope}/FromRGB"
            _dense_like_conv(name, block.fromrgb, rows)
        _dense_like_conv(f"{scope}/Conv0", block.conv0, rows)
        _dense_like_conv(f"{scope}/Conv1_down", block.conv1, rows)
        if getattr(block, "skip", None) is not None:
            rows.append((f"{scope}/Skip/weight", block.skip.weight, _same, _same))
    ep = D.epilogue
    if D.body is not None:
        _dense_like_conv(f"FromRGB_lod{cfg.max_lod}", D.body.fromrgb4, rows)
    if ep.fromrgb is not None:
        _dense_like_conv("4x4/FromRGB", ep.fromrgb, rows)
    _dense_like_conv("4x4/Conv", ep.conv, rows)
    to_ours, to_tf1 = _dense0_rows(ep.conv.out_channels)
    rows.append(("4x4/Dense0/weight", ep.fc.weight, to_ours, to_tf1))
    rows.append(("4x4/Dense0/bias", ep.fc.bias, _same, _same))
    _dense_rows("4x4/Dense1" if cfg.architecture == "basic" else "Output", ep.out, rows)
    return rows


def _dense_like_conv(scope, conv, rows):
    rows.append((f"{scope}/weight", conv.weight, _same, _same))
    if conv.use_bias:
        rows.append((f"{scope}/bias", conv.bias, _same, _same))


def assign_from_table(table, tf1_vars, where, ignore=()):
    """Assign every table row from `tf1_vars` {name: array}; all names must match both ways."""
    missing = [name for name, *_ in table if name not in tf1_vars]
    known = {name for name, *_ in table} | set(ignore)
    extra = [name for name in tf1_vars if name not in known]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing variables {missing[:6]}{' ...' if len(missing) > 6 else ''}")
        if extra:
            parts.append(f"unexpected variables {extra[:6]}{' ...' if len(extra) > 6 else ''}")
        raise NetworkPickleError(f"{where}: the variables do not match the configuration "
                                 f"({'; '.join(parts)}) -- unsupported network layout")
    for name, var, to_ours, _ in table:
        value = to_ours(np.asarray(tf1_vars[name], dtype=np.float32))
        if tuple(value.shape) != tuple(var.shape):
            raise NetworkPickleError(f"{where}: variable {name} has shape {list(np.shape(tf1_vars[name]))}, "
                                     f"which does not fit the configuration (expected {list(var.shape)} here)")
        var.assign(value)


def read_lod(net: NetworkState, resolution, where):
    """The `lod` stored in a network (and in its synthesis component): one value in range."""
    values = {}
    if "lod" in net.variables:
        values[where] = net.variables["lod"]
    synthesis = net.components.get("synthesis")
    if synthesis is not None and "lod" in synthesis.variables:
        values[f"{where}/G_synthesis"] = synthesis.variables["lod"]
    try:
        values = {k: float(np.asarray(v, np.float64).reshape(())) for k, v in values.items()}
    except (TypeError, ValueError):
        raise NetworkPickleError(f"{where}: the lod variable is not a scalar") from None
    if len(set(values.values())) > 1:
        raise NetworkPickleError(f"{where}: the lod variables disagree ("
                                 + ", ".join(f"{k}/lod={v:g}" for k, v in values.items()) + ")")
    value = next(iter(values.values()), 0.0)
    try:
        check_lod(value, resolution, f"{where}/lod")
    except LodError as e:
        raise NetworkPickleError(str(e)) from None
    return value


def generator_from_state(net: NetworkState, where="G") -> Generator:
    cfg = generator_config(net, where)
    G = Generator(cfg, name=_keras_name(where))
    main, synth, mapping = generator_tables(G)
    own = net.variables
    lod = read_lod(net, cfg.img_resolution, where)
    if lod != 0.0 and not cfg.progressive:
        raise NetworkPickleError(f"{where}: lod={lod:g} in a network that does not grow progressively")
    assign_from_table(main, own, where, ignore=("lod",))
    assign_from_table(synth, net.components["synthesis"].variables, f"{where}/G_synthesis", ignore=("lod",))
    assign_from_table(mapping, net.components["mapping"].variables, f"{where}/G_mapping")
    if cfg.progressive:
        G.set_lod(lod)
    return G


def discriminator_from_state(net: NetworkState, where="D") -> Discriminator:
    cfg = discriminator_config(net, where)
    D = Discriminator(cfg, name=_keras_name(where))
    lod = read_lod(net, cfg.img_resolution, where)
    if lod != 0.0 and not cfg.progressive:
        raise NetworkPickleError(f"{where}: lod={lod:g} in a network that does not grow progressively")
    assign_from_table(discriminator_table(D), net.variables, where, ignore=("lod",) if cfg.progressive else ())
    if cfg.progressive:
        D.set_lod(lod)
    return D


def _keras_name(where):
    return {"G": "G", "Gs": "G_ema", "D": "D"}.get(where, where.replace("/", "_"))


def tf1_variable_names(G=None, D=None, d_prefix="D/"):
    """{TF1 full name (e.g. 'G_synthesis/8x8/Conv0_up/weight', 'D/4x4/Conv/bias') -> our
    variable} for the trainable variables of G and/or D."""
    out = {}
    if G is not None:
        main, synth, mapping = generator_tables(G)
        for prefix, rows in (("", main), ("G_synthesis/", synth), ("G_mapping/", mapping)):
            for name, var, *_ in rows:
                if var.trainable:
                    out[prefix + name] = var
    if D is not None:
        for name, var, *_ in discriminator_table(D):
            if var.trainable:
                out[d_prefix + name] = var
    return out
