"""The synthesis-layer epilogue kernels (CPU, float32/64): Sg2SynthesisEpilogue, y = clamp(act(x * d +
noise + b) * gain) in one pass, Sg2SynthesisEpilogueGrad, its gradient in one pass, and
Sg2SynthesisEpilogueGradGrad, the gradient's gradient in one pass. Checked
against numpy float64 closed forms, bit for bit against the reference ops' forward, against
TensorFlow's gradients of the reference ops to the third order (across the fixed blocks the sums
are cut into), and that a synthesis layer uses them."""

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from stylegan2_tf.ops.synthesis_epilogue import synthesis_epilogue  # noqa: E402



# [N, H, W, C]: a partial block, exactly one block of 256 rows (custom_ops/channel_sums.h
# kRowsPerBlock), several blocks with a partial last one (17 * 19 = 323 rows per sample).
SHAPES = [(2, 3, 4, 6), (2, 16, 16, 3), (3, 17, 19, 5)]
ACTS = {"linear": (0.0, 1.0), "relu": (0.0, np.sqrt(2)), "lrelu": (np.float32(0.2).item(), np.sqrt(2))}


def _inputs(rng, shape, noise_batch, dtype=tf.float64):
    """x, d, noise ([noise_batch, H, W, 1] or None), b, dy as tensors of `dtype`."""
    n, h, w, c = shape
    noise = None if noise_batch is None else tf.constant(rng.normal(size=(noise_batch, h, w, 1)), dtype)
    x, d, b, dy = (tf.constant(rng.normal(size=s), dtype) for s in (shape, (n, c), (c,), shape))
    return x, d, noise, b, dy


def _numpy_forward_and_gradient(x, d, noise, b, dy, act, clamp):
    """Closed forms in float64: y and (dx, dd, dnoise per sample, db)."""
    alpha, gain = ACTS[act]
    z = x * d[:, None, None, :] + (0.0 if noise is None else noise) + b
    slope = np.where(z > 0, 1.0, 0.0 if act == "relu" else alpha) if act != "linear" else np.ones_like(z)
    y = np.where(z > 0, z, z * (0.0 if act == "relu" else alpha)) * gain if act != "linear" else z * gain
    inside = np.ones_like(z) if clamp is None else (np.abs(y) <= clamp)
    y = y if clamp is None else np.clip(y, -clamp, clamp)
    dz = dy * gain * slope * inside
    return y, (dz * d[:, None, None, :], np.sum(dz * x, axis=(1, 2)), np.sum(dz, axis=3), np.sum(dz, axis=(0, 1, 2)))


def _params(act, clamp):
    alpha, gain = ACTS[act]
    return tf.constant([alpha, gain, -1.0 if clamp is None else clamp], tf.float64)


def _rows(noise, shape, dtype=tf.float64):
    """The kernels' noise input: [N or 1, H * W], or empty for none."""
    if noise is None:
        return tf.zeros([0, shape[1] * shape[2]], dtype)
    return tf.reshape(noise, [noise.shape[0], -1])


