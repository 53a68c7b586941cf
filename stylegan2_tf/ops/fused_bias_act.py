"""Bias + activation + gain (+ clamp), the epilogue of every StyleGAN2 layer.

Reference implementation in plain TensorFlow ops. Default gains are the official
ones: sqrt(2) for relu / lrelu / swish (He-style variance preservation), 1 for the
rest; lrelu uses alpha 0.2.
"""

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import tensorflow as tf

from . import custom_ops, implementation


@dataclass(frozen=True)
class Activation:
    func: Callable
    def_gain: float
    def_alpha: float = 0.0


ACTIVATIONS = {
    "linear": Activation(lambda x, alpha: x, 1.0),
    "relu": Activation(lambda x, alpha: tf.nn.relu(x), math.sqrt(2.0)),
    "lrelu": Activation(lambda x, alpha: tf.nn.leaky_relu(x, alpha=alpha), math.sqrt(2.0), 0.2),
    "tanh": Activation(lambda x, alpha: tf.nn.tanh(x), 1.0),
    "sigmoid": Activation(lambda x, alpha: tf.nn.sigmoid(x), 1.0),
    "elu": Activation(lambda x, alpha: tf.nn.elu(x), 1.0),
    "selu": Activation(lambda x, alpha: tf.nn.selu(x), 1.0),
    "softplus": Activation(lambda x, alpha: tf.nn.softplus(x), 1.0),
    "swish": Activation(lambda x, alpha: tf.nn.sigmoid(x) * x, math.sqrt(2.0)),
}


def activation_gain(act):
    return _lookup(act).def_gain


def _lookup(act):
    try:
        return ACTIVATIONS[act]
    except KeyError:
        raise ValueError(f"unknown activation {act!r}; choose from {sorted(ACTIVATIONS)}") from None


def fused_bias_act(x, b=None, axis=-1, act="linear", alpha=None, gain=None, clamp=None, impl=None):
    """act(x + b) * gain, optionally clamped to [-clamp, clamp].

    Args:
      x: tensor of any rank.
      b: optional bias vector, broadcast along `axis` (channels; -1 for NHWC).
      act: one of ACTIVATIONS.
      alpha: negative slope for lrelu (default 0.2).
      gain: output scale (default: the activation's official gain).
      clamp: optional symmetric clamp of the output (fp16 training).
      impl: 'auto' | 'ref' | 'custom' (default: $STYLEGAN2_TF_OPS, else implementation.DEFAULT_IMPL); see
        stylegan2_tf/ops/implementation.py. The C++ kernel takes the bias on the last axis.
    """
    spec = _lookup(act)
    alpha = spec.def_alpha if alpha is None else float(alpha)
    gain = spec.def_gain if gain is None else float(gain)
    x = tf.convert_to_tensor(x)
    if clamp is not None and float(clamp) < 0:
        raise ValueError(f"fused_bias_act: clamp must be >= 0 or None, got {clamp}")
    if not x.dtype.is_floating:
        raise ValueError(f"fused_bias_act: x must be floating point, got {x.dtype.name}")
    if x.shape.rank is None or x.shape.rank < 1:
        raise ValueError(f"fused_bias_act: x must have a known rank >= 1, got shape {x.shape}")
    if b is not None:
        b = tf.convert_to_tensor(b)
        if b.shape.rank != 1 or (b.shape[0] not in (None, 1) and x.shape[axis] is not None
                                 and b.shape[0] != x.shape[axis]):
            raise ValueError(f"fused_bias_act: b must be a vector of x.shape[{axis}] = {x.shape[axis]} "
                             f"(or 1, broadcast), got shape {b.shape}")
    kernel_fits = axis % x.shape.rank == x.shape.rank - 1 and (b is None or b.shape[0] == x.shape[-1])
    if kernel_fits:
        if implementation.choose("FusedBiasAct", x.dtype, impl) == "custom":
            return _kernel(x, b, act, alpha, gain, clamp)
    elif implementation.requested(impl) == "custom":     # the argument, $STYLEGAN2_TF_OPS or a forced block
        raise custom_ops.CustomOpsError("FusedBiasAct: the kernel takes one bias per channel of the last axis only")
    return _reference(x, b, axis, spec, alpha, gain, clamp)


