"""ONNX: the generator for onnxruntime and the runtimes that read ONNX, as `<part>.onnx`.

Converted by tf2onnx (the `export` extra) from the traced function, opset 17. Input and output
names are those of `signatures.py`; N is a free dimension."""

import os

from .errors import ExportError
from .requirements import require

OPSET = 17


def write_onnx(module, folder):
    tf2onnx = require("tf2onnx", "onnx export")
    onnx = require("onnx", "onnx export")
    path = os.path.join(folder, module.part + ".onnx")
    from ..ops.implementation import use_implementation
    with use_implementation("ref"):
        model, _ = tf2onnx.convert.from_function(module.serve, input_signature=module.inputs, opset=OPSET,
                                                 output_path=path)
    # tf2onnx leaves an op it cannot map in the graph under its TensorFlow name, and only logs it.
    unknown = sorted({n.op_type for n in model.graph.node
                      if n.domain in ("", "ai.onnx") and not onnx.defs.has(n.op_type)})
    if unknown:
        os.remove(path)
        raise ExportError(f"onnx: tf2onnx could not convert op(s) {', '.join(unknown)} of this network")
    return path
