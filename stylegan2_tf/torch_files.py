"""Reading PyTorch's serialization without PyTorch and without running pickled code: `.pth`
state dicts (the feature networks of the metrics) and the tensors inside network pickles
(official/pytorch_format.py).

Two on-disk formats exist and the published feature-network weights use both:

* zip (torch >= 1.6): `<root>/data.pkl` plus one raw little-endian file per storage,
  `<root>/data/<key>`;
* legacy (torch < 1.6, and `_use_new_zipfile_serialization=False`): five pickles in a
  row -- magic number, protocol version, system info, the object, the sorted storage
  keys -- followed by each storage as an int64 element count and raw bytes.

In both, tensors are pickled as calls to `torch._utils._rebuild_tensor_v2(storage,
offset, size, stride, ...)` with storages as persistent ids. The unpickler below maps
exactly those globals (and `collections.OrderedDict`) to numpy stand-ins and refuses
every other one, so a file cannot make this reader call anything.
"""

import io
import os
import pickle
import struct
import zipfile
from collections import OrderedDict

import numpy as np
from .errors import UserError

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001

_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class TorchFileError(UserError):
    """A .pth file is missing, damaged, unsafe or not a state dict of arrays."""


class _StorageType:
    def __init__(self, name):
        self.name = name
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _Storage:
    def __init__(self, dtype, key, numel):
        self.dtype, self.key, self.numel = np.dtype(dtype), str(key), int(numel)
        self.data = None  # filled from the zip member or the legacy tail


