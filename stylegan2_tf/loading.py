"""Loading networks from the files users have: official/our `.pkl` snapshots."""

import os

from .official import NetworkPickleError, load_network_pkl


def load_generator(path, ema=True):
    """-> Generator from a network pickle (Gs, the EMA generator, unless ema=False)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise NetworkPickleError(f"{path}: no such file")
    which = "G_ema" if ema else "G"
    return load_network_pkl(path, load=(which,))[which]
