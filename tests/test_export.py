"""Exports (SavedModel, TFLite, ONNX, TensorFlow.js) run in their own runtimes and compared with the
Keras generator on the same inputs: at most 1 grey level in float32."""

import json
import os
import re
import shutil
import sys

import numpy as np
import pytest

from conftest import FIXTURES, ROOT, run_python

pytestmark = pytest.mark.slow

DIGITS = ROOT / "pretrained" / "stylegan2-digits32.pkl"
RGB = FIXTURES / "sg2-tiny16.pkl"  # 16x16 RGB, config F layout
COND = FIXTURES / "ada-cond-tiny16.pkl"  # conditional (StyleGAN2-ADA TF format)
RELOAD = """
import json, sys
import numpy as np, tensorflow as tf
f = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
args = json.loads(sys.argv[2])
kw = dict(z=tf.constant(np.array(args["z"], np.float32)), psi=tf.constant(args["psi"], tf.float32))
if "class_idx" in args:
    kw["class_idx"] = tf.constant(args["class_idx"], tf.int32)
out = f(**kw)["images"]
assert out.dtype == tf.uint8
np.save(sys.argv[3], out.numpy())
"""


def chromium():
    """TF.js runs in Debian's chromium (CI installs it). Without one the tfjs tests skip, unless
    STYLEGAN2_TF_REQUIRE_BROWSER=1 (set by .ci/run) makes that a failure."""
    from stylegan2_tf.export.runtimes import find_browser
    if find_browser() is None:
        if os.environ.get("STYLEGAN2_TF_REQUIRE_BROWSER") == "1":
            pytest.fail("no chromium on PATH, and STYLEGAN2_TF_REQUIRE_BROWSER=1")
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium)")


_nets = {}


def load(path):
    from stylegan2_tf.loading import load_generator
    if path not in _nets:
        _nets[path] = load_generator(path)
    return _nets[path]


def keras_images(G, z, psi, class_idx=None, cutoff=None):
    from stylegan2_tf.generate import to_uint8
    c = None if class_idx is None else np.eye(G.config.c_dim, dtype=np.float32)[class_idx]
    return to_uint8(G(z, c=c, truncation_psi=psi, truncation_cutoff=cutoff, noise_mode="const")).numpy()


def grey_diff(a, b):
    assert a.shape == b.shape, (a.shape, b.shape)
    return int(np.max(np.abs(a.astype(np.int64) - b.astype(np.int64))))


def export(G, path, fmt, part="generator", **kw):
    from stylegan2_tf.export import export_generator
    return export_generator(G, path, fmt, part, check=False, **kw)


# --------------------------------------------------------------------------- every format, full generator

@pytest.mark.parametrize("fmt", ["tflite", "onnx", "tfjs"])
@pytest.mark.parametrize("net", [DIGITS, RGB], ids=["digits", "rgb"])
def test_export_matches_keras(tmp_path, fmt, net):
    from stylegan2_tf.export import run_export
    if fmt == "tfjs":
        chromium()
    G = load(net)
    export(G, tmp_path / "e", fmt)
    z = np.random.RandomState(7).randn(3, G.config.z_dim).astype(np.float32)
    got = run_export(fmt, str(tmp_path / "e"), {"z": z, "psi": np.array(0.7, np.float32)})
    want = keras_images(G, z, 0.7)
    assert got.shape == want.shape == (3, G.config.img_resolution, G.config.img_resolution, G.config.img_channels)
    assert grey_diff(got, want) <= 1
    assert np.std(want) > 5  # real images, not a constant the comparison could pass by accident
    sig = json.loads((tmp_path / "e" / "signature.json").read_text())
    assert sig["format"] == fmt and [i["name"] for i in sig["inputs"]] == ["z", "psi"]
    assert sig["outputs"] == [{"name": "images", "shape": list((-1,) + want.shape[1:]), "dtype": "uint8"}]


