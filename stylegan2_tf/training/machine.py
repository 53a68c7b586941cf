"""What the machine allows and what the log says about it: TensorFlow's version, the GPUs,
oneDNN, and the precision settings a CPU cannot run well (or at all)."""

import tensorflow as tf

from ..ops.capabilities import cpu_grouped_conv_gradient, onednn_bfloat16, onednn_enabled
from .errors import TrainingError


def has_gpu():
    return bool(tf.config.list_logical_devices("GPU"))


def check_modconv_form(opts):
    """--fused-modconv forced on CPUs whose kernels cannot differentiate grouped convolutions
    is refused before anything is written (automatic never picks it there)."""
    if not opts.fused_modconv or has_gpu():
        return
    dtypes = [tf.float32] + ([tf.as_dtype(opts.mixed_dtype)] if opts.fp16_res > 0 else [])
    missing = [d.name for d in dtypes if not cpu_grouped_conv_gradient(d)]
    if missing:
        raise TrainingError(
            f"--fused-modconv: this TensorFlow cannot differentiate grouped convolutions on the CPU in "
            f"{' and '.join(missing)} (oneDNN is off, or lacks that dtype on this CPU); leave the option out "
            f"(automatic: non-fused on CPUs) or pass --nofused-modconv. Both forms give the same numbers.")


def machine_line():
    """TensorFlow's version, the devices and whether its oneDNN CPU kernels are on: what a speed
    figure or a rounding difference in the log depends on."""
    onednn = {True: "on", False: "off", None: "unknown"}[onednn_enabled()]
    gpus = len(tf.config.list_logical_devices("GPU"))
    return f"TensorFlow {tf.__version__}, {gpus} GPU(s), oneDNN CPU kernels {onednn}"


def precision_warning(opts):
    """bfloat16 blocks on a CPU where TensorFlow does not run bfloat16 through oneDNN (oneDNN
    off, or a CPU without AVX-512 / AVX-NE-CONVERT) run its emulated bfloat16 kernels, measured
    12-15x slower than float32 (benchmarks/README.md): said in the log, not refused (the
    numbers are right). -> the warning, or None."""
    if opts.fp16_res > 0 and opts.mixed_dtype == "bfloat16" and onednn_bfloat16() is False and not has_gpu():
        return ("warning: --mixed-dtype bfloat16 on a CPU where TensorFlow has no oneDNN bfloat16 kernels "
                "(TF_ENABLE_ONEDNN_OPTS=0, or a CPU without AVX-512): the emulated bfloat16 kernels run "
                "12-15x slower than float32 here; leave --fp16-res out for float32")
    return None
