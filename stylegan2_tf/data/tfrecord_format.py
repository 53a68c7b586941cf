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

Writing (``tfrecord_writer.MultiResolutionWriter``) and reading with every checksum checked
(``tfrecord_reader``) live beside this module, which defines the format: names, records,
the lower resolutions, the record order and the labels.
"""

from __future__ import annotations

import glob
import json
import os
from typing import List, Optional, Sequence

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
