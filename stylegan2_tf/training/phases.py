"""The phases of a training minibatch, as step functions (the loop decides when each runs;
losses.py computes the per-sample terms).

  G_main  mean softplus(-D(G(z)))                     every minibatch
  G_pl    path-length penalty x pl_weight x interval  every g_reg_interval minibatches (configs D-F)
  D_main  mean softplus(D(G(z))) + softplus(-D(x))    every minibatch; + R1 x gamma/2 in configs A-B
  D_r1    mean R1 x gamma/2 x interval                every d_reg_interval minibatches (configs C-F)

`PHASES` lists them in the order they run, with the network each trains, the option that
sets its interval and its random stream. An objective maps one sub-batch of `batch_gpu`
reals (with labels, a random stream and a list that collects w for the w_avg update) to
(scalar, stats), already divided by the global minibatch. `PhaseSteps.accumulate` sums an
objective's gradients over the minibatch's rounds and applies one Adam update;
`PhaseSteps.functions()` wraps each phase in a tf.function that runs it on every replica.

Randomness: every (phase, sub-batch) draws its latents, style mixing, noise and path-length
noise statelessly from fold_in(fold_in(minibatch seed, stream), round x replicas + replica),
so the draws do not depend on how the sub-batches are spread over replicas and rounds. The
stream ids are part of what a seed means (resumed runs, recorded draws): they are fixed
numbers, not positions in a list.
"""

from dataclasses import dataclass
from typing import Optional

import tensorflow as tf

from ..ops import fade_reals, stateless_random
from .augmentation import SIGNS_COUNT, SIGNS_SUM
from .loss_scaling import apply_gradients_if


@dataclass(frozen=True)
class PhaseSpec:
    name: str
    network: str               # 'G' or 'D': the network (and optimizer) it trains
    stream: int                # random stream id (see module docstring); never renumber
    interval: Optional[str]    # TrainingOptions field with its interval in minibatches; None: every one


PHASES = (
    PhaseSpec("G_main", "G", stream=0, interval=None),
    PhaseSpec("G_pl", "G", stream=1, interval="g_reg_interval"),
    PhaseSpec("D_main", "D", stream=2, interval=None),
    PhaseSpec("D_r1", "D", stream=3, interval="d_reg_interval"),
)
PHASE_NAMES = tuple(p.name for p in PHASES)
RANDOM_STREAMS = {p.name: p.stream for p in PHASES}


def phases_of(opts):
    """The phases a config trains, in order: G_pl only with path-length regularization (configs
    D-F), D_r1 only with lazy regularization (configs C-F; A-B regularize in D_main)."""
    present = {"G_main": True, "G_pl": opts.path_length, "D_main": True, "D_r1": opts.lazy_regularization}
    return tuple(p for p in PHASES if present[p.name])


def runs_at(phase, opts, minibatch):
    """Whether `phase` runs in minibatch number `minibatch`."""
    if phase.interval is None:
        return True
    interval = getattr(opts, phase.interval)
    return bool(interval) and minibatch % interval == 0


class StatelessRNG:
    """The `tf.random.Generator` methods the losses use (normal, uniform, make_seeds), drawn
    statelessly: the i-th draw uses fold_in(seed, i). `seed`: int [2]."""

    def __init__(self, seed):
        self.seed = seed
        self.count = 0

    def _next(self):
        seed = stateless_random.fold_in(self.seed, self.count)
        self.count += 1
        return seed

    def normal(self, shape, mean=0.0, stddev=1.0, dtype=tf.float32):
        return stateless_random.normal(shape, self._next(), mean=mean, stddev=stddev, dtype=dtype)

    def uniform(self, shape, minval=0, maxval=None, dtype=tf.float32):
        return stateless_random.uniform(shape, self._next(), minval=minval, maxval=maxval, dtype=dtype)

    def make_seeds(self, count=1):
        return stateless_random.uniform([2, count], self._next(), minval=None, maxval=None, dtype=tf.int64)


