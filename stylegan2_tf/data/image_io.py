"""Reading source images for dataset conversion, with fixed pixel-mode rules.

Accepted files: ``.png``, ``.jpg``/``.jpeg`` and ``.webp`` (case-insensitive),
found recursively in a folder or anywhere inside a zip archive; other files
are ignored.  Multi-frame files contribute their first frame.  EXIF
orientation tags are ignored (pixels are used as stored).

Every image is converted to 1 channel (grayscale) or 3 channels (RGB), uint8,
by its Pillow mode:

=====================  ==============================================================
mode                   rule
=====================  ==============================================================
``1``                  bilevel -> grayscale 0 / 255 (1 channel)
``L``                  grayscale (1 channel)
``LA``, ``La``         alpha dropped, gray values kept as stored -> 1 channel
``I;16`` (any order)   16-bit grayscale scaled to 8 bit by ``value >> 8`` -> 1 channel
``I``                  treated as 16-bit grayscale (``>> 8``) when every value lies in
                       0..65535, rejected otherwise
``RGB``                3 channels (Pillow already reduces 48-bit PNGs to their high
                       bytes, i.e. the same ``>> 8`` rule)
``RGBA``, ``RGBX``     alpha / padding dropped, colours kept as stored (no compositing
                       onto a background) -> 3 channels
``P``, ``PA``          palette looked up -> RGB (3 channels), transparency dropped,
                       even when the palette happens to be gray
``CMYK``, ``YCbCr``    converted to RGB by Pillow (no colour management) -> 3 channels
anything else          rejected (``F``, ``HSV``, ``LAB``, ``I;16S``...) with the file name
=====================  ==============================================================

All images of one dataset must end up with the same channel count; the first
image that differs is reported by name.  Unreadable or corrupt files raise
:class:`DatasetError` naming the file.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zipfile
from typing import Dict, List, Optional, Sequence

import numpy as np
import PIL.Image

from stylegan2_tf.data.errors import DatasetError
from stylegan2_tf.data.tfrecord_format import is_power_of_two, one_hot

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")
LABELS_JSON = "dataset.json"
RESIZE_FILTERS = {"box": PIL.Image.Resampling.BOX, "lanczos": PIL.Image.Resampling.LANCZOS}

_TO_GRAY_DROP_ALPHA = ("LA", "La")
_TO_RGB = ("RGBA", "RGBX", "RGBa", "P", "PA", "CMYK", "YCbCr")
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


# --------------------------------------------------------------------------
# Decoding and mode conversion.


def open_image(data_or_path, source: Optional[str] = None) -> PIL.Image.Image:
    """Open and fully decode an image (path or bytes); errors name ``source``."""
    source = source if source is not None else (data_or_path if isinstance(data_or_path, str) else None)
    try:
        fp = io.BytesIO(data_or_path) if isinstance(data_or_path, (bytes, bytearray)) else data_or_path
        img = PIL.Image.open(fp)
        img.load()
    except FileNotFoundError:
        raise DatasetError(source, "file not found") from None
    except PIL.Image.DecompressionBombError as exc:
        raise DatasetError(source, "image too large (%s)" % exc) from None
    except (PIL.UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        raise DatasetError(source, "cannot read image: unreadable or corrupt file (%s)" % exc) from None
    return img


def image_to_array(img: PIL.Image.Image, source: Optional[str] = None) -> np.ndarray:
    """Apply the mode rules of this module: returns uint8 HWC with C in {1, 3}."""
    mode = img.mode
    try:
        if mode == "1":
            arr = np.asarray(img.convert("L"))
        elif mode == "L":
            arr = np.asarray(img)
        elif mode in _TO_GRAY_DROP_ALPHA:
            arr = np.asarray(img)[:, :, 0]
        elif mode in _SIXTEEN_BIT:
            arr = (np.asarray(img).astype(np.uint32) >> 8).astype(np.uint8)
        elif mode == "I":
            wide = np.asarray(img)
            if wide.size and (wide.min() < 0 or wide.max() > 65535):
                raise DatasetError(
                    source, "32-bit integer image with values outside 0..65535 (mode I) is not supported"
                )
            arr = (wide.astype(np.int64) >> 8).astype(np.uint8)
        elif mode == "RGB":
            arr = np.asarray(img)
        elif mode in _TO_RGB:
            arr = np.asarray(img.convert("RGB"))
        else:
            raise DatasetError(source,
                               "unsupported image mode %r (supported: 1, L, LA, I;16, I, RGB, RGBA, P, CMYK)" % mode)
    except DatasetError:
        raise
    except Exception as exc:  # conversion of a damaged image
        raise DatasetError(source, "cannot convert image from mode %s (%s)" % (mode, exc)) from None
    if arr.ndim == 2:
        arr = arr[:, :, np.newaxis]
    return np.ascontiguousarray(arr, dtype=np.uint8)


def load_image(data_or_path, source: Optional[str] = None) -> np.ndarray:
    """Decode and convert one image: uint8 HWC, 1 or 3 channels."""
    source = source if source is not None else (data_or_path if isinstance(data_or_path, str) else None)
    return image_to_array(open_image(data_or_path, source), source)


# --------------------------------------------------------------------------
# Geometry.


def center_crop_square(arr_hwc: np.ndarray) -> np.ndarray:
    """Central square of side min(H, W) (offsets rounded down)."""
    h, w = arr_hwc.shape[:2]
    s = min(h, w)
    return arr_hwc[(h - s) // 2 : (h + s) // 2, (w - s) // 2 : (w + s) // 2]


def resize_array(arr_hwc: np.ndarray, width: int, height: int, resize_filter: str = "lanczos") -> np.ndarray:
    """Resize uint8 HWC (1 or 3 channels) with Pillow's box or Lanczos filter."""
    if resize_filter not in RESIZE_FILTERS:
        raise DatasetError(None, "resize_filter must be one of %s" % sorted(RESIZE_FILTERS))
    if arr_hwc.shape[0] == height and arr_hwc.shape[1] == width:
        return arr_hwc
    gray = arr_hwc.shape[2] == 1
    img = PIL.Image.fromarray(arr_hwc[:, :, 0] if gray else arr_hwc, "L" if gray else "RGB")
    out = np.asarray(img.resize((width, height), RESIZE_FILTERS[resize_filter]))
    return out[:, :, np.newaxis] if gray else out


