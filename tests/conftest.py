import os
import pathlib
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "stylegan2_pkl"
FIXTURE_NAMES = ("sg2-tiny16", "ada-cond-tiny16")


def run_python(args, cwd=ROOT, timeout=300, env=None):
    """Run `python args...` in a fresh process; returns CompletedProcess (text)."""
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT))
    full_env.update(env or {})
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=full_env)


@pytest.fixture
def fused_gradient():
    """For tests that differentiate the fused (grouped) modulated conv on purpose: skipped where
    TF's CPU kernels have no grouped-convolution gradient (oneDNN off; CI runs these tests with
    oneDNN switched the other way too, so both kinds of machine are covered)."""
    import tensorflow as tf
    from stylegan2_tf.ops.capabilities import cpu_grouped_conv_gradient
    if not tf.config.list_logical_devices("GPU") and not cpu_grouped_conv_gradient(tf.float32):
        pytest.skip("this CPU's TensorFlow has no grouped-convolution gradient (oneDNN off)")


@pytest.fixture
def float64():
    """Networks built inside the test compute in float64 (Keras floatx and dtype policy)."""
    import keras
    old_floatx, old_policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    try:
        yield
    finally:
        keras.config.set_floatx(old_floatx)
        keras.config.set_dtype_policy(old_policy)


@pytest.fixture(scope="session")
def fixture_nets():
    """{name: {'G', 'D', 'G_ema', 'family'}} for both official-format fixture pickles."""
    from stylegan2_tf.official import load_network_pkl
    return {name: load_network_pkl(FIXTURES / f"{name}.pkl") for name in FIXTURE_NAMES}