@pytest.mark.parametrize("act,clamp", [("lrelu", None), ("lrelu", 0.7), ("relu", None), ("linear", 0.5)])
@pytest.mark.parametrize("noise_batch", [None, 1, "N"])
def test_kernels_are_the_closed_forms(kernels, act, clamp, noise_batch):
    """float64: y and dx exact up to the products' rounding, the sums to 1e-13; float32: the sums
    (dd, db, the noise's per-pixel sum over channels) are the exact sums of the float32 dz rounded once."""
    rng = np.random.default_rng(5)
    for shape in SHAPES:
        nb = shape[0] if noise_batch == "N" else noise_batch
        x, d, noise, b, dy = _inputs(rng, shape, nb)
        params = _params(act, clamp)
        y = kernels.sg2_synthesis_epilogue(x, d, _rows(noise, shape), b, params, act=act)
        dx, dd, dnoise, db = kernels.sg2_synthesis_epilogue_grad(dy, x, d, _rows(noise, shape), b, params, act=act)
        want_y, (want_dx, want_dd, want_dn, want_db) = _numpy_forward_and_gradient(
            x.numpy(), d.numpy(), None if noise is None else noise.numpy(), b.numpy(), dy.numpy(), act, clamp)
        np.testing.assert_allclose(y.numpy(), want_y, rtol=1e-14, atol=1e-14)
        np.testing.assert_allclose(dx.numpy(), want_dx, rtol=1e-14, atol=1e-14)
        np.testing.assert_allclose(dd.numpy(), want_dd, rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(db.numpy(), want_db, rtol=1e-13, atol=1e-13)
        if noise is None:
            assert dnoise.shape == (0, shape[1] * shape[2])
        else:   # per sample, even for one map shared by all samples (the wrapper sums over them)
            np.testing.assert_allclose(dnoise.numpy(), want_dn.reshape(shape[0], -1), rtol=1e-13, atol=1e-13)

        cast = [None if v is None else tf.cast(v, tf.float32) for v in (x, d, noise, b, dy)]
        x32, d32, n32, b32, dy32 = cast
        dx32, dd32, dn32, db32 = kernels.sg2_synthesis_epilogue_grad(dy32, x32, d32, _rows(n32, shape, tf.float32), b32,
                                                                     params, act=act)
        # dz in float32 is dx / d only approximately: recompute it as the kernel does, from dy * gain * slope.
        y32 = kernels.sg2_synthesis_epilogue(x32, d32, _rows(n32, shape, tf.float32), b32, params, act=act)
        np.testing.assert_array_equal(y32.numpy(), synthesis_epilogue(x32, d32, n32, b32, act=act, clamp=clamp,
                                                                      impl="ref").numpy())
        alpha, gain = ACTS[act]
        z32 = synthesis_epilogue(x32, d32, n32, b32, act="linear", gain=1.0, impl="ref").numpy()
        slope = np.where(z32 > 0, np.float32(1), np.float32(0 if act == "relu" else alpha)) if act != "linear" \
            else np.ones_like(z32)
        unclamped = synthesis_epilogue(x32, d32, n32, b32, act=act, impl="ref").numpy()
        inside = np.ones_like(z32) if clamp is None else (np.abs(unclamped) <= np.float32(clamp))
        dz32 = (dy32.numpy() * np.float32(gain) * slope * inside).astype(np.float32).astype(np.float64)
        np.testing.assert_array_equal(dd32.numpy(), np.sum(dz32 * x32.numpy(), axis=(1, 2)).astype(np.float32))
        np.testing.assert_array_equal(db32.numpy(), np.sum(dz32, axis=(0, 1, 2)).astype(np.float32))
        if n32 is not None:
            np.testing.assert_array_equal(dn32.numpy(), np.sum(dz32, axis=3).reshape(shape[0], -1).astype(np.float32))


@pytest.mark.parametrize("act,clamp", [("lrelu", None), ("lrelu", 0.7), ("relu", None), ("linear", 0.5)])
@pytest.mark.parametrize("upstream", ["dx dd", "dx", "dd", "dx dd db dnoise", "db dnoise", ""])
def test_gradient_of_the_gradient_is_its_closed_form(kernels, act, clamp, upstream):
    """Sg2SynthesisEpilogueGradGrad in float64 against numpy's closed form, with D = gain * act' * mask:
    d(dy) = D * (g_dx * d + g_dd * x + g_db + g_dnoise), d(x) = g_dd * dy * D, d(d) = per-sample sums of
    g_dx * dy * D; an absent upstream (empty) contributes nothing."""
    rng = np.random.default_rng(8)
    alpha, gain = ACTS[act]
    for shape in SHAPES:
        n, h, w, c = shape
        for noise_batch in (None, 1, n):
            x, d, noise, b, dy = _inputs(rng, shape, noise_batch)
            given = {"dx": rng.normal(size=shape), "dd": rng.normal(size=(n, c)), "db": rng.normal(size=c),
                     "dnoise": rng.normal(size=(noise_batch or n, h, w, 1))}
            given = {k: v for k, v in given.items() if k in upstream.split()}
            empty = tf.zeros([0], tf.float64)
            args = [tf.constant(given[k]) if k in given else empty for k in ("dx", "dd")]
            args.append(tf.constant(given["dnoise"].reshape(-1, h * w)) if "dnoise" in given else empty)
            args.append(tf.constant(given["db"]) if "db" in given else empty)
            d_dy, d_x, d_d = kernels.sg2_synthesis_epilogue_grad_grad(*args, dy, x, d, _rows(noise, shape), b,
                                                                      _params(act, clamp), act=act)
            xn, dn, bn, dyn = x.numpy(), d.numpy()[:, None, None, :], b.numpy(), dy.numpy()
            z = xn * dn + (0.0 if noise is None else noise.numpy()) + bn
            slope = np.ones_like(z) if act == "linear" else np.where(z > 0, 1.0, 0.0 if act == "relu" else alpha)
            value = z * slope * gain
            big_d = gain * slope * (np.ones_like(z) if clamp is None else (np.abs(value) <= clamp))
            u = np.zeros_like(z)
            u = u + (given["dx"] * dn if "dx" in given else 0) + (given["dd"][:, None, None, :] * xn if "dd" in given
                                                                   else 0)
            u = u + given.get("db", 0) + given.get("dnoise", 0)
            want_dx = given["dd"][:, None, None, :] * dyn * big_d if "dd" in given else np.zeros_like(z)
            want_dd = np.sum(given["dx"] * dyn * big_d, axis=(1, 2)) if "dx" in given else np.zeros((n, c))
            np.testing.assert_allclose(d_dy.numpy(), u * big_d, rtol=1e-13, atol=1e-13)
            np.testing.assert_allclose(d_x.numpy(), want_dx, rtol=1e-13, atol=1e-13)
            np.testing.assert_allclose(d_d.numpy(), want_dd, rtol=1e-13, atol=1e-13)


def _derivatives(impl, inputs, act, clamp, order):
    """Value and the derivatives up to `order` of a scalar function of synthesis_epilogue, each order
    differentiating the squared norm of the previous one's gradients, w.r.t. every input."""
    x, d, noise, b = inputs
    watched = [v for v in inputs if v is not None]

    def level(k):
        if k == 0:
            y = synthesis_epilogue(x, d, noise, b, act=act, clamp=clamp, impl=impl)
            return [tf.reduce_sum(y * tf.cos(x) * y)]
        with tf.GradientTape() as tape:
            tape.watch(watched)
            lower = level(k - 1)
            target = lower[-1] if k == 1 else tf.add_n([tf.reduce_sum(g ** 2) for g in lower[-1]])
        return lower + [tape.gradient(target, watched)]
    return level(order)


@pytest.mark.parametrize("dtype,tol", [(tf.float64, 1e-12), (tf.float32, 3e-5)])
@pytest.mark.parametrize("act,clamp", [("lrelu", None), ("lrelu", 0.7), ("linear", None)])
def test_kernel_equals_reference_to_the_third_order(kernels, dtype, tol, act, clamp):
    rng = np.random.default_rng(11)
    for shape in SHAPES:
        for noise_batch in (None, 1, shape[0]):
            x, d, noise, b, _ = _inputs(rng, shape, noise_batch, dtype)
            ref = _derivatives("ref", (x, d, noise, b), act, clamp, 3)
            got = _derivatives("custom", (x, d, noise, b), act, clamp, 3)
            np.testing.assert_allclose(got[0].numpy(), ref[0].numpy(), rtol=tol)
            for order in (1, 2, 3):
                for k, (r, g) in enumerate(zip(ref[order], got[order])):
                    r, g = r.numpy(), g.numpy()
                    scale = max(np.max(np.abs(r)), 1e-30)
                    assert np.max(np.abs(r - g)) <= tol * scale, (shape, noise_batch, order, k,
                                                                  np.max(np.abs(r - g)) / scale)


def test_noise_batch_unknown_while_tracing(kernels):
    """Random noise is drawn per sample with a batch known only when the function runs: the kernel
    serves it, and its gradient reaches the noise per sample."""
    rng = np.random.default_rng(2)
    x, d, noise, b, dy = _inputs(rng, (3, 5, 4, 6), 3)
    spec = tf.TensorSpec([None, 5, 4, 1], tf.float64)

    @tf.function(input_signature=[spec])
    def grads(noise):
        with tf.GradientTape() as tape:
            tape.watch(noise)
            y = synthesis_epilogue(x, d, noise, b, impl="custom")
        return y, tape.gradient(y, noise, output_gradients=dy)

    y, dn = grads(noise)
    want_y, (_, _, want_dn, _) = _numpy_forward_and_gradient(x.numpy(), d.numpy(), noise.numpy(), b.numpy(),
                                                             dy.numpy(), "lrelu", None)
    np.testing.assert_allclose(y.numpy(), want_y, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(dn.numpy()[..., 0], want_dn, rtol=1e-13, atol=1e-13)
    graph = grads.get_concrete_function().graph.as_graph_def()
    types = {n.op for n in graph.node} | {n.op for f in graph.library.function for n in f.node_def}
    assert {"Sg2SynthesisEpilogue", "Sg2SynthesisEpilogueGrad"} <= types


def test_falls_back_where_the_kernel_does_not_serve(kernels):
    """No demodulation left (the fused form), a curved activation, bfloat16/float16: the reference,
    with its numbers, even when the kernels are asked for."""
    rng = np.random.default_rng(4)
    x, d, noise, b, _ = _inputs(rng, (2, 4, 4, 3), 1, tf.float32)

    def types(*args, **kwargs):
        fn = tf.function(lambda: synthesis_epilogue(*args, **kwargs))
        graph = fn.get_concrete_function().graph.as_graph_def()
        return {n.op for n in graph.node}

    assert "Sg2SynthesisEpilogue" in types(x, d, noise, b, impl="custom")
    assert "Sg2SynthesisEpilogue" not in types(x, None, noise, b, impl="custom")
    assert "Sg2SynthesisEpilogue" not in types(x, d, noise, b, act="tanh", impl="custom")
    for dtype in (tf.bfloat16, tf.float16):
        assert "Sg2SynthesisEpilogue" not in types(tf.cast(x, dtype), d, noise, b)
    got = synthesis_epilogue(x, None, noise, b, act="tanh", impl="custom")
    want = np.tanh(x.numpy() + noise.numpy() + b.numpy())
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="clamp must be >= 0"):
        synthesis_epilogue(x, d, noise, b, clamp=-1.0)


def test_kernel_says_what_is_wrong(kernels):
    x, d, b = tf.zeros([2, 3, 3, 4]), tf.zeros([2, 4]), tf.zeros([4])
    params = _params("lrelu", None)
    none = tf.zeros([0, 9])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"SynthesisEpilogue: d must be \[2, 4\], got \[3,4\]"):
        kernels.sg2_synthesis_epilogue(x, tf.zeros([3, 4]), none, b, params, act="lrelu")
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"SynthesisEpilogue: noise must be \[2 or 1, 9\] \(one value per pixel\)"):
        kernels.sg2_synthesis_epilogue(x, d, tf.zeros([2, 8]), b, params, act="lrelu")
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"SynthesisEpilogue: b must be \[4\]"):
        kernels.sg2_synthesis_epilogue(x, d, none, tf.zeros([3]), params, act="lrelu")
    with pytest.raises(tf.errors.InvalidArgumentError, match="SynthesisEpilogue: act must be linear, relu or lrelu"):
        kernels.sg2_synthesis_epilogue(x, d, none, b, params, act="tanh")
    with pytest.raises(tf.errors.InvalidArgumentError, match="SynthesisEpilogue: dy .* differs from x"):
        kernels.sg2_synthesis_epilogue_grad(tf.zeros([2, 3, 3, 3]), x, d, none, b, params, act="lrelu")
    empty = tf.zeros([0])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"SynthesisEpilogue: g_dx must be empty or \[2,3,3,4\]"):
        kernels.sg2_synthesis_epilogue_grad_grad(tf.zeros([2, 3, 3, 3]), empty, empty, empty, x, x, d, none, b, params,
                                                 act="lrelu")
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"SynthesisEpilogue: g_dd must be empty or \[2, 4\]"):
        kernels.sg2_synthesis_epilogue_grad_grad(empty, tf.zeros([1, 4]), empty, empty, x, x, d, none, b, params,
                                                 act="lrelu")
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"SynthesisEpilogue: g_dnoise must be empty or \[2 or 1, 9\]"):
        kernels.sg2_synthesis_epilogue_grad_grad(empty, empty, tf.zeros([2, 3]), empty, x, x, d, none, b, params,
                                                 act="lrelu")
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"SynthesisEpilogue: g_db must be empty or \[4\]"):
        kernels.sg2_synthesis_epilogue_grad_grad(empty, empty, empty, tf.zeros([5]), x, x, d, none, b, params,
                                                 act="lrelu")