class _TensorRef:
    """A tensor whose storage bytes may not have been read yet."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, int(offset), tuple(size), tuple(stride)

    def materialize(self):
        data = self.storage.data
        if data is None:
            raise TorchFileError(f"storage {self.storage.key!r} has no data")
        if not self.size:
            return np.array(data[self.offset])
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if self.offset < 0 or last >= data.size or any(s < 0 for s in self.stride):
            raise TorchFileError(f"tensor of size {self.size} runs past its storage {self.storage.key!r}")
        itemsize = data.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            data[self.offset:], shape=self.size, strides=tuple(s * itemsize for s in self.stride))
        return np.array(view)  # a contiguous copy owning its memory


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    if not isinstance(storage, _Storage):
        raise TorchFileError("tensor without a storage")
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *unused):
    return data


class _SafeTorchUnpickler(pickle.Unpickler):
    def __init__(self, file, storage_loader):
        super().__init__(file, encoding="latin1")
        self._storage_loader = storage_loader

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if module == "_codecs" and name == "encode":
            return lambda s, enc="latin1": s.encode("latin1")
        raise TorchFileError(
            f"refusing to load global '{module}.{name}': only state dicts of tensors are read, without running code")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] in ("storage", b"storage")):
            raise TorchFileError(f"unsupported persistent id {pid!r}")
        return self._storage_loader(pid[1:])


def _resolve(obj):
    if isinstance(obj, _TensorRef):
        return obj.materialize()
    if isinstance(obj, dict):
        return OrderedDict((k, _resolve(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_resolve(v) for v in obj)
    return obj


def _read_zip(path, zf):
    names = zf.namelist()
    pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
    if len(pkl) != 1:
        raise TorchFileError(f"{path}: zip archive without exactly one data.pkl (not a torch file)")
    root = pkl[0][:-len("data.pkl")]
    storages = {}

    def load_storage(fields):
        storage_type, key, _location, numel = fields[:4]
        if not isinstance(storage_type, _StorageType):
            raise TorchFileError(f"unsupported storage type {storage_type!r}")
        if key not in storages:
            st = _Storage(storage_type.dtype, key, numel)
            member = f"{root}data/{key}"
            try:
                raw = zf.read(member)
            except KeyError:
                raise TorchFileError(f"storage member {member!r} is missing") from None
            if len(raw) < st.numel * st.dtype.itemsize:
                raise TorchFileError(f"storage member {member!r} is truncated")
            st.data = np.frombuffer(raw, dtype=st.dtype.newbyteorder("<"), count=st.numel).astype(st.dtype)
            storages[key] = st
        return storages[key]

    return _SafeTorchUnpickler(io.BytesIO(zf.read(pkl[0])), load_storage).load()


def _read_legacy(path, f):
    def plain_load():
        return _SafeTorchUnpickler(f,
                                   lambda _: (_ for _ in ()).throw(TorchFileError("storage outside the object"))).load()

    if plain_load() != LEGACY_MAGIC_NUMBER:
        raise TorchFileError(f"{path}: not a PyTorch file (wrong magic number)")
    if plain_load() != LEGACY_PROTOCOL_VERSION:
        raise TorchFileError(f"{path}: unsupported PyTorch legacy protocol version")
    plain_load()  # system info: byte order and type sizes; little-endian assumed below
    storages = {}

    def load_storage(fields):
        storage_type, key, _location, numel, view_metadata = fields[:5]
        if not isinstance(storage_type, _StorageType):
            raise TorchFileError(f"unsupported storage type {storage_type!r}")
        if view_metadata is not None:
            raise TorchFileError("storage views are not supported")
        storages.setdefault(str(key), _Storage(storage_type.dtype, key, numel))
        return storages[str(key)]

    obj = _SafeTorchUnpickler(f, load_storage).load()
    keys = plain_load()
    for key in keys:
        st = storages.get(str(key))
        if st is None:
            raise TorchFileError(f"{path}: storage key {key!r} not referenced by the object")
        header = f.read(8)
        if len(header) != 8:
            raise TorchFileError(f"{path}: truncated (storage {key!r} missing)")
        (numel,) = struct.unpack("<q", header)
        raw = f.read(numel * st.dtype.itemsize)
        if numel != st.numel or len(raw) != numel * st.dtype.itemsize:
            raise TorchFileError(f"{path}: truncated or inconsistent storage {key!r}")
        st.data = np.frombuffer(raw, dtype=st.dtype.newbyteorder("<")).astype(st.dtype)
    return obj


def rebuild_tensor(storage, storage_offset, size, stride, *unused):
    """`torch._utils._rebuild_tensor_v2` for a storage whose bytes are loaded -> np.ndarray."""
    return _rebuild_tensor(storage, storage_offset, size, stride).materialize()


def rebuild_parameter(data, requires_grad=False, backward_hooks=None, *unused):
    """`torch._utils._rebuild_parameter`: a Parameter is its data here."""
    return data


def read_storage_bytes(data):
    """`torch.storage._load_from_bytes`: a storage pickled on its own (torch.save in the legacy
    format, as `pickle.dump` of a tensor writes it) -> the storage with its data loaded."""
    if not isinstance(data, (bytes, bytearray)):
        raise TorchFileError(f"a pickled storage must be bytes, got {type(data).__name__}")
    storage = _read_legacy("storage", io.BytesIO(bytes(data)))
    if not isinstance(storage, _Storage) or storage.data is None:
        raise TorchFileError("a pickled storage holds no tensor data")
    return storage


def read_torch_state_dict(path):
    """Read a `.pth` file holding a (possibly nested) dict of tensors -> {name: np.ndarray}.

    Raises TorchFileError with a one-line message naming `path` and the problem.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise TorchFileError(f"{path}: no such file")
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                obj = _read_zip(path, zf)
        else:
            with open(path, "rb") as f:
                obj = _read_legacy(path, f)
        obj = _resolve(obj)
    except TorchFileError as e:
        msg = str(e)
        raise TorchFileError(msg if msg.startswith(path) else f"{path}: {msg}") from None
    except Exception as e:  # truncated or not a pickle at all
        raise TorchFileError(f"{path}: not a readable PyTorch file ({type(e).__name__}: {e})") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, np.ndarray) for v in obj.values()):
        raise TorchFileError(f"{path}: not a state dict of tensors")
    return OrderedDict((str(k), v) for k, v in obj.items())
