"""Adaptive discriminator augmentation in training (Karras et al. 2020, Sec. 2.3; stylegan2-ada-
pytorch's training loop): the pipe D's inputs pass through, its strength p, and the heuristic that
adjusts p.

  --aug ada    every ADA_INTERVAL minibatches: r_t = mean sign(D(augmented reals)) over the D
               phases since the last adjustment (D_main and D_r1, every replica), then
               p <- max(p + sign(r_t - target) * batch * ADA_INTERVAL / (ada_kimg * 1000), 0)
               (clamped at 0 only, as theirs: p can pass 1)
  --aug fixed  p = --p throughout
  --aug noaug  no pipe

p and the sums since the last adjustment are variables of the checkpoint (a resumed run adjusts
exactly when and as the uninterrupted one does); they change between minibatches only, from
statistics already summed over every replica and worker, so p is the same everywhere.
"""

import numpy as np
import tensorflow as tf

from ..augment import AugmentPipe, preset

AUG_MODES = ("noaug", "ada", "fixed")
ADA_INTERVAL = 4       # minibatches between adjustments (stylegan2-ada-pytorch's ada_interval)
# The phases' statistics that feed the heuristic (summed over rounds and replicas).
SIGNS_SUM, SIGNS_COUNT = "ADA/signs_sum", "ADA/signs_count"


class Augmentation:
    """opts: TrainingOptions. Build it under the strategy's scope."""

    def __init__(self, opts):
        self.mode = opts.aug
        self.target, self.ada_kimg = float(opts.ada_target), float(opts.ada_kimg)
        self.pipe = AugmentPipe(preset(opts.augpipe)) if self.mode != "noaug" else None
        start = opts.augment_p if self.mode == "fixed" else 0.0
        self.p = tf.Variable(start, dtype=tf.float32, trainable=False, name="augment_p",
                             aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self.signs = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="ada_signs")
        self.count = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="ada_count")
        self.minibatches = tf.Variable(0, dtype=tf.int64, trainable=False, name="ada_minibatches")

    def __call__(self, img, rng):
        """D's view of img: augmented with strength p, drawing from the phase's stream `rng`."""
        return img if self.pipe is None else self.pipe(img, self.p, rng)

    def checkpoint_items(self):
        """The variables a run with augmentation checkpoints (none without: earlier runs' keys)."""
        if self.pipe is None:
            return {}
        return {"augment_p": self.p, "ada_signs": self.signs, "ada_count": self.count,
                "ada_minibatches": self.minibatches}

    def describe(self):
        """' (augment p 0.1234)' with a pipe, else '': for the log line of a snapshot, whose formats
        have no place for p (NVIDIA's TF1 pickles hold (G, D, Gs) only)."""
        return f" (augment p {float(self.p.numpy()):.4f})" if self.pipe is not None else ""

    def after_minibatch(self, stats, batch):
        """Take the heuristic's sums out of a minibatch's `stats` (adding their mean as
        Loss/signs/real) and, with --aug ada, adjust p every ADA_INTERVAL minibatches."""
        stats = dict(stats)
        signs, count = stats.pop(SIGNS_SUM, None), stats.pop(SIGNS_COUNT, None)
        if signs is None:
            return stats
        stats["Loss/signs/real"] = signs / count
        if self.mode != "ada":
            return stats
        self.signs.assign_add(tf.cast(signs, tf.float64))
        self.count.assign_add(tf.cast(count, tf.float64))
        self.minibatches.assign_add(1)
        if int(self.minibatches.numpy()) == ADA_INTERVAL:
            r_t = float(self.signs.numpy()) / float(self.count.numpy())
            step = np.sign(r_t - self.target) * (batch * ADA_INTERVAL) / (self.ada_kimg * 1000)
            # float32 arithmetic on p, as the reference's buffer.
            self.p.assign(max(np.float32(self.p.numpy()) + np.float32(step), np.float32(0)))
            self.signs.assign(0.0)
            self.count.assign(0.0)
            self.minibatches.assign(0)
        return stats
