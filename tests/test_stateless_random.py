"""stylegan2_tf.ops.stateless_random against tf.random's stateless functions with alg="philox": the
same numbers bit for bit (every function, dtype and kind of seed, eagerly and traced), from a
fraction of the graph ops."""

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from stylegan2_tf.ops import stateless_random  # noqa: E402

SEEDS = [(0, 0), (1, 2), (-7, 123456789), (2 ** 31 - 1, -2 ** 31), (987654321987, -5)]


def _seed(pair):
    return tf.constant(pair, tf.int64 if max(abs(v) for v in pair) >= 2 ** 31 else tf.int32)


def _same(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(np.atleast_1d(got.numpy()).view(np.uint8), np.atleast_1d(want.numpy()).view(np.uint8))


@pytest.mark.parametrize("pair", SEEDS)
def test_draws_equal_tf_random(pair):
    seed = _seed(pair)
    for dtype in (tf.float32, tf.float64, tf.float16, tf.bfloat16):
        _same(stateless_random.normal([3, 5, 7], seed, dtype=dtype),
              tf.random.stateless_normal([3, 5, 7], seed, dtype=dtype, alg="philox"))
        _same(stateless_random.uniform([64], seed, dtype=dtype),
              tf.random.stateless_uniform([64], seed, dtype=dtype, alg="philox"))
    _same(stateless_random.normal([100], seed, mean=0.5, stddev=1 / 3, dtype=tf.float64),
          tf.random.stateless_normal([100], seed, mean=0.5, stddev=1 / 3, dtype=tf.float64, alg="philox"))
    _same(stateless_random.uniform([100], seed, minval=-2.5, maxval=0.1),
          tf.random.stateless_uniform([100], seed, minval=-2.5, maxval=0.1, alg="philox"))
    for dtype in (tf.int32, tf.int64):
        _same(stateless_random.uniform([50], seed, minval=1, maxval=tf.constant(17, dtype), dtype=dtype),
              tf.random.stateless_uniform([50], seed, minval=1, maxval=tf.constant(17, dtype), dtype=dtype,
                                          alg="philox"))
    for dtype in (tf.int32, tf.int64, tf.uint32, tf.uint64):
        _same(stateless_random.uniform([2, 3], seed, minval=None, maxval=None, dtype=dtype),
              tf.random.stateless_uniform([2, 3], seed, minval=None, maxval=None, dtype=dtype, alg="philox"))
    for data in (0, 5, -3, tf.constant(2 ** 40, tf.int64)):
        _same(stateless_random.fold_in(seed, data), tf.random.experimental.stateless_fold_in(seed, data, alg="philox"))


def test_traced_with_seeds_and_shapes_known_only_when_run():
    """In a tf.function whose seed and shape are inputs: the same numbers, the static shape where it
    is known, and about a third of the ops tf.random's functions add to the graph."""
    spec = [tf.TensorSpec([2], tf.int64), tf.TensorSpec([None, 4], tf.float32)]

    def draws(module_normal, module_uniform, module_fold_in):
        def fn(seed, like):
            s = module_fold_in(seed, 3)
            return (module_normal(tf.shape(like), s), module_uniform([4, 2], seed), module_normal([5], seed),
                    module_uniform([], s, minval=1, maxval=tf.shape(like)[0] + 1, dtype=tf.int32))
        return tf.function(fn, input_signature=spec)

    ours = draws(stateless_random.normal, stateless_random.uniform, stateless_random.fold_in)
    theirs = draws(lambda shape, seed, **kw: tf.random.stateless_normal(shape, seed, alg="philox", **kw),
                   lambda shape, seed, **kw: tf.random.stateless_uniform(shape, seed, alg="philox", **kw),
                   lambda seed, data: tf.random.experimental.stateless_fold_in(seed, data, alg="philox"))
    for pair in SEEDS:
        seed, like = tf.constant(pair, tf.int64), tf.zeros([6, 4])
        for got, want in zip(ours(seed, like), theirs(seed, like)):
            _same(got, want)
    assert ours.get_concrete_function().structured_outputs[1].shape == [4, 2]
    nodes = [len(f.get_concrete_function().graph.as_graph_def().node) for f in (ours, theirs)]
    assert nodes[0] * 2 < nodes[1], nodes
