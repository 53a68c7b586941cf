"""Training math against independent computations: R1 by finite differences, path length by
an explicit Jacobian, the lazy-regularization and EMA constants, the style-mixing cutoff."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from stylegan2_tf.networks import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig
from stylegan2_tf.training import StyleGAN2Loss, ema_beta, lazy_adam_params, mix_styles


def _tiny_g(**kw):
    return Generator(GeneratorConfig(img_resolution=8, fmap_base=32, fmap_max=8, z_dim=6, w_dim=6, mapping_fmaps=6,
                                     mapping_layers=2, **kw))


def _tiny_d(**kw):
    return Discriminator(DiscriminatorConfig(img_resolution=8, fmap_base=32, fmap_max=8, **kw))


def test_r1_matches_finite_differences_of_D(float64):
    keras.utils.set_random_seed(1)
    D = _tiny_d()
    G = _tiny_g()
    loss = StyleGAN2Loss(G, D, r1_gamma=10)
    x = np.random.RandomState(0).uniform(-1, 1, [4, 8, 8, 3])
    r1 = loss.d_r1(tf.constant(x), None).numpy()
    # Independent: central differences of sum(D(x)) per pixel.
    f = lambda v: float(tf.reduce_sum(D(tf.constant(v))).numpy())  # noqa: E731
    grad = np.zeros_like(x)
    eps = 1e-5
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        grad[i] = (f(xp) - f(xm)) / (2 * eps)
    np.testing.assert_allclose(r1, np.sum(grad ** 2, axis=(1, 2, 3)), rtol=1e-6)


def test_path_length_matches_explicit_jacobian(float64):
    keras.utils.set_random_seed(2)
    G = _tiny_g()
    for v in G.variables:  # non-zero noise strengths and biases so every term is exercised
        if "noise_strength" in v.path:
            v.assign(0.3)
    D = _tiny_d()
    loss = StyleGAN2Loss(G, D, noise_mode="const", style_mixing_prob=0.0, update_w_avg=False)
    z = tf.constant(np.random.RandomState(1).randn(2, 6))
    y = np.random.RandomState(2).randn(2, 8, 8, 3) / math.sqrt(64)
    loss.pl_mean.assign(0.5)
    _, penalty, lengths, pl_mean = loss.g_pl(z, None, pl_noise=tf.constant(y))
    ws = G.mapping(z)
    with tf.GradientTape() as tape:
        tape.watch(ws)
        img = G.synthesis(ws, noise_mode="const")
    jac = tape.jacobian(img, ws).numpy()                # [N, H, W, C, N, L, w]
    expect = []
    for n in range(2):
        g = np.tensordot(y[n], jac[n, :, :, :, n], axes=3)  # [L, w]: d<G(w_n), y_n>/dw_n
        expect.append(np.sqrt(np.mean(np.sum(g ** 2, axis=1))))
    expect = np.array(expect)
    np.testing.assert_allclose(lengths.numpy(), expect, rtol=1e-8)
    new_mean = 0.5 + (expect.mean() - 0.5) * 0.01
    np.testing.assert_allclose(float(pl_mean), new_mean, rtol=1e-10)
    assert float(loss.pl_mean.numpy()) == 0.5  # assigned by the caller, once per minibatch
    np.testing.assert_allclose(penalty.numpy(), (expect - new_mean) ** 2, rtol=1e-8)


def test_path_length_surrogate_over_sub_batches_matches_whole_batch_gradient(float64):
    """Gradient accumulation of the path-length term: sub-batches through path_length_surrogate,
    given the minibatch's mean length, sum to the autodiff gradient of the whole batch's mean
    penalty, in which pl_mean's update (and its gradient) depends on every sample."""
    from stylegan2_tf.training.losses import path_length_surrogate
    keras.utils.set_random_seed(3)
    G = _tiny_g()
    loss = StyleGAN2Loss(G, _tiny_d(), noise_mode="const", style_mixing_prob=0.0, update_w_avg=False)
    z = tf.constant(np.random.RandomState(4).randn(4, 6))
    y = tf.constant(np.random.RandomState(5).randn(4, 8, 8, 3) / 8.0)
    loss.pl_mean.assign(0.7)
    variables = G.trainable_variables
    with tf.GradientTape() as tape:
        lengths = loss.path_lengths(z, None, pl_noise=y)
        # Independent of the surrogate (the official formulation): the decayed mean, with its
        # gradient, enters every sample's penalty.
        pl_mean = 0.7 + (tf.reduce_mean(lengths) - 0.7) * loss.pl_decay
        whole = tf.reduce_mean(tf.square(lengths - pl_mean))
    expect = tape.gradient(whole, variables)
    # loss.g_pl on the whole batch (the training phase's implementation) gives that gradient too.
    with tf.GradientTape() as tape:
        objective, penalty, _, g_pl_mean = loss.g_pl(z, None, pl_noise=y)
    assert float(g_pl_mean) == pytest.approx(float(pl_mean), rel=1e-12)
    assert float(tf.reduce_mean(penalty)) == pytest.approx(float(whole), rel=1e-9)
    for e, g, v in zip(expect, tape.gradient(objective, variables), variables):
        if e is not None:
            np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-7, atol=1e-8 * np.max(np.abs(e.numpy())),
                                       err_msg=v.path)

    loss.pl_mean.assign(0.7)
    batch_mean = float(tf.reduce_mean(lengths))
    new_mean = loss.pl_mean_after(batch_mean)
    total, value = None, 0.0
    for part in (slice(0, 1), slice(1, 4)):  # unequal sub-batches
        with tf.GradientTape() as tape:
            a = loss.path_lengths(z[part], None, pl_noise=y[part])
            surrogate = path_length_surrogate(a, batch_mean, new_mean, loss.pl_decay, 4)
        g = tape.gradient(surrogate, variables)
        total = g if total is None else [None if t is None else t + x for t, x in zip(total, g)]
        value += float(tf.reduce_sum(tf.square(a - new_mean))) / 4
    assert value == pytest.approx(float(whole), rel=1e-9)
    connected = 0
    for e, t, v in zip(expect, total, variables):
        if e is None:
            assert t is None, v.path
            continue
        connected += 1
        # float64, but the penalty's gradient is a difference of near-equal terms (a_i - pl_mean).
        np.testing.assert_allclose(t.numpy(), e.numpy(), rtol=1e-7, atol=1e-8 * np.max(np.abs(e.numpy())),
                                   err_msg=v.path)
    assert connected > len(variables) // 2
    # Without the decayed mean's own gradient the result would differ (the test can tell).
    with tf.GradientTape() as tape:
        a = loss.path_lengths(z, None, pl_noise=y)
        plain = tf.reduce_sum(tf.square(a - tf.stop_gradient(new_mean))) / 4
    naive = tape.gradient(plain, variables)
    gaps = [np.max(np.abs(n.numpy() - e.numpy())) / np.max(np.abs(e.numpy()))
            for n, e in zip(naive, expect) if e is not None]
    assert max(gaps) > 1e-4, max(gaps)


