"""The multi-resolution TFRecord dataset format used by NVIDIA's StyleGAN/StyleGAN2.

Layout of a dataset called ``<name>``::

    <name>/
        <name>-r02.tfrecords      4 x 4
        <name>-r03.tfrecords      8 x 8
        ...
        <name>-rNN.tfrecords      2**NN x 2**NN (the full resolution)
        <name>-rxx.labels         optional: numpy .npy file, float32 [num_images, label_size]

Every ``.tfrecords`` file is an uncompressed TFRecord file holding one
``tf.train.Example`` per image, with two features:

* ``shape``: int64 list of length 3, ``[channels, height, width]`` (CHW);
* ``data``: a bytes list with a single element, the uint8 pixels in CHW order.

Channels are 1 (grayscale) or 3 (RGB); images are square with a power-of-two
side of at least 4.  Record ``i`` of every file and row ``i`` of the labels
file describe the same image.  Each lower resolution is computed from the one
above it by averaging 2 x 2 blocks in float32 (the unrounded values are carried
down the chain) and rounding to the nearest integer (``np.rint``: halves go to
the even neighbour) only when a level is stored.  Because every intermediate
value is a multiple of ``4**-k`` not exceeding 255, float32 holds it exactly,
so a stored level equals ``rint`` of the exact mean of the corresponding
``2**k x 2**k`` block of the full-resolution image.

Writing goes to a temporary directory next to the destination which is renamed
into place only when everything (images and labels) has been written, so an
interrupted or failed conversion leaves nothing half written.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import struct
import sys
import tempfile
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np

from stylegan2_tf.data.errors import DatasetError

FEATURE_SHAPE = "shape"
FEATURE_DATA = "data"
TFRECORD_SUFFIX = ".tfrecords"
LABELS_SUFFIX = "-rxx.labels"
# Names of the classes of one-hot labels, one per column: {"classes": [name, ...]} (optional).
CLASSES_JSON = "classes.json"
MIN_RESOLUTION_LOG2 = 2
# Seed of the record order used by the conversion tool (the same permutation
# as NVIDIA's dataset tool, so equal inputs give record-for-record equal sets).
SHUFFLE_SEED = 123

_HEADER_BYTES = 12  # uint64 length + uint32 masked CRC32C of the length
_FOOTER_BYTES = 4  # uint32 masked CRC32C of the payload

# --------------------------------------------------------------------------
# Names.


def dataset_name(tfrecord_dir: str) -> str:
    """``<name>`` of a dataset directory (its last path component)."""
    return os.path.basename(os.path.normpath(tfrecord_dir))


def tfrecord_path(tfrecord_dir: str, resolution_log2: int) -> str:
    """Path of the ``<name>-rNN.tfrecords`` file for ``2**resolution_log2``."""
    name = dataset_name(tfrecord_dir)
    return os.path.join(tfrecord_dir, "%s-r%02d%s" % (name, resolution_log2, TFRECORD_SUFFIX))


def labels_path(tfrecord_dir: str) -> str:
    """Path of the ``<name>-rxx.labels`` file."""
    return os.path.join(tfrecord_dir, dataset_name(tfrecord_dir) + LABELS_SUFFIX)


def list_tfrecord_files(tfrecord_dir: str) -> List[str]:
    """Sorted ``*.tfrecords`` files of a dataset directory."""
    return sorted(glob.glob(os.path.join(glob.escape(tfrecord_dir), "*" + TFRECORD_SUFFIX)))


def list_label_files(tfrecord_dir: str) -> List[str]:
    """Sorted ``*.labels`` files of a dataset directory (the first one is used)."""
    return sorted(glob.glob(os.path.join(glob.escape(tfrecord_dir), "*.labels")))


def read_class_names(tfrecord_dir: str, label_size: int) -> Optional[List[str]]:
    """The class names of a dataset's label columns (``classes.json``), or None without one."""
    path = os.path.join(tfrecord_dir, CLASSES_JSON)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            names = json.load(f)["classes"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(path, "not a class-names file (%s)" % exc) from None
    if not isinstance(names, list) or len(names) != label_size:
        raise DatasetError(path, "expected %d class names, one per label column" % label_size)
    return [str(n) for n in names]


def is_power_of_two(n: int) -> bool:
    return n >= 1 and (n & (n - 1)) == 0


# --------------------------------------------------------------------------
# Records.


def _example_module():
    # Imported lazily: the protobuf classes come with TensorFlow.
    import tensorflow as tf

    return tf.train


def encode_image(image_chw: np.ndarray) -> bytes:
    """Serialize a uint8 CHW image as a ``tf.train.Example`` (``shape``, ``data``)."""
    image_chw = np.asarray(image_chw)
    if image_chw.dtype != np.uint8 or image_chw.ndim != 3:
        raise ValueError("expected a uint8 CHW array, got %s %s" % (image_chw.dtype, image_chw.shape))
    train = _example_module()
    example = train.Example(
        features=train.Features(
            feature={
                FEATURE_SHAPE: train.Feature(int64_list=train.Int64List(value=list(image_chw.shape))),
                FEATURE_DATA: train.Feature(
                    bytes_list=train.BytesList(value=[np.ascontiguousarray(image_chw).tobytes()])
                ),
            }
        )
    )
    return example.SerializeToString(deterministic=True)


def decode_image(record: bytes, path: Optional[str] = None, index: Optional[int] = None) -> np.ndarray:
    """Parse one serialized record back into a uint8 CHW array.

    Raises DatasetError (naming ``path`` and record ``index``) when the record
    is not an Example with a valid ``shape``/``data`` pair.
    """
    where = "record %d: " % index if index is not None else ""
    train = _example_module()
    try:
        example = train.Example.FromString(record)
    except Exception as exc:  # protobuf DecodeError
        raise DatasetError(path, where + "not a tf.train.Example (%s)" % exc) from None
    feature = example.features.feature
    if FEATURE_SHAPE not in feature or FEATURE_DATA not in feature:
        raise DatasetError(path, where + "record lacks the 'shape' and/or 'data' feature")
    shape = tuple(int(v) for v in feature[FEATURE_SHAPE].int64_list.value)
    data_list = feature[FEATURE_DATA].bytes_list.value
    if len(shape) != 3 or min(shape) < 1:
        raise DatasetError(path, where + "'shape' must be 3 positive integers (CHW), got %s" % (shape,))
    if len(data_list) != 1:
        raise DatasetError(path, where + "'data' must hold exactly one bytes value, got %d" % len(data_list))
    data = data_list[0]
    if len(data) != int(np.prod(shape)):
        raise DatasetError(
            path, where + "'data' holds %d bytes but shape %s needs %d" % (len(data), shape, int(np.prod(shape)))
        )
    return np.frombuffer(data, dtype=np.uint8).reshape(shape)


# --------------------------------------------------------------------------
# Lower resolutions.


def box_downsample(image_chw: np.ndarray) -> np.ndarray:
    """One 2 x 2 box-averaging step in float32 (no rounding)."""
    x = np.asarray(image_chw, dtype=np.float32)
    return (x[:, 0::2, 0::2] + x[:, 0::2, 1::2] + x[:, 1::2, 0::2] + x[:, 1::2, 1::2]) * np.float32(0.25)


def quantize(image_chw: np.ndarray) -> np.ndarray:
    """Round to nearest (half to even) and clip into uint8."""
    return np.clip(np.rint(image_chw), 0, 255).astype(np.uint8)


def check_image_shape(shape: Sequence[int], source: Optional[str] = None) -> int:
    """Validate a CHW shape for the format; returns log2 of the resolution."""
    if len(shape) != 3:
        raise DatasetError(source, "expected a CHW image, got shape %s" % (tuple(shape),))
    c, h, w = (int(v) for v in shape)
    if c not in (1, 3):
        raise DatasetError(source, "images must have 1 (grayscale) or 3 (RGB) channels, got %d" % c)
    if h != w:
        raise DatasetError(source, "image is not square (%dx%d, width x height)" % (w, h))
    if not is_power_of_two(h) or h < 2**MIN_RESOLUTION_LOG2:
        raise DatasetError(source, "image side %d is not a power of two >= %d" % (h, 2**MIN_RESOLUTION_LOG2))
    return int(h).bit_length() - 1


def multi_resolution(image_chw: np.ndarray) -> List[np.ndarray]:
    """All stored levels of one uint8 CHW image, full resolution first, 4 x 4 last."""
    log2 = check_image_shape(image_chw.shape)
    levels = [np.asarray(image_chw, dtype=np.uint8)]
    x = levels[0]
    for _ in range(log2 - MIN_RESOLUTION_LOG2):
        x = box_downsample(x)
        levels.append(quantize(x))
    return levels


# --------------------------------------------------------------------------
# Order and labels.


def shuffled_order(num_images: int, seed: int = SHUFFLE_SEED) -> np.ndarray:
    """The record order used for shuffled conversion (a fixed permutation)."""
    order = np.arange(num_images)
    np.random.RandomState(seed).shuffle(order)
    return order


def one_hot(class_indices, num_classes: Optional[int] = None, source: Optional[str] = None) -> np.ndarray:
    """float32 one-hot rows for integer class indices (``num_classes`` defaults to max + 1)."""
    idx = np.asarray(class_indices)
    if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        raise DatasetError(source, "class labels must be a list of integers")
    idx = idx.astype(np.int64)
    if idx.size and idx.min() < 0:
        raise DatasetError(source, "class labels must be >= 0, found %d" % idx.min())
    if num_classes is None:
        num_classes = int(idx.max()) + 1 if idx.size else 0
    if idx.size and idx.max() >= num_classes:
        raise DatasetError(source, "class label %d is out of range for %d classes" % (idx.max(), num_classes))
    out = np.zeros([idx.size, num_classes], dtype=np.float32)
    out[np.arange(idx.size), idx] = 1.0
    return out


def load_labels(path: str, num_images: Optional[int] = None) -> np.ndarray:
    """Read a ``*.labels`` file (float32 [N, label_size]) and check its row count."""
    try:
        labels = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise DatasetError(path, "cannot read labels file (%s)" % exc) from None
    if labels.ndim != 2:
        raise DatasetError(path, "labels must be a 2-D array [num_images, label_size], got shape %s" % (labels.shape,))
    if num_images is not None and labels.shape[0] != num_images:
        raise DatasetError(
            path, "labels file has %d rows but the dataset has %d images" % (labels.shape[0], num_images)
        )
    return labels.astype(np.float32, copy=False)


# --------------------------------------------------------------------------
# Writer.


class MultiResolutionWriter:
    """Writes ``<name>-rNN.tfrecords`` for every level and ``<name>-rxx.labels``.

    Use as a context manager: on normal exit the set is committed (moved into
    ``tfrecord_dir``); on an exception the temporary directory is deleted and
    ``tfrecord_dir`` is left untouched::

        with MultiResolutionWriter("datasets/mine") as writer:
            for img in images:          # uint8 CHW
                writer.add_image(img)
            writer.set_labels(onehot)   # optional, one row per image in the order added

    ``tfrecord_dir`` must not exist or be empty unless ``overwrite=True``.
    """

    def __init__(self, tfrecord_dir: str, overwrite: bool = False, progress_interval: int = 0):
        self.tfrecord_dir = os.path.normpath(tfrecord_dir)
        self.name = dataset_name(self.tfrecord_dir)
        self.overwrite = overwrite
        self.progress_interval = progress_interval
        self.num_images = 0
        self.shape: Optional[Tuple[int, int, int]] = None
        self.resolution_log2: Optional[int] = None
        self._labels: Optional[np.ndarray] = None
        self._class_names: Optional[List[str]] = None
        self._writers = []
        self._closed = False
        if os.path.exists(self.tfrecord_dir):
            if not os.path.isdir(self.tfrecord_dir):
                raise DatasetError(self.tfrecord_dir, "destination exists and is not a directory")
            if os.listdir(self.tfrecord_dir) and not overwrite:
                raise DatasetError(self.tfrecord_dir, "destination directory is not empty (refusing to overwrite)")
        parent = os.path.dirname(os.path.abspath(self.tfrecord_dir))
        os.makedirs(parent, exist_ok=True)
        self._tmp_dir = tempfile.mkdtemp(prefix="." + self.name + ".partial-", dir=parent)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self._tmp_dir, 0o777 & ~umask)  # mkdtemp makes it private; give it ordinary permissions

    # -- writing -----------------------------------------------------------

    def _open(self, shape, source):
        import tensorflow as tf

        self.resolution_log2 = check_image_shape(shape, source)
        self.shape = tuple(int(v) for v in shape)
        options = tf.io.TFRecordOptions(compression_type="")
        for log2 in range(self.resolution_log2, MIN_RESOLUTION_LOG2 - 1, -1):
            # The files in the temporary directory already carry their final names.
            path = os.path.join(self._tmp_dir, os.path.basename(tfrecord_path(self.tfrecord_dir, log2)))
            self._writers.append(tf.io.TFRecordWriter(path, options))

    def add_image(self, image_chw: np.ndarray, source: Optional[str] = None) -> None:
        """Append one uint8 CHW image (all levels).  ``source`` names it in errors."""
        if self._closed:
            raise RuntimeError("writer is closed")
        image_chw = np.asarray(image_chw)
        if image_chw.dtype != np.uint8:
            raise DatasetError(source, "expected uint8 pixels, got %s" % image_chw.dtype)
        if self.shape is None:
            self._open(image_chw.shape, source)
        elif tuple(image_chw.shape) != self.shape:
            check_image_shape(image_chw.shape, source)
            raise DatasetError(
                source,
                "image has shape %s (CHW) but earlier images have %s; all images must have the same size "
                "and channel count" % (tuple(image_chw.shape), self.shape),
            )
        for writer, level in zip(self._writers, multi_resolution(image_chw)):
            writer.write(encode_image(level))
        self.num_images += 1
        if self.progress_interval and self.num_images % self.progress_interval == 0:
            # A counter rewritten in place on a terminal; one line per step in a log or pipe.
            end = "\r" if sys.stdout.isatty() else "\n"
            print("%d images" % self.num_images, end=end, flush=True)

    def set_labels(self, labels: np.ndarray, source: Optional[str] = None,
                   class_names: Optional[Sequence[str]] = None) -> None:
        """Labels, one row per image in the order the images were added; ``class_names``: the
        name of each one-hot column (written as ``classes.json``)."""
        labels = np.asarray(labels, dtype=np.float32)
        if labels.ndim != 2:
            raise DatasetError(source, "labels must be a 2-D array [num_images, label_size], got %s" % (labels.shape,))
        if class_names is not None and len(class_names) != labels.shape[1]:
            raise DatasetError(source, "%d class names for %d label columns" % (len(class_names), labels.shape[1]))
        self._labels = labels
        self._class_names = None if class_names is None else [str(n) for n in class_names]

    # -- finishing ---------------------------------------------------------

    def close(self) -> str:
        """Finish writing and move the set into place; returns ``tfrecord_dir``."""
        if self._closed:
            return self.tfrecord_dir
        try:
            for writer in self._writers:
                writer.close()
            self._writers = []
            if self.num_images == 0:
                raise DatasetError(self.tfrecord_dir, "no images were written; nothing to create")
            if self._labels is not None:
                if self._labels.shape[0] != self.num_images:
                    raise DatasetError(
                        self.tfrecord_dir,
                        "%d label rows for %d images; the counts must match" % (self._labels.shape[0], self.num_images),
                    )
                with open(os.path.join(self._tmp_dir, os.path.basename(labels_path(self.tfrecord_dir))), "wb") as f:
                    np.save(f, self._labels.astype(np.float32))
                if self._class_names is not None:
                    with open(os.path.join(self._tmp_dir, CLASSES_JSON), "w") as f:
                        json.dump({"classes": self._class_names}, f, indent=1)
            self._commit()
        except BaseException:
            self.abort()
            raise
        self._closed = True
        if self.progress_interval:
            print("Added %d images to %s" % (self.num_images, self.tfrecord_dir))
        return self.tfrecord_dir

    def _commit(self):
        if os.path.exists(self.tfrecord_dir):
            if os.listdir(self.tfrecord_dir) and not self.overwrite:
                raise DatasetError(self.tfrecord_dir, "destination directory is not empty (refusing to overwrite)")
            old = self._tmp_dir + ".old"
            os.rename(self.tfrecord_dir, old)
            os.rename(self._tmp_dir, self.tfrecord_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(self._tmp_dir, self.tfrecord_dir)

    def abort(self) -> None:
        """Discard everything written so far."""
        for writer in self._writers:
            try:
                writer.close()
            except Exception:
                pass
        self._writers = []
        self._closed = True
        shutil.rmtree(self._tmp_dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False


# --------------------------------------------------------------------------
# Reading and checking files.

_CRC32C_TABLE = None


def _crc32c(data: bytes) -> int:
    global _CRC32C_TABLE
    if _CRC32C_TABLE is None:
        table = []
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
            table.append(c)
        _CRC32C_TABLE = table
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC32C_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """The masked CRC32C used in TFRecord framing."""
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def count_records(path: str) -> int:
    """Count records by walking the TFRecord framing (headers only, no payload read).

    Detects truncated files and corrupt length headers; raises DatasetError
    naming the file and the index of the first bad record.  Payload checksums
    are checked by :func:`verify_tfrecord_file`.
    """
    try:
        size = os.path.getsize(path)
        f = open(path, "rb")
    except OSError as exc:
        raise DatasetError(path, "cannot open TFRecord file (%s)" % exc.strerror) from None
    count = 0
    offset = 0
    with f:
        while offset < size:
            header = f.read(_HEADER_BYTES)
            if len(header) < _HEADER_BYTES:
                raise DatasetError(path, "record %d: truncated TFRecord file (incomplete header at byte %d)" % (count,
                                                                                                                offset))
            (length,) = struct.unpack("<Q", header[:8])
            (crc,) = struct.unpack("<I", header[8:])
            if masked_crc32c(header[:8]) != crc:
                raise DatasetError(path, "record %d: corrupt TFRecord file (bad length checksum at byte %d)" % (count,
                                                                                                                offset))
            end = offset + _HEADER_BYTES + length + _FOOTER_BYTES
            if end > size:
                raise DatasetError(
                    path, "record %d: truncated TFRecord file (record needs %d bytes, file ends at %d)" % (count, end,
                                                                                                           size)
                )
            f.seek(end)
            offset = end
            count += 1
    return count


def iter_records(path: str, start_index: int = 0) -> Iterator[bytes]:
    """Yield the serialized records of one file, checking all checksums.

    TensorFlow's DataLossError (truncation, checksum mismatch) is re-raised as
    DatasetError naming the file and the index of the record that failed.
    """
    import tensorflow as tf

    if not os.path.isfile(path):
        raise DatasetError(path, "TFRecord file not found")
    index = 0
    ds = tf.data.TFRecordDataset(path, compression_type="", buffer_size=8 << 20)
    it = iter(ds)
    while True:
        try:
            record = next(it)
        except StopIteration:
            return
        except tf.errors.DataLossError as exc:
            raise DatasetError(
                path, "record %d: truncated or corrupt TFRecord data (%s)" % (index + start_index,
                                                                              exc.message.split("}}")[-1].strip())
            ) from None
        except tf.errors.OpError as exc:
            raise DatasetError(path, "record %d: cannot read TFRecord file (%s)" % (index + start_index,
                                                                                    exc.message)) from None
        yield record.numpy()
        index += 1


def iter_images(path: str) -> Iterator[np.ndarray]:
    """Yield the uint8 CHW images of one file (checksums and schema checked)."""
    for index, record in enumerate(iter_records(path)):
        yield decode_image(record, path, index)


def verify_tfrecord_file(path: str, expected_shape: Optional[Sequence[int]] = None) -> int:
    """Read every record of a file, checking checksums, schema and shape; returns the count."""
    count = 0
    expected = tuple(expected_shape) if expected_shape is not None else None
    for index, image in enumerate(iter_images(path)):
        if expected is None:
            expected = image.shape
        elif image.shape != expected:
            raise DatasetError(path, "record %d: shape %s differs from %s" % (index, image.shape, expected))
        count += 1
    return count


def read_first_image(path: str) -> np.ndarray:
    """The first image of a file (for inspecting its shape)."""
    for image in iter_images(path):
        return image
    raise DatasetError(path, "TFRecord file holds no records")
