"""NVIDIA's official TF1 network pickles: safe reading, conversion to our networks."""

from .unpickler import (NetworkPickleError, NetworkState, RestrictedUnpickler, UnsafePickleError,
                        read_network_pickle, restricted_loads)
from .tf1_format import (G_ARCHITECTURE, discriminator_config, discriminator_from_state, generator_config,
                         generator_family, generator_from_state, read_lod, tf1_variable_names)


def load_network_pkl(path, load=("G", "D", "G_ema")):
    """Load an official (G, D, Gs) pickle -> {'G', 'D', 'G_ema', 'family'} of Keras networks.

    `load` selects which networks to build (building D for generation is wasted work).
    Nothing in the file is executed; see `unpickler`.
    """
    G, D, Gs = read_network_pickle(path)
    out = {"family": generator_family(Gs, f"{path}: Gs")}
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


__all__ = [
    "NetworkPickleError", "UnsafePickleError", "NetworkState", "RestrictedUnpickler", "read_network_pickle",
    "restricted_loads", "load_network_pkl", "generator_config", "discriminator_config", "generator_family",
    "generator_from_state", "discriminator_from_state", "tf1_variable_names",
]
