"""Modulated convolution and the synthesis-network layers built on it.

Paper, Section 2.2 (weights w, style s, output channel j, input channel i, tap k):
  Eq. 1  modulation    w'_ijk  = s_i * w_ijk
  Eq. 3  demodulation  sigma_j = sqrt(sum_{i,k} w'_ijk^2 + eps),  eps = 1e-8
  Eq. 2                w''_ijk = w'_ijk / sigma_j
with style s = affine(w) + 1 (the affine layer's bias starts at 0, so styles start at 1).

Two equivalent implementations:
  fused      one grouped convolution with a per-sample kernel (the batch becomes the
             groups) -- what NVIDIA's TF1 code does by default;
  non-fused  scale the activations by s, convolve with the shared kernel, scale the
             outputs by 1/sigma -- the same arithmetic, reordered.
Which one runs is decided in one place, `use_fused_form`: by default (None) fused on
GPUs and non-fused on CPUs, where it is both faster and always differentiable (TF's CPU
kernels have grouped-convolution gradients only with oneDNN on; see ops/capabilities.py).

Float16 activations (mixed precision): styles, modulation and demodulation stay in
float32 and are cast only where they meet the activations. With demodulation the
kernel and styles are first scaled to max-abs 1 (the demodulation cancels any such
scale), which keeps the un-demodulated float16 conv outputs far from overflow.
"""

import math

import keras
import tensorflow as tf

from ..ops import conv2d, fused_bias_act, stateless_random, upsample_conv_2d
from ..ops.scale_channels import scale_channels
from ..ops.synthesis_epilogue import synthesis_epilogue
from ..ops.capabilities import cpu_grouped_conv_gradient
from ..ops.capabilities import runs_on_cpu as _runs_on_cpu
from .equalized import EqualizedDense
from .misc import at_least_float32
from ..errors import UserError

DEMODULATION_EPS = 1e-8


class ModulatedConvFormError(UserError, RuntimeError):
    """The fused modulated convolution was forced where its gradient cannot be computed."""

    ag_pass_through = True  # raised as it is from tf.function tracing (not wrapped by AutoGraph)


def use_fused_form(fused, x):
    """The one place that picks the modulated-convolution form for activations `x`.

    fused: None (automatic) = fused on a GPU, non-fused on a CPU; True / False forces it.
    The grouped (fused) form needs a static batch and float32/16, so it is never used
    for float64 or an unknown batch size, whatever is asked."""
    if x.dtype == tf.float64 or x.shape[0] is None:
        return False
    if fused is None:
        return not _runs_on_cpu(x)
    return bool(fused)


def _no_gradient_guard(y, dtype):
    """Identity on the fused conv's output `y` whose gradient is one clear error, raised before
    backpropagation reaches a grouped-convolution kernel that cannot run: used when the fused
    form is forced on a CPU whose kernels cannot differentiate it."""

    @tf.custom_gradient
    def guard(y):
        def grad(dy):
            raise ModulatedConvFormError(
                f"fused_modconv=True: this TensorFlow cannot differentiate the fused (grouped) modulated "
                f"convolution on the CPU in {dtype.name} (grouped-convolution gradients exist only with oneDNN "
                f"on: by default on AVX-512-class CPUs, or with TF_ENABLE_ONEDNN_OPTS=1 for float32). "
                f"Leave fused_modconv at None (automatic: non-fused on CPUs) or set it to False; both forms "
                f"give the same numbers.")
        return tf.identity(y), grad
    return guard(y)