def test_synthesis_layer_runs_its_epilogue_as_one_kernel(kernels):
    """On a CPU in float32 a synthesis layer's demodulation, noise, bias and activation run as
    Sg2SynthesisEpilogue, its gradient as Sg2SynthesisEpilogueGrad (the remaining Sg2ScaleChannelsGrad
    is the modulation's, Eq. 1), with the reference's outputs and gradients."""
    from stylegan2_tf.layers.modulated import SynthesisLayer
    from stylegan2_tf.ops.implementation import use_implementation
    layer = SynthesisLayer(8, 6, 4, resolution=8, fused_modconv=False)
    layer.noise_strength.assign(0.3)
    layer.bias.assign(tf.linspace(-0.5, 0.5, 6))
    x = tf.random.stateless_normal([2, 8, 8, 8], seed=[1, 2])
    w = tf.random.stateless_normal([2, 4], seed=[3, 4])

    def run(x, w):
        with tf.GradientTape() as tape:
            tape.watch([x, w])
            y = layer(x, w, noise_mode="const")
            loss = tf.reduce_sum(y * tf.sin(y))
        return [y] + tape.gradient(loss, [x, w] + layer.trainable_variables)

    graph = tf.function(run).get_concrete_function(x, w).graph.as_graph_def()
    nodes = [n.op for n in graph.node] + [n.op for f in graph.library.function for n in f.node_def]
    assert "Sg2SynthesisEpilogue" in nodes and "Sg2SynthesisEpilogueGrad" in nodes
    assert nodes.count("Sg2ScaleChannelsGrad") == 1, sorted(set(nodes))
    got = run(x, w)
    with use_implementation("ref"):
        want = run(x, w)
    np.testing.assert_array_equal(got[0].numpy(), want[0].numpy())
    for g, r, v in zip(got[1:], want[1:], ["x", "w"] + [v.name for v in layer.trainable_variables]):
        np.testing.assert_allclose(g.numpy(), r.numpy(), rtol=2e-5, atol=2e-5 * np.max(np.abs(r.numpy())),
                                   err_msg=v)


