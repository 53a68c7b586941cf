"""Writing network snapshots in NVIDIA's official TF1 pickle format.

The file is `(G, D, Gs)` of `dnnlib.tflib.network.Network` states, with the variable
names, order and NCHW layouts of NVlabs/stylegan2, so that our loader,
stylegan2-ada-pytorch's `legacy.py` and (with the module source embedded) NVIDIA's TF1
code read it. Networks of the StyleGAN2-ADA kind -- G's label embedding and D's label
mapping (`label_mode` 'embed' / 'cmap', as stylegan2-ada-pytorch pickles have), or float16
blocks / a conv clamp in an unconditional network -- are written in NVlabs/stylegan2-ada's
TF1 format instead (`G_synthesis`, `D_main`, `LabelEmbed`,
`Mapping{i}`, with `num_fp16_res`, `conv_clamp` and `w_avg_beta` in the kwargs), which
`legacy.py` converts too. `legacy.py` assumes D's Dense0 is as wide as its 4x4 features
(fmap_base >= 2 x fmap_max); a network that is not gets a warning.

The TF1 loader executes `build_module_src`; we do not ship NVIDIA's module, so by default a
short placeholder is written there. `module_src` lets a user embed their own copy of
`training/networks_stylegan2.py` (`networks_stylegan.py` for config A's G_style / D_basic).
Growing networks (configs A-D) are written with their build functions and `lod` variables.
"""

import io
import logging
import os
import pickle
import tempfile

import numpy as np

from .tf1_configs import D_ARCHITECTURE, D_FUNCS, G_ARCHITECTURE, G_FUNCS
from .tf1_format import discriminator_table, generator_tables

PLACEHOLDER_SRC = ("# Written by stylegan2-tf. The network module source is not embedded; load this file with\n"
                   "# stylegan2_tf.official.load_network_pkl (or embed networks_stylegan2.py for TF1).\n")


class _NetworkRecord:
    """Pickles as `dnnlib.tflib.network.Network` with the given state (see _Pickler)."""

    def __init__(self, state):
        self.state = state

    def __reduce_ex__(self, protocol):
        return (_NetworkRecord, (), self.state)


class _Pickler(pickle._Pickler):
    """Names our record class 'dnnlib.tflib.network.Network' and numpy under its 1.x paths."""

    def save_global(self, obj, name=None):
        if obj is _NetworkRecord:
            module, qualname = "dnnlib.tflib.network", "Network"
        else:
            module = getattr(obj, "__module__", None)
            qualname = name or getattr(obj, "__qualname__", None)
            if module and module.startswith("numpy._core"):
                module = "numpy.core" + module[len("numpy._core"):]
            if module is None or qualname is None:
                return super().save_global(obj, name)
        self.save(module)
        self.save(qualname)
        self.write(pickle.STACK_GLOBAL)
        self.memoize(obj)


# Each family's build functions, from the table the reader tells families by (tf1_configs).
_G_BUILD = {family: funcs for funcs, family in G_FUNCS.items()}     # family -> (G, synthesis)
_D_BUILD = {family: func for func, family in D_FUNCS.items()}


def _family(architecture, growing_architectures, ada):
    """The official family whose build functions make a network of this architecture."""
    growing = {arch: family for family, arch in growing_architectures.items()}
    return growing.get(architecture) or ("stylegan2-ada" if ada else "stylegan2")

log = logging.getLogger(__name__)


def is_ada_style(G, D):
    """Whether (G, D) are written in the StyleGAN2-ADA format: networks with a label embedding /
    label mapping, and unconditional ones with float16 blocks or a conv clamp (which only that
    format records; conditional ones of the NVlabs/stylegan2 kind cannot be written in it)."""
    g, d = G.config, D.config
    if g.label_mode == "embed" or d.label_mode == "cmap":
        return True
    mixed = any(cfg.num_fp16_res or cfg.conv_clamp is not None for cfg in (g, d))
    return mixed and not (g.c_dim or d.c_dim)


