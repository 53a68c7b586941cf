"""The CUDA kernels (custom_ops/cuda/), also where no GPU is: they compile with nvcc, their
TensorFlow-free harness passes with the kernels' own per-element code run on the CPU, and the op
library with the GPU kernels compiles, links and loads. Where TensorFlow sees a GPU, the ops on
the GPU equal the reference ops."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from stylegan2_tf.ops import custom_ops, fused_bias_act, upfirdn_2d  # noqa: E402

NVCC = custom_ops.nvcc()
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="no CUDA compiler (nvcc) on this machine")
# .ci/run sets this where nvcc is on PATH: then these tests must run, not skip.
NVCC_REQUIRED = os.environ.get("STYLEGAN2_TF_REQUIRE_NVCC") == "1"
# The compute capabilities compiled for: the visible GPUs', else one that every supported nvcc
# (12.x, 13.x) targets -- enough to check that the sources compile and link.
ARCHS = custom_ops.cuda_archs() or ["75"]
GPU = bool(tf.config.list_physical_devices("GPU"))


def test_nvcc_is_found_where_it_is_required():
    """The tests below skip without a CUDA compiler; where CI says there is one, that is a failure."""
    if NVCC_REQUIRED:
        assert NVCC is not None, "STYLEGAN2_TF_REQUIRE_NVCC=1 but custom_ops.nvcc() finds no nvcc"


@needs_nvcc
def test_harness_builds_and_the_kernels_pass_it(tmp_path):
    r = subprocess.run(["make", "-C", os.path.join(custom_ops.SOURCES_DIR, "cuda"), f"BUILD={tmp_path}",
                        f"ARCHS={' '.join(ARCHS)}", f"NVCC={NVCC}"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    harness = str(tmp_path / "harness")
    r = subprocess.run([harness, "--emulate"], capture_output=True, text=True, timeout=600)
    m = re.search(r"(\d+) checks, (\d+) failed", r.stdout)
    assert r.returncode == 0 and m and int(m.group(1)) >= 600 and m.group(2) == "0", r.stdout + r.stderr
    r = subprocess.run([harness], capture_output=True, text=True, timeout=600)
    if r.returncode == 77:          # no GPU: the harness says so and runs nothing
        assert "no CUDA device visible" in r.stdout
    else:
        assert r.returncode == 0 and ", 0 failed" in r.stdout, r.stdout + r.stderr


@needs_nvcc
def test_op_library_with_the_gpu_kernels_compiles_links_and_loads(tmp_path):
    path = custom_ops.compile_library(str(tmp_path / "ops_cuda.so"), ARCHS)
    # Loaded in a fresh process (this one may hold the CPU-only library, with the same op names);
    # its CPU kernels still serve CPU calls.
    script = f"""
import numpy as np, tensorflow as tf
from stylegan2_tf.ops import upfirdn_2d
ops = tf.load_op_library({path!r})
x = tf.constant(np.random.default_rng(0).normal(size=[2, 5, 6, 3]))
k = np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64.0
y = ops.sg2_up_fir_dn2d(x, tf.constant(k), upx=2, upy=2, downx=1, downy=1, padx0=2, padx1=1, pady0=2, pady1=1)
ref = upfirdn_2d(x, k, up=2, pad=(2, 1), impl="ref")
print("max error", float(tf.reduce_max(tf.abs(y - ref))))
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    m = re.search(r"max error (\S+)", r.stdout)
    assert r.returncode == 0 and m and float(m.group(1)) < 1e-12, r.stdout + r.stderr


def test_a_failing_nvcc_says_so_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv(custom_ops.NVCC_ENV, "false")
    with pytest.raises(custom_ops.CustomOpsError, match=r"building the kernels failed \(false exit 1"):
        custom_ops.compile_library(str(tmp_path / "ops.so"), ["75"])
    assert not (tmp_path / "ops.so").exists() and (tmp_path / "build.log").exists()


@pytest.mark.gpu
@pytest.mark.skipif(not GPU, reason="TensorFlow sees no GPU")
@pytest.mark.parametrize("dtype,tol", [(tf.float32, 2e-6), (tf.float16, 2e-3)])
def test_gpu_ops_equal_the_reference(dtype, tol):
    rng = np.random.default_rng(3)
    k = np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64.0
    x = tf.constant(rng.normal(size=[2, 9, 11, 5]), dtype)
    b = tf.constant(rng.normal(size=[5]), dtype)

    def run(impl):
        with tf.device("/GPU:0"), tf.GradientTape(persistent=True) as tape:
            tape.watch([x, b])
            y = fused_bias_act(upfirdn_2d(x, k, up=2, pad=(2, 1), impl=impl), b, act="lrelu", impl=impl)
            y = upfirdn_2d(y, k, down=2, pad=(1, 1), impl=impl)
            loss = tf.reduce_sum(tf.cast(y, tf.float32) ** 2)
        return [y] + tape.gradient(loss, [x, b])

    for got, want in zip(run("custom"), run("ref")):
        got, want = got.numpy().astype(np.float64), want.numpy().astype(np.float64)
        np.testing.assert_allclose(got, want, atol=tol * np.abs(want).max())
