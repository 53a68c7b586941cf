"""Reading NVIDIA's network pickles without executing anything from them.

A TF1 pickle is `(G, D, Gs)`, three `dnnlib.tflib.network.Network` objects; a
stylegan2-ada-pytorch one is a dict of PyTorch modules made persistent by
`torch_utils.persistence`. NVIDIA's own loaders `exec` the Python source stored in the
pickle; loading one with the plain `pickle` module runs whatever a file says. Here the
unpickler resolves only an allowlist of globals: the Network class becomes a passive
`NetworkState` that merely keeps its state dict, a persistent module a passive
`TorchModule` (pytorch_format.py), numpy arrays are rebuilt through numpy's own
reconstructors and tensors by the restricted PyTorch reader (torch_files.py). Any other
global -- `os.system`, `builtins.eval`, a class of some other package -- is refused before
it is called.
"""

import importlib
import io
import os
import pickle

import numpy as np

from .. import torch_files
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


class TorchModule:
    """Stand-in for a module of NVIDIA's `torch_utils.persistence`: its class name, the source
    text it was pickled with (never run) and its state (`__dict__`: parameters, buffers, child
    modules, constructor arguments)."""

    def __init__(self, class_name, module_src, state):
        self.class_name, self.module_src, self.state = class_name, module_src, state

    @property
    def children(self):
        return {k: v for k, v in (self.state.get("_modules") or {}).items() if v is not None}

    @property
    def init_kwargs(self):
        return dict(self.state.get("_init_kwargs") or {})

    def tensors(self, prefix=""):
        """{dotted name: array} of the parameters and buffers, as `state_dict()` names them."""
        out = {}
        for group in ("_parameters", "_buffers"):
            for name, value in (self.state.get(group) or {}).items():
                if value is not None:
                    out[prefix + name] = np.asarray(value)
        for name, child in self.children.items():
            if not isinstance(child, TorchModule):
                raise NetworkPickleError(f"{prefix}{name}: a {type(child).__name__}, not a persistent module")
            out.update(child.tensors(f"{prefix}{name}."))
        return out

    def __repr__(self):
        return f"TorchModule({self.class_name})"


def reconstruct_module(meta):
    """`torch_utils.persistence._reconstruct_persistent_obj`, without importing the source."""
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("state"), dict):
        raise NetworkPickleError("a persistent object that is not a pickled class instance")
    if meta.get("version") != 6:
        raise NetworkPickleError(f"torch_utils.persistence version {meta.get('version')!r} is not supported (6)")
    if not isinstance(meta.get("class_name"), str) or not isinstance(meta.get("module_src"), str):
        raise NetworkPickleError("a persistent object without class name or module source")
    return TorchModule(meta["class_name"], meta["module_src"], meta["state"])


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
        # stylegan2-ada-pytorch pickles: persistent modules and their tensors.
        ("torch_utils.persistence", "_reconstruct_persistent_obj"): lambda: reconstruct_module,
        ("torch._utils", "_rebuild_tensor_v2"): lambda: torch_files.rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): lambda: torch_files.rebuild_parameter,
        ("torch.storage", "_load_from_bytes"): lambda: torch_files.read_storage_bytes,
        ("dnnlib", "EasyDict"): lambda: _EasyDict,
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


def load_pickle(path):
    """The object of a network pickle of either kind, read by the restricted unpickler.
    Raises NetworkPickleError with a one-line message naming `path` and the problem."""
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
    except UserError as e:   # a damaged tensor inside a PyTorch pickle
        raise NetworkPickleError(f"{path}: {e}") from None
    except Exception as e:  # truncated, garbage, wrong protocol ...
        raise NetworkPickleError(f"{path}: not a readable pickle ({type(e).__name__}: {e})") from None
    return obj


def read_network_pickle(path):
    """Read an official TF1 network pickle -> tuple of NetworkState (G, D, Gs).

    Raises NetworkPickleError with a one-line message naming `path` and the problem.
    """
    path = os.fspath(path)
    return tf1_networks(load_pickle(path), path)


def tf1_networks(obj, path):
    """The (G, D, Gs) NetworkStates of an unpickled TF1 network pickle, checked."""
    if not (isinstance(obj, tuple) and len(obj) == 3 and all(isinstance(n, NetworkState) for n in obj)):
        what = type(obj).__name__ if not isinstance(obj, tuple) else f"tuple of {len(obj)}"
        raise NetworkPickleError(
            f"{path}: not a StyleGAN2 network pickle (expected NVIDIA's TF1 tuple (G, D, Gs) of dnnlib Networks "
            f"or a stylegan2-ada-pytorch dict of G, D and G_ema; found {what})")
    for net in obj:
        version = net.state.get("version")
        if version not in (2, 3, 4, 5):
            raise NetworkPickleError(f"{path}: unsupported dnnlib Network state version {version!r}")
    return obj