def _savedmodel_check(tmp_path, pkl, z, psi, class_idx=None):
    G = load(pkl)
    export(G, tmp_path / "sm", "savedmodel")
    script = tmp_path / "reload.py"
    script.write_text(RELOAD)
    args = {"z": z.tolist(), "psi": psi}
    if class_idx is not None:
        args["class_idx"] = class_idx
    r = run_python([script, tmp_path / "sm", json.dumps(args), tmp_path / "out.npy"])
    assert r.returncode == 0, r.stderr[-3000:]
    served = np.load(tmp_path / "out.npy")
    assert grey_diff(served, keras_images(G, z, psi, class_idx)) <= 1


def test_savedmodel_unconditional_in_fresh_process(tmp_path):
    _savedmodel_check(tmp_path, RGB, np.random.RandomState(0).randn(3, 32).astype(np.float32), 0.6)


def test_savedmodel_conditional_in_fresh_process(tmp_path):
    _savedmodel_check(tmp_path, COND, np.random.RandomState(1).randn(2, 32).astype(np.float32), 1.0, [2, 0])


# --------------------------------------------------------------------------- parts, classes, cutoff

@pytest.mark.parametrize("fmt", ["tflite", "onnx", "tfjs"])
def test_mapping_and_synthesis_parts(tmp_path, fmt):
    """mapping: z, psi, class_idx -> w (truncated); synthesis: w -> images; conditional network."""
    from stylegan2_tf.export import run_export
    if fmt == "tfjs":
        chromium()
    G = load(COND)
    z = np.random.RandomState(3).randn(4, G.config.z_dim).astype(np.float32)
    class_idx = np.array([0, 2, 1, 2], np.int32)
    c = np.eye(G.config.c_dim, dtype=np.float32)[class_idx]
    ws = G.mapping(z, c, truncation_psi=0.6).numpy()
    export(G, tmp_path / "m", fmt, "mapping")
    got_w = run_export(fmt, str(tmp_path / "m"), {"z": z, "psi": np.array(0.6, np.float32), "class_idx": class_idx})
    assert got_w.shape == (4, G.num_ws, G.config.w_dim)
    np.testing.assert_allclose(got_w, ws, rtol=0, atol=1e-5 * np.abs(ws).max())
    export(G, tmp_path / "s", fmt, "synthesis")
    ws2 = ws + np.random.RandomState(4).randn(*ws.shape).astype(np.float32)  # w no mapping would give
    got = run_export(fmt, str(tmp_path / "s"), {"w": ws2})
    from stylegan2_tf.generate import to_uint8
    assert grey_diff(got, to_uint8(G.synthesize(ws2, noise_mode="const")).numpy()) <= 1


def test_conditional_generator_and_cutoff(tmp_path):
    """class_idx picks the class; --truncation-cutoff truncates only the first layers."""
    from stylegan2_tf.export import run_export
    G = load(COND)
    export(G, tmp_path / "e", "onnx", truncation_cutoff=2)
    z = np.random.RandomState(5).randn(3, G.config.z_dim).astype(np.float32)
    got = run_export("onnx", str(tmp_path / "e"), {"z": z, "psi": np.array(0.3, np.float32),
                                                   "class_idx": np.array([1, 1, 2], np.int32)})
    want = keras_images(G, z, 0.3, [1, 1, 2], cutoff=2)
    assert grey_diff(got, want) <= 1
    assert grey_diff(want, keras_images(G, z, 0.3, [1, 1, 2])) > 8  # the cutoff changes the images
    assert grey_diff(want, keras_images(G, z, 0.3, [0, 0, 0])) > 8  # and so does the class
    assert json.loads((tmp_path / "e" / "signature.json").read_text())["truncation_cutoff"] == 2


