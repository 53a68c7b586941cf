"""Write numpy state dicts as PyTorch `.pth` files (zip or legacy format) without PyTorch.

Tests use it to build feature-network files of any size in the exact formats the
published weights come in. Files written here load with `torch.load` (checked with
torch 2.13: both formats, float32/float16/int64), and the reader is also tested on
files written by torch itself (tests/fixtures/torch/).
"""

import io
import pickle
import struct
import zipfile
from collections import OrderedDict

import numpy as np

_STORAGE_NAMES = {np.dtype(np.float32): "FloatStorage", np.dtype(np.float64): "DoubleStorage",
                  np.dtype(np.float16): "HalfStorage", np.dtype(np.int64): "LongStorage",
                  np.dtype(np.int32): "IntStorage", np.dtype(np.uint8): "ByteStorage"}


class _Global:
    """A reference to `module.name`, pickled as a GLOBAL opcode (the target need not exist here)."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle requires reduce functions to be callable
        raise NotImplementedError


class _Storage:
    def __init__(self, key, array):
        self.key, self.array = key, array


class _Tensor:
    def __init__(self, storage, shape):
        self.storage, self.shape = storage, shape

    def __reduce__(self):
        stride, acc = [], 1
        for n in reversed(self.shape):
            stride.insert(0, acc)
            acc *= n
        return (_Global("torch._utils", "_rebuild_tensor_v2"),
                (self.storage, 0, tuple(self.shape), tuple(stride), False, OrderedDict()))


class _Pickler(pickle._Pickler):
    dispatch = pickle._Pickler.dispatch.copy()

    def __init__(self, file, legacy):
        super().__init__(file, protocol=2)
        self.legacy = legacy

    def _save_global_ref(self, obj):
        self.write(pickle.GLOBAL + obj.module.encode() + b"\n" + obj.name.encode() + b"\n")
        self.memoize(obj)

    dispatch[_Global] = _save_global_ref

    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            pid = ("storage", _Global("torch", _STORAGE_NAMES[obj.array.dtype]), obj.key, "cpu", obj.array.size)
            return pid + (None,) if self.legacy else pid
        return None


def _prepare(state_dict):
    storages, obj = [], OrderedDict()
    for i, (name, value) in enumerate(state_dict.items()):
        array = np.array(value, order="C")  # keeps 0-d arrays 0-d
        storage = _Storage(str(i), array)
        storages.append(storage)
        obj[name] = _Tensor(storage, array.shape)
    return obj, storages


def write_pth(path, state_dict, legacy=False):
    obj, storages = _prepare(state_dict)
    if legacy:
        with open(path, "wb") as f:
            pickle.dump(0x1950A86A20F9469CFC6C, f, protocol=2)
            pickle.dump(1001, f, protocol=2)
            pickle.dump({"protocol_version": 1001, "little_endian": True,
                         "type_sizes": {"short": 2, "int": 4, "long": 4}}, f, protocol=2)
            _Pickler(f, legacy=True).dump(obj)
            pickle.dump([s.key for s in storages], f, protocol=2)
            for s in storages:
                f.write(struct.pack("<q", s.array.size))
                f.write(s.array.astype(s.array.dtype.newbyteorder("<")).tobytes())
        return
    buf = io.BytesIO()
    _Pickler(buf, legacy=False).dump(obj)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", buf.getvalue())
        zf.writestr("archive/byteorder", "little")
        for s in storages:
            zf.writestr(f"archive/data/{s.key}", s.array.astype(s.array.dtype.newbyteorder("<")).tobytes())
        zf.writestr("archive/version", "3\n")