def test_lazy_regularization_constants():
    lr, b1, b2 = lazy_adam_params(0.002, 0.0, 0.99, 4)
    assert lr == pytest.approx(0.0016) and b1 == 0.0 and b2 == pytest.approx(0.99 ** 0.8)
    lr, b1, b2 = lazy_adam_params(0.002, 0.0, 0.99, 16)
    assert lr == pytest.approx(0.002 * 16 / 17) and b2 == pytest.approx(0.99 ** (16 / 17))
    assert ema_beta(32, 10) == pytest.approx(0.5 ** (32 / 10000))
    assert ema_beta(32, 10) ** (10000 / 32) == pytest.approx(0.5)  # half-life: 10 kimg


def test_trainer_optimizers_use_lazy_constants(tmp_path):
    from stylegan2_tf.data.synthetic import create_shapes_dataset
    from stylegan2_tf.training import TrainingOptions
    from stylegan2_tf.training import Trainer
    create_shapes_dataset(str(tmp_path / "s"), num_images=8, resolution=8)
    t = Trainer(TrainingOptions(data_dir=str(tmp_path), dataset="s", result_dir=str(tmp_path / "r"), fmap_base=32,
                                fmap_max=8, latent_dim=8, mapping_layers=1), echo=False)
    assert float(t.state.opt_G.learning_rate.numpy()) == pytest.approx(0.0016)
    assert t.state.opt_G.beta_2 == pytest.approx(0.99 ** 0.8) and t.state.opt_G.beta_1 == 0.0
    assert float(t.state.opt_D.learning_rate.numpy()) == pytest.approx(0.002 * 16 / 17)
    assert t.state.opt_D.beta_2 == pytest.approx(0.99 ** (16 / 17)) and t.state.opt_D.epsilon == 1e-8
    assert float(t.state.ema_beta.numpy()) == pytest.approx(0.5 ** (32 / 10000))
    assert t.state.loss.r1_gamma == 10.0 and t.state.loss.pl_weight == 2.0 and t.state.loss.style_mixing_prob == 0.9


def test_style_mixing_cutoff_distribution():
    keras.utils.set_random_seed(3)
    G = _tiny_g()  # 8x8: num_ws = 4
    rng = tf.random.Generator.from_seed(0)
    z = tf.constant(np.random.RandomState(0).randn(1, 6), tf.float32)
    ws = G.mapping(z)

    @tf.function
    def cutoff():
        mixed = mix_styles(G, ws, None, rng, 0.9)
        same = tf.reduce_all(tf.equal(mixed, ws), axis=[0, 2])  # per layer
        return tf.reduce_sum(tf.cast(same, tf.int32))  # layers kept = cutoff (prefix)
    counts = np.bincount([int(cutoff()) for _ in range(3000)], minlength=5)
    assert counts[0] == 0  # cutoff >= 1: the first layer always keeps w
    p = counts / counts.sum()
    # P(no mixing) = 0.1; mixing: cutoff uniform on {1, 2, 3}, each 0.9 / 3.
    np.testing.assert_allclose(p[4], 0.1, atol=0.02)
    np.testing.assert_allclose(p[1:4], 0.3, atol=0.03)


def test_w_avg_update_rule():
    G = _tiny_g()
    assert G.mapping.w_avg.dtype == "float32"
    w = tf.constant(np.random.RandomState(0).randn(5, 6), tf.float32)
    G.mapping.w_avg.assign(np.ones(6, np.float32))
    G.mapping.update_w_avg(w)
    np.testing.assert_allclose(G.mapping.w_avg.numpy(), w.numpy().mean(0) + (1 - w.numpy().mean(0)) * 0.995,
                               rtol=1e-6)