def _ada_generator_kwargs(cfg):
    """Static kwargs of NVlabs/stylegan2-ada's G_main (all written explicitly)."""
    return dict(num_channels=cfg.img_channels, resolution=cfg.img_resolution, label_size=cfg.c_dim,
                latent_size=cfg.z_dim, dlatent_size=cfg.w_dim, mapping_layers=cfg.mapping_layers,
                mapping_fmaps=cfg.mapping_fmaps, mapping_lrmul=cfg.mapping_lrmul,
                label_fmaps=cfg.label_fmaps if cfg.label_fmaps is not None else cfg.z_dim,
                fmap_base=cfg.fmap_base, fmap_max=cfg.fmap_max, architecture=cfg.architecture,
                num_fp16_res=cfg.num_fp16_res, conv_clamp=cfg.conv_clamp, w_avg_beta=cfg.w_avg_beta)


def _ada_discriminator_kwargs(cfg):
    kw = dict(num_channels=cfg.img_channels, resolution=cfg.img_resolution, label_size=cfg.c_dim,
              architecture=cfg.architecture, fmap_base=cfg.fmap_base, fmap_max=cfg.fmap_max,
              mbstd_group_size=cfg.mbstd_group_size, mbstd_num_features=cfg.mbstd_num_features,
              num_fp16_res=cfg.num_fp16_res, conv_clamp=cfg.conv_clamp)
    if cfg.c_dim:
        kw.update(mapping_layers=cfg.mapping_layers, mapping_fmaps=cfg.cmap_dim, mapping_lrmul=cfg.mapping_lrmul)
    return kw


def _generator_kwargs(cfg):
    """Static kwargs of G (NVlabs/stylegan2 names; all written explicitly)."""
    kw = dict(num_channels=cfg.img_channels, resolution=cfg.img_resolution, label_size=cfg.c_dim,
              latent_size=cfg.z_dim, dlatent_size=cfg.w_dim, mapping_layers=cfg.mapping_layers,
              mapping_fmaps=cfg.mapping_fmaps, mapping_lrmul=cfg.mapping_lrmul, fmap_base=cfg.fmap_base,
              fmap_max=cfg.fmap_max)
    if cfg.progressive:
        g_func, synthesis_func = _G_BUILD[_family(cfg.architecture, G_ARCHITECTURE, ada=False)]
        if g_func == "G_main":      # the revised networks: G_main told which synthesis to build
            kw["synthesis_func"] = synthesis_func
        if cfg.fused_scale is not None:
            kw["fused_scale"] = bool(cfg.fused_scale)
    else:
        kw["architecture"] = cfg.architecture
    return kw


def _check_writable(G, D):
    g, d = G.config, D.config
    pairs = {"stylegan1": "basic", "revised": "stylegan"}
    if (g.architecture in pairs or d.architecture in pairs.values()) and pairs.get(g.architecture) != d.architecture:
        raise ValueError(f"G architecture {g.architecture!r} and D architecture {d.architecture!r} do not form an "
                         f"official configuration (growing pairs: stylegan1 + basic, revised + stylegan)")
    if (g.c_dim or d.c_dim) and (g.label_mode, d.label_mode) not in (("concat", "project"), ("embed", "cmap")):
        raise ValueError(f"conditional snapshots need label_mode 'concat' (G) and 'project' (D) (NVlabs/stylegan2) "
                         f"or 'embed' and 'cmap' (NVlabs/stylegan2-ada), got {g.label_mode!r} and {d.label_mode!r}")
    for name, cfg in (("G", g), ("D", d)):
        if cfg.fmap_decay != 1.0 or cfg.fmap_min != 1 or cfg.activation != "lrelu" or \
                tuple(cfg.resample_kernel or ()) != (1, 3, 3, 1):
            raise ValueError(f"{name}: fmap_decay/fmap_min/activation/resample_kernel differ from the official "
                             f"defaults; the NVlabs/stylegan2 format cannot express that")
    if d.mbstd_num_features and d.mbstd_group_size is None and not is_ada_style(G, D):
        raise ValueError("D: mbstd_group_size None (whole batch) is not expressible in the NVlabs/stylegan2 format")
    if not g.use_noise or g.fmap_const is not None or g.normalize_latents is False:
        raise ValueError("G: use_noise/fmap_const/normalize_latents are not expressible in the "
                         "NVlabs/stylegan2 format")
    # num_fp16_res and conv_clamp: the variables are float32 and the same either way; the ADA
    # format records both, the NVlabs/stylegan2 one (conditional networks of that kind) neither.
    if not is_ada_style(G, D) and any(cfg.num_fp16_res or cfg.conv_clamp is not None for cfg in (g, d)):
        log.warning("conditional networks of the NVlabs/stylegan2 kind (label_mode concat/project) are written in "
                    "that format, which records neither num_fp16_res nor conv_clamp: the snapshot loads as float32 "
                    "without a clamp")
    if d.nf(0) != d.nf(1):
        log.warning("D's Dense0 has %d features and its 4x4 layers %d (fmap_base %d < 2 x fmap_max %d): "
                    "stylegan2-ada-pytorch's legacy.py cannot convert this snapshot (this project loads it)",
                    d.nf(0), d.nf(1), d.fmap_base, d.fmap_max)


