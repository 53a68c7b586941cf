"""Adam with one fused kernel per variable (the update of TF1's AdamOptimizer, which NVIDIA's
training code uses):

  m <- m + (g - m)(1 - beta1),  v <- v + (g^2 - v)(1 - beta2)
  var <- var - alpha m / (sqrt(v) + eps),  alpha = lr sqrt(1 - beta2^t) / (1 - beta1^t)

Keras's Adam formula (exact in float64, where Keras rounds the betas to float32 for beta^t), with
its variables and checkpoint layout. Keras builds the
update from about 40 graph nodes per variable, and its step-dependent scalars again for every
variable; here the scalars are computed once per update and each variable gets one
`ResourceApplyAdam` op. With a few hundred variables per network that removes thousands of
nodes from every traced training step (shorter tracing) and as many small ops from every step.
"""

import weakref

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="stylegan2_tf")
class FusedAdam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` (no amsgrad) whose per-variable
    update is TF's fused Adam kernel."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.amsgrad:
            raise ValueError("FusedAdam: amsgrad is not supported")
        # (graph, dtype) -> (learning-rate tensor, beta1^t, beta2^t, lr, beta1, beta2, eps), once
        # per traced update (the learning rate tensor identifies the update).
        self._scalars = weakref.WeakKeyDictionary()

    def _update_scalars(self, learning_rate, dtype):
        per_graph = {}
        if not tf.executing_eagerly():  # in a graph: once per traced update
            per_graph = self._scalars.setdefault(tf.compat.v1.get_default_graph(), {})
        cached = per_graph.get(dtype)
        if cached is not None and cached[0] is learning_rate:
            return cached[1:]
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.constant(self.beta_1, dtype), tf.constant(self.beta_2, dtype)
        values = (tf.pow(beta_1, step), tf.pow(beta_2, step), tf.cast(learning_rate, dtype), beta_1, beta_2,
                  tf.constant(self.epsilon, dtype))
        per_graph[dtype] = (learning_rate,) + values
        return values

    def update_step(self, gradient, variable, learning_rate):
        if isinstance(gradient, tf.IndexedSlices):
            gradient = tf.convert_to_tensor(gradient)
        index = self._get_variable_index(variable)
        m, v = (self._component(s[index], variable) for s in (self._momentums, self._velocities))
        var = variable.value if isinstance(variable, keras.Variable) else variable
        b1p, b2p, lr, b1, b2, eps = self._update_scalars(learning_rate, var.dtype)
        tf.raw_ops.ResourceApplyAdam(var=var.handle, m=m.handle, v=v.handle, beta1_power=b1p, beta2_power=b2p,
                                     lr=lr, beta1=b1, beta2=b2, epsilon=eps,
                                     grad=tf.cast(gradient, var.dtype))

    @staticmethod
    def _component(slot, variable):
        """The slot variable on `variable`'s device (a mirrored slot has one per replica)."""
        slot = slot.value if isinstance(slot, keras.Variable) else slot
        values = getattr(slot, "values", None)
        if values is None:
            return slot
        device = (variable.value if isinstance(variable, keras.Variable) else variable).device
        for component in values:
            if component.device == device:
                return component
        raise RuntimeError(f"FusedAdam: no slot of {slot.name} on {device}")


def lazy_adam_params(lr, beta1, beta2, interval):
    """Lazy regularization (paper App. B): with the regularizer applied every `interval`
    minibatches, the optimizer of that network uses lr * c, beta1^c, beta2^c, c = k/(k+1)."""
    if not interval:
        return lr, beta1, beta2
    c = interval / (interval + 1.0)
    return lr * c, beta1 ** c, beta2 ** c


def reset_optimizer_state(opt):
    """Zero Adam's moments and step count (official reset_optimizer_state, when a growing
    network's layers change); the learning rate and hyper-parameters stay."""
    for v in list(getattr(opt, "_momentums", [])) + list(getattr(opt, "_velocities", [])):
        v.assign(tf.zeros_like(v))
    opt.iterations.assign(0)