def _reference(x, b, axis, spec, alpha, gain, clamp):
    if b is not None:
        b = tf.cast(b, x.dtype)
        rank = x.shape.rank
        ax = axis % rank
        if ax == rank - 1:
            x = x + b
        else:
            shape = [1] * rank
            shape[ax] = -1
            x = x + tf.reshape(b, shape)
    x = spec.func(x, alpha)
    if gain != 1.0:
        x = x * gain
    if clamp is not None:
        x = tf.clip_by_value(x, -float(clamp), float(clamp))
    return x


# The C++ kernel (custom_ops/fused_bias_act.cc) with its gradients, to the third order.

# Activations whose second derivative is zero (the kernel's derivative op is then linear).
PIECEWISE_LINEAR = ("linear", "relu", "lrelu")


def _kernel(x, b, act, alpha, gain, clamp):
    """The kernel: act(x + b) * gain, clamped when clamp is not None. b: [C] on the last axis or None."""
    b = tf.zeros([0], x.dtype) if b is None else tf.cast(b, x.dtype)
    return custom_ops.library().sg2_fused_bias_act(x, b, _kernel_params(alpha, gain, clamp), act=act)


def _kernel_params(alpha, gain, clamp):
    """The kernels' float64 [alpha, gain, clamp] input; clamp -1 for none."""
    clamp = -1.0 if clamp is None else float(clamp)
    # tf.nn.leaky_relu (the reference) holds alpha as a float32 attribute, in float64 too.
    alpha = float(np.float32(alpha))
    return tf.constant([alpha, float(gain), clamp], tf.float64)


def _sum_to_bias(dx, b):
    if b.shape[0] == 0:
        return tf.zeros_like(b)
    return tf.reduce_sum(tf.reshape(dx, [-1, tf.shape(dx)[-1]]), axis=0)


def _deriv(dy, x, b, params, act, order):
    """dy * gain * act^(order)(x + b) * clamp mask; differentiable in dy, x and b."""
    return custom_ops.library().sg2_fused_bias_act_deriv(dy, x, b, params, act=act, order=order)


# The kernels' gradients are registered by op type, not wrapped in tf.custom_gradient: the tape then
# records the op itself, where a custom gradient adds an IdentityN of every input and, on the way
# back, a zero tensor for each of them -- a large share of the traced training step's graph.

def _act_of(op):
    act = op.get_attr("act")
    return act.decode() if isinstance(act, bytes) else act


@tf.RegisterGradient("Sg2FusedBiasAct")
def _fused_bias_act_grad(op, dy):
    x, b, params = op.inputs
    act = _act_of(op)
    if implementation.cpu_only_kernel_fits(x.dtype):   # Sg2FusedBiasActGrad: one pass
        dx, db = custom_ops.library().sg2_fused_bias_act_grad(dy, x, b, params, act=act)
        return dx, db, None
    dx = _deriv(dy, x, b, params, act, order=1)
    return dx, _sum_to_bias(dx, b), None


@tf.RegisterGradient("Sg2FusedBiasActGrad")
def _fused_bias_act_grad_grad(op, g_dx, g_db):
    dy, x, b, params = op.inputs
    # db is dx summed over rows: its upstream gradient reaches every row of dx.
    g = tf.zeros_like(op.outputs[0]) if g_dx is None else g_dx
    if g_db is not None and b.shape[0] != 0:
        g = g + g_db
    return (*_deriv_backward(g, dy, x, b, params, _act_of(op), order=1), None)


@tf.RegisterGradient("Sg2FusedBiasActDeriv")
def _fused_bias_act_deriv_grad(op, g):
    dy, x, b, params = op.inputs
    return (*_deriv_backward(g, dy, x, b, params, _act_of(op), op.get_attr("order")), None)


def _deriv_backward(g, dy, x, b, params, act, order):
    """The gradients of _deriv(dy, x, b, order) with respect to (dy, x, b), given g upstream."""
    d_dy = _deriv(g, x, b, params, act, order)
    if act in PIECEWISE_LINEAR:   # act'' = 0: nothing to compute (None: no gradient)
        return d_dy, None, None
    if order >= 3:      # the kernel stops at the third derivative
        raise custom_ops.CustomOpsError("FusedBiasAct: derivatives beyond the third are not "
                                        "implemented in the kernel; use impl='ref'")
    d_x = _deriv(g * dy, x, b, params, act, order + 1)
    return d_dy, d_x, _sum_to_bias(d_x, b)
