"""Gradient accumulation (the official minibatch multiplier) against one big batch.

The Trainer runs one minibatch of 16 as 4 rounds of 4 (one replica). The reference runs the
same minibatch as one batch of 16 through the losses' official formulation, one tape per
phase, with fresh Adam optimizers (the loop's kind; test_optimizer checks it against numpy):
means over the whole batch, the path-length mean decayed once with its gradient through every
sample, w_avg updated once per phase from all 16 latents. Its inputs are the Trainer's: the same
reals and the same latents and path-length noise, redrawn from the minibatch seed (per phase and
sub-batch, in the loop's draw order).

Minibatch standard deviation: a batch of 16 forms its 4 groups from samples i, i+4, i+8,
i+12 (official layout), a round of 4 is one group. The reference therefore interleaves the
rounds (position 4 g + r holds sample g of round r), so that its groups are the rounds.
With constant noise and no style mixing (the only randomness that would be drawn differently
for one batch of 16), the two must agree to float64 rounding.
"""

import math

import numpy as np
import tensorflow as tf
import pytest

from stylegan2_tf.data.synthetic import create_shapes_dataset
from stylegan2_tf.networks import Discriminator, Generator
from stylegan2_tf.training import StyleGAN2Loss, TrainingOptions, ema_beta, lazy_adam_params
from stylegan2_tf.training import Trainer
from stylegan2_tf.training.optimizer import FusedAdam
from stylegan2_tf.training.phases import StatelessRNG

pytestmark = pytest.mark.slow

# The phases' random streams (phases.PHASES), written out: the draws this test reproduces pin them.
STREAMS = {"G_main": 0, "G_pl": 1, "D_main": 2, "D_r1": 3}

ROUNDS, BATCH_GPU = 4, 4


def _interleave(parts):
    """[R] x [B, ...] -> [B * R, ...] with position b * R + r = parts[r][b]."""
    return tf.reshape(tf.stack(parts, axis=1), [-1] + list(parts[0].shape[1:]))


def _phase_rng(seed, phase, r):
    """The loop's per-(phase, sub-batch) generator (one replica: sub-batch = round, int64)."""
    phase_seed = tf.random.experimental.stateless_fold_in(seed, STREAMS[phase])
    return StatelessRNG(tf.random.experimental.stateless_fold_in(phase_seed, tf.constant(r, tf.int64)))


