"""Transfer learning (--resume-pkl, --freeze-d): a new run that starts from the networks of a
pickle, as NVIDIA's `--resume` of a network does: G, D and G_ema take the pickle's weights and
buffers (w_avg, noise maps), while Adam, pl_mean and the counters start afresh. Unlike
stylegan2-ada-pytorch, which copies into networks built from the training config and skips
what does not fit, the networks here are built from the pickle itself, and a dataset that does
not fit them is refused.

Freeze-D (Mo et al. 2020; stylegan2-ada-pytorch's --freezed): D's first N layers, counted from
the image side as stylegan2-ada-pytorch counts them (per block: FromRGB where the block has
one, Conv0, Conv1, Skip), keep their weights.
"""

from ..errors import UserError
from ..official import load_network_pkl
from .configs import LABEL_MODES, architectures, precision
from .schedule import growth_stage
from .errors import TrainingError


def load_networks(path):
    """G, D and G_ema of a network pickle of any kind this project reads."""
    try:
        return load_network_pkl(path)
    except UserError as e:
        raise TrainingError(f"--resume-pkl: {e}") from None


def pickle_network_configs(G, D, opts, info, path):
    """(GeneratorConfig, DiscriminatorConfig) of a pickle's networks (--resume-pkl), for training on
    the dataset `info` describes with the precision and modulated-conv settings of `opts`; the conv
    clamp the network was trained with stays unless --conv-clamp is given. TrainingError where the
    pickle and the dataset disagree (a mismatch would otherwise train garbage)."""
    g, d = G.config, D.config
    if g.progressive != opts.progressive or (g.progressive and architectures(opts.config) != (g.architecture,
                                                                                              d.architecture)):
        raise TrainingError(f"--resume-pkl {path}: a G {g.architecture} / D {d.architecture} network does not "
                            f"train with --config {opts.config} (configs A-D grow their own networks: config A "
                            f"StyleGAN1's, B-D the revised ones; E and F a fixed size)")
    bad = [f"{what} {theirs} (dataset {ours})" for what, theirs, ours in
           (("resolution", g.img_resolution, info.resolution), ("channels", g.img_channels, info.channels),
            ("label size", g.c_dim, info.label_size)) if theirs != ours]
    if bad:
        raise TrainingError(f"--resume-pkl {path}: the networks do not fit the dataset {info.tfrecord_dir}: "
                            f"{', '.join(bad)}")
    settings = precision(opts, network_clamp=g.conv_clamp)
    if g.c_dim:
        style = {modes: name for name, modes in LABEL_MODES.items()}.get((g.label_mode, d.label_mode))
        if opts.label_style is not None and opts.label_style != style:
            raise TrainingError(f"--resume-pkl {path}: the networks take labels in the {style} style "
                                f"(G {g.label_mode}, D {d.label_mode}), not --label-style {opts.label_style}")
        if style == "stylegan2" and (settings["num_fp16_res"] or settings["conv_clamp"] is not None):
            raise TrainingError(f"--resume-pkl {path}: conditional networks of the NVlabs/stylegan2 kind train "
                                f"in float32 without a clamp (their snapshot format records neither)")
    return g.replace(fused_modconv=opts.fused_modconv, **settings), d.replace(**settings)


def check_start_lod(nets, opts, resolution, path):
    """A growing network starts where the schedule is at --resume-kimg: its lod must be that of
    the schedule there (NVIDIA's TF1 resume_kimg), else the first minibatch would jump levels."""
    if nets["G_ema"].lod is None:
        return
    have = float(nets["G_ema"].lod.numpy())
    want = growth_stage(opts, int(opts.resume_kimg * 1000), resolution).lod
    if abs(have - want) > 1e-6:
        raise TrainingError(f"--resume-pkl {path}: the network is at lod {have:g}, the schedule at --resume-kimg "
                            f"{opts.resume_kimg:g} at lod {want:g}; give the kimg where the schedule reaches "
                            f"lod {have:g}")


def copy_networks(state, nets, path):
    """The pickle's G, D and G_ema variables (weights and buffers) into the training state's."""
    for ours, theirs in ((state.G, nets["G"]), (state.D, nets["D"]), (state.G_ema, nets["G_ema"])):
        if len(ours.variables) != len(theirs.variables):
            raise TrainingError(f"--resume-pkl {path}: {theirs.name} has {len(theirs.variables)} variables, "
                                f"the network built from it {len(ours.variables)}")
        for dst, src in zip(ours.variables, theirs.variables):
            if tuple(dst.shape) != tuple(src.shape):
                raise TrainingError(f"--resume-pkl {path}: {src.path} has shape {tuple(src.shape)}, expected "
                                    f"{tuple(dst.shape)}")
            dst.assign(src)


def frozen_layers(D, count):
    """D's first `count` layers in stylegan2-ada-pytorch's order (see module docstring)."""
    layers = []
    for block in D.blocks:
        layers += [getattr(block, name) for name in ("fromrgb", "conv0", "conv1", "skip")
                   if getattr(block, name, None) is not None]
    return layers[:count]


def freeze_d(D, count):
    """Make the variables of D's first `count` layers non-trainable (no gradient, no update)."""
    if not count:
        return
    for layer in frozen_layers(D, count):
        for v in layer.trainable_variables:
            v.trainable = False