def modulated_conv2d(x, weight, styles, demodulate=True, up=False, fused=None, resample_kernel=(1, 3, 3, 1),
                     defer_demodulation=False):
    """Modulated 'SAME' convolution of NHWC `x`.

    Args:
      x:       [N, H, W, I] activations.
      weight:  [k, k, I, O] kernel, already multiplied by its equalized-lr gain.
      styles:  [N, I] per-sample input-channel scales s.
      up:      2x upsampling through `upsample_conv_2d` (FIR `resample_kernel`).
      fused:   None = automatic (fused on GPUs, non-fused on CPUs), True / False
               forces the grouped-convolution form or the shared-kernel one; see
               `use_fused_form`. Forced on a CPU that cannot differentiate grouped
               convolutions, the forward pass works and a gradient raises
               `ModulatedConvFormError`.
      defer_demodulation: return the non-fused form's output before its demodulation, with the
               coefficients, for a caller that applies them in its own epilogue (SynthesisLayer).
    Returns:
      [N, H', W', O] in x's dtype; with defer_demodulation, (that output, dcoefs [N, O] in float32
      or wider) where dcoefs is None when there is nothing left to apply.
    """
    y, dcoefs = _modulated_conv2d(x, weight, styles, demodulate, up, fused, resample_kernel)
    if defer_demodulation:
        return y, dcoefs
    return y if dcoefs is None else scale_channels(y, dcoefs)                     # Eq. 2


def _modulated_conv2d(x, weight, styles, demodulate, up, fused, resample_kernel):
    """(output, dcoefs still to apply or None)."""
    # Styles/weights (and so modulation, demodulation) in >= float32 even for float16/bfloat16 x.
    param_dtype = at_least_float32(x.dtype)
    styles = tf.cast(styles, param_dtype)
    weight = tf.cast(weight, param_dtype)
    ksize, _, in_ch, out_ch = weight.shape
    batch = x.shape[0]
    half = x.dtype == tf.float16  # (bfloat16 has float32's range: no overflow to guard against)
    if half and demodulate:
        # Pre-normalize against float16 overflow: kernel max-abs per output channel to
        # 1/sqrt(fan_in), styles max-abs per sample to 1; demodulation undoes both.
        weight = weight * (1.0 / math.sqrt(in_ch * ksize * ksize) /
                           tf.reduce_max(tf.abs(weight), axis=[0, 1, 2], keepdims=True))
        styles = styles / tf.reduce_max(tf.abs(styles), axis=1, keepdims=True)
    fused = use_fused_form(fused, x)

    if ksize == 1 and not up:
        # 1x1 (ToRGB): modulate the per-sample [I, O] matrices (tiny) and use one batched
        # matmul; same arithmetic as either form, without a pass over x for the styles.
        w = tf.reshape(weight, [1, in_ch, out_ch]) * tf.reshape(styles, [-1, in_ch, 1])  # Eq. 1  [N, I, O]
        if demodulate:
            w = w * tf.math.rsqrt(tf.reduce_sum(tf.square(w), axis=1, keepdims=True) + DEMODULATION_EPS)
        height, width = x.shape[1], x.shape[2]
        if height is None or width is None:
            height, width = tf.shape(x)[1], tf.shape(x)[2]
        y = tf.matmul(tf.reshape(x, [-1, height * width, in_ch]), tf.cast(w, x.dtype))
        return tf.reshape(y, [-1, height, width, out_ch]), None

    if not fused:
        dcoefs = None
        if demodulate:
            # sum_{i,k} (s_i w_ijk)^2 = sum_i s_i^2 * sum_k w_ijk^2
            sigma_sq = tf.matmul(tf.square(styles), tf.reduce_sum(tf.square(weight), axis=[0, 1]))
            dcoefs = tf.math.rsqrt(sigma_sq + DEMODULATION_EPS)                   # Eq. 3  [N, O]
        x = scale_channels(x, styles)                                              # Eq. 1
        weight = tf.cast(weight, x.dtype)
        if up:
            x = upsample_conv_2d(x, weight, k=resample_kernel)
        else:
            x = conv2d(x, weight, padding="SAME")
        return x, dcoefs                                                           # Eq. 2 still to apply

    w = weight[tf.newaxis] * styles[:, tf.newaxis, tf.newaxis, :, tf.newaxis]    # Eq. 1  [N, k, k, I, O]
    if demodulate:
        dcoefs = tf.math.rsqrt(tf.reduce_sum(tf.square(w), axis=[1, 2, 3]) + DEMODULATION_EPS)  # Eq. 3
        w = w * dcoefs[:, tf.newaxis, tf.newaxis, tf.newaxis, :]                 # Eq. 2
    # Batch -> groups: x [1, H, W, N*I], kernel [k, k, I, N*O].
    height, width = x.shape[1], x.shape[2]
    x = tf.reshape(tf.transpose(x, [1, 2, 0, 3]), [1, height, width, batch * in_ch])
    w = tf.cast(tf.reshape(tf.transpose(w, [1, 2, 3, 0, 4]), [ksize, ksize, in_ch, batch * out_ch]), x.dtype)
    if up:
        x = upsample_conv_2d(x, w, k=resample_kernel, groups=batch)
    else:
        x = tf.nn.conv2d(x, w, strides=1, padding="SAME")
    if _runs_on_cpu(x) and not cpu_grouped_conv_gradient(x.dtype):
        x = _no_gradient_guard(x, x.dtype)
    x = tf.reshape(x, [x.shape[1], x.shape[2], batch, out_ch])
    return tf.transpose(x, [2, 0, 1, 3]), None


