"""What this TensorFlow build can do on this machine, probed once per process.

TensorFlow's CPU kernels compute grouped-convolution gradients only through oneDNN,
which TensorFlow turns on by default only on CPUs with AVX-512-class features (and
which `TF_ENABLE_ONEDNN_OPTS=0` turns off everywhere); without it the forward pass
works but the gradient fails inside the kernel. oneDNN has no float16 convolutions
below AVX-512, so float16 can lack the gradient even where float32 has it. Rather
than guess from CPU names or flags, the probe differentiates one tiny grouped
convolution per dtype and remembers the answer.
"""

import platform
import threading

import tensorflow as tf

_lock = threading.Lock()
_grouped_conv_grad = {}
_cpu_only = None


def cpu_grouped_conv_gradient(dtype=tf.float32):
    """Whether the CPU kernels can differentiate a grouped `tf.nn.conv2d` in `dtype`.

    Safe to call while a `tf.function` is traced or a tape records: the probe runs eagerly
    in a thread of its own (graph contexts and tapes are per thread)."""
    dtype = tf.as_dtype(dtype)
    with _lock:
        if dtype not in _grouped_conv_grad:
            result = []
            thread = threading.Thread(target=lambda: result.append(_probe_grouped_conv_gradient(dtype)))
            thread.start()
            thread.join()
            if not result:
                raise RuntimeError(f"the grouped-convolution gradient probe ({dtype.name}) failed; see the "
                                   f"traceback above")
            _grouped_conv_grad[dtype] = result[0]
        return _grouped_conv_grad[dtype]


def _probe_grouped_conv_gradient(dtype):
    with tf.device("/CPU:0"):
        x = tf.ones([1, 3, 3, 4], dtype)
        w = tf.ones([3, 3, 2, 4], dtype)  # 2 groups of 2 input channels
        try:
            with tf.GradientTape() as tape:
                tape.watch([x, w])
                y = tf.nn.conv2d(x, w, strides=1, padding="SAME")
            dx, dw = tape.gradient(y, [x, w])
            # Every input pixel of the all-ones image feeds 1-4 x 1-4 taps of 2 outputs: finite, > 0.
            return bool(tf.reduce_all(dx > 0).numpy()) and bool(tf.reduce_all(dw > 0).numpy())
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError, tf.errors.NotFoundError):
            return False


def onednn_enabled():
    """Whether TensorFlow's oneDNN CPU kernels are on in this process (TF's own switch:
    default by CPU features, overridden by TF_ENABLE_ONEDNN_OPTS)."""
    try:
        from tensorflow.python.util import _pywrap_util_port
        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        return None


def runs_on_cpu(x):
    """Whether `x` is (or will be, in a graph) computed on a CPU: its device where it has one,
    else whether this process has no GPU."""
    global _cpu_only
    if x.device:
        return "CPU" in x.device.upper()
    if _cpu_only is None:
        _cpu_only = not tf.config.list_logical_devices("GPU")
    return _cpu_only


def cpu_conv_kernels():
    """Which family of CPU convolution kernels TensorFlow runs here, for the rules that pick a
    computation's form by measurement: 'eigen' (oneDNN off), 'onednn-avx2' (oneDNN on, an x86 CPU
    with AVX2 and no AVX-512: oneDNN's AVX2 kernels), 'onednn' (oneDNN on otherwise: AVX-512 or
    another architecture), None where TensorFlow does not say."""
    onednn = onednn_enabled()
    if onednn is None:
        return None
    if not onednn:
        return "eigen"
    flags = cpu_flags() or frozenset()
    return "onednn-avx2" if "avx2" in flags and "avx512f" not in flags else "onednn"


def cpu_flags():
    """The CPU's feature flags as Linux names them (frozenset), or None where unknown."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def onednn_bfloat16():
    """Whether TensorFlow runs bfloat16 convolutions and matrix products through oneDNN here.

    TensorFlow's own rule: oneDNN on and an x86 CPU with AVX512F or AVX-NE-CONVERT. Otherwise
    (False) it falls back to its emulated bfloat16 kernels, measured 12-15x slower than float32.
    None where this cannot be told (no CPU flags, another architecture)."""
    onednn = onednn_enabled()
    if onednn is False:
        return False
    flags = cpu_flags()
    if onednn is None or flags is None or platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return None
    return "avx512f" in flags or "avx_ne_convert" in flags