def test_progressive_network_exports(tmp_path):
    """Config A (progressive, AdaIN, cutoff 8 by default) at its current level of detail."""
    from stylegan2_tf.export import run_export
    G = load(FIXTURES / "sga-tiny16.pkl")
    export(G, tmp_path / "e", "tflite")
    z = np.random.RandomState(6).randn(2, G.config.z_dim).astype(np.float32)
    got = run_export("tflite", str(tmp_path / "e"), {"z": z, "psi": np.array(0.7, np.float32)})
    assert grey_diff(got, keras_images(G, z, 0.7, cutoff=G.config.default_truncation[1])) <= 1


def test_tflite_float16(tmp_path):
    """float16 weights: about half the file; the measured difference stays small (README states it)."""
    from stylegan2_tf.export import run_export
    G = load(DIGITS)
    f32 = export(G, tmp_path / "f32", "tflite").path
    f16 = export(G, tmp_path / "f16", "tflite", precision="float16").path
    assert 0.4 < os.path.getsize(f16) / os.path.getsize(f32) < 0.6
    z = np.random.RandomState(8).randn(8, G.config.z_dim).astype(np.float32)
    got = run_export("tflite", str(tmp_path / "f16"), {"z": z, "psi": np.array(1.0, np.float32)})
    diff = grey_diff(got, keras_images(G, z, 1.0))
    assert 0 < diff <= 4, diff  # 0 would mean the weights were not rounded


# --------------------------------------------------------------------------- the browser page

def test_page_draws_the_seed(tmp_path):
    """index.html computes z as numpy's RandomState(seed).randn and draws the Keras image."""
    from stylegan2_tf.export.runtimes import open_page
    from stylegan2_tf.generate import seed_to_z
    chromium()
    G = load(DIGITS)
    export(G, tmp_path / "e", "tfjs")
    for name in ("index.html", "app.js", "tfjs/tf.es2017.min.js", "tfjs/LICENSE", "model.json"):
        assert (tmp_path / "e" / name).is_file(), name
    for seed in (5, 4294967295):
        r = open_page(str(tmp_path / "e"), {"seed": seed, "psi": 0.7, "backend": "cpu"})
        z = seed_to_z(seed, G.config.z_dim)
        np.testing.assert_array_equal(np.array(r["z"], np.float32), z[0])
        got = np.array(r["output"]["data"]).reshape(r["output"]["shape"])
        assert grey_diff(got, keras_images(G, z, 0.7)) <= 1
        assert r["backend"] == "cpu" and r["output"]["ms"] > 0


def test_page_conditional_class(tmp_path):
    from stylegan2_tf.export import ExportError
    from stylegan2_tf.export.runtimes import open_page
    from stylegan2_tf.generate import seed_to_z
    chromium()
    G = load(COND)
    export(G, tmp_path / "e", "tfjs")
    r = open_page(str(tmp_path / "e"), {"seed": 11, "psi": 0.5, "class": 2, "backend": "cpu"})
    got = np.array(r["output"]["data"]).reshape(r["output"]["shape"])
    assert r["class"] == 2 and G.config.c_dim == 3
    assert grey_diff(got, keras_images(G, seed_to_z(11, G.config.z_dim), 0.5, [2])) <= 1
    with pytest.raises(ExportError, match="the page failed: Error: class 3 is not in 0-2"):
        open_page(str(tmp_path / "e"), {"seed": 11, "class": 3, "backend": "cpu"})


# --------------------------------------------------------------------------- refusals

def test_bad_input_is_refused(tmp_path):
    from stylegan2_tf.export import ExportError, export_generator
    G = load(RGB)
    cases = [
        (dict(fmt="keras"), "--format 'keras': expected one of savedmodel, tflite, onnx, tfjs"),
        (dict(fmt="onnx", part="encoder"), "--part 'encoder': expected one of generator, mapping, synthesis"),
        (dict(fmt="onnx", precision="float16"), "only tflite exports store float16 weights"),
        (dict(fmt="tflite", precision="int8"), "--precision 'int8': expected one of float32, float16"),
        (dict(fmt="onnx", truncation_cutoff=99), "--truncation-cutoff 99: this network has"),
    ]
    for kw, message in cases:
        with pytest.raises(ExportError, match=re.escape(message)):
            export_generator(G, tmp_path / "x", **kw)
    assert not (tmp_path / "x").exists()


