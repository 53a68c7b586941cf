"""NVIDIA's network pickles (TF1, and stylegan2-ada-pytorch's): safe reading, conversion to our networks."""

import os

from .pytorch_format import is_pytorch_snapshot, snapshot_states
from .unpickler import (NetworkPickleError, NetworkState, RestrictedUnpickler, UnsafePickleError, load_pickle,
                        read_network_pickle, restricted_loads, tf1_networks)
from .tf1_configs import G_ARCHITECTURE, discriminator_config, generator_config, generator_family
from .tf1_format import discriminator_from_state, generator_from_state, read_lod, tf1_variable_names


def load_network_pkl(path, load=("G", "D", "G_ema"), fp32=True):
    """Load a network pickle -> {'G', 'D', 'G_ema', 'family', 'format', 'extras'} of Keras networks.

    The file is NVIDIA's TF1 (G, D, Gs) tuple or a stylegan2-ada-pytorch snapshot (a dict of G, D,
    G_ema, augment_pipe, training_set_kwargs), told apart by what it holds. `load` selects which
    networks to build (building D for generation is wasted work). fp32: the `num_fp16_res`
    blocks of a network that has them (stylegan2-ada pickles, TF1 and PyTorch) compute in float32;
    their conv clamp stays. `extras`: what a PyTorch snapshot holds besides the networks
    (reported, not used). Nothing in the file is executed; see `unpickler`.
    """
    path = os.fspath(path)
    obj = load_pickle(path)
    extras = {}
    if is_pytorch_snapshot(obj):
        states, extras = snapshot_states(obj, path)
        missing = [k for k, ours in (("G", "G"), ("D", "D")) if k in load and ours not in states]
        if missing:
            raise NetworkPickleError(f"{path}: the stylegan2-ada-pytorch pickle has no {' or '.join(missing)}")
        G, D, Gs = states.get("G"), states.get("D"), states["Gs"]
        fmt = "stylegan2-ada-pytorch"
    else:
        G, D, Gs = tf1_networks(obj, path)
        fmt = "tf1"
    if fp32:
        G, D, Gs = (None if net is None else _float32(net) for net in (G, D, Gs))
    out = {"family": generator_family(Gs, f"{path}: Gs"), "format": fmt, "extras": extras}
    try:
        if out["family"] in G_ARCHITECTURE:   # growing networks: one lod for G, D and Gs
            resolution = generator_config(Gs, "Gs").img_resolution
            lods = {name: read_lod(net, resolution, name) for name, net in (("G", G), ("D", D), ("Gs", Gs))}
            if len(set(lods.values())) > 1:
                raise NetworkPickleError("the lod variables of G, D and Gs disagree ("
                                         + ", ".join(f"{k}/lod={v:g}" for k, v in lods.items()) + ")")
        if "G" in load:
            out["G"] = generator_from_state(G, "G")
        if "G_ema" in load:
            out["G_ema"] = generator_from_state(Gs, "Gs")
        if "D" in load:
            out["D"] = discriminator_from_state(D, "D")
    except NetworkPickleError as e:
        raise NetworkPickleError(f"{path}: {e}") from None
    return out


def _float32(net):
    """A NetworkState whose static kwargs (its components' too) say num_fp16_res 0."""
    state = dict(net.state)
    if "num_fp16_res" in (state.get("static_kwargs") or {}):
        state["static_kwargs"] = dict(state["static_kwargs"], num_fp16_res=0)
    state["components"] = {k: _float32(c) for k, c in (state.get("components") or {}).items()}
    out = NetworkState()
    out.__setstate__(state)
    return out


__all__ = [
    "load_pickle", "tf1_networks", "is_pytorch_snapshot", "snapshot_states",
    "NetworkPickleError", "UnsafePickleError", "NetworkState", "RestrictedUnpickler", "read_network_pickle",
    "restricted_loads", "load_network_pkl", "generator_config", "discriminator_config", "generator_family",
    "generator_from_state", "discriminator_from_state", "tf1_variable_names",
]
