"""The phases of a training minibatch, as step functions (the loop in loop.py decides when each
runs; losses.py computes the per-sample terms).

  G_main  mean softplus(-D(G(z)))                     every minibatch
  G_pl    path-length penalty x pl_weight x interval  every g_reg_interval minibatches (configs D-F)
  D_main  mean softplus(D(G(z))) + softplus(-D(x))    every minibatch; + R1 x gamma/2 in configs A-B
  D_r1    mean R1 x gamma/2 x interval                every d_reg_interval minibatches (configs C-F)

An objective maps one sub-batch of `batch_gpu` reals (with labels, a random stream and a list
that collects w for the w_avg update) to (scalar, stats), already divided by the global
minibatch. `accumulate` sums an objective's gradients over the minibatch's rounds and applies
one Adam update. `PhaseSteps.functions()` wraps each phase in a tf.function that runs it on
every replica: one set per (minibatch, per-replica batch, levels of detail), built by the loop.

Randomness: every (phase, sub-batch) draws its latents, style mixing, noise and path-length
noise statelessly from fold_in(fold_in(minibatch seed, phase), round x replicas + replica), so
the draws do not depend on how the sub-batches are spread over replicas and rounds.
"""

import tensorflow as tf

from ..layers.modulated import RNG_ALG
from .loss_scaling import apply_gradients_if
from .losses import path_length_surrogate
from .schedule import fade_reals

PHASES = ("G_main", "G_pl", "D_main", "D_r1")


class StatelessRNG:
    """The `tf.random.Generator` methods the losses use (normal, uniform, make_seeds), drawn
    statelessly: the i-th draw uses fold_in(seed, i). `seed`: int [2]."""

    def __init__(self, seed):
        self.seed = seed
        self.count = 0

    def _next(self):
        seed = tf.random.experimental.stateless_fold_in(self.seed, self.count, alg=RNG_ALG)
        self.count += 1
        return seed

    def normal(self, shape, mean=0.0, stddev=1.0, dtype=tf.float32):
        return tf.random.stateless_normal(shape, self._next(), mean=mean, stddev=stddev, dtype=dtype, alg=RNG_ALG)

    def uniform(self, shape, minval=0, maxval=None, dtype=tf.float32):
        return tf.random.stateless_uniform(shape, self._next(), minval=minval, maxval=maxval, dtype=dtype,
                                         alg=RNG_ALG)

    def make_seeds(self, count=1):
        return tf.random.stateless_uniform([2, count], self._next(), minval=None, maxval=None, dtype=tf.int64,
                                         alg=RNG_ALG)


