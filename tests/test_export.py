"""SavedModel export reloads in a fresh process and serves the Keras model's images."""

import json

import numpy as np

from conftest import FIXTURES, run_python

RELOAD = """
import json, sys
import numpy as np, tensorflow as tf
m = tf.saved_model.load(sys.argv[1])
f = m.signatures["serving_default"]
args = json.loads(sys.argv[2])
kw = dict(z=tf.constant(np.array(args["z"], np.float32)), psi=tf.constant(args["psi"], tf.float32))
if "class_idx" in args:
    kw["class_idx"] = tf.constant(args["class_idx"], tf.int32)
out = f(**kw)["images"]
assert out.dtype == tf.uint8
np.save(sys.argv[3], out.numpy())
"""


def _check(tmp_path, pkl, z, psi, class_idx=None):
    from stylegan2_tf.export import export_saved_model
    from stylegan2_tf.generate import to_uint8
    from stylegan2_tf.loading import load_generator
    G = load_generator(pkl)
    export_saved_model(G, tmp_path / "sm")
    script = tmp_path / "reload.py"
    script.write_text(RELOAD)
    args = {"z": z.tolist(), "psi": psi}
    c = None
    if class_idx is not None:
        args["class_idx"] = class_idx
        c = np.eye(G.config.c_dim, dtype=np.float32)[class_idx]
    r = run_python([script, tmp_path / "sm", json.dumps(args), tmp_path / "out.npy"])
    assert r.returncode == 0, r.stderr[-3000:]
    served = np.load(tmp_path / "out.npy")
    expect = to_uint8(G(z, c=c, truncation_psi=psi, noise_mode="const")).numpy()
    assert served.shape == expect.shape
    diff = np.abs(served.astype(int) - expect.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01


def test_export_unconditional(tmp_path):
    z = np.random.RandomState(0).randn(3, 32).astype(np.float32)
    _check(tmp_path, FIXTURES / "sg2-tiny16.pkl", z, 0.6)


def test_export_conditional(tmp_path):
    z = np.random.RandomState(1).randn(2, 32).astype(np.float32)
    _check(tmp_path, FIXTURES / "ada-cond-tiny16.pkl", z, 1.0, class_idx=[2, 0])


def test_export_refuses_nonempty_outdir(tmp_path):
    import pytest
    from stylegan2_tf.export import export_saved_model
    from stylegan2_tf.loading import load_generator
    (tmp_path / "sm").mkdir()
    (tmp_path / "sm" / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError):
        export_saved_model(load_generator(FIXTURES / "sg2-tiny16.pkl"), tmp_path / "sm")