def test_path_length_route_runs_the_gradient_of_the_gradient_as_one_kernel(kernels):
    """Path-length regularization differentiates a synthesis layer twice: the gradient of |d(y . r)/dw|^2
    with respect to the layer's variables runs Sg2SynthesisEpilogueGradGrad and equals the reference's."""
    from stylegan2_tf.layers.modulated import SynthesisLayer
    from stylegan2_tf.ops.implementation import use_implementation
    layer = SynthesisLayer(8, 6, 4, resolution=8, fused_modconv=False)
    layer.noise_strength.assign(0.3)
    layer.bias.assign(tf.linspace(-0.5, 0.5, 6))
    x = tf.random.stateless_normal([2, 8, 8, 8], seed=[1, 2])
    w = tf.random.stateless_normal([2, 4], seed=[3, 4])
    r = tf.random.stateless_normal([2, 8, 8, 6], seed=[5, 6])

    def run(x, w):
        with tf.GradientTape() as outer:
            outer.watch(x)
            with tf.GradientTape() as inner:
                inner.watch(w)
                y = layer(x, w, noise_mode="const")
                target = tf.reduce_sum(y * r)
            dw = inner.gradient(target, w)
            penalty = tf.reduce_sum(tf.square(dw))
        sources = [x] + layer.trainable_variables
        # Noise strength and bias do not reach dw: no gradient (zeros).
        return [penalty] + [tf.zeros(v.shape) if g is None else g
                            for g, v in zip(outer.gradient(penalty, sources), sources)]

    graph = tf.function(run).get_concrete_function(x, w).graph.as_graph_def()
    nodes = [n.op for n in graph.node] + [n.op for f in graph.library.function for n in f.node_def]
    assert "Sg2SynthesisEpilogueGradGrad" in nodes, sorted(set(nodes))
    got = run(x, w)
    with use_implementation("ref"):
        want = run(x, w)
    for g, r, v in zip(got, want, ["penalty", "x"] + [v.name for v in layer.trainable_variables]):
        np.testing.assert_allclose(g.numpy(), r.numpy(), rtol=2e-5, atol=2e-5 * np.max(np.abs(r.numpy())),
                                   err_msg=v)