class PhaseSteps:
    """The phases for one minibatch layout.

    trainer: supplies opts, loss, G, D, opt_G, opt_D, loss_scales, strategy and replicas.
    batch: global minibatch; batch_gpu: per-replica sub-batch (batch / (batch_gpu x replicas)
    rounds); levels: static (G, D, reals) levels of detail of growing networks, else Nones."""

    def __init__(self, trainer, batch, batch_gpu, levels):
        self.t = trainer
        self.opts = trainer.opts
        self.loss = trainer.loss
        self.replicas = trainer.replicas
        self.batch = float(batch)
        self.pl_batch = float(batch // self.opts.pl_batch_shrink)
        self.batch_gpu = batch_gpu
        self.levels = levels
        self.z_dim = trainer.G.config.z_dim
        self.c_dim = trainer.G.config.c_dim

    # -- helpers ---------------------------------------------------------------------------------
    def labels(self, c):
        return c if self.c_dim > 0 else None

    def global_sum(self, x):
        if self.replicas == 1:
            return x
        return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, x)

    def round_rng(self, seed, r):
        replica = tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group, tf.int64)
        return StatelessRNG(tf.random.experimental.stateless_fold_in(seed, r * self.replicas + replica, alg=RNG_ALG))

    def reals(self, real):
        """Growing networks see the reals at the current level of detail (official process_reals)."""
        level = self.levels[2]
        return real if level is None else fade_reals(real, self.t.D.lod, level)

    def accumulate(self, phase, net, opt, rounds, seed, objective_fn):
        """Gradients summed over the rounds, one optimizer update; w_avg is updated once, from
        every round's latents (so the running means do not depend on the number of rounds).
        With a loss scale, each round's gradients are unscaled and the update is skipped
        (on every replica) when any of them overflowed."""
        scaler = self.t.loss_scales.get(phase)
        ws = []  # per call: replicas may be traced in parallel threads
        grads, totals = None, None
        for r, (real, c) in enumerate(rounds):
            with tf.GradientTape() as tape:
                objective, stats = objective_fn(real, self.labels(c), self.round_rng(seed, r), ws)
                if scaler is not None:
                    objective = scaler.scale_loss(objective)
            g = tape.gradient(objective, net.trainable_variables)
            g = [tf.zeros(v.shape, v.dtype) if gi is None else gi for gi, v in zip(g, net.trainable_variables)]
            if scaler is not None:
                g = scaler.unscale(g)
            grads = g if grads is None else [a + b for a, b in zip(grads, g)]
            totals = stats if totals is None else {k: totals[k] + stats[k] for k in stats}
        if scaler is None:
            opt.apply_gradients(zip(grads, net.trainable_variables))
        else:
            finite = scaler.update(scaler.all_finite(grads))
            apply_gradients_if(opt, grads, net.trainable_variables, finite)
            # Summed over replicas by the step: the fraction of this step's updates skipped.
            totals[f"Progress/overflow_{phase}"] = (1.0 - tf.cast(finite, tf.float32)) / self.replicas
        if ws:
            self.t.G.mapping.update_w_avg(tf.concat(ws, axis=0))
        return totals

    # -- the phases ------------------------------------------------------------------------------
    def g_main(self, real, c, rng, w_sink):
        z = rng.normal([self.batch_gpu, self.z_dim])
        s = tf.reduce_sum(self.loss.g_main(z, c, rng, w_sink)) / self.batch
        return s, {"Loss/G/loss": s}

    def pl_lengths(self, c, rng, w_sink):
        n = self.batch_gpu // self.opts.pl_batch_shrink
        z = rng.normal([n, self.z_dim])
        return self.loss.path_lengths(z, None if c is None else c[:n], rng, w_sink=w_sink)

    def g_pl(self, rounds, seed):
        """The path-length phase on one replica. pl_mean's update (from the mean length of the
        whole minibatch) enters every sample's penalty. One round: that mean comes from this pass
        (all-reduced over replicas). Several rounds: a first pass measures it, then the rounds take
        their gradients through path_length_surrogate, redrawing the same latents and noise."""
        opts, loss = self.opts, self.loss
        fixed_mean = None
        if len(rounds) > 1:
            seen_again = []  # the gradient pass sees these w's again
            total = tf.add_n([tf.reduce_sum(self.pl_lengths(self.labels(c), self.round_rng(seed, r), seen_again))
                              for r, (_, c) in enumerate(rounds)])
            fixed_mean = self.global_sum(total) / self.pl_batch
        new_mean = []

        def objective(real, c, rng, w_sink):
            lengths = self.pl_lengths(c, rng, w_sink)
            batch_mean = fixed_mean
            if batch_mean is None:
                batch_mean = self.global_sum(tf.reduce_sum(tf.stop_gradient(lengths))) / self.pl_batch
            mean = loss.pl_mean_after(batch_mean)
            new_mean.append(mean)
            surrogate = path_length_surrogate(lengths, batch_mean, mean, opts.pl_decay, self.pl_batch)
            penalty = tf.reduce_sum(tf.square(lengths - tf.cast(mean, lengths.dtype))) / self.pl_batch
            return surrogate * (opts.pl_weight * opts.g_reg_interval), {
                "Loss/G/pl_penalty": penalty, "Loss/G/pl_length": tf.reduce_sum(lengths) / self.pl_batch}

        totals = self.accumulate("G_pl", self.t.G, self.t.opt_G, rounds, seed, objective)
        loss.pl_mean.assign(new_mean[-1])
        return totals

    def d_main(self, real, c, rng, w_sink):
        opts = self.opts
        real = self.reals(real)
        z = rng.normal([self.batch_gpu, self.z_dim])
        gen, rea = self.loss.d_main(z, c, real, rng=rng, w_sink=w_sink)
        s_gen, s_real = tf.reduce_sum(gen) / self.batch, tf.reduce_sum(rea) / self.batch
        stats = {"Loss/D/loss": s_gen + s_real, "Loss/D/fake": s_gen, "Loss/D/real": s_real}
        if opts.lazy_regularization:
            return s_gen + s_real, stats
        # Configs A-B: R1 in the main step, every minibatch (official non-lazy regularization).
        r1 = tf.reduce_sum(self.loss.d_r1(real, c)) / self.batch
        stats["Loss/D/r1_penalty"] = r1
        return s_gen + s_real + r1 * (opts.gamma / 2), stats

    def d_r1(self, real, c, rng, w_sink):
        s = tf.reduce_sum(self.loss.d_r1(self.reals(real), c)) / self.batch
        return s * (self.opts.gamma / 2 * self.opts.d_reg_interval), {"Loss/D/r1_penalty": s}

    # -- step functions --------------------------------------------------------------------------
    def replica_functions(self):
        """{phase: fn(rounds, seed) -> stats} run on one replica, for the phases this config has."""
        t = self.t

        def accumulated(name, net, opt, objective):
            return lambda rounds, seed: self.accumulate(name, net, opt, rounds, seed, objective)

        fns = {"G_main": accumulated("G_main", t.G, t.opt_G, self.g_main)}
        if self.opts.path_length:
            fns["G_pl"] = self.g_pl
        fns["D_main"] = accumulated("D_main", t.D, t.opt_D, self.d_main)
        if self.opts.lazy_regularization:
            fns["D_r1"] = accumulated("D_r1", t.D, t.opt_D, self.d_r1)
        return fns

    def functions(self):
        """{phase: tf.function(rounds, seed) -> stats summed over replicas}."""
        strategy, loss = self.t.strategy, self.loss
        steps = {}
        for name, replica_fn in self.replica_functions().items():
            def step(rounds, seed, replica_fn=replica_fn, phase=PHASES.index(name)):
                loss.levels = self.levels[:2]   # (at trace time) this function's levels of detail
                seed = tf.random.experimental.stateless_fold_in(seed, phase, alg=RNG_ALG)
                per_replica = strategy.run(replica_fn, args=(rounds, seed))
                return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in per_replica.items()}
            # XLA per phase (opts.xla); None leaves TF's default (no XLA) in place.
            steps[name] = tf.function(step, jit_compile=True if name in self.opts.xla_phases else None)
        return steps
