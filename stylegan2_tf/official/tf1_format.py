"""NVIDIA's TF1 network format <-> our Keras networks.

Two families of official pickles are understood:
  'stylegan2'      NVlabs/stylegan2       G_main + G_synthesis_stylegan2, D_stylegan2
  'stylegan2-ada'  NVlabs/stylegan2-ada   G_main + G_synthesis, D_main
Their static kwargs (which omit every argument left at its default) are turned into
our configs with each family's own defaults, and every variable is matched by name
to one of ours through a single table -- used for reading here and for writing
snapshots in the official layout. NCHW tensors are transposed to NHWC; D's Dense0
rows, flattened in C,H,W order by TF1, are permuted to our H,W,C order.
"""

import numpy as np

from ..networks import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig
from .unpickler import NetworkPickleError, NetworkState

# Build-function names -> family.
G_SYNTHESIS_FUNCS = {"G_synthesis_stylegan2": "stylegan2", "G_synthesis": "stylegan2-ada"}
D_FUNCS = {"D_stylegan2": "stylegan2", "D_main": "stylegan2-ada"}

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
}
_D_DEFAULTS = {
    "stylegan2": dict(num_channels=3, resolution=1024, label_size=0, fmap_base=16 << 10, fmap_decay=1.0,
                      fmap_min=1, fmap_max=512, architecture="resnet", nonlinearity="lrelu",
                      mbstd_group_size=4, mbstd_num_features=1, resample_kernel=[1, 3, 3, 1]),
    "stylegan2-ada": dict(num_channels=3, resolution=1024, label_size=0, fmap_base=16384, fmap_decay=1,
                          fmap_min=1, fmap_max=512, mapping_layers=0, mapping_fmaps=None, mapping_lrmul=0.1,
                          architecture="resnet", nonlinearity="lrelu", mbstd_group_size=None,
                          mbstd_num_features=1, num_fp16_res=0, conv_clamp=None, resample_kernel=[1, 3, 3, 1],
                          use_pagan=False, score_max=1, use_spectral_norm=False),
}


def _kwargs(net: NetworkState, defaults):
    kw = dict(defaults)
    kw.update(net.static_kwargs)
    return kw


def _kernel(k):
    return tuple(int(v) if float(v).is_integer() else float(v) for v in k) if k is not None else None


def generator_family(net: NetworkState, where="G"):
    if net.build_func_name != "G_main":
        raise NetworkPickleError(
            f"{where}: build function {net.build_func_name!r} is not supported (StyleGAN2 generators are "
            f"'G_main'; StyleGAN1 'G_style' and progressive-growing networks are not StyleGAN2)")
    comps = net.components
    if "synthesis" not in comps or "mapping" not in comps:
        raise NetworkPickleError(f"{where}: expected 'synthesis' and 'mapping' components, found {sorted(comps)}")
    func = comps["synthesis"].build_func_name
    if func not in G_SYNTHESIS_FUNCS:
        raise NetworkPickleError(
            f"{where}: synthesis network {func!r} is not supported (supported: {sorted(G_SYNTHESIS_FUNCS)}; "
            f"the paper's configs A-D use other synthesis functions)")
    if comps["mapping"].build_func_name != "G_mapping":
        raise NetworkPickleError(f"{where}: mapping network {comps['mapping'].build_func_name!r} is not supported")
    return G_SYNTHESIS_FUNCS[func]


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
            architecture=kw["architecture"], activation=kw["nonlinearity"],
            resample_kernel=_kernel(kw["resample_kernel"]), use_noise=bool(kw.get("use_noise", True)),
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
            architecture=kw["architecture"], activation=kw["nonlinearity"],
            resample_kernel=_kernel(kw["resample_kernel"]),
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


def generator_tables(G: Generator):
    """-> (main, synthesis, mapping) tables; names are local to each TF1 network."""
    cfg = G.config
    synth, noise = [], []
    for block in G.synthesis.blocks:
        r = block.resolution
        scope = f"{r}x{r}"
        if block.const is not None:
            synth.append((f"{scope}/Const/const", block.const, _nchw_const_to_ours, _ours_const_to_nchw))
            _synthesis_layer_rows(f"{scope}/Conv", block.conv1, synth, 0, noise)
        else:
            _synthesis_layer_rows(f"{scope}/Conv0_up", block.conv0, synth, 2 * block.res_log2 - 5, noise)
            _synthesis_layer_rows(f"{scope}/Conv1", block.conv1, synth, 2 * block.res_log2 - 4, noise)
            if block.skip is not None:
                synth.append((f"{scope}/Skip/weight", block.skip.weight, _same, _same))
        if block.torgb is not None:
            _modconv_rows(f"{scope}/ToRGB", block.torgb.conv, synth)
            synth.append((f"{scope}/ToRGB/bias", block.torgb.bias, _same, _same))
    noise.sort(key=lambda row: int(row[0][5:]))
    mapping = []
    m = G.mapping
    if m.label_concat is not None:
        mapping.append(("LabelConcat/weight", m.label_concat, _same, _same))
    if m.embed is not None:
        _dense_rows("LabelEmbed", m.embed, mapping)
    for idx, dense in enumerate(m.dense):
        _dense_rows(f"Dense{idx}", dense, mapping)
    main = [("dlatent_avg", m.w_avg, _same, _same)]
    del cfg
    return main, noise + synth, mapping


def discriminator_table(D: Discriminator):
    rows = []
    if D.embed is not None:
        _dense_rows("LabelEmbed", D.embed, rows)
        for idx, layer in enumerate(D.label_mapping):
            _dense_rows(f"Mapping{idx}", layer, rows)
    for block in D.blocks:
        r = 2 ** block.res_log2
        scope = f"{r}x{r}"
        if block.fromrgb is not None:
            _dense_like_conv(f"{scope}/FromRGB", block.fromrgb, rows)
        _dense_like_conv(f"{scope}/Conv0", block.conv0, rows)
        _dense_like_conv(f"{scope}/Conv1_down", block.conv1, rows)
        if block.skip is not None:
            rows.append((f"{scope}/Skip/weight", block.skip.weight, _same, _same))
    ep = D.epilogue
    if ep.fromrgb is not None:
        _dense_like_conv("4x4/FromRGB", ep.fromrgb, rows)
    _dense_like_conv("4x4/Conv", ep.conv, rows)
    to_ours, to_tf1 = _dense0_rows(ep.conv.out_channels)
    rows.append(("4x4/Dense0/weight", ep.fc.weight, to_ours, to_tf1))
    rows.append(("4x4/Dense0/bias", ep.fc.bias, _same, _same))
    _dense_rows("Output", ep.out, rows)
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


def generator_from_state(net: NetworkState, where="G") -> Generator:
    cfg = generator_config(net, where)
    G = Generator(cfg, name=_keras_name(where))
    main, synth, mapping = generator_tables(G)
    own = net.variables
    lod = own.get("lod")
    if lod is not None and float(lod) != 0.0:
        raise NetworkPickleError(f"{where}: lod={float(lod)} (progressive growing in progress) is not supported")
    assign_from_table(main, own, where, ignore=("lod",))
    assign_from_table(synth, net.components["synthesis"].variables, f"{where}/G_synthesis", ignore=("lod",))
    assign_from_table(mapping, net.components["mapping"].variables, f"{where}/G_mapping")
    return G


def discriminator_from_state(net: NetworkState, where="D") -> Discriminator:
    cfg = discriminator_config(net, where)
    D = Discriminator(cfg, name=_keras_name(where))
    assign_from_table(discriminator_table(D), net.variables, where)
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