def prepare_image(
    arr_hwc: np.ndarray,
    source: Optional[str] = None,
    resize: Optional[int] = None,
    resize_filter: str = "lanczos",
    center_crop: bool = True,
) -> np.ndarray:
    """Turn a decoded image into the stored uint8 CHW form.

    Without ``resize`` the image must already be square with a power-of-two
    side >= 4.  With ``resize=R`` non-square images are center-cropped to a
    square (or rejected when ``center_crop`` is False) and resized to R x R.
    """
    h, w = arr_hwc.shape[:2]
    if resize is None:
        if h != w:
            raise DatasetError(source, "image is %dx%d (width x height) but must be square; use --resize" % (w, h))
        if not is_power_of_two(h) or h < 4:
            raise DatasetError(source, "image side %d is not a power of two >= 4; use --resize" % h)
    else:
        if h != w:
            if not center_crop:
                raise DatasetError(source,
                                   "image is %dx%d (width x height), not square, and center cropping is off" % (w, h))
            arr_hwc = center_crop_square(arr_hwc)
        arr_hwc = resize_array(arr_hwc, resize, resize, resize_filter)
    return np.ascontiguousarray(arr_hwc.transpose(2, 0, 1))


def check_resolution_arg(resolution: int) -> int:
    if resolution is None or not is_power_of_two(int(resolution)) or int(resolution) < 4:
        raise DatasetError(None, "resolution must be a power of two >= 4, got %r" % (resolution,))
    return int(resolution)


# --------------------------------------------------------------------------
# Sources: a folder or a zip archive.


