"""NVIDIA's TF1 network variables <-> our Keras networks.

Every TF1 variable is matched by name to one of ours through a single table per network --
used for reading here and for writing snapshots in the official layout (`writer`). NCHW tensors
are transposed to NHWC; D's Dense0 rows, flattened in C,H,W order by TF1, are permuted to our
H,W,C order. The growing families store a `lod` variable in G, G_synthesis and D; all of them
must hold the same value, which becomes the networks' level of detail. The networks' configs
come from the pickles' build kwargs (`tf1_configs`).
"""

import numpy as np

from ..networks import Discriminator, Generator
from ..networks.lod import LodError, check_lod
from .tf1_configs import discriminator_config, generator_config
from .unpickler import NetworkPickleError, NetworkState


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
