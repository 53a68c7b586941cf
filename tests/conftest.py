import os
import pathlib
import subprocess
import sys
import zlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "stylegan2_pkl"
FIXTURE_NAMES = ("sg2-tiny16", "ada-cond-tiny16")


# What a subprocess of a test inherits: the machine (paths, locale, home and caches, compilers,
# devices) and the oneDNN switch CI flips, nothing else -- no STYLEGAN2_TF_OPS, feature-file or
# other settings of the shell that started pytest, which would make a test test something else.
INHERITED = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "XDG_CACHE_HOME",
             "XDG_CONFIG_HOME", "VIRTUAL_ENV", "LD_LIBRARY_PATH", "CUDA_HOME", "CUDA_PATH", "CUDA_VISIBLE_DEVICES",
             "TF_ENABLE_ONEDNN_OPTS", "STYLEGAN2_TF_OPS_CACHE", "STYLEGAN2_TF_NVCC", "STYLEGAN2_TF_CXX",
             "STYLEGAN2_TF_CUDA_ARCHS")


def subprocess_env(**extra):
    """The environment for a test's subprocess: INHERITED from this one, TF quiet, the checkout on
    PYTHONPATH, then `extra`."""
    env = {k: os.environ[k] for k in INHERITED if k in os.environ}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT))
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_python(args, cwd=ROOT, timeout=300, env=None):
    """Run `python args...` in a fresh process (subprocess_env plus `env`); returns CompletedProcess (text)."""
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=subprocess_env(**(env or {})))


def conv_derivatives(conv, x, w, probe):
    """conv's value; its first derivatives (x, w) of <y, probe>; the second derivatives (x, w) of
    sum((d<y, probe>/dx)^2 * x), which run through the input gradient's own gradients."""
    import tensorflow as tf
    with tf.GradientTape(persistent=True) as outer:
        outer.watch([x, w])
        with tf.GradientTape() as inner:
            inner.watch([x, w])
            y = conv(x, w)
            s = tf.reduce_sum(y * probe)
        dx, dw = inner.gradient(s, [x, w])
        penalty = tf.reduce_sum(tf.square(dx) * x)
    return [y, dx, dw, *outer.gradient(penalty, [x, w])]


def gan_losses_and_gradients(G, D, z, reals, r1_weight=5.0):
    """[G's loss, D's loss with R1, then every non-None gradient of G's loss w.r.t. G's trainable
    variables and of D's loss w.r.t. D's], as numpy: the first and second derivatives a training
    step takes, for tests that compare two ways of computing them."""
    import tensorflow as tf
    with tf.GradientTape(persistent=True) as tape:
        fakes = G(z, noise_mode="const")
        g_loss = tf.reduce_mean(tf.nn.softplus(-D(fakes)))
        with tf.GradientTape() as r1_tape:
            r1_tape.watch(reals)
            real_logits = D(reals)
            total = tf.reduce_sum(real_logits)
        r1 = tf.reduce_sum(tf.square(r1_tape.gradient(total, reals)))
        d_loss = tf.reduce_mean(tf.nn.softplus(real_logits)) + r1_weight * r1
    grads = tape.gradient(g_loss, G.trainable_variables) + tape.gradient(d_loss, D.trainable_variables)
    return [g_loss.numpy(), d_loss.numpy()] + [np.asarray(g) for g in grads if g is not None]


@pytest.fixture(autouse=True)
def _same_random_weights_every_run(request):
    """Python's, numpy's and TensorFlow's global random state seeded from the test's id: a test that
    builds a network with random weights tests the same network in every run (and tolerances hold
    for it, not for whichever network a run happened to draw)."""
    import keras
    keras.utils.set_random_seed(zlib.crc32(request.node.nodeid.encode()) % 2 ** 31)


@pytest.fixture
def fused_gradient():
    """For tests that differentiate the fused (grouped) modulated conv on purpose: skipped where
    TF's CPU kernels have no grouped-convolution gradient (oneDNN off; CI runs these tests with
    oneDNN switched the other way too, so both kinds of machine are covered)."""
    import tensorflow as tf
    from stylegan2_tf.ops.capabilities import cpu_grouped_conv_gradient
    if not tf.config.list_logical_devices("GPU") and not cpu_grouped_conv_gradient(tf.float32):
        pytest.skip("this CPU's TensorFlow has no grouped-convolution gradient (oneDNN off)")


def output_errors(out, ref):
    """{key: max|ours - reference| / max(1, max|reference|)} over the reference's fp64/ keys that
    `out` computed (key without the fp64/ prefix)."""
    return {k[5:]: float(np.max(np.abs(np.asarray(out[k[5:]], np.float64) - ref[k])) / max(1.0, np.max(np.abs(ref[k]))))
            for k in ref.files if k.startswith("fp64/") and k[5:] in out}


def worst_training_error(out, ref):
    """(largest relative error, key) of a training-step candidate against a reference's float64
    fp64/train/* keys, and how many keys were compared; grad_sum is taken relative to grad_abs (a sum
    with cancellation has no scale of its own)."""
    compared, worst = 0, (0.0, None)
    for key in ref.files:
        if not key.startswith("fp64/train/"):
            continue
        ours, want = np.asarray(out[key[5:]], np.float64), np.asarray(ref[key], np.float64)
        scale = ref[key.replace("/grad_sum/", "/grad_abs/")] if "/grad_sum/" in key else np.abs(want)
        worst = max(worst, (float(np.max(np.abs(ours - want) / (np.abs(scale) + 1e-300))), key))
        compared += 1
    return worst, compared


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


@pytest.fixture(scope="session")
def kernels():
    """The C++ kernels' op library, built on first use; the build is part of what is tested, so a
    failure to build fails the tests that ask for it."""
    from stylegan2_tf.ops import custom_ops
    if custom_ops.library() is None:
        pytest.fail(f"the kernels did not build: {custom_ops.unavailable_reason()}")
    return custom_ops.library()
