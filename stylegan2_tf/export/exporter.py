"""`export_generator`: one part of G written in one format, then run in that format's runtime and
compared with the Keras network before the folder is put in place."""

import dataclasses
import json
import os

import numpy as np

from ..generate import seed_to_z, to_uint8
from .errors import ExportError
from .folder import MARKER, staged_folder
from .runtimes import find_browser, run_export
from .signatures import ServingModule
from .to_onnx import write_onnx
from .to_savedmodel import write_savedmodel
from .to_tfjs import write_tfjs
from .to_tflite import PRECISIONS, write_tflite

# format -> (writer, what runs it)
FORMATS = {
    "savedmodel": (write_savedmodel, "TensorFlow"),
    "tflite": (write_tflite, "LiteRT (ai-edge-litert)"),
    "onnx": (write_onnx, "onnxruntime"),
    "tfjs": (write_tfjs, "TensorFlow.js in headless Chromium"),
}
CHECK_SEEDS = (0, 1, 2, 3)
# float32 exports must reproduce the Keras images within this many grey levels (float rounding can
# move a value across a level boundary), and mapping's w within this fraction of its largest value.
MAX_GREY_LEVELS = 1
MAX_W_RELATIVE = 1e-5


@dataclasses.dataclass
class CheckResult:
    runtime: str
    max_difference: float  # grey levels (images) or relative to max |w| (mapping)
    units: str
    passed: bool

    def __str__(self):
        verdict = "ok" if self.passed else "FAILED"
        return f"checked in {self.runtime} on seeds {CHECK_SEEDS[0]}-{CHECK_SEEDS[-1]}: " \
               f"max difference {self.max_difference:.3g} {self.units} ({verdict})"


@dataclasses.dataclass
class ExportResult:
    folder: str
    path: str  # the model file (or folder) inside it
    check: CheckResult | None
    note: str = ""


def check_inputs(G, module, psi):
    """Inputs for the check: the z of CHECK_SEEDS (class k % c_dim), or their truncated w for synthesis."""
    z = np.concatenate([seed_to_z(s, G.config.z_dim) for s in CHECK_SEEDS])
    c_idx = np.arange(len(CHECK_SEEDS), dtype=np.int32) % max(G.config.c_dim, 1)
    c = np.eye(G.config.c_dim, dtype=np.float32)[c_idx] if G.config.c_dim else None
    ws = G.mapping(z, c, truncation_psi=psi, truncation_cutoff=module.truncation_cutoff).numpy().astype(np.float32)
    if module.part == "synthesis":
        return {"w": ws}, ws
    inputs = {"z": z, "psi": np.array(psi, np.float32)}
    if G.config.c_dim:
        inputs["class_idx"] = c_idx
    return inputs, ws


def keras_reference(G, module, ws):
    """What the export must produce, from the Keras network directly (not through the export's module)."""
    if module.part == "mapping":
        return ws
    img = G.synthesize(ws, noise_mode=module.noise_mode)
    return to_uint8(img).numpy()


def compare(module, fmt, got, want, strict):
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        raise ExportError(f"{fmt}: the export's output has shape {got.shape}, Keras {want.shape}")
    if module.part == "mapping":
        diff = float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-30))
        return diff, "of max |w|", not strict or diff <= MAX_W_RELATIVE
    diff = float(np.max(np.abs(got.astype(np.int64) - want.astype(np.int64))))
    return diff, "grey levels", not strict or diff <= MAX_GREY_LEVELS


def export_generator(G, outdir, fmt="savedmodel", part="generator", precision="float32", truncation_cutoff=None,
                     noise_mode="const", force=False, check=True):
    """Write `part` of G as `fmt` into `outdir`. check: run it in its runtime on CHECK_SEEDS and compare
    with Keras (float32 must agree within MAX_GREY_LEVELS; float16 is reported); a float32 export
    that disagrees is not written. A runtime that is not installed skips the check, with a note."""
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if precision not in PRECISIONS:
        raise ExportError(f"--precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if precision != "float32" and fmt != "tflite":
        raise ExportError(f"--precision {precision}: only tflite exports store float16 weights")
    module = ServingModule(G, part, truncation_cutoff, noise_mode)
    if noise_mode == "random":
        check = False  # every run draws other noise: nothing to compare
    writer, runtime = FORMATS[fmt]
    with staged_folder(outdir, force) as folder:
        path = writer(module, folder, precision) if fmt == "tflite" else writer(module, folder)
        description = dict(module.description(), format=fmt, precision=precision)
        with open(os.path.join(folder, MARKER), "w") as f:
            json.dump(description, f, indent=1)
        result, note = None, ""
        if check and fmt == "tfjs" and find_browser() is None:
            note = "not checked: no Chromium on PATH to run the page in"
        elif check:
            inputs, ws = check_inputs(G, module, G.config.default_truncation[0])
            try:
                got = run_export(fmt, folder, inputs)
            except ExportError as e:
                if "not installed" not in str(e):
                    raise
                got, note = None, f"not checked: {e}"
            if got is not None:
                diff, units, ok = compare(module, fmt, got, keras_reference(G, module, ws), precision == "float32")
                result = CheckResult(runtime, diff, units, ok)
                if not ok:
                    raise ExportError(f"{fmt}: {result}; the export was not written")
        final = os.path.abspath(outdir)
    path = os.path.normpath(os.path.join(final, os.path.relpath(path, folder)))
    return ExportResult(final, path, result, note)
