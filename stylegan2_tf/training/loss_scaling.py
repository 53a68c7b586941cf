"""Dynamic loss scaling for float16 training (num_fp16_res > 0).

Float16 activation gradients underflow when the loss is O(1): the loss is multiplied by
`scale` before differentiation and the (float32) weight gradients are divided by it
afterwards. When any gradient of any replica is inf/NaN the step must be skipped and the
scale halved; after `growth_interval` finite steps in a row it is doubled.

Usage inside a replica function (`strategy.run`), with the scaler created inside
`strategy.scope()` (its variables are mirrored and written with ONLY_FIRST_REPLICA, so
every replica sees the same scale):

    with tape:
        loss = ...
        scaled = scaler.scale_loss(loss)
    grads = scaler.unscale(tape.gradient(scaled, variables))
    finite = scaler.all_finite(grads)      # all-reduced: identical on every replica
    scaler.update(finite)                  # halve (overflow) or count / double
    apply_gradients_if(optimizer, grads, variables, finite)

`unscale_and_update(grads)` does the unscale, all_finite and update lines in one call. With
gradient accumulation, unscale each round's gradients and check and update once per step.
"""

import tensorflow as tf


class DynamicLossScale(tf.Module):
    """Power-of-two loss scale with overflow back-off (halve) and periodic growth (double).

    Variables (created on construction; construct inside `strategy.scope()`):
      scale       float32, starts at `initial_scale`
      good_steps  int64, finite steps since the last change of `scale`
    Every method works in a replica context (and outside any strategy).
    """

    def __init__(self, initial_scale=2.0 ** 15, growth_interval=2000, factor=2.0, min_scale=1.0,
                 max_scale=2.0 ** 32, name="loss_scale"):
        super().__init__(name=name)
        if not (factor > 1.0 and 0.0 < min_scale <= initial_scale <= max_scale and growth_interval >= 1):
            raise ValueError("DynamicLossScale: need factor > 1, 0 < min_scale <= initial_scale <= max_scale, "
                             "growth_interval >= 1")
        self.initial_scale = float(initial_scale)
        self.growth_interval = int(growth_interval)
        self.factor = float(factor)
        self.min_scale = float(min_scale)
        self.max_scale = float(max_scale)
        # ONLY_FIRST_REPLICA: replicas assign identical values (the finite flag is
        # all-reduced); the first replica's write is mirrored to all.
        agg = tf.VariableAggregation.ONLY_FIRST_REPLICA
        with self.name_scope:
            self.scale = tf.Variable(self.initial_scale, dtype=tf.float32, trainable=False, aggregation=agg,
                                     name="scale")
            self.good_steps = tf.Variable(0, dtype=tf.int64, trainable=False, aggregation=agg, name="good_steps")

    def scale_loss(self, loss):
        loss = tf.convert_to_tensor(loss)
        return loss * tf.cast(self.scale, loss.dtype)

    def unscale(self, grads):
        """Gradients of the scaled loss -> gradients of the loss (None entries kept)."""
        inv = 1.0 / self.scale  # a power of two: the division is exact
        return [None if g is None else g * tf.cast(inv, g.dtype) for g in grads]

    def all_finite(self, grads):
        """Scalar bool: no inf/NaN in `grads` on any replica (same value on every replica)."""
        bad = tf.constant(0.0, tf.float32)
        for g in grads:
            if g is not None:
                bad += tf.reduce_sum(tf.cast(tf.logical_not(tf.math.is_finite(g)), tf.float32))
        ctx = tf.distribute.get_replica_context()
        if ctx is not None:  # None in a cross-replica context: the values are already global
            bad = ctx.all_reduce(tf.distribute.ReduceOp.SUM, bad)
        # A sum of non-negative counts is 0 only if every count is 0.
        return tf.equal(bad, 0.0)

    def update(self, finite):
        """Advance the schedule; returns `finite` (True = apply this step, False = skip it)."""
        finite = tf.convert_to_tensor(finite, tf.bool)
        steps = tf.where(finite, self.good_steps + 1, tf.constant(0, tf.int64))
        grow = steps >= self.growth_interval
        grown = tf.where(grow, tf.minimum(self.scale * self.factor, self.max_scale), self.scale)
        new_scale = tf.where(finite, grown, tf.maximum(self.scale / self.factor, self.min_scale))
        self.scale.assign(new_scale)
        self.good_steps.assign(tf.where(grow, tf.constant(0, tf.int64), steps))
        return finite

    def unscale_and_update(self, grads):
        """unscale + all_finite + update -> (gradients, finite)."""
        grads = self.unscale(grads)
        return grads, self.update(self.all_finite(grads))


def apply_gradients_if(optimizer, grads, variables, finite):
    """`optimizer.apply_gradients(zip(grads, variables))` only if `finite`; returns whether it
    did. Call it where apply_gradients would be called (a replica function, or no strategy).

    Under a strategy, a tf.cond in a replica context may not have a branch that calls
    merge_call (apply_gradients does), so the condition is taken in the cross-replica
    context; `finite` from all_finite is the same on every replica, the first one's is used.
    """
    if not tf.distribute.has_strategy():
        return tf.cond(finite, lambda: _apply(optimizer, grads, variables), lambda: tf.constant(False))

    def cross_replica(strategy, finite, grads, variables):
        def apply():
            strategy.extended.call_for_each_replica(_apply, args=(optimizer, grads, variables))
            return tf.constant(True)
        flag = strategy.experimental_local_results(finite)[0]
        return tf.cond(flag, apply, lambda: tf.constant(False))

    return tf.distribute.get_replica_context().merge_call(cross_replica, args=(finite, list(grads), list(variables)))


def _apply(optimizer, grads, variables):
    optimizer.apply_gradients(zip(grads, variables))
    return tf.constant(True)
