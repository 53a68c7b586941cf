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
from .fused_bias_act import PIECEWISE_LINEAR, _act_of, _deriv, _lookup, _kernel_params, fused_bias_act
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
    return custom_ops.library().sg2_synthesis_epilogue(x, d, _noise_rows(noise, x), b, params, act=act)


# The kernels' gradients are registered by op type (see fused_bias_act.py for why). The noise enters
# as rows [N or 1, P] (a reshape of [N or 1, H, W, 1], whose own gradient reshapes back), or [0, P]
# for none.

@tf.RegisterGradient("Sg2SynthesisEpilogue")
def _synthesis_epilogue_grad(op, dy):
    """[dx, dd, dnoise, db] from one kernel pass."""
    x, d, noise, b, params = op.inputs
    dx, dd, dnoise, db = custom_ops.library().sg2_synthesis_epilogue_grad(dy, x, d, noise, b, params,
                                                                         act=_act_of(op))
    if noise.shape[0] == 0:
        dnoise = None
    elif noise.shape[0] == 1:      # one map for every sample: the kernel gives each sample's share
        dnoise = tf.reduce_sum(dnoise, axis=0, keepdims=True)
    return dx, dd, dnoise, db, None


@tf.RegisterGradient("Sg2SynthesisEpilogueGrad")
def _synthesis_epilogue_grad_grad(op, g_dx, g_dd, g_dnoise, g_db):
    """The gradients of (dx, dd, dnoise, db) with respect to (dy, x, d, noise, b), from one kernel
    pass; noise and b get none (act'' = 0)."""
    dy, x, d, noise, b, params = op.inputs
    empty = tf.zeros([0], x.dtype)
    if noise.shape[0] == 0:
        g_dnoise = None                # the kernel's dnoise output is empty then
    d_dy, d_x, d_d = custom_ops.library().sg2_synthesis_epilogue_grad_grad(
        *[empty if g is None else g for g in (g_dx, g_dd, g_dnoise, g_db)], dy, x, d, noise, b, params,
        act=_act_of(op))
    return d_dy, d_x, d_d, None, None, None


@tf.RegisterGradient("Sg2SynthesisEpilogueGradGrad")
def _synthesis_epilogue_grad_grad_grad(op, *upstream):
    """Third and higher derivatives: the gradient's gradient written with the reference ops, and
    differentiated by TensorFlow. Empty upstream inputs stand for none."""
    g_dx, g_dd, g_dnoise, g_db, dy, x, d, noise, b, params = op.inputs
    given = [g for g in (g_dx, g_dd, g_dnoise, g_db) if g.shape.num_elements() != 0]
    sources = given + [dy, x, d]
    as_map = [-1, x.shape[1], x.shape[2], 1]
    with tf.GradientTape() as tape:
        tape.watch(sources)
        g_noise_map = tf.reshape(g_dnoise, as_map) if g_dnoise.shape.num_elements() != 0 else None
        ref = _second_derivative_reference(
            [g if g.shape.num_elements() != 0 else None for g in (g_dx, g_dd, g_db)] + [g_noise_map], dy, x, d,
            None if noise.shape[0] == 0 else tf.reshape(noise, as_map), b, params, _act_of(op))
    pairs = [(r, u) for r, u in zip(ref, upstream) if u is not None]
    grads = tape.gradient([r for r, _ in pairs], sources, output_gradients=[u for _, u in pairs],
                          unconnected_gradients=tf.UnconnectedGradients.ZERO)
    of_given = iter(grads[:len(given)])
    return ([next(of_given) if g.shape.num_elements() != 0 else None for g in (g_dx, g_dd, g_dnoise, g_db)]
            + grads[len(given):] + [None, None, None])


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