class ModulatedConv2d(keras.layers.Layer):
    """Affine style projection + modulated convolution (no bias / activation).

    Weights, named as in NVIDIA's pickles: `weight` [k, k, I, O], `mod_weight`
    [w_dim, I], `mod_bias` [I] (the +1 is added at run time)."""

    def __init__(self, in_channels, out_channels, kernel_size, w_dim, demodulate=True, up=False,
                 resample_kernel=(1, 3, 3, 1), fused_modconv=None, **kwargs):
        super().__init__(autocast=False, **kwargs)  # float16 inputs stay float16 (see equalized.py)
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.kernel_size = int(kernel_size)
        self.w_dim = int(w_dim)
        self.demodulate = bool(demodulate)
        self.up = bool(up)
        self.resample_kernel = tuple(resample_kernel) if resample_kernel is not None else None
        self.fused_modconv = None if fused_modconv is None else bool(fused_modconv)
        self.affine = EqualizedDense(self.w_dim, self.in_channels, name="affine")
        self.weight = self.add_weight(
            name="weight", shape=(self.kernel_size, self.kernel_size, self.in_channels, self.out_channels),
            initializer=keras.initializers.RandomNormal(0.0, 1.0))
        self.weight_gain = 1.0 / math.sqrt(self.in_channels * self.kernel_size ** 2)
        # Every weight exists now: no symbolic build pass on the first call.
        self.built = True

    def styles(self, w):
        return self.affine(w) + 1.0  # s = A(w) + 1

    def call(self, x, w, fused_modconv=None, defer_demodulation=False):
        """defer_demodulation: return (output, dcoefs or None), as modulated_conv2d does."""
        fused = self.fused_modconv if fused_modconv is None else fused_modconv
        return modulated_conv2d(x, self.weight * self.weight_gain, self.styles(w), demodulate=self.demodulate,
                                up=self.up, fused=fused, resample_kernel=self.resample_kernel,
                                defer_demodulation=defer_demodulation)

    def get_config(self):
        return {**super().get_config(), "in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": self.kernel_size, "w_dim": self.w_dim, "demodulate": self.demodulate,
                "up": self.up, "resample_kernel": self.resample_kernel, "fused_modconv": self.fused_modconv}


NOISE_MODES = ("const", "random", "none")


def check_noise_mode(noise_mode):
    if noise_mode not in NOISE_MODES:
        raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")


def noise_input(noise_mode, batch, noise_const, noise_seed=None):
    """The per-pixel noise of a synthesis layer, [batch or 1, R, R, 1] in noise_const's dtype:
    N(0, 1) per sample ('random'; stateless when noise_seed, int32 [2], is given) or the stored
    map noise_const [R, R] ('const'). Not called for 'none'."""
    if noise_mode == "random":
        shape = [batch, noise_const.shape[0], noise_const.shape[1], 1]
        if noise_seed is None:
            return tf.random.normal(shape, dtype=noise_const.dtype)
        return stateless_random.normal(shape, noise_seed, dtype=noise_const.dtype)
    return noise_const[tf.newaxis, :, :, tf.newaxis]


