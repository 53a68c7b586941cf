"""Level of detail (lod) of progressive growing (paper configs A-D).

lod = log2(R) - log2(current resolution): 0 is full resolution R, log2(R) - 2 is 4x4,
and lod in (k, k+1) fades from the 2^-(k+1) level to the 2^-k one. As in NVIDIA's
code, lod is a network *variable* (non-trainable float32 scalar `lod` of G, of its
synthesis network and of D), not an input: the training loop assigns it, and G hands
its own lod to the synthesis network. Networks always take and give full-resolution
images; only the blocks up to the current level are evaluated.

Evaluation picks the level k (the finest block that runs) and the fade t = lod - k:
eagerly from the variable's value, in a graph with `tf.switch_case` over the levels
(so one traced function serves every lod), or from a static `level` the caller
passes (the training loop, which knows the level for a whole phase).
"""

import math

import tensorflow as tf
from ..errors import UserError


class LodError(UserError):
    """A lod outside 0 .. log2(resolution) - 2."""


def max_lod(resolution):
    return int(round(math.log2(resolution))) - 2


def check_lod(lod, resolution, where="lod"):
    """The value, as a float, if 0 <= lod <= log2(resolution) - 2; LodError otherwise."""
    value = float(lod)
    top = max_lod(resolution)
    if not (0.0 <= value <= top):   # also rejects NaN
        raise LodError(f"{where}={value:g} is outside 0..{top} (resolution {resolution}: lod 0 is "
                       f"{resolution}x{resolution}, lod {top} is 4x4)")
    return value


def add_lod_variable(layer):
    """The non-trainable scalar `lod` variable of a progressive network (value 0: full resolution)."""
    return layer.add_weight(name="lod", shape=(), dtype="float32", initializer="zeros", trainable=False,
                            aggregation="only_first_replica")


def level_of(lod, num_levels):
    """Level k = min(floor(lod), num_levels - 1) as a Python int (lod a number)."""
    return int(min(math.floor(float(lod)), num_levels - 1))


def evaluate_at_level(lod, num_levels, branch, level=None):
    """branch(k) for the level of `lod` (a scalar tensor/variable or number).

    level: a static level chosen by the caller (must agree with lod); otherwise the
    level is read eagerly, or picked in the graph by tf.switch_case."""
    if level is not None:
        return branch(int(level))
    if tf.executing_eagerly():
        return branch(level_of(tf.get_static_value(tf.convert_to_tensor(lod)), num_levels))
    if num_levels == 1:
        return branch(0)
    index = tf.minimum(tf.cast(tf.floor(tf.cast(lod, tf.float32)), tf.int32), num_levels - 1)
    index = tf.maximum(index, 0)
    return tf.switch_case(index, [lambda k=k: branch(k) for k in range(num_levels)])


def lerp(a, b, t):
    """a + (b - a) * t, the official tflib.lerp (t = 0 gives a exactly)."""
    return a + (b - a) * tf.cast(t, a.dtype)
