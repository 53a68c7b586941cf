"""What a TFRecord dataset directory holds: resolution, channels, count, labels.

The reader identifies files by the shape of their first record (as NVIDIA's
reader does), not by their names, and only needs the file(s) of the
resolution it reads: a directory holding just ``<name>-rNN.tfrecords`` for the
full resolution is a valid dataset.  Several files with the same resolution
are read as one dataset, concatenated in sorted file-name order (the labels
file then covers all of them in that order).
"""

from __future__ import annotations

import dataclasses
import os
import threading
from typing import Dict, Optional, Tuple

import numpy as np

from stylegan2_tf.data.errors import DatasetError
from stylegan2_tf.data.tfrecord_format import (
    is_power_of_two,
    list_label_files,
    list_tfrecord_files,
    load_labels,
    read_class_names,
)
from stylegan2_tf.data.tfrecord_reader import count_records, read_first_image

_cache_lock = threading.Lock()
_count_cache: Dict[Tuple[str, int, int], int] = {}
_shape_cache: Dict[Tuple[str, int, int], Tuple[int, int, int]] = {}


def _file_key(path: str) -> Tuple[str, int, int]:
    st = os.stat(path)
    return (os.path.abspath(path), st.st_size, st.st_mtime_ns)


def cached_record_count(path: str) -> int:
    """Number of records in a file; cached per (path, size, mtime)."""
    key = _file_key(path)
    with _cache_lock:
        if key in _count_cache:
            return _count_cache[key]
    n = count_records(path)
    with _cache_lock:
        _count_cache[key] = n
    return n


def cached_first_shape(path: str) -> Tuple[int, int, int]:
    """CHW shape of the first record of a file; cached per (path, size, mtime)."""
    key = _file_key(path)
    with _cache_lock:
        if key in _shape_cache:
            return _shape_cache[key]
    shape = tuple(int(v) for v in read_first_image(path).shape)
    with _cache_lock:
        _shape_cache[key] = shape
    return shape


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Description of one resolution of a TFRecord dataset."""

    tfrecord_dir: str
    resolution: int
    channels: int
    num_images: int
    label_size: int
    files: Tuple[str, ...]  # the file(s) holding `resolution`, in reading order
    file_counts: Tuple[int, ...]  # records per file
    label_file: Optional[str]
    resolutions: Tuple[int, ...]  # every resolution present in the directory, largest first
    class_names: Optional[Tuple[str, ...]] = None  # of the one-hot label columns (classes.json)

    @property
    def resolution_log2(self) -> int:
        return int(self.resolution).bit_length() - 1

    @property
    def shape(self) -> Tuple[int, int, int]:
        """CHW shape of the images."""
        return (self.channels, self.resolution, self.resolution)

    def load_labels(self) -> np.ndarray:
        """float32 [num_images, label_size]; [num_images, 0] when there is no labels file."""
        if self.label_file is None:
            return np.zeros([self.num_images, 0], dtype=np.float32)
        return load_labels(self.label_file, self.num_images)


def read_dataset_info(tfrecord_dir: str, resolution: Optional[int] = None) -> DatasetInfo:
    """Inspect a dataset directory.

    ``resolution`` selects one of the stored resolutions (default: the
    largest).  Record counts come from a header-only scan of the files (which
    also catches truncated files, naming the file and record index) and are
    cached.  A labels file (the first ``*.labels``) must have one row per image.
    """
    if not os.path.isdir(tfrecord_dir):
        raise DatasetError(tfrecord_dir, "dataset directory not found")
    paths = list_tfrecord_files(tfrecord_dir)
    if not paths:
        raise DatasetError(tfrecord_dir, "no *.tfrecords files in the dataset directory")

    by_res: Dict[int, list] = {}
    channels = None
    for path in paths:
        c, h, w = cached_first_shape(path)
        if h != w or not is_power_of_two(h):
            raise DatasetError(path, "record 0: image shape %s is not square with a power-of-two side" % ((c, h, w),))
        if c not in (1, 3):
            raise DatasetError(path, "record 0: %d channels; expected 1 or 3" % c)
        if channels is None:
            channels = c
        elif c != channels:
            raise DatasetError(path, "record 0: %d channels but %s has %d" % (c, paths[0], channels))
        by_res.setdefault(h, []).append(path)

    resolutions = tuple(sorted(by_res, reverse=True))
    if resolution is None:
        resolution = resolutions[0]
    if resolution not in by_res:
        raise DatasetError(
            tfrecord_dir, "no file with resolution %s; available: %s" % (resolution, ", ".join(map(str, resolutions)))
        )
    files = tuple(by_res[resolution])
    counts = tuple(cached_record_count(p) for p in files)
    num_images = int(sum(counts))

    label_files = list_label_files(tfrecord_dir)
    label_file = label_files[0] if label_files else None
    label_size = 0
    if label_file is not None:
        label_size = int(load_labels(label_file, num_images).shape[1])

    return DatasetInfo(
        tfrecord_dir=tfrecord_dir,
        resolution=int(resolution),
        channels=int(channels),
        num_images=num_images,
        label_size=label_size,
        files=files,
        file_counts=counts,
        label_file=label_file,
        resolutions=resolutions,
        class_names=None if not label_size else _class_names(tfrecord_dir, label_size),
    )


def _class_names(tfrecord_dir, label_size):
    names = read_class_names(tfrecord_dir, label_size)
    return None if names is None else tuple(names)
