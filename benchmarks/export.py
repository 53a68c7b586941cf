"""Export sizes and latency per runtime: one config-F-shaped generator (random weights) in every format.

  pip install ".[export]"   # and Debian's chromium for the tfjs row
  python benchmarks/export.py --res 256 --workdir /tmp/export-bench [--formats savedmodel,tflite,tflite16,onnx,tfjs]

For each format: the time to export, the size on disk, the latency of one image (batch 1; median of
--reps after one warm-up run) in that format's runtime on this machine, and the largest difference
from the Keras generator's image in grey levels. The Keras row is the traced Keras generator
(`ImageSynthesizer`, the form run_generator.py uses). tfjs runs index.html in headless Chromium on
TF.js's CPU backend (pure JavaScript; WebGL needs a GPU, which headless CI machines lack).
"""

import os
import shutil
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402
from cpu_info import cpu_description  # noqa: E402  (benchmarks/, the script's directory)

flags.DEFINE_integer("res", 256, "Output resolution.")
flags.DEFINE_integer("fmap-base", 16384, "Feature-map base (16384 = config F).")
flags.DEFINE_string("workdir", "/tmp/export-bench", "Where the exports are written (replaced).")
flags.DEFINE_list("formats", ["savedmodel", "tflite", "tflite16", "onnx", "tfjs"], "Formats to measure.")
flags.DEFINE_integer("reps", 5, "Timed runs per runtime (after one warm-up).")
flags.DEFINE_integer("tfjs-reps", 2, "Timed runs in the browser (its CPU backend is slow).")
FLAGS = flags.FLAGS


def folder_size(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def timed(fn, reps):
    fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return out, statistics.median(times)


def runtime_call(fmt, folder, inputs):
    """A function running the loaded export once (load excluded from the timing)."""
    if fmt == "savedmodel":
        import tensorflow as tf
        fn = tf.saved_model.load(folder).signatures["serving_default"]
        feeds = {k: tf.constant(v) for k, v in inputs.items()}
        return lambda: fn(**feeds)["images"].numpy()
    if fmt == "tflite":
        from ai_edge_litert.interpreter import Interpreter
        path = [os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".tflite")][0]
        runner = Interpreter(model_path=path).get_signature_runner("serving_default")
        return lambda: runner(**inputs)["images"]
    if fmt == "onnx":
        import onnxruntime as ort
        path = [os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".onnx")][0]
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        return lambda: session.run(None, inputs)[0]
    raise ValueError(fmt)


def main(argv):
    del argv
    import tensorflow as tf

    from stylegan2_tf.export import export_generator
    from stylegan2_tf.export.runtimes import run_tfjs
    from stylegan2_tf.generate import ImageSynthesizer
    from stylegan2_tf.networks import Generator, GeneratorConfig, num_trainable_params

    G = Generator(GeneratorConfig(img_resolution=FLAGS.res, fmap_base=FLAGS["fmap-base"].value))
    G.build_weights()
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "TF's default")
    print(f"{cpu_description()}; TensorFlow {tf.__version__}, TF_ENABLE_ONEDNN_OPTS={onednn}")
    print(f"G: {FLAGS.res}x{FLAGS.res}, fmap_base {FLAGS['fmap-base'].value}, {num_trainable_params(G):,} parameters")
    z = np.random.RandomState(0).randn(1, G.config.z_dim).astype(np.float32)
    inputs = {"z": z, "psi": np.array(0.7, np.float32)}
    synth = ImageSynthesizer(G, noise_mode="const")
    keras_img, keras_s = timed(lambda: synth.generate(z, None, psi=0.7, cutoff=None, batch_size=1), FLAGS.reps)
    rows = [("keras (traced)", "-", "-", keras_s, 0)]
    shutil.rmtree(FLAGS.workdir, ignore_errors=True)
    for name in FLAGS.formats:
        fmt, precision = ("tflite", "float16") if name == "tflite16" else (name, "float32")
        folder = os.path.join(FLAGS.workdir, name)
        t = time.perf_counter()
        export_generator(G, folder, fmt, precision=precision, check=False)
        export_s = time.perf_counter() - t
        if fmt == "tfjs":
            result = run_tfjs(folder, inputs, repeat=FLAGS["tfjs-reps"].value + 1, report=True, timeout=3600)
            out = np.array(result["output"]["data"]).reshape(result["output"]["shape"])
            latency = statistics.median(result["times"][1:]) / 1000
        else:
            out, latency = timed(runtime_call(fmt, folder, inputs), FLAGS.reps)
        diff = int(np.max(np.abs(out.astype(np.int64) - keras_img.astype(np.int64))))
        rows.append((name, f"{export_s:.1f} s", f"{folder_size(folder) / 2 ** 20:.1f} MiB", latency, diff))
        print(f"  {name}: done", flush=True)
    print("| format | export | size | latency (batch 1) | max diff vs Keras (grey levels) |")
    print("| --- | --- | --- | --- | --- |")
    for name, export_s, size, latency, diff in rows:
        print(f"| {name} | {export_s} | {size} | {latency * 1000:.0f} ms | {diff} |")
    print(f"chromium: {subprocess.run(['chromium', '--version'], capture_output=True, text=True).stdout.strip()}")


if __name__ == "__main__":
    app.run(main)
