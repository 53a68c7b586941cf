"""Exports of a generator for other runtimes: SavedModel, TFLite, ONNX and TensorFlow.js.

`export_generator(G, outdir, fmt, part, ...)` writes one part of G (`signatures.py`: generator,
mapping or synthesis, all with the same named inputs and outputs) in one format (`to_*.py`), runs it
in that format's runtime (`runtimes.py`) and compares it with the Keras network before the folder
appears (`folder.py`)."""

from .errors import ExportError
from .exporter import FORMATS, ExportResult, export_generator
from .runtimes import run_export
from .signatures import PARTS, ServingModule
from .to_tflite import PRECISIONS

__all__ = ["ExportError", "ExportResult", "FORMATS", "PARTS", "PRECISIONS", "ServingModule", "export_generator",
           "run_export"]
