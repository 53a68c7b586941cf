"""A tiny built-in dataset: coloured discs and squares on a grey background.

For smoke tests, tutorials and the learning test: images have clear, cheap
statistics (a bright shape in a dark-ish field) that a GAN picks up in minutes
on a CPU. Deterministic given the seed.
"""

import numpy as np

from .tfrecord_writer import MultiResolutionWriter


def shapes_images(num_images=512, resolution=16, seed=0):
    """-> uint8 [N, 3, R, R] (CHW) and int labels [N] (0 = disc, 1 = square)."""
    rs = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:resolution, 0:resolution] + 0.5
    images = np.empty([num_images, 3, resolution, resolution], np.uint8)
    labels = rs.randint(0, 2, size=num_images)
    for i in range(num_images):
        background = rs.uniform(40, 90)
        colour = rs.uniform(150, 255, size=3)
        cy, cx = rs.uniform(0.3, 0.7, size=2) * resolution
        size = rs.uniform(0.15, 0.3) * resolution
        if labels[i] == 0:
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= size ** 2
        else:
            mask = (np.abs(yy - cy) <= size) & (np.abs(xx - cx) <= size)
        img = np.full([3, resolution, resolution], background)
        img[:, mask] = colour[:, np.newaxis]
        images[i] = np.clip(np.rint(img + rs.normal(0, 4, img.shape)), 0, 255)
    return images, labels


def create_shapes_dataset(tfrecord_dir, num_images=512, resolution=16, seed=0, with_labels=False):
    """Write the shapes dataset in NVIDIA's multi-resolution TFRecord layout."""
    images, labels = shapes_images(num_images, resolution, seed)
    with MultiResolutionWriter(tfrecord_dir) as writer:
        for img in images:
            writer.add_image(img)
        if with_labels:
            writer.set_labels(np.eye(2, dtype=np.float32)[labels])
    return tfrecord_dir
