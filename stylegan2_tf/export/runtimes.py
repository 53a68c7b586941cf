"""Each export run in its own runtime: `run_export(format, folder, inputs)` -> the output array.

  savedmodel  tf.saved_model.load, signature serving_default
  tflite      LiteRT's interpreter (ai-edge-litert, the `export` extra), signature runner
  onnx        onnxruntime (the `export` extra), CPU execution provider
  tfjs        index.html in headless Chromium, served from 127.0.0.1 by a thread of this process;
              the page runs the inputs and POSTs its output back

`inputs` maps the signature's input names to numpy arrays. These are how the exports are checked
against Keras (export's check and the tests); they are not needed to use an export.
"""

import glob
import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading

import numpy as np

from .errors import ExportError
from .requirements import require

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")


def run_savedmodel(folder, inputs):
    import tensorflow as tf
    fn = tf.saved_model.load(folder).signatures["serving_default"]
    out = fn(**{k: tf.constant(v) for k, v in inputs.items()})
    (value,) = out.values()
    return value.numpy()


def run_tflite(folder, inputs):
    interpreter = require("ai_edge_litert.interpreter", "running a tflite export")
    (path,) = glob.glob(os.path.join(folder, "*.tflite"))
    runner = interpreter.Interpreter(model_path=path).get_signature_runner("serving_default")
    (value,) = runner(**inputs).values()
    return value


def run_onnx(folder, inputs):
    ort = require("onnxruntime", "running an onnx export")
    (path,) = glob.glob(os.path.join(folder, "*.onnx"))
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return session.run(None, inputs)[0]


def find_browser():
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def run_tfjs(folder, inputs, backend="cpu", timeout=300, repeat=1, report=False):
    """Run the export's page on `inputs` (inputs=...) in headless Chromium; the output array
    (report: the page's whole report, with the time of each of `repeat` runs)."""
    blob = json.dumps({k: {"shape": list(np.shape(v)), "data": np.ravel(v).tolist()} for k, v in inputs.items()})
    query = {"inputs": "inputs.json", "backend": backend, "repeat": repeat}
    result = open_page(folder, query, {"/inputs.json": blob}, timeout)
    if report:
        return result
    out = result["output"]
    return np.array(out["data"]).reshape(out["shape"])


def open_page(folder, query, extra_files=None, timeout=300):
    """Open index.html?query&report=1 in headless Chromium and wait for the page to POST its report
    (real time: the page's own timings are wall-clock); the report as a dict."""
    browser = find_browser()
    if browser is None:
        raise ExportError(f"running a tfjs export needs Chromium ({' or '.join(BROWSERS[:2])} on PATH; "
                          f"Debian: apt-get install chromium)")
    extra = {k: v.encode() for k, v in (extra_files or {}).items()}
    reports = []
    done = threading.Event()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=folder, **kwargs)

        def do_GET(self):
            path = self.path.split("?")[0]
            if path not in extra:
                return super().do_GET()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(extra[path])))
            self.end_headers()
            self.wfile.write(extra[path])

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(204)
            self.end_headers()
            if self.path.split("?")[0] == "/report":
                reports.append(body)
                done.set()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    query = "&".join(f"{k}={v}" for k, v in {**query, "report": "1"}.items())
    url = f"http://127.0.0.1:{server.server_address[1]}/index.html?{query}"
    profile = tempfile.mkdtemp(prefix="chromium-")
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
           "--disable-background-timer-throttling", f"--user-data-dir={profile}", url]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        done.wait(timeout)
        exited = proc.poll()
    finally:
        proc.kill()
        _, stderr = proc.communicate()
        server.shutdown()
        server.server_close()
        shutil.rmtree(profile, ignore_errors=True)
    if not reports:
        why = f"chromium exited with {exited}: {stderr.strip().splitlines()[-1:]}" if exited is not None \
            else f"no report within {timeout} s"
        raise ExportError(f"tfjs: the page reported nothing ({why})")
    result = json.loads(reports[0])
    if not result.get("ok"):
        raise ExportError(f"tfjs: the page failed: {result.get('error', '?').splitlines()[0]}")
    return result


RUNTIMES = {"savedmodel": run_savedmodel, "tflite": run_tflite, "onnx": run_onnx, "tfjs": run_tfjs}


def run_export(fmt, folder, inputs):
    return RUNTIMES[fmt](folder, inputs)
