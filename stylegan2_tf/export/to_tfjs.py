"""TensorFlow.js graph model: the generator in a browser, as model.json + weight shards + index.html.

The `tensorflowjs` converter package pins an older TensorFlow than this project's, so the format is
written here from the frozen GraphDef: model.json holds the graph in protobuf's JSON form (the
"graph-model" format), every Const's value moves to the little-endian weight shards listed in its
`weightsManifest`, int64 constants become int32 (TF.js has no int64). Every op is checked against the
ops the vendored TF.js executes before anything is written. TF.js has no uint8 tensors: `images` arrives in
JavaScript as int32 holding 0..255.

Beside the model: index.html + app.js (the page, `page/`) and tfjs/ (the TensorFlow.js bundle and its
licence, vendored from the npm registry: `page/vendor/README.md`).
"""

import functools
import json
import os
import re
import shutil

import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.framework import node_def_pb2, types_pb2

from .errors import ExportError

PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "page")
SHARD_BYTES = 4 << 20  # the converter's default shard size
BUNDLE = os.path.join(PAGE, "vendor", "tf.es2017.min.js")
# Ops that need the model's asynchronous executor (control flow, tensor lists, tables); the page runs
# the graph synchronously, and the generator has none of them.
ASYNC_OPS = ("If", "StatelessIf", "While", "StatelessWhile", "Switch", "Merge", "Enter", "Exit",
             "NextIteration", "LoopCond", "TensorArray", "TensorList", "HashTable", "LookupTable", "InitializeTable")


@functools.cache
def tfjs_ops():
    """The TF ops the vendored TensorFlow.js executes: its op mappers name them (`tfOpName:"Conv2D"`)."""
    with open(BUNDLE, encoding="utf-8") as f:
        names = set(re.findall(r'tfOpName:"(\w+)"', f.read()))
    return frozenset(n for n in names if not n.startswith(ASYNC_OPS))


DTYPES = {tf.float32: "float32", tf.int32: "int32", tf.int64: "int32", tf.bool: "bool"}


def graph_model(graph_def, output_tensor, output_name, inputs, output_spec):
    """(model.json dict without paths, weight arrays): the frozen graph in TF.js's graph-model form."""
    nodes, weights = [], []
    for node in graph_def.node:
        if node.op == "NoOp":
            continue
        if node.op not in tfjs_ops():
            raise ExportError(f"tfjs: op {node.op} (node {node.name}) is not one TensorFlow.js executes "
                              f"synchronously; this network cannot be exported to tfjs")
        node = node_def_pb2.NodeDef.FromString(node.SerializeToString())
        data_inputs = [i for i in node.input if not i.startswith("^")]  # control edges mean nothing here
        del node.input[:]
        node.input.extend(data_inputs)
        if node.op == "Const":
            tensor = node.attr["value"].tensor
            dtype = tf.as_dtype(tensor.dtype)
            if dtype not in DTYPES:
                raise ExportError(f"tfjs: constant {node.name} is {dtype.name}, which TensorFlow.js cannot hold")
            value = tf.make_ndarray(tensor).astype(DTYPES[dtype])
            if dtype == tf.int64:
                if value.size and np.abs(tf.make_ndarray(tensor)).max() >= 2 ** 31:
                    raise ExportError(f"tfjs: int64 constant {node.name} does not fit int32")
                node.attr["dtype"].type = tf.int32.as_datatype_enum
            weights.append((node.name, value))
            node.attr["value"].tensor.Clear()  # the value lives in the shards
            node.attr["value"].tensor.dtype = tf.as_dtype(DTYPES[dtype]).as_datatype_enum
            node.attr["value"].tensor.tensor_shape.CopyFrom(tf.TensorShape(value.shape).as_proto())
        nodes.append(node)
    out = node_def_pb2.NodeDef()
    out.name, out.op = output_name, "Identity"
    out.input.append(output_tensor)
    out.attr["T"].type = output_spec.dtype.as_datatype_enum
    nodes.append(out)
    topology = {"node": [json_format.MessageToDict(n) for n in nodes],
                "versions": json_format.MessageToDict(graph_def.versions)}

    def sig(spec, name):
        dims = [{"size": str(-1 if d is None else d)} for d in spec.shape]
        return {"name": name + ":0", "dtype": types_pb2.DataType.Name(spec.dtype.as_datatype_enum),
                "tensorShape": {"dim": dims} if dims else {}}
    signature = {"inputs": {s.name: sig(s, s.name) for s in inputs},
                 "outputs": {output_name: sig(output_spec, output_name)}}
    model = {"format": "graph-model", "generatedBy": tf.__version__, "convertedBy": "stylegan2-tf",
             "modelTopology": topology, "signature": signature}
    return model, weights


def write_shards(weights, folder):
    """The weights concatenated in manifest order, cut into SHARD_BYTES files."""
    blob = b"".join(np.ascontiguousarray(v).astype(v.dtype.newbyteorder("<")).tobytes() for _, v in weights)
    count = max(1, -(-len(blob) // SHARD_BYTES))
    paths = []
    for i in range(count):
        paths.append(f"group1-shard{i + 1}of{count}.bin")
        with open(os.path.join(folder, paths[-1]), "wb") as f:
            f.write(blob[i * SHARD_BYTES:(i + 1) * SHARD_BYTES])
    manifest = [{"name": name, "shape": list(v.shape), "dtype": str(v.dtype) if v.dtype != np.bool_ else "bool"}
                for name, v in weights]
    return [{"paths": paths, "weights": manifest}]


def write_tfjs(module, folder):
    _, frozen = module.frozen_function()
    graph_def = frozen.graph.as_graph_def()
    if graph_def.library.function:
        raise ExportError("tfjs: the traced graph calls functions, which TensorFlow.js graph models cannot hold")
    placeholders = {n.name for n in graph_def.node if n.op == "Placeholder"}
    missing = {s.name for s in module.inputs} - placeholders
    if missing:
        raise ExportError(f"tfjs: the traced graph has no input(s) {', '.join(sorted(missing))}")
    output_tensor = frozen.outputs[0].name.removesuffix(":0")
    model, weights = graph_model(graph_def, output_tensor, module.output_name, module.inputs, module.output)
    model["weightsManifest"] = write_shards(weights, folder)
    with open(os.path.join(folder, "model.json"), "w") as f:
        json.dump(model, f, separators=(",", ":"))
    for name in ("index.html", "app.js"):
        shutil.copy(os.path.join(PAGE, name), os.path.join(folder, name))
    shutil.copytree(os.path.join(PAGE, "vendor"), os.path.join(folder, "tfjs"),
                    ignore=shutil.ignore_patterns("README.md", "update.py", "__pycache__"))
    return os.path.join(folder, "model.json")