class ImageSource:
    """Image files of a folder (recursive) or a zip archive, in sorted order.

    ``names`` are relative paths with forward slashes, as used in
    ``dataset.json``.
    """

    def __init__(self, path: str):
        self.path = path
        self._zip = None
        if os.path.isdir(path):
            names = []
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for fname in files:
                    if is_image_name(fname):
                        rel = os.path.relpath(os.path.join(root, fname), path)
                        names.append(rel.replace(os.sep, "/"))
        elif os.path.isfile(path):
            try:
                self._zip = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError) as exc:
                raise DatasetError(path, "cannot open zip archive (%s)" % exc) from None
            names = [n for n in self._zip.namelist() if not n.endswith("/") and is_image_name(n)]
        else:
            raise DatasetError(path, "no such folder or file")
        self.names: List[str] = sorted(names)
        if not self.names:
            raise DatasetError(path, "no input images found (looked for %s)" % ", ".join(IMAGE_EXTENSIONS))

    def describe(self, name: str) -> str:
        """How a member is named in messages: a full path, or ``archive.zip:member``."""
        if self._zip is not None:
            return "%s:%s" % (self.path, name)
        return os.path.join(self.path, *name.split("/"))

    def read_bytes(self, name: str) -> bytes:
        try:
            if self._zip is not None:
                return self._zip.read(name)
            with open(self.describe(name), "rb") as f:
                return f.read()
        except Exception as exc:
            raise DatasetError(self.describe(name), "cannot read file (%s)" % exc) from None

    def load(self, name: str) -> np.ndarray:
        return load_image(self.read_bytes(name), self.describe(name))

    def find_labels_json(self) -> Optional[bytes]:
        """Contents of ``dataset.json`` at the root, if present."""
        if self._zip is not None:
            try:
                return self._zip.read(LABELS_JSON)
            except KeyError:
                return None
        p = os.path.join(self.path, LABELS_JSON)
        if os.path.isfile(p):
            with open(p, "rb") as f:
                return f.read()
        return None

    def labels_json_name(self) -> str:
        return self.describe(LABELS_JSON)

    def close(self):
        if self._zip is not None:
            self._zip.close()
            self._zip = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def labels_from_folders(names: Sequence[str], source: str):
    """One class per top-level sub-folder: -> (one-hot labels for ``names``, class names). The
    classes are the sub-folders in sorted order; every image must lie in one."""
    loose = [n for n in names if "/" not in n]
    if loose:
        raise DatasetError(source, "image %r is not in a class sub-folder (%d such images); with labels from "
                                   "folders every image must lie in one" % (loose[0], len(loose)))
    folders = [n.split("/", 1)[0] for n in names]
    classes = sorted(set(folders))
    index = {c: i for i, c in enumerate(classes)}
    return one_hot(np.array([index[f] for f in folders], dtype=np.int64), len(classes), source), classes


def parse_labels_json(data: bytes, names: Sequence[str], source: str) -> Optional[np.ndarray]:
    """Labels for ``names`` from a ``dataset.json`` (``{"labels": [[path, label], ...]}``).

    ``label`` is an int class index (stored one-hot with max + 1 classes) or a
    list of numbers (stored as is).  ``"labels": null`` means no labels.
    Every image must have exactly one entry and every entry an image.
    """
    try:
        doc = json.loads(data)
    except Exception as exc:
        raise DatasetError(source, "not valid JSON (%s)" % exc) from None
    if not isinstance(doc, dict) or "labels" not in doc:
        raise DatasetError(source, 'expected an object {"labels": [[path, label], ...]}')
    entries = doc["labels"]
    if entries is None:
        return None
    if not isinstance(entries, list) or not all(isinstance(e, list) and len(e) == 2 for e in entries):
        raise DatasetError(source, '"labels" must be a list of [path, label] pairs')
    table: Dict[str, object] = {}
    for path, label in entries:
        key = str(path).replace("\\", "/")
        if key in table:
            raise DatasetError(source, "duplicate entry for %r" % key)
        table[key] = label
    if len(table) != len(names):
        raise DatasetError(source, "has %d labels but %d images were found; the counts must match" % (len(table),
                                                                                                      len(names)))
    missing = [n for n in names if n not in table]
    if missing:
        raise DatasetError(source, "no label for image %r (%d images unlabelled)" % (missing[0], len(missing)))
    values = [table[n] for n in names]
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return one_hot(np.array(values, dtype=np.int64), source=source)
    try:
        arr = np.array(values, dtype=np.float32)
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.ndim != 2:
        raise DatasetError(source, "labels must be all integers (class indices) or all equal-length lists of numbers")
    return arr
