"""Bias + activation + gain (+ clamp), the epilogue of every StyleGAN2 layer.

Reference implementation in plain TensorFlow ops. Default gains are the official
ones: sqrt(2) for relu / lrelu / swish (He-style variance preservation), 1 for the
rest; lrelu uses alpha 0.2.
"""

import math
from dataclasses import dataclass
from typing import Callable

import tensorflow as tf


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


def fused_bias_act(x, b=None, axis=-1, act="linear", alpha=None, gain=None, clamp=None):
    """act(x + b) * gain, optionally clamped to [-clamp, clamp].

    Args:
      x: tensor of any rank.
      b: optional bias vector, broadcast along `axis` (channels; -1 for NHWC).
      act: one of ACTIVATIONS.
      alpha: negative slope for lrelu (default 0.2).
      gain: output scale (default: the activation's official gain).
      clamp: optional symmetric clamp of the output (fp16 training).
    """
    spec = _lookup(act)
    alpha = spec.def_alpha if alpha is None else float(alpha)
    gain = spec.def_gain if gain is None else float(gain)
    x = tf.convert_to_tensor(x)
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
