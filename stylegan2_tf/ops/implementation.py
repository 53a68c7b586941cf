"""Which implementation an op call uses: the C++ kernels (custom_ops.py) or the pure-TensorFlow
reference ops.

Selection (`impl` argument of the ops, else `$STYLEGAN2_TF_OPS`, else DEFAULT_IMPL -- `auto` --
on a CPU-only machine and DEFAULT_IMPL_GPU -- `ref` -- where a GPU is visible):
  ref     the pure-TensorFlow reference ops (stylegan2_tf/ops/*.py) -- always available;
  custom  the kernels; an error if they cannot be built or do not support the call;
  auto    the kernels where they are built and support the device and dtype, else the reference.
`use_implementation('ref')` forces a choice for a block of code (SavedModel export uses it, so
that an exported model never needs the op library).
"""

import contextlib
import logging
import os
import threading

import tensorflow as tf

from .custom_ops import NOT_BUILT, CustomOpsError, gpus_visible, gpu_unavailable_reason, library, unavailable_reason

IMPL_ENV = "STYLEGAN2_TF_OPS"
IMPLS = ("auto", "ref", "custom")
CPU_DTYPES = (tf.bfloat16, tf.float32, tf.float64)   # bfloat16: computed in float32
GPU_DTYPES = (tf.float16, tf.float32, tf.float64)
# The CPU-only kernels (the one-pass gradients Sg2FusedBiasActGrad and Sg2ScaleChannelsGrad); where
# they do not fit, the ops they speed up take the path they had before, with the same numbers.
CPU_ONLY_DTYPES = (tf.float32, tf.float64)

log = logging.getLogger(__name__)
_warned = set()
_forced = threading.local()


@contextlib.contextmanager
def use_implementation(impl):
    """Force `impl` for every op call in this thread within the block."""
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    previous = getattr(_forced, "impl", None)
    _forced.impl = impl
    try:
        yield
    finally:
        _forced.impl = previous


# The default on a CPU-only machine: the kernels, which the whole test suite runs on and which make
# a training step faster there (benchmarks/README.md). With a GPU the CUDA kernels are opt-in
# (impl=, or $STYLEGAN2_TF_OPS=auto) until they have been measured on one.
DEFAULT_IMPL = "auto"
DEFAULT_IMPL_GPU = "ref"


def forced():
    """The implementation `use_implementation` forces here, or None outside such a block."""
    return getattr(_forced, "impl", None)


def requested(impl=None):
    impl = forced() or impl or os.environ.get(IMPL_ENV)
    if not impl:
        impl = DEFAULT_IMPL_GPU if gpus_visible() else DEFAULT_IMPL
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS} (argument or ${IMPL_ENV}), got {impl!r}")
    return impl


def _in_xla_function():
    """True while tracing a function compiled with XLA (jit_compile=True), which has no kernel
    for these ops."""
    try:
        from tensorflow.python.ops import control_flow_util
        return bool(control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph()))
    except (ImportError, AttributeError):
        return False


def _warn_once(reason):
    if reason not in _warned:
        _warned.add(reason)
        log.warning("stylegan2_tf custom ops: using the reference ops (%s)", reason)


def choose(op_name, dtype, impl=None):
    """-> 'ref' or 'custom' for one call of `op_name` on `dtype` (a tf.DType)."""
    impl = requested(impl)
    if impl == "ref":
        return "ref"
    reason = None
    if _in_xla_function():
        reason = f"{op_name}: XLA (jit_compile) has no kernel for the custom ops"
    elif gpus_visible():
        # A GPU machine places the op on the GPU: the GPU kernel must exist.
        if dtype not in GPU_DTYPES:
            reason = f"{op_name}: the GPU kernel supports float16, float32 and float64, not {dtype.name}"
        elif gpu_unavailable_reason():
            reason = f"{op_name}: {gpu_unavailable_reason()}"
    elif dtype not in CPU_DTYPES:
        reason = f"{op_name}: the CPU kernel supports bfloat16, float32 and float64, not {dtype.name}"
    elif library() is None:
        reason = unavailable_reason()
    if reason is None:
        return "custom"
    if impl == "custom":
        raise CustomOpsError(reason)
    if reason != NOT_BUILT:  # not building them was this process's choice: nothing to report
        _warn_once(reason)
    return "ref"


def cpu_only_kernel_fits(dtype):
    """Whether a CPU-only kernel can run an op on `dtype` here: float32/64, on a machine where no
    GPU is visible (with one, the ops are placed on the GPU)."""
    return dtype in CPU_ONLY_DTYPES and not gpus_visible()
