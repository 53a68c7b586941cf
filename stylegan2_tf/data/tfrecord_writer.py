"""Writing a multi-resolution TFRecord dataset (the format of ``tfrecord_format``), all or nothing.

Writing goes to a temporary directory next to the destination which is renamed
into place only when everything (images and labels) has been written, so an
interrupted or failed conversion leaves nothing half written.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from typing import List, Optional, Sequence, Tuple

import numpy as np

from stylegan2_tf.data.errors import DatasetError
from stylegan2_tf.data.tfrecord_format import (CLASSES_JSON, MIN_RESOLUTION_LOG2, check_image_shape, dataset_name,
                                               encode_image, labels_path, multi_resolution, tfrecord_path)


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
