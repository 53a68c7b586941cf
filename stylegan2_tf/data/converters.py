"""Converters from common image collections to multi-resolution TFRecords.

Each ``create_*`` function writes a complete dataset directory (see
``tfrecord_format``) or raises :class:`DatasetError` and writes nothing.
Record orders follow NVIDIA's dataset tool: the shuffled converters use the
fixed permutation ``tfrecord_format.shuffled_order`` (seed 123); LSUN keeps
the database order.  Class labels are stored one-hot with the dataset's class
count (10 for CIFAR-10 and MNIST, 100 for CIFAR-100).
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import sys
import tarfile
from typing import Iterable, List, Optional, Tuple

import numpy as np

from stylegan2_tf.data.errors import DatasetError
from stylegan2_tf.data.image_io import (
    ImageSource,
    check_resolution_arg,
    center_crop_square,
    labels_from_folders as labels_from_folders_of,
    load_image,
    parse_labels_json,
    prepare_image,
    resize_array,
)
from stylegan2_tf.data.tfrecord_format import one_hot, shuffled_order
from stylegan2_tf.data.tfrecord_writer import MultiResolutionWriter

CELEBA_EXPECTED_IMAGES = 202599


def _log(verbose: bool, msg: str) -> None:
    if verbose:
        print(msg, flush=True)


# --------------------------------------------------------------------------
# Folders and zip archives.


def create_from_images(
    tfrecord_dir: str,
    image_dir: str,
    shuffle: bool = True,
    resize: Optional[int] = None,
    resize_filter: str = "lanczos",
    center_crop: bool = True,
    labels_json: Optional[str] = None,
    max_images: Optional[int] = None,
    overwrite: bool = False,
    verbose: bool = False,
    labels_from_folders: bool = False,
) -> int:
    """Convert every image of a folder (recursive) or a zip archive; returns the count.

    Labels come from ``labels_json`` or, if absent, from a ``dataset.json`` at
    the root of the folder/archive (``{"labels": [[relative/path.png, class], ...]}``,
    stylegan2-ada-pytorch's format). ``labels_from_folders``: one class per top-level
    sub-folder instead (sorted by name; the names go to the dataset's ``classes.json``).
    Without ``resize`` all images must be square, power-of-two and equal in
    size; with ``resize=R`` they are center-cropped (unless ``center_crop``
    is False, then non-square images are an error) and resized to R x R with
    the ``box`` or ``lanczos`` filter.
    """
    if resize is not None:
        resize = check_resolution_arg(resize)
    with ImageSource(image_dir) as source:
        names = source.names
        labels = class_names = None
        if labels_from_folders:
            if labels_json is not None or source.find_labels_json() is not None:
                raise DatasetError(labels_json or source.labels_json_name(),
                                   "labels from a dataset.json and from folders: choose one")
            labels, class_names = labels_from_folders_of(names, image_dir)
        elif labels_json is not None:
            try:
                with open(labels_json, "rb") as f:
                    data = f.read()
            except OSError as exc:
                raise DatasetError(labels_json, "cannot read labels file (%s)" % exc.strerror) from None
            labels = parse_labels_json(data, names, labels_json)
        else:
            data = source.find_labels_json()
            if data is not None:
                labels = parse_labels_json(data, names, source.labels_json_name())
        order = shuffled_order(len(names)) if shuffle else np.arange(len(names))
        if max_images is not None:
            order = order[: int(max_images)]
        _log(verbose, "Loading %d images from %s" % (len(order), image_dir))
        with MultiResolutionWriter(tfrecord_dir, overwrite=overwrite,
                                   progress_interval=100 if verbose else 0) as writer:
            channels = None
            first = None
            for i in order:
                name = names[i]
                where = source.describe(name)
                img = prepare_image(source.load(name), where, resize, resize_filter, center_crop)
                if channels is None:
                    channels, first = img.shape[0], where
                elif img.shape[0] != channels:
                    raise DatasetError(
                        where,
                        "image has %d channel(s) after conversion but %s has %d; all images must be "
                        "grayscale or all RGB" % (img.shape[0], first, channels),
                    )
                writer.add_image(img, where)
            if labels is not None:
                writer.set_labels(labels[order], source.labels_json_name() if labels_json is None else labels_json,
                                  class_names=class_names)
        return len(order)


def create_from_zip(tfrecord_dir: str, zip_path: str, **kwargs) -> int:
    """Same as :func:`create_from_images` for a zip archive."""
    if not os.path.isfile(zip_path):
        raise DatasetError(zip_path, "zip archive not found")
    return create_from_images(tfrecord_dir, zip_path, **kwargs)


def _write_array_dataset(tfrecord_dir, images_nchw, onehot, shuffle=True, overwrite=False, verbose=False):
    order = shuffled_order(images_nchw.shape[0]) if shuffle else np.arange(images_nchw.shape[0])
    with MultiResolutionWriter(tfrecord_dir, overwrite=overwrite, progress_interval=1000 if verbose else 0) as writer:
        for i in order:
            writer.add_image(images_nchw[i])
        if onehot is not None:
            writer.set_labels(onehot[order])
    return int(order.size)


# --------------------------------------------------------------------------
# CIFAR (python pickle batches, from the extracted folder or the .tar.gz).


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler restricted to the classes that occur in the CIFAR batches."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how Python 3 writes bytes at protocol 2 (array payloads)
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError("refusing to load %s.%s" % (module, name))
        if module.startswith("numpy.core.") and int(np.__version__.split(".")[0]) >= 2:
            module = "numpy._core." + module[len("numpy.core.") :]  # renamed in numpy 2
        return super().find_class(module, name)


def _load_pickle(data: bytes, source: str) -> dict:
    try:
        obj = _ArrayUnpickler(io.BytesIO(data), encoding="latin1").load()
    except Exception as exc:
        raise DatasetError(source, "cannot read pickle batch (%s)" % exc) from None
    if not isinstance(obj, dict):
        raise DatasetError(source, "expected a pickled dict")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _read_members(path: str, members: List[str]) -> List[Tuple[str, bytes]]:
    """Read batch files from a folder, or from a tarball (matched by base name)."""
    out = []
    if os.path.isdir(path):
        for m in members:
            p = os.path.join(path, m)
            try:
                with open(p, "rb") as f:
                    out.append((p, f.read()))
            except OSError as exc:
                raise DatasetError(p, "cannot read (%s)" % exc.strerror) from None
        return out
    if not os.path.isfile(path):
        raise DatasetError(path, "no such folder or tarball")
    try:
        with tarfile.open(path, "r:*") as tar:
            by_base = {os.path.basename(m.name): m for m in tar.getmembers() if m.isfile()}
            for m in members:
                if m not in by_base:
                    raise DatasetError(path, "tarball has no member named %r" % m)
                out.append(("%s:%s" % (path, by_base[m].name), tar.extractfile(by_base[m]).read()))
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DatasetError(path, "cannot read tarball (%s)" % exc) from None
    return out


def _cifar_arrays(batches, label_key, num_classes):
    images, labels = [], []
    for where, data in batches:
        d = _load_pickle(data, where)
        if "data" not in d or label_key not in d:
            raise DatasetError(where, "batch lacks 'data' or %r" % label_key)
        x = np.asarray(d["data"])
        y = np.asarray(d[label_key]).reshape(-1)
        if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3 * 32 * 32:
            raise DatasetError(where, "'data' must be uint8 [N, 3072], got %s %s" % (x.dtype, x.shape))
        if y.shape[0] != x.shape[0]:
            raise DatasetError(where, "%d labels for %d images" % (y.shape[0], x.shape[0]))
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise DatasetError(where, "labels must lie in 0..%d" % (num_classes - 1))
        images.append(x.reshape(-1, 3, 32, 32))
        labels.append(y.astype(np.int64))
    images = np.concatenate(images)
    return images, one_hot(np.concatenate(labels), num_classes)


def create_cifar10(tfrecord_dir: str, cifar10_path: str, overwrite: bool = False, verbose: bool = False) -> int:
    """CIFAR-10 training set (``data_batch_1`` .. ``data_batch_5``), 32 x 32 RGB, 10 classes.

    ``cifar10_path`` is the extracted ``cifar-10-batches-py`` folder or the
    ``cifar-10-python.tar.gz`` archive.
    """
    batches = _read_members(cifar10_path, ["data_batch_%d" % i for i in range(1, 6)])
    images, onehot = _cifar_arrays(batches, "labels", 10)
    return _write_array_dataset(tfrecord_dir, images, onehot, overwrite=overwrite, verbose=verbose)


def create_cifar100(tfrecord_dir: str, cifar100_path: str, overwrite: bool = False, verbose: bool = False) -> int:
    """CIFAR-100 training set (``train``), fine labels, 100 classes."""
    batches = _read_members(cifar100_path, ["train"])
    images, onehot = _cifar_arrays(batches, "fine_labels", 100)
    return _write_array_dataset(tfrecord_dir, images, onehot, overwrite=overwrite, verbose=verbose)


# --------------------------------------------------------------------------
# MNIST (idx files).

MNIST_IMAGES = "train-images-idx3-ubyte.gz"
MNIST_LABELS = "train-labels-idx1-ubyte.gz"


def read_idx(path: str) -> np.ndarray:
    """Read a (gzipped) idx file of unsigned bytes."""
    try:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise DatasetError(path, "cannot read idx file (%s)" % exc) from None
    if len(raw) < 4:
        raise DatasetError(path, "idx file is too short")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08 or ndim < 1:
        raise DatasetError(path, "not an unsigned-byte idx file (magic %02x %02x %02x %02x)" % tuple(raw[:4]))
    header = 4 + 4 * ndim
    dims = struct.unpack(">%dI" % ndim, raw[4:header])
    count = int(np.prod(dims))
    if len(raw) - header != count:
        raise DatasetError(path, "idx header announces %s (%d bytes) but the file holds %d" % (dims, count,
                                                                                               len(raw) - header))
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


def create_mnist(tfrecord_dir: str, mnist_dir: str, overwrite: bool = False, verbose: bool = False) -> int:
    """MNIST training set: 28 x 28 digits zero-padded to 32 x 32 grayscale, 10 classes."""
    images = read_idx(os.path.join(mnist_dir, MNIST_IMAGES))
    labels = read_idx(os.path.join(mnist_dir, MNIST_LABELS))
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DatasetError(os.path.join(mnist_dir, MNIST_IMAGES),
                           "expected [N, 28, 28] images, got %s" % (images.shape,))
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise DatasetError(
            os.path.join(mnist_dir, MNIST_LABELS), "%d labels for %d images" % (labels.shape[0], images.shape[0])
        )
    images = np.pad(images[:, np.newaxis], [(0, 0), (0, 0), (2, 2), (2, 2)], mode="constant")
    onehot = one_hot(labels.astype(np.int64), 10, source=os.path.join(mnist_dir, MNIST_LABELS))
    return _write_array_dataset(tfrecord_dir, images, onehot, overwrite=overwrite, verbose=verbose)


DIGITS_SOURCE = "sklearn.datasets.load_digits"


def create_digits(tfrecord_dir: str, resolution: int = 32, labels: bool = True, overwrite: bool = False,
                  verbose: bool = False, max_images: Optional[int] = None) -> int:
    """scikit-learn's bundled handwritten digits (UCI optdigits test set: 1,797 real 8 x 8 scans
    of 16 grey levels, 10 classes) as grayscale images upscaled to resolution x resolution
    (bicubic, white ink on black like MNIST). Needs scikit-learn (the `digits` extra); nothing
    is downloaded. `labels`: store one-hot classes (training on them makes a conditional net).
    `max_images`: the first N scans only (a small-data experiment; the scans cycle through the
    classes, so any N >= 10 holds all of them)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DatasetError(DIGITS_SOURCE, "scikit-learn is not installed (pip install \".[digits]\" or "
                                          "pip install scikit-learn)") from None
    check_resolution_arg(resolution)
    if resolution < 8:
        raise DatasetError(DIGITS_SOURCE, "resolution %d is below the scans' 8 x 8" % resolution)
    digits = load_digits()
    if max_images is not None and max_images < 1:
        raise DatasetError(DIGITS_SOURCE, "max_images must be >= 1, got %d" % max_images)
    scans = np.asarray(digits.images, np.float64)[:max_images]
    targets = np.asarray(digits.target, np.int64)[:max_images]
    if scans.ndim != 3 or scans.shape[1:] != (8, 8) or scans.min() < 0 or scans.max() > 16:
        raise DatasetError(DIGITS_SOURCE, "expected [N, 8, 8] scans in 0..16, got %s" % (scans.shape,))
    import PIL.Image

    images = np.empty([scans.shape[0], 1, resolution, resolution], np.uint8)
    for i, scan in enumerate(scans):
        # Resample the 0..16 levels as floats, then quantize once.
        big = PIL.Image.fromarray((scan * (255.0 / 16.0)).astype(np.float32), "F")
        big = np.asarray(big.resize((resolution, resolution), PIL.Image.BICUBIC))
        images[i, 0] = np.clip(np.round(big), 0, 255).astype(np.uint8)
    onehot = one_hot(targets, 10, source=DIGITS_SOURCE) if labels else None
    return _write_array_dataset(tfrecord_dir, images, onehot, overwrite=overwrite, verbose=verbose)


# --------------------------------------------------------------------------
# LSUN (LMDB exports; needs the optional `lmdb` package).


def _lmdb_values(lmdb_dir: str) -> Iterable[Tuple[str, bytes]]:
    try:
        import lmdb  # optional extra: pip install stylegan2-tf[lmdb]
    except ImportError:
        raise DatasetError(lmdb_dir, "reading LSUN needs the 'lmdb' package (pip install lmdb)") from None
    try:
        env = lmdb.open(lmdb_dir, readonly=True, lock=False, readahead=False, max_readers=1)
    except lmdb.Error as exc:
        raise DatasetError(lmdb_dir, "cannot open LMDB database (%s)" % exc) from None
    try:
        with env.begin(write=False) as txn:
            for key, value in txn.cursor():
                yield key.decode("utf-8", "replace"), bytes(value)
    finally:
        env.close()


def _lsun_loop(lmdb_dir, tfrecord_dir, make, max_images, overwrite, verbose, skip_bad=True):
    """Shared loop: ``make(rgb_hwc)`` returns CHW or None (skip)."""
    with MultiResolutionWriter(tfrecord_dir, overwrite=overwrite, progress_interval=1000 if verbose else 0) as writer:
        skipped = 0
        for key, value in _lmdb_values(lmdb_dir):
            if max_images is not None and writer.num_images >= max_images:
                break
            where = "%s[%s]" % (lmdb_dir, key)
            try:
                img = load_image(value, where)
            except DatasetError as exc:
                if not skip_bad:
                    raise
                print("Skipping: %s" % exc, file=sys.stderr)
                skipped += 1
                continue
            if img.shape[2] == 1:
                img = np.repeat(img, 3, axis=2)
            out = make(img)
            if out is None:
                skipped += 1
                continue
            writer.add_image(out, where)
        _log(verbose, "Skipped %d entries" % skipped)
        return writer.num_images


def create_lsun(
    tfrecord_dir: str,
    lmdb_dir: str,
    resolution: int = 256,
    max_images: Optional[int] = None,
    resize_filter: str = "lanczos",
    overwrite: bool = False,
    verbose: bool = False,
) -> int:
    """One LSUN category: central square crop, resized to ``resolution`` (Lanczos), RGB.

    Entries that cannot be decoded are skipped with a message (LSUN exports
    contain a few broken files); records keep the database order.
    """
    resolution = check_resolution_arg(resolution)

    def make(img):
        return np.ascontiguousarray(
            resize_array(center_crop_square(img), resolution, resolution, resize_filter).transpose(2, 0, 1)
        )

    return _lsun_loop(lmdb_dir, tfrecord_dir, make, max_images, overwrite, verbose)


def lsun_wide_canvas(img_hwc: np.ndarray, width: int = 512, height: int = 384, resize_filter: str = "lanczos"):
    """LSUN "wide" layout, with the reference tool's arithmetic.

    For an H x W image: ``ch = round(width * H / W)`` (the height the image
    would have if scaled to ``width`` columns); images with ``W < width`` or
    ``ch < height`` are skipped (returns None).  Otherwise the central ``ch``
    rows of the *unscaled* image (all columns) are kept, resized to
    ``width x height`` and placed, vertically centred, on a black
    ``width x width`` canvas.  Kept as is so that datasets match the published
    ones; note that for ``W > width`` the kept rows are then not exactly in the
    ``width:height`` aspect ratio.  Returns CHW uint8.
    """
    h, w = img_hwc.shape[:2]
    ch = int(np.round(width * h / w))
    if w < width or ch < height:
        return None
    img = img_hwc[(h - ch) // 2 : (h + ch) // 2]
    img = resize_array(img, width, height, resize_filter)
    canvas = np.zeros([width, width, img.shape[2]], dtype=np.uint8)
    top = (width - height) // 2
    canvas[top : top + height] = img
    return np.ascontiguousarray(canvas.transpose(2, 0, 1))


def create_lsun_wide(
    tfrecord_dir: str,
    lmdb_dir: str,
    width: int = 512,
    height: int = 384,
    max_images: Optional[int] = None,
    overwrite: bool = False,
    verbose: bool = False,
) -> int:
    """LSUN with a non-square aspect: ``width x height`` on a ``width``-square canvas."""
    check_resolution_arg(width)
    if not 1 <= height <= width:
        raise DatasetError(None, "--height must lie in 1..width, got %r" % (height,))
    return _lsun_loop(lmdb_dir, tfrecord_dir, lambda img: lsun_wide_canvas(img, width, height), max_images, overwrite,
                      verbose)


# --------------------------------------------------------------------------
# CelebA.


def create_celeba(
    tfrecord_dir: str, celeba_dir: str, cx: int = 89, cy: int = 121, overwrite: bool = False, verbose: bool = False
) -> int:
    """CelebA aligned faces: the 128 x 128 crop centred at (cx, cy) of each 178 x 218 image.

    Reads ``img_align_celeba_png/*.png`` (as the reference setup) or, if that
    folder is missing, ``img_align_celeba/*.jpg``.  A count other than
    202,599 is reported but accepted.
    """
    folder, ext = os.path.join(celeba_dir, "img_align_celeba_png"), ".png"
    if not os.path.isdir(folder):
        folder, ext = os.path.join(celeba_dir, "img_align_celeba"), ".jpg"
    if not os.path.isdir(folder):
        raise DatasetError(celeba_dir, "expected an img_align_celeba_png/ or img_align_celeba/ folder")
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(ext))
    if not names:
        raise DatasetError(folder, "no %s images found" % ext)
    if len(names) != CELEBA_EXPECTED_IMAGES:
        print("Note: found %d CelebA images (the full set has %d)" % (len(names), CELEBA_EXPECTED_IMAGES),
              file=sys.stderr)
    order = shuffled_order(len(names))
    with MultiResolutionWriter(tfrecord_dir, overwrite=overwrite, progress_interval=1000 if verbose else 0) as writer:
        for i in order:
            path = os.path.join(folder, names[i])
            img = load_image(path)
            if img.shape != (218, 178, 3):
                raise DatasetError(path, "expected a 178x218 RGB image, got %dx%d with %d channel(s)"
                                   % (img.shape[1], img.shape[0], img.shape[2]))
            crop = img[cy - 64 : cy + 64, cx - 64 : cx + 64]
            if crop.shape[:2] != (128, 128):
                raise DatasetError(path, "crop centre (%d, %d) puts the 128x128 crop outside the image" % (cx, cy))
            writer.add_image(np.ascontiguousarray(crop.transpose(2, 0, 1)), path)
    return int(order.size)