class PhaseSteps:
    """The phases' step functions for one minibatch layout.

    opts: TrainingOptions (the loss weights and intervals); loss: StyleGAN2Loss over G and D;
    optimizers: {'G': opt, 'D': opt}; loss_scales: {phase name: DynamicLossScale} (empty
    without float16); strategy: the tf.distribute strategy the steps run under.
    batch: global minibatch; batch_gpu: per-replica sub-batch (batch / (batch_gpu x replicas)
    rounds); levels: static (G, D, reals) levels of detail of growing networks, else Nones."""

    def __init__(self, opts, loss, optimizers, loss_scales, strategy, batch, batch_gpu, levels):
        self.opts = opts
        self.loss = loss
        self.networks = {"G": loss.G, "D": loss.D}
        self.optimizers = optimizers
        self.loss_scales = loss_scales
        self.strategy = strategy
        self.replicas = strategy.num_replicas_in_sync
        self.batch = float(batch)
        self.pl_batch = float(batch // opts.pl_batch_shrink)
        self.batch_gpu = batch_gpu
        self.levels = levels
        self.z_dim = loss.G.config.z_dim
        self.c_dim = loss.G.config.c_dim

    # -- helpers ---------------------------------------------------------------------------------
    def labels(self, c):
        return c if self.c_dim > 0 else None

    def global_sum(self, x):
        if self.replicas == 1:
            return x
        return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, x)

    def round_rng(self, seed, r):
        replica = tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group, tf.int64)
        return StatelessRNG(stateless_random.fold_in(seed, r * self.replicas + replica))

    def reals(self, real):
        """Growing networks see the reals at the current level of detail (official process_reals)."""
        level = self.levels[2]
        return real if level is None else fade_reals(real, self.loss.D.lod, level)

    def accumulate(self, phase, rounds, seed, objective_fn):
        """Gradients summed over the rounds, one optimizer update of the phase's network; w_avg is
        updated once, from every round's latents (so the running means do not depend on the
        number of rounds). With a loss scale, each round's gradients are unscaled and the update
        is skipped (on every replica) when any of them overflowed."""
        net, opt = self.networks[phase.network], self.optimizers[phase.network]
        scaler = self.loss_scales.get(phase.name)

        def round_gradients(r, real, c):
            ws = []
            with tf.GradientTape() as tape:
                objective, stats = objective_fn(real, self.labels(c), self.round_rng(seed, r), ws)
                if scaler is not None:
                    objective = scaler.scale_loss(objective)
            g = tape.gradient(objective, net.trainable_variables)
            g = [tf.zeros(v.shape, v.dtype) if gi is None else gi for gi, v in zip(g, net.trainable_variables)]
            if scaler is not None:
                g = scaler.unscale(g)
            return g, stats, ws

        grads, totals, ws = None, None, []
        for g, stats, w in self.each_round(round_gradients, rounds):
            grads = g if grads is None else [a + b for a, b in zip(grads, g)]
            totals = stats if totals is None else {k: totals[k] + stats[k] for k in stats}
            ws += w
        if scaler is None:
            opt.apply_gradients(zip(grads, net.trainable_variables))
        else:
            finite = scaler.update(scaler.all_finite(grads))
            apply_gradients_if(opt, grads, net.trainable_variables, finite)
            # Summed over replicas by the step: the fraction of this step's updates skipped.
            totals[f"Progress/overflow_{phase.name}"] = (1.0 - tf.cast(finite, tf.float32)) / self.replicas
        if ws:
            self.loss.G.mapping.update_w_avg(tf.concat(ws, axis=0))
        return totals

    @staticmethod
    def each_round(fn, rounds):
        """fn(r, real, c) for every round, in order. Several rounds call one traced function (a
        graph of one round, called once per round) instead of building the graph of every round:
        tracing and graph optimisation do not grow with the number of rounds. Its result and the
        arithmetic are the same; the loop stays unrolled, as a loop in the graph would need the
        results' structure before tracing its body."""
        if len(rounds) == 1:
            real, c = rounds[0]
            yield fn(0, real, c)
            return
        traced = tf.function(fn, autograph=False)   # per replica and phase: captures that replica's variables
        for r, (real, c) in enumerate(rounds):
            yield traced(tf.constant(r, tf.int64), real, c)

    # -- the phases' objectives ------------------------------------------------------------------
    def g_main(self, real, c, rng, w_sink):
        z = rng.normal([self.batch_gpu, self.z_dim])
        s = tf.reduce_sum(self.loss.g_main(z, c, rng, w_sink)) / self.batch
        return s, {"Loss/G/loss": s}

    def pl_inputs(self, c, rng):
        """Latents and labels of this sub-batch's share of the (shrunk) path-length batch."""
        n = self.batch_gpu // self.opts.pl_batch_shrink
        return rng.normal([n, self.z_dim]), None if c is None else c[:n]

    def g_pl(self, phase, rounds, seed):
        """The path-length phase on one replica. pl_mean's update (from the mean length of the
        whole minibatch) enters every sample's penalty. One round: that mean comes from this pass
        (summed over replicas). Several rounds: a first pass measures it, then the rounds take
        their gradients, redrawing the same latents and noise."""
        opts = self.opts
        fixed_mean = None
        if len(rounds) > 1:
            def lengths_sum(r, real, c):
                rng = self.round_rng(seed, r)
                z, c_pl = self.pl_inputs(self.labels(c), rng)
                seen_again = []  # not for w_avg: the gradient pass sees these w's again
                return tf.reduce_sum(self.loss.path_lengths(z, c_pl, rng, w_sink=seen_again))
            sums = list(self.each_round(lengths_sum, rounds))
            fixed_mean = self.global_sum(tf.add_n(sums)) / self.pl_batch
        new_mean = []

        def objective(real, c, rng, w_sink):
            z, c = self.pl_inputs(c, rng)
            surrogate, penalty, lengths, mean = self.loss.g_pl(z, c, rng, w_sink=w_sink, batch_mean=fixed_mean,
                                                               count=self.pl_batch)
            new_mean.append(mean)
            return surrogate * (opts.pl_weight * opts.g_reg_interval), {
                "Loss/G/pl_penalty": tf.reduce_sum(penalty) / self.pl_batch,
                "Loss/G/pl_length": tf.reduce_sum(lengths) / self.pl_batch}

        totals = self.accumulate(phase, rounds, seed, objective)
        # With one round the mean comes from that pass (summed over replicas); with several it is
        # the measured one's (the rounds' passes are traced apart, so their values stay there).
        self.loss.pl_mean.assign(new_mean[-1] if fixed_mean is None else self.loss.pl_mean_after(fixed_mean))
        return totals

    @staticmethod
    def real_signs(logits):
        """The sums the augmentation heuristic takes from D's logits on (augmented) reals."""
        logits = tf.concat(logits, axis=0)
        return {SIGNS_SUM: tf.reduce_sum(tf.sign(logits)), SIGNS_COUNT: tf.cast(tf.size(logits), tf.float32)}

    def d_main(self, real, c, rng, w_sink):
        opts = self.opts
        real = self.reals(real)
        z = rng.normal([self.batch_gpu, self.z_dim])
        logits = []
        gen, rea = self.loss.d_main(z, c, real, rng=rng, w_sink=w_sink, real_logits_sink=logits)
        s_gen, s_real = tf.reduce_sum(gen) / self.batch, tf.reduce_sum(rea) / self.batch
        stats = {"Loss/D/loss": s_gen + s_real, "Loss/D/fake": s_gen, "Loss/D/real": s_real, **self.real_signs(logits)}
        if opts.lazy_regularization:
            return s_gen + s_real, stats
        # Configs A-B: R1 in the main step, every minibatch (official non-lazy regularization).
        r1 = tf.reduce_sum(self.loss.d_r1(real, c)) / self.batch
        stats["Loss/D/r1_penalty"] = r1
        return s_gen + s_real + r1 * (opts.gamma / 2), stats

    def d_r1(self, real, c, rng, w_sink):
        logits = []
        s = tf.reduce_sum(self.loss.d_r1(self.reals(real), c, rng, real_logits_sink=logits)) / self.batch
        return s * (self.opts.gamma / 2 * self.opts.d_reg_interval), {"Loss/D/r1_penalty": s,
                                                                      **self.real_signs(logits)}

    # -- step functions --------------------------------------------------------------------------
    def replica_function(self, phase):
        """fn(rounds, seed) -> stats of `phase` on one replica."""
        if phase.name == "G_pl":
            return lambda rounds, seed: self.g_pl(phase, rounds, seed)
        objective = {"G_main": self.g_main, "D_main": self.d_main, "D_r1": self.d_r1}[phase.name]
        return lambda rounds, seed: self.accumulate(phase, rounds, seed, objective)

    def functions(self):
        """{phase name: tf.function(rounds, seed) -> stats summed over replicas}, for the phases
        this config trains."""
        strategy, loss = self.strategy, self.loss
        steps = {}
        for phase in phases_of(self.opts):
            def step(rounds, seed, replica_fn=self.replica_function(phase), stream=phase.stream):
                loss.levels = self.levels[:2]   # (at trace time) this function's levels of detail
                seed = stateless_random.fold_in(seed, stream)
                per_replica = strategy.run(replica_fn, args=(rounds, seed))
                return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in per_replica.items()}
            # XLA per phase (opts.xla); None leaves TF's default (no XLA) in place.
            steps[phase.name] = tf.function(step, jit_compile=True if phase.name in self.opts.xla_phases else None)
        return steps
