"""Stateless Philox draws with the numbers of tf.random's stateless functions (alg="philox") and a
third of their graph ops.

tf.random.stateless_normal / stateless_uniform / experimental.stateless_fold_in with alg="philox"
first turn the seed into the generator's key and counter: one Philox draw of four uint32 under a
fixed key, then some thirty slicing, casting, shifting and packing ops that assemble two uint64 from
them (tensorflow/python/ops/random_ops_util.py, _philox_scramble_seed). The training step draws
some 140 times while it is traced (the latents, every synthesis layer's noise and its seed), so
those ops were a fifth of the traced graphs and of the tracing time. Here the same Philox draw is
asked for as two uint64, which are the same bits (the first the key, the second the counter's high
word), so a draw costs a handful of ops. tests/test_stateless_random.py checks that every function
gives tf.random's numbers bit for bit.

seed: int32 or int64 [2] (a tensor or numbers), as for tf.random's stateless functions.
"""

import numpy as np
import tensorflow as tf
from tensorflow.python.ops import gen_stateless_random_ops_v2 as raw

# Philox by name: "auto_select" (tf.random's default) picks another generator inside XLA.
_PHILOX = 1                              # the ops' `alg` number for Philox
_SCRAMBLE_KEY = 0x02461E293EC8F720       # the fixed key under which TensorFlow scrambles a seed
_HIGH_WORD = np.array([0, 2 ** 64 - 1], np.uint64)   # keeps the second uint64: the counter is [0, mix[1]]


def key_counter(seed):
    """The generator's (key [1], counter [2]) for `seed`, both uint64, as TensorFlow derives them."""
    counter = tf.cast(seed, tf.uint64)
    mix = raw.stateless_random_uniform_full_int_v2([2], key=tf.constant(np.array([_SCRAMBLE_KEY], np.uint64)),
                                                    counter=counter, dtype=tf.uint64, alg=_PHILOX)
    return mix[:1], tf.bitwise.bitwise_and(mix, tf.constant(_HIGH_WORD))


def normal(shape, seed, mean=0.0, stddev=1.0, dtype=tf.float32):
    """tf.random.stateless_normal(shape, seed, mean, stddev, dtype, alg="philox")."""
    key, counter = key_counter(seed)
    x = raw.stateless_random_normal_v2(shape, key=key, counter=counter, dtype=dtype, alg=_PHILOX)
    if _is(mean, 0) and _is(stddev, 1):   # x * 1 + 0 is x
        return x
    return tf.add(x * tf.convert_to_tensor(stddev, dtype), tf.convert_to_tensor(mean, dtype))


def uniform(shape, seed, minval=0, maxval=None, dtype=tf.float32):
    """tf.random.stateless_uniform(shape, seed, minval, maxval, dtype, alg="philox"): floats in
    [minval, maxval) (maxval None: 1), integers in [minval, maxval), or (minval and maxval None)
    integers over their whole range."""
    dtype = tf.as_dtype(dtype)
    key, counter = key_counter(seed)
    if dtype.is_integer and minval is None:
        return raw.stateless_random_uniform_full_int_v2(shape, key=key, counter=counter, dtype=dtype, alg=_PHILOX)
    if dtype.is_integer:
        return raw.stateless_random_uniform_int_v2(shape, key=key, counter=counter,
                                                   minval=tf.convert_to_tensor(minval, dtype),
                                                   maxval=tf.convert_to_tensor(maxval, dtype), alg=_PHILOX)
    maxval = 1 if maxval is None else maxval
    x = raw.stateless_random_uniform_v2(shape, key=key, counter=counter, dtype=dtype, alg=_PHILOX)
    if _is(minval, 0) and _is(maxval, 1):   # x * 1 + 0 is x
        return x
    minval, maxval = tf.convert_to_tensor(minval, dtype), tf.convert_to_tensor(maxval, dtype)
    return tf.add(x * (maxval - minval), minval)


def fold_in(seed, data):
    """tf.random.experimental.stateless_fold_in(seed, data, alg="philox"): a new seed [2] of data's
    integer type (int32 for a Python int), [a draw from seed, data]."""
    data = tf.convert_to_tensor(data)
    key, counter = key_counter(seed)
    first = raw.stateless_random_uniform_full_int_v2([], key=key, counter=counter, dtype=data.dtype, alg=_PHILOX)
    return tf.stack([first, data])


def _is(value, number):
    """Whether value is the Python number `number` (not a tensor)."""
    return isinstance(value, (int, float)) and value == number