def test_four_rounds_equal_one_batch_of_sixteen(tmp_path, float64):
    create_shapes_dataset(str(tmp_path / "shapes16"), num_images=32, resolution=16)
    opts = TrainingOptions(data_dir=str(tmp_path), result_dir=str(tmp_path / "results"), dataset="shapes16",
                           fmap_base=128, fmap_max=32, latent_dim=16, mapping_layers=2, batch=ROUNDS * BATCH_GPU,
                           batch_gpu=BATCH_GPU, snapshot_ticks=0, style_mixing_prob=0.0)
    t = Trainer(opts, echo=False)
    assert opts.rounds == ROUNDS and t.state.G.mapping.w_avg.dtype == "float64"
    t.state.loss.noise_mode = "const"  # before the steps are traced
    # Non-zero noise strengths and pl_mean, so their terms take part.
    for v in t.state.G.variables:
        if "noise_strength" in v.path:
            v.assign(tf.fill(v.shape, tf.constant(0.2, v.dtype)))
    t.state.loss.pl_mean.assign(0.3)
    for dst, src in zip(t.state.G_ema.variables, t.state.G.variables):
        dst.assign(src)

    # The reference networks start from the Trainer's weights.
    G, D, Gs = Generator(t.g_cfg), Discriminator(t.d_cfg), Generator(t.g_cfg)
    for ref, net in ((G, t.state.G), (D, t.state.D), (Gs, t.state.G_ema)):
        for a, b in zip(ref.variables, net.variables):
            a.assign(b.numpy())

    data = t.dataset(0)
    rounds = tuple(next(data) for _ in range(ROUNDS))
    seed = tf.constant([12, 34], tf.int64)
    stats = t.train_minibatch(rounds, seed=seed)  # minibatch 0: all four phases

    # -- the reference: one batch of 16 ----------------------------------------------------
    loss = StyleGAN2Loss(G, D, r1_gamma=opts.gamma, pl_weight=opts.pl_weight, pl_decay=opts.pl_decay,
                         pl_batch_shrink=opts.pl_batch_shrink, style_mixing_prob=0.0, noise_mode="const")
    loss.pl_mean.assign(0.3)
    opt_G = FusedAdam(*lazy_adam_params(opts.lr, opts.beta1, opts.beta2, opts.g_reg_interval),
                                  epsilon=opts.epsilon)
    opt_D = FusedAdam(*lazy_adam_params(opts.lr, opts.beta1, opts.beta2, opts.d_reg_interval),
                                  epsilon=opts.epsilon)
    z_dim, res = t.g_cfg.z_dim, t.g_cfg.img_resolution
    reals = _interleave([tf.cast(img, tf.float64) for img, _ in rounds])

    def latents(phase, n):
        return _interleave([tf.cast(_phase_rng(seed, phase, r).normal([n, z_dim]), tf.float64)
                            for r in range(ROUNDS)])

    def step(net, opt, objective_fn):
        with tf.GradientTape() as tape:
            objective = objective_fn()
        grads = tape.gradient(objective, net.trainable_variables)
        opt.apply_gradients([(tf.zeros_like(v) if g is None else g, v)
                             for g, v in zip(grads, net.trainable_variables)])
        return objective

    g_loss = step(G, opt_G, lambda: tf.reduce_mean(loss.g_main(latents("G_main", BATCH_GPU), None)))

    # Path length: the loop draws z, the (unused, constant-noise) synthesis seed, then y per round.
    n_pl = BATCH_GPU // opts.pl_batch_shrink
    z_pl, y_pl = [], []
    for r in range(ROUNDS):
        rng = _phase_rng(seed, "G_pl", r)
        z_pl.append(tf.cast(rng.normal([n_pl, z_dim]), tf.float64))
        rng.make_seeds(1)
        y_pl.append(tf.cast(rng.normal([n_pl, res, res, 3]), tf.float64) / math.sqrt(res * res))
    pl = {}

    def pl_objective():
        lengths = loss.path_lengths(tf.concat(z_pl, 0), None, pl_noise=tf.concat(y_pl, 0))
        # The official formulation: the decayed mean, with its gradient, in every sample's penalty.
        mean = loss.pl_mean + (tf.reduce_mean(lengths) - loss.pl_mean) * opts.pl_decay
        pl["penalty"], pl["lengths"] = tf.square(lengths - mean), lengths
        loss.pl_mean.assign(tf.stop_gradient(mean))
        return tf.reduce_mean(pl["penalty"]) * opts.pl_weight * opts.g_reg_interval
    step(G, opt_G, pl_objective)

    d_terms = {}
    real_logits = []    # D's logits on the reals in D_main, then in D_r1 (the ADA heuristic's input)

    def d_objective():
        d_terms["fake"], d_terms["real"] = loss.d_main(latents("D_main", BATCH_GPU), None, reals,
                                                       real_logits_sink=real_logits)
        return tf.reduce_mean(d_terms["fake"]) + tf.reduce_mean(d_terms["real"])
    d_loss = step(D, opt_D, d_objective)
    r1 = {}

    def r1_objective():
        r1["penalty"] = loss.d_r1(reals, None, real_logits_sink=real_logits)
        return tf.reduce_mean(r1["penalty"]) * opts.gamma / 2 * opts.d_reg_interval
    step(D, opt_D, r1_objective)
    beta = ema_beta(opts.batch, opts.ema_kimg)
    for dst, src in zip(Gs.variables, G.variables):
        dst.assign(src + (dst - src) * beta if src.trainable else src)

    # -- comparison ----------------------------------------------------------------------------
    expect = {"Loss/G/loss": float(g_loss), "Loss/D/loss": float(d_loss),
              "Loss/D/fake": float(tf.reduce_mean(d_terms["fake"])),
              "Loss/D/real": float(tf.reduce_mean(d_terms["real"])),
              "Loss/G/pl_penalty": float(tf.reduce_mean(pl["penalty"])),
              "Loss/G/pl_length": float(tf.reduce_mean(pl["lengths"])),
              "Loss/D/r1_penalty": float(tf.reduce_mean(r1["penalty"])),
              "ADA/signs_sum": float(tf.reduce_sum(tf.sign(tf.concat(real_logits, 0)))),
              "ADA/signs_count": 2.0 * len(reals)}
    assert sorted(stats) == sorted(expect)
    for k, v in expect.items():
        np.testing.assert_allclose(float(stats[k]), v, rtol=1e-10, err_msg=k)
    np.testing.assert_allclose(float(t.state.loss.pl_mean.numpy()), float(loss.pl_mean.numpy()), rtol=1e-12)
    assert float(loss.pl_mean.numpy()) != 0.3

    changed = 0
    for name, ref, net in (("G", G, t.state.G), ("D", D, t.state.D), ("Gs", Gs, t.state.G_ema)):
        for a, b in zip(ref.variables, net.variables):
            x, y = a.numpy(), b.numpy()
            scale = max(float(np.max(np.abs(x))), 1e-30)
            assert float(np.max(np.abs(x - y))) <= 1e-12 * scale, f"{name}:{a.path}"  # measured <= 1.1e-13
            changed += int("w_avg" in a.path and np.any(x != 0))
    assert changed == 2  # G's and Gs's w_avg moved, and agree

    # The grouping is what makes them equal: the rounds in their plain order form other groups.
    plain = tf.concat([tf.cast(img, tf.float64) for img, _ in rounds], 0)
    d_plain = D(plain)
    d_interleaved = D(reals)
    order = np.stack([np.arange(BATCH_GPU * r, BATCH_GPU * (r + 1)) for r in range(ROUNDS)], axis=1).reshape(-1)
    assert not np.allclose(d_plain.numpy()[order], d_interleaved.numpy(), rtol=1e-6)