def _rows_to_vars(rows):
    return [(name, to_tf1(np.asarray(var.numpy(), np.float32))) for name, var, _, to_tf1 in rows]


def _lod_vars(net):
    """[("lod", value)] of a growing network, else []."""
    return [("lod", np.float32(net.lod.numpy()))] if net.lod is not None else []


def _generator_state(G, name, src, ada=False):
    cfg = G.config
    main, synth, mapping = generator_tables(G)
    kw = _ada_generator_kwargs(cfg) if ada else _generator_kwargs(cfg)
    component_kw = {k: v for k, v in kw.items() if k != "synthesis_func"}   # consumed by G_main
    g_func, synthesis_func = _G_BUILD[_family(cfg.architecture, G_ARCHITECTURE, ada)]
    synthesis_vars = _lod_vars(G) + _rows_to_vars(synth)   # G's lod is the one that counts
    synthesis = _NetworkRecord(dict(version=4, name="G_synthesis", static_kwargs=dict(component_kw), components={},
                                    build_module_src=src, build_func_name=synthesis_func,
                                    variables=synthesis_vars))
    mapping_net = _NetworkRecord(dict(version=4, name="G_mapping",
                                      static_kwargs=dict(component_kw, dlatent_broadcast=cfg.num_ws),
                                      components={}, build_module_src=src, build_func_name="G_mapping",
                                      variables=_rows_to_vars(mapping)))
    # NVlabs/stylegan2's G_main has a lod variable (0 unless growing), stylegan2-ada's none.
    variables = ([] if ada else _lod_vars(G) or [("lod", np.float32(0.0))]) + _rows_to_vars(main)
    return _NetworkRecord(dict(version=4, name=name, static_kwargs=kw,
                               components={"synthesis": synthesis, "mapping": mapping_net},
                               build_module_src=src, build_func_name=g_func, variables=variables))


def _discriminator_state(D, src, ada=False):
    cfg = D.config
    if ada:
        kw = _ada_discriminator_kwargs(cfg)
    else:
        kw = dict(num_channels=cfg.img_channels, resolution=cfg.img_resolution, label_size=cfg.c_dim,
                  fmap_base=cfg.fmap_base, fmap_max=cfg.fmap_max,
                  mbstd_group_size=cfg.mbstd_group_size if cfg.mbstd_num_features else 0,
                  mbstd_num_features=max(cfg.mbstd_num_features, 1))
        if not cfg.progressive:
            kw["architecture"] = cfg.architecture
    return _NetworkRecord(dict(version=4, name="D", static_kwargs=kw, components={}, build_module_src=src,
                               build_func_name=_D_BUILD[_family(cfg.architecture, D_ARCHITECTURE, ada)],
                               variables=_lod_vars(D) + _rows_to_vars(discriminator_table(D))))


def network_pkl_bytes(G, D, Gs, module_src=None):
    _check_writable(G, D)
    src = PLACEHOLDER_SRC if module_src is None else module_src
    ada = is_ada_style(G, D)
    nets = (_generator_state(G, "G", src, ada), _discriminator_state(D, src, ada),
            _generator_state(Gs, "Gs", src, ada))
    buf = io.BytesIO()
    _Pickler(buf, protocol=4).dump(nets)
    return buf.getvalue()


def save_network_pkl(path, G, D, Gs, module_src=None):
    """Write (G, D, Gs) atomically (temp file in the same directory + rename)."""
    data = network_pkl_bytes(G, D, Gs, module_src)
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".pkl", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path
