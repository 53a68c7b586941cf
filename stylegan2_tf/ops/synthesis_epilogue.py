"""The epilogue of a synthesis layer after its modulated convolution:
    y = clamp(act(x * d + noise + b) * gain)
with x the convolution's output [N, H, W, C], d the demodulation coefficients [N, C] (Eq. 2 of the
non-fused form; None where the convolution has applied them already, as the fused form does),
noise the per-pixel noise, already times its strength, [N or 1, H, W, 1] (None: none), b the bias.

Reference: scale_channels, an add and fused_bias_act -- three passes over the activations.
Kernel (CPU, float32/64, linear/relu/lrelu): custom_ops/synthesis_epilogue.cc, the same roundings
in the same order in one pass, a one-pass gradient and a one-pass gradient of the gradient (path-length
regularization differentiates the generator twice). Beyond that, the derivatives come from the
formula of the second one written with the reference ops and the bias+act derivative
(_second_derivative_reference); for these activations act'' = 0, so it is exact and every order exists.
"""

import tensorflow as tf

from . import custom_ops, implementation
from .fused_bias_act import PIECEWISE_LINEAR, _deriv, _lookup, _kernel_params, fused_bias_act
from .scale_channels import scale_channels


def synthesis_epilogue(x, d, noise, b, act="lrelu", alpha=None, gain=None, clamp=None, impl=None):
    """act(x * d[:, None, None, :] + noise + b) * gain, clamped to [-clamp, clamp] when clamp is set.

    x: [N, H, W, C]; d: [N, C] or None; noise: [N or 1, H, W, 1] or None; b: [C].
    Arguments act, alpha, gain, clamp and impl as for fused_bias_act."""
    x = tf.convert_to_tensor(x)
    if clamp is not None and float(clamp) < 0:
        raise ValueError(f"synthesis_epilogue: clamp must be >= 0 or None, got {clamp}")
    if d is not None:
        d = tf.cast(d, x.dtype)
    if noise is not None:
        noise = tf.cast(noise, x.dtype)
    b = tf.cast(b, x.dtype)
    if _kernel_serves(x, d, noise, b, act, impl):
        spec = _lookup(act)
        params = _kernel_params(spec.def_alpha if alpha is None else alpha,
                                spec.def_gain if gain is None else gain, clamp)
        return _kernel(x, d, noise, b, params, act)
    if d is not None:
        x = scale_channels(x, d, impl=impl)                                        # Eq. 2
    if noise is not None:
        x = x + noise
    return fused_bias_act(x, b, act=act, alpha=alpha, gain=gain, clamp=clamp, impl=impl)


def _kernel_serves(x, d, noise, b, act, impl):
    if d is None or act not in PIECEWISE_LINEAR or x.shape.rank != 4 or None in x.shape[1:]:
        return False
    if d.shape.rank != 2 or d.shape[-1] != x.shape[-1] or b.shape != [x.shape[-1]]:
        return False
    if x.shape[0] is not None and d.shape[0] is not None and x.shape[0] != d.shape[0]:
        return False  # d broadcast over the batch: the reference
    if noise is not None and (noise.shape.rank != 4 or noise.shape[1:] != [x.shape[1], x.shape[2], 1]):
        return False
    # A noise batch not known while tracing is the samples' (random noise drawn per sample); the
    # kernel checks it when it runs.
    if noise is not None and noise.shape[0] not in (None, 1) and x.shape[0] not in (None, noise.shape[0]):
        return False
    return implementation.cpu_only_kernel_fits(x.dtype) and implementation.choose("SynthesisEpilogue", x.dtype,
                                                                                    impl) == "custom"


def _noise_rows(noise, x):
    """noise [N or 1, H, W, 1] as the kernel's [N or 1, H * W]; empty for none."""
    if noise is None:
        return tf.zeros([0, x.shape[1] * x.shape[2]], x.dtype)
    return tf.reshape(noise, [-1, x.shape[1] * x.shape[2]])


def _kernel(x, d, noise, b, params, act):
    inputs = [x, d, b] + ([noise] if noise is not None else [])

    @tf.custom_gradient
    def forward(*inputs):
        x, d, b = inputs[:3]
        noise = inputs[3] if len(inputs) > 3 else None
        y = custom_ops.library().sg2_synthesis_epilogue(x, d, _noise_rows(noise, x), b, params, act=act)

        def grad(dy):
            # Named like TensorFlow's own gradients ("<op>_grad"), which a custom gradient's are not.
            with tf.name_scope("synthesis_epilogue_grad"):
                return _gradient(dy, x, d, noise, b, params, act)
        return y, grad
    return forward(*inputs)