class SynthesisLayer(keras.layers.Layer):
    """Modulated 3x3 conv (optionally 2x up) + per-pixel noise + bias + lrelu.

    Noise modes: 'random' draws N(0, 1) per sample; 'const' uses the stored map
    `noise_const` (NVIDIA's `noise<i>`, TF1 randomize_noise=False); 'none' adds nothing.
    """

    def __init__(self, in_channels, out_channels, w_dim, resolution, kernel_size=3, up=False,
                 use_noise=True, activation="lrelu", resample_kernel=(1, 3, 3, 1), fused_modconv=None,
                 conv_clamp=None, **kwargs):
        super().__init__(autocast=False, **kwargs)  # float16 inputs stay float16 (see equalized.py)
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.w_dim = int(w_dim)
        self.resolution = int(resolution)
        self.kernel_size = int(kernel_size)
        self.up = bool(up)
        self.use_noise = bool(use_noise)
        self.activation = activation
        self.resample_kernel = tuple(resample_kernel) if resample_kernel is not None else None
        self.fused_modconv = None if fused_modconv is None else bool(fused_modconv)
        self.conv_clamp = conv_clamp
        self.conv = ModulatedConv2d(self.in_channels, self.out_channels, self.kernel_size, self.w_dim, up=self.up,
                                    resample_kernel=self.resample_kernel, fused_modconv=self.fused_modconv,
                                    name="conv")
        if self.use_noise:
            self.noise_const = self.add_weight(name="noise_const", shape=(self.resolution, self.resolution),
                                               initializer=keras.initializers.RandomNormal(0.0, 1.0),
                                               trainable=False)
            self.noise_strength = self.add_weight(name="noise_strength", shape=(), initializer="zeros")
        self.bias = self.add_weight(name="bias", shape=(self.out_channels,), initializer="zeros")
        # Every weight exists now: no symbolic build pass on the first call.
        self.built = True

    def call(self, x, w, noise_mode="random", fused_modconv=None, noise_seed=None):
        """noise_seed: optional int32 [2] seed for reproducible 'random' noise (stateless RNG)."""
        check_noise_mode(noise_mode)
        x, dcoefs = self.conv(x, w, fused_modconv=fused_modconv, defer_demodulation=True)
        noise = None
        if self.use_noise and noise_mode != "none":
            # Drawn in the variables' dtype (float32), not x's: float16 blocks see the same noise.
            noise = noise_input(noise_mode, tf.shape(x)[0], self.noise_const, noise_seed) * self.noise_strength
        # Demodulation (Eq. 2, when the convolution left it), noise, bias and activation in one epilogue.
        return synthesis_epilogue(x, dcoefs, noise, self.bias, act=self.activation, clamp=self.conv_clamp)

    def get_config(self):
        return {**super().get_config(), "in_channels": self.in_channels, "out_channels": self.out_channels,
                "w_dim": self.w_dim, "resolution": self.resolution, "kernel_size": self.kernel_size,
                "up": self.up, "use_noise": self.use_noise, "activation": self.activation,
                "resample_kernel": self.resample_kernel, "fused_modconv": self.fused_modconv,
                "conv_clamp": self.conv_clamp}


class ToRGB(keras.layers.Layer):
    """1x1 modulated conv without demodulation, + bias (linear)."""

    def __init__(self, in_channels, out_channels, w_dim, fused_modconv=None, conv_clamp=None, **kwargs):
        super().__init__(autocast=False, **kwargs)  # float16 inputs stay float16 (see equalized.py)
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.w_dim = int(w_dim)
        self.fused_modconv = None if fused_modconv is None else bool(fused_modconv)
        self.conv_clamp = conv_clamp
        self.conv = ModulatedConv2d(self.in_channels, self.out_channels, 1, self.w_dim, demodulate=False,
                                    fused_modconv=self.fused_modconv, name="conv")
        self.bias = self.add_weight(name="bias", shape=(self.out_channels,), initializer="zeros")
        # Every weight exists now: no symbolic build pass on the first call.
        self.built = True

    def call(self, x, w, fused_modconv=None):
        x = self.conv(x, w, fused_modconv=fused_modconv)
        return fused_bias_act(x, self.bias, clamp=self.conv_clamp)

    def get_config(self):
        return {**super().get_config(), "in_channels": self.in_channels, "out_channels": self.out_channels,
                "w_dim": self.w_dim, "fused_modconv": self.fused_modconv, "conv_clamp": self.conv_clamp}