def _graph_nodes(concrete):
    """Nodes of a traced step: its own graph's and every function's in its library."""
    graph = concrete.graph.as_graph_def()
    return len(graph.node) + sum(len(f.node_def) for f in graph.library.function)


def test_rounds_share_one_traced_graph(tmp_path):
    """More accumulation rounds add calls of one traced round, not copies of its graph: tracing and
    graph optimisation cost the same for 2 and 4 rounds (the time to the first step at 1024² with
    8 rounds depends on it)."""
    create_shapes_dataset(str(tmp_path / "shapes16"), num_images=32, resolution=16)
    nodes = {}
    for rounds in (1, 2, 4):
        opts = TrainingOptions(data_dir=str(tmp_path), result_dir=str(tmp_path / f"results{rounds}"),
                               dataset="shapes16", fmap_base=128, fmap_max=32, latent_dim=16, mapping_layers=2,
                               batch=2 * rounds, batch_gpu=2, snapshot_ticks=0)
        t = Trainer(opts, echo=False)
        data = t.dataset(0)
        batches = tuple(next(data) for _ in range(rounds))
        steps = t.steps(t.state.stage)
        nodes[rounds] = {name: _graph_nodes(steps[name].get_concrete_function(batches, tf.zeros([2], tf.int64)))
                         for name in ("G_main", "G_pl", "D_main", "D_r1")}
    for name, one in nodes[1].items():
        assert one > 500, nodes                                   # a round's graph is this large
        # Two more rounds: their calls and the gradient sums (one add per variable), not two graphs.
        assert nodes[4][name] - nodes[2][name] < one / 10, nodes
        assert nodes[2][name] < 2 * one, nodes                    # (G_pl's measuring pass: one more function)
