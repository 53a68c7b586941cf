"""Inspecting datasets: info / verify, image grid, extraction to PNG, comparison."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Iterator, List, Optional, Tuple

import numpy as np
import PIL.Image

from stylegan2_tf.data.dataset_info import DatasetInfo, read_dataset_info
from stylegan2_tf.data.errors import DatasetError
from stylegan2_tf.data.tfrecord_format import list_tfrecord_files
from stylegan2_tf.data.tfrecord_reader import iter_images, read_first_image, verify_tfrecord_file


def iter_dataset_images(info: DatasetInfo, max_images: Optional[int] = None) -> Iterator[np.ndarray]:
    """uint8 CHW images of one resolution in record order (checksums checked)."""
    n = 0
    for path in info.files:
        for img in iter_images(path):
            if max_images is not None and n >= max_images:
                return
            yield img
            n += 1


def verify_dataset(tfrecord_dir: str) -> List[Tuple[str, Tuple[int, int, int], int]]:
    """Read every record of every file (checksums, schema, shapes, counts).

    Every resolution must hold the same number of records and the labels
    file (if any) one row per record.  Returns ``[(file, CHW shape, count), ...]``.
    """
    read_dataset_info(tfrecord_dir)  # shapes of the files, and the labels count
    out = []
    for path in list_tfrecord_files(tfrecord_dir):
        shape = tuple(read_first_image(path).shape)
        count = verify_tfrecord_file(path, shape)
        out.append((path, shape, count))
    totals = {}
    for _, shape, count in out:  # several files may share a resolution
        totals[shape[1]] = totals.get(shape[1], 0) + count
    if len(set(totals.values())) > 1:
        detail = ", ".join("%dx%d: %d" % (r, r, n) for r, n in sorted(totals.items(), reverse=True))
        raise DatasetError(tfrecord_dir, "resolutions hold different numbers of records (%s)" % detail)
    return out


def describe(info: DatasetInfo) -> str:
    lines = [
        "Dataset:     %s" % info.tfrecord_dir,
        "Resolution:  %d" % info.resolution,
        "Channels:    %d" % info.channels,
        "Images:      %d" % info.num_images,
        "Label size:  %d" % info.label_size,
        "Labels file: %s" % (info.label_file or "-"),
        "Classes:     %s" % (", ".join("%d %s" % (i, n) for i, n in enumerate(info.class_names))
                             if info.class_names else "-"),
        "Resolutions: %s" % ", ".join(str(r) for r in info.resolutions),
    ]
    lines += ["File:        %s (%d records)" % (p, c) for p, c in zip(info.files, info.file_counts)]
    return "\n".join(lines)


def image_grid(images_chw: List[np.ndarray], columns: Optional[int] = None) -> np.ndarray:
    """Tile CHW images into one HWC array (black where the grid is not full)."""
    n = len(images_chw)
    if n == 0:
        raise ValueError("no images")
    c, h, w = images_chw[0].shape
    cols = columns or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / cols))
    grid = np.zeros([rows * h, cols * w, c], dtype=np.uint8)
    for i, img in enumerate(images_chw):
        r, q = divmod(i, cols)
        grid[r * h : (r + 1) * h, q * w : (q + 1) * w] = img.transpose(1, 2, 0)
    return grid


def save_png(arr_hwc: np.ndarray, path: str) -> None:
    if arr_hwc.shape[2] == 1:
        PIL.Image.fromarray(arr_hwc[:, :, 0], "L").save(path)
    else:
        PIL.Image.fromarray(arr_hwc, "RGB").save(path)


def display(
    tfrecord_dir: str,
    output_png: str,
    num_images: int = 64,
    columns: Optional[int] = None,
    resolution: Optional[int] = None,
) -> Tuple[int, np.ndarray]:
    """Write the first ``num_images`` images as one PNG grid; returns (count, their labels)."""
    info = read_dataset_info(tfrecord_dir, resolution)
    images = list(iter_dataset_images(info, num_images))
    labels = info.load_labels()[: len(images)]
    parent = os.path.dirname(os.path.abspath(output_png))
    os.makedirs(parent, exist_ok=True)
    save_png(image_grid(images, columns), output_png)
    return len(images), labels


def _label_entries(labels: np.ndarray):
    """Labels as JSON values: class index for one-hot rows, else the list of numbers."""
    if labels.shape[1] > 0 and np.all((labels == 0) | (labels == 1)) and np.all(labels.sum(axis=1) == 1):
        return [int(v) for v in labels.argmax(axis=1)]
    return [[float(v) for v in row] for row in labels]


def extract(tfrecord_dir: str, output_dir: str, resolution: Optional[int] = None,
            max_images: Optional[int] = None) -> int:
    """Write the images as ``img%08d.png`` in record order, plus ``dataset.json`` if there are labels.

    The folder can be converted back with ``create_from_images ... --shuffle 0``.
    """
    info = read_dataset_info(tfrecord_dir, resolution)
    os.makedirs(output_dir, exist_ok=True)
    names = []
    for idx, img in enumerate(iter_dataset_images(info, max_images)):
        name = "img%08d.png" % idx
        save_png(img.transpose(1, 2, 0), os.path.join(output_dir, name))
        names.append(name)
    if info.label_size > 0:
        labels = info.load_labels()[: len(names)]
        with open(os.path.join(output_dir, "dataset.json"), "w") as f:
            json.dump({"labels": [[n, v] for n, v in zip(names, _label_entries(labels))]}, f)
    return len(names)


@dataclasses.dataclass
class CompareResult:
    num_a: int
    num_b: int
    identical_images: int
    identical_labels: Optional[int]  # None when labels are ignored
    different_images: List[int]
    different_labels: List[int]

    @property
    def identical(self) -> bool:
        n = min(self.num_a, self.num_b)
        labels_ok = self.identical_labels is None or self.identical_labels == n
        return self.num_a == self.num_b and self.identical_images == n and labels_ok


def compare(tfrecord_dir_a: str, tfrecord_dir_b: str, ignore_labels: bool = False) -> CompareResult:
    """Compare two datasets record by record at their full resolution."""
    info_a = read_dataset_info(tfrecord_dir_a)
    info_b = read_dataset_info(tfrecord_dir_b)
    labels_a = None if ignore_labels else info_a.load_labels()
    labels_b = None if ignore_labels else info_b.load_labels()
    same_img, same_lab = 0, 0
    diff_img, diff_lab = [], []
    n = 0
    for idx, (a, b) in enumerate(zip(iter_dataset_images(info_a), iter_dataset_images(info_b))):
        if a.shape == b.shape and np.array_equal(a, b):
            same_img += 1
        else:
            diff_img.append(idx)
        if labels_a is not None:
            la, lb = labels_a[idx], labels_b[idx]
            if la.shape == lb.shape and np.array_equal(la, lb):
                same_lab += 1
            else:
                diff_lab.append(idx)
        n += 1
    return CompareResult(
        num_a=info_a.num_images,
        num_b=info_b.num_images,
        identical_images=same_img,
        identical_labels=None if ignore_labels else same_lab,
        different_images=diff_img,
        different_labels=diff_lab,
    )
