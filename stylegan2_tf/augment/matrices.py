"""Batched homogeneous transforms: 2-D (3x3, pixel coordinates) for the geometric augmentations
and 3-D (4x4, RGB + 1) for the colour ones. Every entry is a float32 [N] tensor or a number;
the result is [N, k, k]."""

import numpy as np
import tensorflow as tf


def matrix(rows, batch):
    """[N, k, k] from k rows of k entries (tensors [N] or numbers)."""
    entries = [tf.broadcast_to(tf.cast(e, tf.float32), [batch]) for row in rows for e in row]
    k = len(rows)
    return tf.reshape(tf.stack(entries, axis=-1), [batch, k, k])


def translate2d(tx, ty, batch):
    return matrix([[1, 0, tx], [0, 1, ty], [0, 0, 1]], batch)


def scale2d(sx, sy, batch):
    return matrix([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], batch)


def rotate2d(theta, batch):
    """Counter-clockwise by theta in a y-down pixel grid's coordinates (x right, y down)."""
    c, s = tf.cos(theta), tf.sin(theta)
    return matrix([[c, -s, 0], [s, c, 0], [0, 0, 1]], batch)


def translate3d(tx, ty, tz, batch):
    return matrix([[1, 0, 0, tx], [0, 1, 0, ty], [0, 0, 1, tz], [0, 0, 0, 1]], batch)


def scale3d(sx, sy, sz, batch):
    return matrix([[sx, 0, 0, 0], [0, sy, 0, 0], [0, 0, sz, 0], [0, 0, 0, 1]], batch)


def rotate3d(axis, theta, batch):
    """Rotation by theta about the unit vector `axis` (3 numbers): Rodrigues' formula
    R = cos(t) I + sin(t) [axis]x + (1 - cos(t)) axis axis^T, written entry by entry."""
    x, y, z = (np.float32(a) for a in axis[:3])
    c, s = tf.cos(theta), tf.sin(theta)
    d = 1 - c
    return matrix([[x * x * d + c, x * y * d - z * s, x * z * d + y * s, 0],
                   [y * x * d + z * s, y * y * d + c, y * z * d - x * s, 0],
                   [z * x * d - y * s, z * y * d + x * s, z * z * d + c, 0],
                   [0, 0, 0, 1]], batch)


def constant(values):
    return tf.constant(np.asarray(values, np.float32))