def test_outdir_rules(tmp_path):
    """Non-empty folders are refused; --force replaces an earlier export, never anything else."""
    from stylegan2_tf.export import ExportError
    G = load(RGB)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("x")
    with pytest.raises(ExportError, match="exists and is not empty"):
        export(G, tmp_path / "mine", "onnx")
    with pytest.raises(ExportError, match="holds no earlier export"):
        export(G, tmp_path / "mine", "onnx", force=True)
    assert (tmp_path / "mine" / "keep.txt").read_text() == "x"
    export(G, tmp_path / "e", "onnx")
    export(G, tmp_path / "e", "tflite", force=True)
    assert sorted(os.listdir(tmp_path / "e")) == ["generator.tflite", "signature.json"]
    assert sorted(p for p in os.listdir(tmp_path) if p.startswith(".")) == []  # no staging left


def test_missing_extra_names_the_install(tmp_path, monkeypatch):
    from stylegan2_tf.export import ExportError
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # import fails as when not installed
    with pytest.raises(ExportError, match=r"needs the Python package 'tf2onnx'.*pip install \"stylegan2-tf\[export]\""):
        export(load(RGB), tmp_path / "e", "onnx")
    assert not (tmp_path / "e").exists()


def test_unrepresentable_op_is_named():
    """A graph with an op TF.js lacks is refused by the op's name before anything is written."""
    import tensorflow as tf
    from stylegan2_tf.export import ExportError
    from stylegan2_tf.export.to_tfjs import graph_model, tfjs_ops
    assert {"Conv2D", "DepthwiseConv2dNative", "BatchMatMulV2", "LeakyRelu"} <= tfjs_ops()
    spec = tf.TensorSpec([None, 4], tf.float32, name="x")
    graph = tf.function(lambda x: tf.math.lgamma(x), input_signature=[spec]).get_concrete_function().graph
    with pytest.raises(ExportError, match="op Lgamma .* not one TensorFlow.js executes"):
        graph_model(graph.as_graph_def(), "Lgamma", "y", [spec], spec)


def test_disagreeing_export_is_not_written(tmp_path, monkeypatch):
    """The check compares with Keras; a runtime that returns other images leaves no folder."""
    from stylegan2_tf.export import ExportError, export_generator, exporter
    real = exporter.run_export
    monkeypatch.setattr(exporter, "run_export", lambda fmt, folder, inputs: real(fmt, folder, inputs) ^ 4)
    with pytest.raises(ExportError, match="max difference 4 grey levels.*not written"):
        export_generator(load(RGB), tmp_path / "e", "onnx")
    assert not (tmp_path / "e").exists() and os.listdir(tmp_path) == []


def test_cli_export_and_errors(tmp_path):
    """run_generator.py export: checked, summarised; bad flags give one error line."""
    cmd = ["run_generator.py", "export", "--network", DIGITS, "--outdir", tmp_path / "e", "--format"]
    r = run_python(cmd + ["onnx"])
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Wrote onnx generator to" in r.stdout
    assert "z [N, 128] float32, psi [] float32 -> images [N, 32, 32, 1] uint8" in r.stdout
    assert "checked in onnxruntime on seeds 0-3: max difference" in r.stdout and "(ok)" in r.stdout
    r = run_python(cmd + ["onnx"])
    assert r.returncode == 1 and r.stderr.strip().splitlines()[-1].startswith("error: ") \
        and "pass --force" in r.stderr
    r = run_python(cmd[:-3] + ["--outdir", tmp_path / "f", "--format", "coreml"])
    assert r.returncode == 1 and r.stderr.strip().splitlines()[-1] == \
        "error: --format 'coreml': expected one of savedmodel, tflite, onnx, tfjs"
    assert not (tmp_path / "f").exists()
    shutil.rmtree(tmp_path / "e")
