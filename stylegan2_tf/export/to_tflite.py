"""TFLite (LiteRT): the generator for phones and embedded devices, as `<part>.tflite`.

Converted from the frozen function (variables folded into constants): converting the SavedModel
leaves resource reads the converter cannot lower. `float16` stores the weights in half precision
(half the file); LiteRT's CPU kernels dequantize them and compute in float32."""

import os
import re

import tensorflow as tf

from .errors import ExportError
from .logs import quiet_tensorflow

PRECISIONS = ("float32", "float16")


def write_tflite(module, folder, precision="float32"):
    if precision not in PRECISIONS:
        raise ExportError(f"--precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    fn, _ = module.frozen_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn], module)
    if precision == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    try:
        with quiet_tensorflow():  # the float16 path saves and reloads a temporary SavedModel
            flatbuffer = converter.convert()
    except Exception as e:  # the converter names the ops it could not lower in its message
        ops = sorted(set(re.findall(r"'tf\.(\w+)'", str(e))))
        raise ExportError(f"tflite: the converter cannot represent op(s) {', '.join(ops) or '?'} of this network "
                          f"({str(e).splitlines()[0][:200]})") from None
    path = os.path.join(folder, module.part + ".tflite")
    with open(path, "wb") as f:
        f.write(flatbuffer)
    return path
