"""Where the augmentation pipeline's random numbers come from.

The pipeline asks for every random tensor through a source, by kind and shape, in the order
stylegan2-ada-pytorch's AugmentPipe.forward draws them (`uniform` for torch.rand, `normal` for
torch.randn, NCHW shapes where theirs are image-shaped):
  StatelessSource  counter-based draws from a seed (tf.random.stateless_*): the same seed gives
                   the same draws on every replica, worker and resumed run
  RecordedSource   hands out draws recorded elsewhere (e.g. from NVIDIA's code), checking that
                   each is asked for with the kind and shape it was recorded with
"""

import numpy as np
import tensorflow as tf


class StatelessSource:
    """Draw i uses seed (seed[0], seed[1] + i); seed: two int32/int64 numbers or a [2] tensor."""

    def __init__(self, seed):
        self.seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
        self.count = 0

    def _next_seed(self):
        seed = self.seed + tf.constant([0, 1], tf.int64) * self.count
        self.count += 1
        return seed

    def uniform(self, shape):
        return tf.random.stateless_uniform(shape, self._next_seed(), dtype=tf.float32)

    def normal(self, shape):
        return tf.random.stateless_normal(shape, self._next_seed(), dtype=tf.float32)


class RecordedSource:
    """draws: [(kind, array)] with kind 'uniform' or 'normal' ('rand'/'randn' accepted)."""

    NAMES = {"rand": "uniform", "randn": "normal", "uniform": "uniform", "normal": "normal"}

    def __init__(self, draws):
        self.draws = [(self.NAMES[str(kind)], np.asarray(value, np.float32)) for kind, value in draws]
        self.count = 0

    def _next(self, kind, shape):
        if self.count >= len(self.draws):
            raise ValueError(f"draw {self.count}: {kind}{list(shape)} asked for, but only {len(self.draws)} "
                             f"were recorded")
        want_kind, value = self.draws[self.count]
        if want_kind != kind or list(value.shape) != [int(s) for s in shape]:
            raise ValueError(f"draw {self.count}: {kind}{[int(s) for s in shape]} asked for, "
                             f"{want_kind}{list(value.shape)} recorded")
        self.count += 1
        return tf.constant(value)

    def uniform(self, shape):
        return self._next("uniform", shape)

    def normal(self, shape):
        return self._next("normal", shape)

    def check_all_used(self):
        if self.count != len(self.draws):
            raise ValueError(f"{len(self.draws) - self.count} recorded draw(s) were not asked for")
