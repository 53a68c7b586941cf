"""Reading NVIDIA's TF1 network pickles without executing anything from them.

An official pickle is `(G, D, Gs)`, three `dnnlib.tflib.network.Network` objects.
NVIDIA's own `Network.__setstate__` `exec`s the Python source stored in the
pickle; loading one with the plain `pickle` module runs whatever a file says. Here
the unpickler resolves only an allowlist of globals: the Network class becomes a
passive `NetworkState` that merely keeps its state dict, and numpy arrays are
rebuilt through numpy's own reconstructors. Any other global -- `os.system`,
`builtins.eval`, a class of some other package -- is refused before it is called.
"""

import importlib
import io
import os
import pickle

import numpy as np
from ..errors import UserError


class NetworkPickleError(UserError):
    """A file is missing, not a pickle, unsafe, or not a supported StyleGAN2 network."""


class UnsafePickleError(NetworkPickleError, pickle.UnpicklingError):
    """The pickle asks for a global that is not on the allowlist."""


class NetworkState:
    """Stand-in for `dnnlib.tflib.network.Network`: holds the pickled state, runs nothing."""

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise NetworkPickleError(f"dnnlib Network state is a {type(state).__name__}, expected a dict")
        self.state = state

    # Convenient read-only views of the state's fields.
    @property
    def name(self):
        return self.state.get("name")

    @property
    def build_func_name(self):
        return self.state.get("build_func_name")

    @property
    def static_kwargs(self):
        return dict(self.state.get("static_kwargs") or {})

    @property
    def components(self):
        return dict(self.state.get("components") or {})

    @property
    def variables(self):
        """Own variables as an ordered dict {local name: numpy array}."""
        return {name: np.asarray(value) for name, value in self.state.get("variables", [])}

    def __repr__(self):
        return f"NetworkState(name={self.name!r}, build_func_name={self.build_func_name!r})"


class _EasyDict(dict):
    """Stand-in for `dnnlib.util.EasyDict` (a dict)."""


def _numpy_attr(submodule, name):
    # numpy 2 moved numpy.core to numpy._core; pickles name the 1.x path.
    for mod in ("numpy._core." + submodule, "numpy.core." + submodule):
        try:
            return getattr(importlib.import_module(mod), name)
        except (ImportError, AttributeError):
            continue
    raise UnsafePickleError(f"numpy has no {submodule}.{name}")


def _allowed_globals():
    return {
        ("dnnlib.tflib.network", "Network"): lambda: NetworkState,
        ("dnnlib.util", "EasyDict"): lambda: _EasyDict,
        ("numpy.core.multiarray", "_reconstruct"): lambda: _numpy_attr("multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"): lambda: _numpy_attr("multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"): lambda: _numpy_attr("multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"): lambda: _numpy_attr("multiarray", "scalar"),
        ("numpy", "ndarray"): lambda: np.ndarray,
        ("numpy", "dtype"): lambda: np.dtype,
        ("collections", "OrderedDict"): lambda: __import__("collections").OrderedDict,
        # Protocol-2 pickles encode bytes through _codecs.encode(str, 'latin1').
        ("_codecs", "encode"): lambda: _latin1_encode,
    }


def _latin1_encode(obj, encoding="latin1"):
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError("_codecs.encode is only allowed for latin1 byte strings")
    return obj.encode("latin1")


class RestrictedUnpickler(pickle.Unpickler):
    _ALLOWED = _allowed_globals()

    def find_class(self, module, name):
        factory = self._ALLOWED.get((module, name))
        if factory is None:
            raise UnsafePickleError(
                f"refusing to load global '{module}.{name}': network pickles are read without running code, "
                f"and only dnnlib Network states and numpy arrays are allowed")
        return factory()

    def persistent_load(self, pid):
        raise UnsafePickleError(f"refusing persistent id {pid!r} in a network pickle")


def restricted_loads(data: bytes):
    return RestrictedUnpickler(io.BytesIO(data)).load()


def read_network_pickle(path):
    """Read an official TF1 network pickle -> tuple of NetworkState (G, D, Gs).

    Raises NetworkPickleError with a one-line message naming `path` and the problem.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise NetworkPickleError(f"{path}: no such file")
    if os.path.isdir(path):
        raise NetworkPickleError(f"{path}: is a directory, expected a network .pkl file")
    with open(path, "rb") as f:
        data = f.read()
    if not data:
        raise NetworkPickleError(f"{path}: empty file, not a network pickle")
    try:
        obj = restricted_loads(data)
    except UnsafePickleError as e:
        raise UnsafePickleError(f"{path}: {e}") from None
    except NetworkPickleError as e:
        raise NetworkPickleError(f"{path}: {e}") from None
    except Exception as e:  # truncated, garbage, wrong protocol ...
        raise NetworkPickleError(f"{path}: not a readable pickle ({type(e).__name__}: {e})") from None

    if isinstance(obj, dict) and {"G", "D", "G_ema"} <= set(obj):
        raise NetworkPickleError(
            f"{path}: this is a stylegan2-ada-pytorch pickle (PyTorch modules); only NVIDIA's TensorFlow "
            f"pickles (a tuple G, D, Gs) are supported")
    if not (isinstance(obj, tuple) and len(obj) == 3 and all(isinstance(n, NetworkState) for n in obj)):
        what = type(obj).__name__ if not isinstance(obj, tuple) else f"tuple of {len(obj)}"
        raise NetworkPickleError(
            f"{path}: not a StyleGAN2 network pickle (expected a tuple (G, D, Gs) of dnnlib Networks, "
            f"found {what})")
    for net in obj:
        version = net.state.get("version")
        if version not in (2, 3, 4, 5):
            raise NetworkPickleError(f"{path}: unsupported dnnlib Network state version {version!r}")
    return obj