def _gradient(dy, x, d, noise, b, params, act):
    """[dx, dd, db] (+ [dnoise] with noise) from one kernel pass; differentiable to any order."""
    inputs = [dy, x, d, b] + ([noise] if noise is not None else [])

    @tf.custom_gradient
    def gradient(*inputs):
        dy, x, d, b = inputs[:4]
        noise = inputs[4] if len(inputs) > 4 else None
        dx, dd, dnoise_rows, db = custom_ops.library().sg2_synthesis_epilogue_grad(
            dy, x, d, _noise_rows(noise, x), b, params, act=act)
        outputs = [dx, dd, db]
        if noise is not None:
            dnoise = tf.reshape(dnoise_rows, [-1, x.shape[1], x.shape[2], 1])
            if noise.shape[0] == 1:
                dnoise = tf.reduce_sum(dnoise, axis=0, keepdims=True)
            outputs.append(dnoise)

        def grad(*upstream):
            with tf.name_scope("synthesis_epilogue_grad_grad"):
                return _gradient_backward(upstream, dy, x, d, noise, b, params, act)
        return outputs, grad
    return gradient(*inputs)


def _gradient_backward(upstream, dy, x, d, noise, b, params, act):
    """The gradients of _gradient's outputs (dx, dd, db[, dnoise]) with respect to (dy, x, d, b[, noise]),
    given their upstream gradients (None: that output reaches nothing), from one kernel pass; its own
    gradients come from _second_derivative_reference."""
    given = {i: g for i, g in enumerate(upstream) if g is not None}    # 0 dx, 1 dd, 2 db, 3 dnoise
    order = sorted(given)

    @tf.custom_gradient
    def backward(dy, x, d, *present):
        g = dict(zip(order, present))
        empty = tf.zeros([0], x.dtype)
        d_dy, d_x, d_d = custom_ops.library().sg2_synthesis_epilogue_grad_grad(
            g.get(0, empty), g.get(1, empty),
            tf.reshape(g[3], [-1, x.shape[1] * x.shape[2]]) if 3 in g else empty, g.get(2, empty),
            dy, x, d, _noise_rows(noise, x), b, params, act=act)

        def grad(*h):
            with tf.name_scope("synthesis_epilogue_grad_grad_grad"):
                sources = [dy, x, d, *present]
                with tf.GradientTape() as tape:
                    tape.watch(sources)
                    ref = _second_derivative_reference([g.get(i) for i in range(4)], dy, x, d, noise, b, params, act)
                pairs = [(r, u) for r, u in zip(ref, h) if u is not None]
                return tape.gradient([r for r, _ in pairs], sources, output_gradients=[u for _, u in pairs],
                                     unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return (d_dy, d_x, d_d), grad

    d_dy, d_x, d_d = backward(dy, x, d, *[given[i] for i in order])
    grads = [d_dy, d_x, d_d, tf.zeros_like(b)]
    if noise is not None:
        grads.append(tf.zeros_like(noise))
    return grads


def _second_derivative_reference(upstream, dy, x, d, noise, b, params, act):
    """What Sg2SynthesisEpilogueGradGrad computes, (d(dy), d(x), d(d)), from the reference ops.

    With D = gain * act'(z) * clamp mask, dz = dy * D, and act'' = 0 (D does not change with z, so
    noise and b get no gradient):
      dx = dz * d         ->  d(dy) += D * g_dx * d,     d(d) += sum over rows of g_dx * dz
      dd = sum dz * x     ->  d(dy) += D * g_dd * x,     d(x) += g_dd * dz
      db = sum dz         ->  d(dy) += D * g_db
      dnoise = sum_c dz   ->  d(dy) += D * g_dnoise
    so d(dy) is the bias+act derivative of the sum of the four terms."""
    g_dx, g_dd, g_db, g_dnoise = upstream
    t = scale_channels(x, d)                                  # the pre-activation less the bias
    if noise is not None:
        t = t + noise
    full = [scale_channels(g_dx, d)] if g_dx is not None else []
    if g_dd is not None:
        full.append(scale_channels(x, g_dd))
    total = tf.add_n(full) if full else tf.zeros_like(dy)
    for broadcast in (g_db, g_dnoise):      # [C] and [N or 1, H, W, 1]
        if broadcast is not None:
            total = total + broadcast
    d_dy = _deriv(total, t, b, params, act, order=1)
    d_x, d_d = tf.zeros_like(x), tf.zeros_like(d)
    if g_dx is not None or g_dd is not None:
        dz = _deriv(dy, t, b, params, act, order=1)
        if g_dx is not None:
            d_d = tf.reduce_sum(g_dx * dz, axis=[1, 2])
        if g_dd is not None:
            d_x = scale_channels(dz, g_dd)
    return [d_dy, d_x, d_d]
