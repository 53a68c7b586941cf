"""The C++ kernels of custom_ops/ against the reference ops: values, first, second (and for
bias-act third) derivatives over random geometries, the build-failure fallback, the same errors
from both, and a network's losses and regularised gradients with either implementation."""

import os
import zlib

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from conftest import gan_losses_and_gradients  # noqa: E402
from stylegan2_tf.ops import (ACTIVATIONS, conv_downsample_2d, custom_ops, downsample_2d,  # noqa: E402
                              filter_2d, fused_bias_act, upfirdn_2d, upsample_2d, upsample_conv_2d)
from stylegan2_tf.ops import implementation  # noqa: E402
from stylegan2_tf.ops.custom_ops import CustomOpsError  # noqa: E402
from stylegan2_tf.ops.implementation import use_implementation  # noqa: E402



def _value_and_derivatives(impl, x, b, act, clamp):
    """y, and the first and second derivatives of scalar functions of it w.r.t. x and b."""
    with tf.GradientTape(persistent=True) as outer:
        outer.watch([x, b])
        with tf.GradientTape() as inner:
            inner.watch([x, b])
            y = fused_bias_act(x, b, act=act, clamp=clamp, impl=impl)
            loss = tf.reduce_sum(y * tf.cos(x))          # weights the outputs unevenly
        gx, gb = inner.gradient(loss, [x, b])
        second = tf.reduce_sum(gx * gx * tf.sin(x)) + tf.reduce_sum(gb * b)
    hx, hb = outer.gradient(second, [x, b])
    return [v.numpy() for v in (y, gx, gb, hx, hb)]


# float32: the second derivatives of the exp-based activations differ by up to 2.6e-6 of their
# largest value (selu, clamped, worst of 300 seeds): rounding of a chain of float32 products.
@pytest.mark.parametrize("dtype,tol", [(tf.float64, 1e-13), (tf.float32, 5e-6)])
@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_fused_bias_act_kernel_equals_reference(kernels, dtype, tol, act):
    rng = np.random.default_rng(zlib.crc32(act.encode()))    # the same inputs in every process
    for shape, clamp in [((2, 5, 7, 9), None), ((3, 11), 0.7), ((13,), None), ((1, 3, 3, 4), 0.3)]:
        x = tf.constant(rng.normal(size=shape) * 2, dtype)
        b = tf.constant(rng.normal(size=shape[-1]), dtype)
        ref = _value_and_derivatives("ref", x, b, act, clamp)
        got = _value_and_derivatives("custom", x, b, act, clamp)
        for name, r, g in zip(("y", "dx", "db", "d2x", "d2b"), ref, got):
            scale = max(np.max(np.abs(r)), 1e-30)
            assert np.max(np.abs(r - g)) <= tol * scale, (act, shape, clamp, name, np.max(np.abs(r - g)) / scale)
    # No bias.
    x = tf.constant(rng.normal(size=(4, 6)), dtype)
    np.testing.assert_allclose(fused_bias_act(x, act=act, impl="custom").numpy(),
                               fused_bias_act(x, act=act, impl="ref").numpy(), rtol=tol, atol=tol)


def _repeated_derivatives(f, x, order, unconnected=tf.UnconnectedGradients.NONE):
    """[f(x), f'(x), ..., f^(order)(x)], where f^(k) is the gradient of sum(f^(k-1)) w.r.t. x,
    each taken by its own tape around the lower orders."""
    if order == 0:
        return [f(x)]
    with tf.GradientTape() as tape:
        tape.watch(x)
        lower = _repeated_derivatives(f, x, order - 1, unconnected)
    return lower + [tape.gradient(lower[-1], x, unconnected_gradients=unconnected)]


def test_third_derivative_equals_reference(kernels):
    x = tf.constant(np.linspace(-3, 3, 25).reshape(5, 5) + 0.01, tf.float64)   # off the kinks
    b = tf.constant(np.linspace(-0.5, 0.5, 5), tf.float64)
    for act in ("tanh", "sigmoid", "softplus", "swish", "elu", "selu"):
        third = [_repeated_derivatives(lambda v: fused_bias_act(v, b, act=act, impl=impl), x, 3)[3].numpy()
                 for impl in ("ref", "custom")]
        np.testing.assert_allclose(third[1], third[0], rtol=1e-12, atol=1e-12, err_msg=act)


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_derivatives_at_zero_take_tensorflows_branch(kernels, act):
    """x + b = 0 happens in bfloat16 (a value and a bias of opposite sign): the kernel's first and
    second derivatives there are the reference's (relu/lrelu left, elu/selu right)."""
    x = tf.constant([[0.0, -0.0, 0.5, -0.5]], tf.float64)
    b = tf.constant([0.0, 0.0, -0.5, 0.5], tf.float64)
    results = [[d.numpy() for d in _repeated_derivatives(lambda v: fused_bias_act(v, b, act=act, impl=impl), x, 2,
                                                         tf.UnconnectedGradients.ZERO)[1:]]
               for impl in ("ref", "custom")]
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-15, err_msg=act)
    np.testing.assert_allclose(results[1][1], results[0][1], rtol=1e-15, atol=1e-15, err_msg=act)


def test_the_same_errors_from_both_implementations(kernels):
    x = tf.zeros([2, 3, 4])
    for impl in ("ref", "custom"):
        with pytest.raises(ValueError, match=r"b must be a vector of x.shape\[-1\] = 4 \(or 1, broadcast\), got"):
            fused_bias_act(x, tf.zeros([3]), impl=impl)
        with pytest.raises(ValueError, match="x must be floating point, got int32"):
            fused_bias_act(tf.zeros([2, 3], tf.int32), impl=impl)
        with pytest.raises(ValueError, match="clamp must be >= 0 or None, got -1"):
            fused_bias_act(x, clamp=-1, impl=impl)
        with pytest.raises(ValueError, match="unknown activation 'gelu'"):
            fused_bias_act(x, act="gelu", impl=impl)
        with pytest.raises(ValueError, match="x must have a known rank >= 1"):
            fused_bias_act(tf.constant(1.0), impl=impl)
    with pytest.raises(CustomOpsError, match="supports bfloat16, float32 and float64, not float16"):
        fused_bias_act(tf.zeros([2, 3], tf.float16), impl="custom")
    with pytest.raises(ValueError, match="impl must be one of"):
        fused_bias_act(x, impl="fast")
    with use_implementation("custom"):       # a forced block refuses what the kernel cannot do
        with pytest.raises(CustomOpsError, match="one bias per channel of the last axis"):
            fused_bias_act(x, tf.zeros([3]), axis=1)


# --------------------------------------------------------------------------- bfloat16

def _bf16_bits(t):
    """A bfloat16 tensor's values as signed integers that step by one per bfloat16 ulp (ordered
    like the values, -0 = +0)."""
    bits = t.numpy().view(np.uint16).astype(np.int32)
    return np.where(bits & 0x8000, -(bits & 0x7FFF), bits)


def _assert_rounded_once(got, exact64, what, float32_tol=0.0):
    """got (bfloat16) is exact64 (the float64 result on the same bfloat16 inputs) computed in
    float32 and rounded to bfloat16 once, to nearest even: within half a bfloat16 ulp (2^-8 of the
    value) plus float32's own error (float32_tol of the largest value), and equal to exact64
    rounded once nearly everywhere (not where float64 -> float32 -> bfloat16 rounds a near-tie the
    other way, or float32 loses digits to cancellation)."""
    exact = exact64.numpy()
    err = np.abs(got.numpy().astype(np.float64) - exact)
    bound = 2.0 ** -8 * np.abs(exact) + float32_tol * np.max(np.abs(exact))
    equal = np.mean(_bf16_bits(got) == _bf16_bits(tf.cast(tf.cast(exact64, tf.float32), tf.bfloat16)))
    assert got.dtype == tf.bfloat16 and np.all(err <= bound) and equal >= 0.97, (what, np.max(err - bound), equal)


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_bfloat16_fused_bias_act_computes_in_float32_and_rounds_once(kernels, act):
    """The kernel widens bfloat16 to float32 and rounds the result once: the value and the
    derivative op (the gradient with respect to x for a given dy) are the float64 results on the
    same inputs, correctly rounded. The second derivatives (a chain of bfloat16 ops) agree with
    float64 to a few bfloat16 ulps."""
    rng = np.random.default_rng(zlib.crc32(act.encode()) + 1)
    for shape, clamp in [((2, 5, 7, 40), None), ((3, 11), 0.7), ((1, 3, 3, 4), 0.3)]:
        x, b, dy = (tf.cast(rng.normal(size=s) * 2, tf.bfloat16) for s in (shape, shape[-1:], shape))
        x64, b64, dy64 = (tf.cast(v, tf.float64) for v in (x, b, dy))
        for bias in (b, None):
            _assert_rounded_once(fused_bias_act(x, bias, act=act, clamp=clamp, impl="custom"),
                                 fused_bias_act(x64, None if bias is None else b64, act=act, clamp=clamp, impl="ref"),
                                 (act, shape, clamp, bias is None, "y"), float32_tol=5e-6)
        weights = np.cos(np.arange(np.prod(shape)).reshape(shape))      # a constant: d2x weighs dx unevenly
        grads = {}
        for impl, args in (("custom", (x, b, dy)), ("ref", (x64, b64, dy64))):
            xi, bi, dyi = args
            with tf.GradientTape() as outer:
                outer.watch(xi)
                with tf.GradientTape() as inner:
                    inner.watch(xi)
                    y = fused_bias_act(xi, bi, act=act, clamp=clamp, impl=impl)
                gx = inner.gradient(y, xi, output_gradients=dyi)
                second = tf.reduce_sum(gx * tf.constant(weights, xi.dtype))
            grads[impl] = gx, outer.gradient(second, xi, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        _assert_rounded_once(grads["custom"][0], grads["ref"][0], (act, shape, clamp, "dx"), float32_tol=5e-6)
        h, h64 = (v.numpy().astype(np.float64) for v in (grads["custom"][1], grads["ref"][1]))
        assert np.max(np.abs(h - h64)) <= 4 * 2.0 ** -8 * max(np.max(np.abs(h64)), 1e-30), (act, shape, clamp)


def test_bfloat16_upfirdn_sums_in_float32_and_rounds_once(kernels):
    """UpFirDn2D on bfloat16 over random geometries: the float64 result on the same (rounded)
    input and filter, rounded to bfloat16 once; and so is its gradient (the adjoint op) for a given
    dy."""
    rng = np.random.default_rng(7)
    for up, down, pad, (h, w), k in _random_geometries(40, seed=13):
        k = tf.cast(tf.cast(k, tf.bfloat16), tf.float64).numpy()        # the filter the kernel sees
        x = tf.cast(rng.normal(size=(2, h, w, 17)), tf.bfloat16)
        x64 = tf.cast(x, tf.float64)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = upfirdn_2d(x, k, up=up, down=down, pad=pad, impl="custom")
        with tf.GradientTape() as tape64:
            tape64.watch(x64)
            y64 = upfirdn_2d(x64, k, up=up, down=down, pad=pad, impl="ref")
        _assert_rounded_once(y, y64, (up, down, pad, (h, w), k.shape, "y"))
        dy = tf.cast(rng.normal(size=y.shape), tf.bfloat16)
        _assert_rounded_once(tape.gradient(y, x, output_gradients=dy),
                             tape64.gradient(y64, x64, output_gradients=tf.cast(dy, tf.float64)),
                             (up, down, pad, (h, w), k.shape, "dx"))


def test_build_failure_falls_back_once_and_custom_says_why(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv(custom_ops.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(custom_ops.CXX_ENV, "false")            # a compiler that always fails
    custom_ops._reset_for_tests()
    try:
        x = tf.constant([[-1.0, 2.0]])
        with caplog.at_level("WARNING"):
            y1 = fused_bias_act(x, act="lrelu", impl="auto")
            y2 = fused_bias_act(x, act="lrelu", impl="auto")
        np.testing.assert_allclose(y1.numpy(), [[-0.2 * np.sqrt(2), 2 * np.sqrt(2)]], rtol=1e-6)
        np.testing.assert_array_equal(y1.numpy(), y2.numpy())
        warnings = [r.getMessage() for r in caplog.records if "using the reference ops" in r.getMessage()]
        assert len(warnings) == 1 and "building the kernels failed (false exit 1" in warnings[0]
        with pytest.raises(CustomOpsError, match="building the kernels failed"):
            fused_bias_act(x, impl="custom")
        assert os.path.isfile(next((tmp_path / "cache").iterdir()) / "build.log")
        assert not list((tmp_path / "cache").glob("*/*.so"))     # nothing half-written
    finally:
        custom_ops._reset_for_tests()


def _fake_compiler(folder):
    """A stand-in for the C++ compiler that logs each call's start and end (with its arguments),
    takes a second, writes its -o output, and fails (like a compiler error) on a source whose
    name is in $FAKE_CXX_FAIL."""
    script = folder / "cxx"
    script.write_text(f"""#!/bin/sh
[ "$1" = "--version" ] && {{ echo fake-cxx 1; exit 0; }}
out=; prev=
for a in "$@"; do [ "$prev" = "-o" ] && out=$a; prev=$a; done
echo "start $(date +%s.%N) $*" >> {folder}/calls
sleep 1
if [ -n "$FAKE_CXX_FAIL" ]; then
  case "$*" in *"$FAKE_CXX_FAIL"*) echo "$FAKE_CXX_FAIL:1:1: error: broken" >&2; exit 1;; esac
fi
echo built > "$out"
echo "end $(date +%s.%N) $out" >> {folder}/calls
""")
    script.chmod(0o755)
    return str(script)


def test_build_compiles_each_source_on_its_own_at_once_then_links(tmp_path, monkeypatch):
    monkeypatch.setenv(custom_ops.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(custom_ops.CXX_ENV, _fake_compiler(tmp_path))
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    path = custom_ops.build(archs=[])
    calls = [line.split() for line in (tmp_path / "calls").read_text().splitlines()]
    starts = [c for c in calls if c[0] == "start"]
    ends = {c[2]: float(c[1]) for c in calls if c[0] == "end"}
    compiles, links = [c for c in starts if "-c" in c], [c for c in starts if "-shared" in c]
    sources = sorted(os.path.basename(a) for c in compiles for a in c if a.endswith(".cc"))
    assert sources == sorted(custom_ops.CPU_SOURCES)                     # one call per source
    assert all(sum(a.endswith(".cc") for a in c) == 1 for c in compiles)
    objects = [c[c.index("-o") + 1] for c in compiles]
    assert len(links) == 1 and set(objects) <= set(links[0])            # then one link of them all
    assert float(links[0][1]) >= max(ends[o] for o in objects)
    first, second = sorted(float(c[1]) for c in compiles)[:2]
    assert second < ends[objects[[float(c[1]) for c in compiles].index(first)]]    # two at once
    assert open(path).read() == "built\n"


def test_a_failing_source_fails_the_build_with_its_error_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv(custom_ops.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(custom_ops.CXX_ENV, _fake_compiler(tmp_path))
    monkeypatch.setenv("FAKE_CXX_FAIL", "winograd_conv_2d_double.cc")
    with pytest.raises(CustomOpsError, match=r"building the kernels failed \(cxx exit 1: "
                                             r"winograd_conv_2d_double.cc:1:1: error: broken"):
        custom_ops.build(archs=[])
    assert "-shared" not in (tmp_path / "calls").read_text()              # never linked
    folder = next((tmp_path / "cache").iterdir())
    assert (folder / "build.log").is_file() and not list(folder.glob("*.so*")) and not list(folder.glob("tmp*"))


def test_missing_sources_fall_back(tmp_path, monkeypatch):
    monkeypatch.setattr(custom_ops, "SOURCES_DIR", str(tmp_path / "nowhere"))
    custom_ops._reset_for_tests()
    try:
        assert implementation.choose("FusedBiasAct", tf.float32, "auto") == "ref"
        assert "kernel sources not found" in custom_ops.unavailable_reason()
    finally:
        custom_ops._reset_for_tests()


def test_sources_are_found_beside_the_package_or_under_the_prefix(tmp_path):
    clone, prefix = tmp_path / "clone", tmp_path / "prefix"
    installed = prefix / "share" / "stylegan2_tf" / "custom_ops"
    installed.mkdir(parents=True)
    (installed / "fused_bias_act.cc").write_text("")
    assert custom_ops.find_sources(str(clone), [str(prefix)]) == str(installed)     # a wheel install
    (clone / "custom_ops").mkdir(parents=True)
    (clone / "custom_ops" / "fused_bias_act.cc").write_text("")
    assert custom_ops.find_sources(str(clone), [str(prefix)]) == str(clone / "custom_ops")   # a clone first
    assert custom_ops.find_sources(str(tmp_path / "none"), []) == str(tmp_path / "none" / "custom_ops")


def test_a_wheel_installs_every_source_the_build_reads():
    """setup.cfg's data_files put each source and header the build compiles or hashes under
    share/stylegan2_tf/custom_ops: a wheel without one could not build the kernels."""
    import configparser
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(os.path.dirname(custom_ops.SOURCES_DIR), "setup.cfg"))
    installed = {os.path.join(folder, os.path.basename(path)).replace("share/stylegan2_tf/custom_ops", "").lstrip("/")
                 for folder, files in cfg["options.data_files"].items() for path in files.split()}
    needed = set(custom_ops.CPU_SOURCES + custom_ops.CUDA_SOURCES + custom_ops.HEADERS)
    assert needed <= installed, sorted(needed - installed)


def test_selection_environment_and_forcing(kernels, monkeypatch):
    monkeypatch.setenv(implementation.IMPL_ENV, "custom")
    assert implementation.choose("FusedBiasAct", tf.float32) == "custom"
    assert implementation.choose("FusedBiasAct", tf.float32, "ref") == "ref"    # the argument wins over the variable
    with use_implementation("ref"):                                         # and the block over both
        assert implementation.choose("FusedBiasAct", tf.float32, "custom") == "ref"
    monkeypatch.setenv(implementation.IMPL_ENV, "quick")
    with pytest.raises(ValueError, match=r"\$STYLEGAN2_TF_OPS"):
        implementation.choose("FusedBiasAct", tf.float32)
    monkeypatch.delenv(implementation.IMPL_ENV)
    assert implementation.choose("FusedBiasAct", tf.float64, "auto") == "custom"
    assert implementation.choose("FusedBiasAct", tf.float16, "auto") == "ref"


def test_default_is_the_kernels_on_a_cpu_and_the_reference_where_a_gpu_is(kernels, monkeypatch):
    monkeypatch.delenv(implementation.IMPL_ENV, raising=False)
    assert implementation.choose("UpFirDn2D", tf.float32) == "custom"
    monkeypatch.setitem(custom_ops._state, "gpus", True)   # as on a machine with a visible GPU
    assert implementation.choose("UpFirDn2D", tf.float32) == "ref"
    monkeypatch.setitem(custom_ops._state, "gpu_error", "the kernels were built without CUDA")
    with pytest.raises(CustomOpsError, match="UpFirDn2D: the kernels were built without CUDA"):
        implementation.choose("UpFirDn2D", tf.float32, "custom")


def test_xla_functions_use_the_reference(kernels):
    x = tf.constant(np.random.default_rng(1).normal(size=[2, 6, 6, 3]), tf.float32)
    k = [1, 3, 3, 1]
    xla = tf.function(lambda x: upsample_2d(fused_bias_act(x, act="lrelu", impl="auto"), k, impl="auto"),
                      jit_compile=True)
    want = upsample_2d(fused_bias_act(x, act="lrelu", impl="ref"), k, impl="ref")
    np.testing.assert_allclose(xla(x).numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(CustomOpsError, match="XLA"):
        tf.function(lambda x: fused_bias_act(x, impl="custom"), jit_compile=True, autograph=False)(x)


def test_network_losses_and_regularised_gradients_match(kernels):
    """G and D of a tiny config: the non-saturating losses, R1 and their gradients with respect to
    every variable, computed on the kernels and on the reference ops."""
    from stylegan2_tf.networks import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig
    G = Generator(GeneratorConfig(img_resolution=16, z_dim=16, w_dim=16, mapping_layers=2, fmap_base=64,
                                  fmap_max=16, fused_modconv=False))
    D = Discriminator(DiscriminatorConfig(img_resolution=16, fmap_base=64, fmap_max=16))
    z = tf.constant(np.random.default_rng(0).normal(size=(4, 16)), tf.float32)
    reals = tf.constant(np.random.default_rng(1).uniform(-1, 1, size=(4, 16, 16, 3)), tf.float32)
    G(z), D(reals)
    results = {}
    for impl in ("ref", "custom"):
        with use_implementation(impl):
            results[impl] = gan_losses_and_gradients(G, D, z, reals)
    assert len(results["ref"]) == len(results["custom"]) > 20
    for r, c in zip(results["ref"], results["custom"]):
        r, c = np.asarray(r), np.asarray(c)
        np.testing.assert_allclose(c, r, rtol=1e-4, atol=1e-5 * max(np.max(np.abs(r)), 1e-6))


def test_saved_model_never_needs_the_op_library(kernels, tmp_path, monkeypatch):
    from stylegan2_tf.export import export_generator
    from stylegan2_tf.networks import Generator, GeneratorConfig
    monkeypatch.setenv(implementation.IMPL_ENV, "custom")
    G = Generator(GeneratorConfig(img_resolution=8, z_dim=8, w_dim=8, mapping_layers=1, fmap_base=32, fmap_max=8))
    G(tf.zeros([1, 8]))
    out = export_generator(G, str(tmp_path / "export"), "savedmodel", check=False).folder
    with open(os.path.join(out, "saved_model.pb"), "rb") as f:
        graph = f.read()
    assert b"Sg2FusedBiasAct" not in graph and b"FusedBiasAct" not in graph.replace(b"fused_bias_act", b"")


# --------------------------------------------------------------------------- UpFirDn2D

def _random_geometries(count, seed):
    """(up, down, pad, (H, W), filter) over up/down 1-4 per axis, 1-8 taps per axis, pads -3..5
    (negative crops), odd and even sizes; only geometries that leave something to filter."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        up, down = tuple(int(v) for v in rng.integers(1, 5, 2)), tuple(int(v) for v in rng.integers(1, 5, 2))
        kh, kw = (int(v) for v in rng.integers(1, 9, 2))
        size = tuple(int(v) for v in rng.integers(1, 12, 2))
        pad = tuple(int(v) for v in rng.integers(-3, 6, 4))
        if size[0] * up[0] + pad[0] + pad[1] < kh or size[1] * up[1] + pad[2] + pad[3] < kw:
            continue
        out.append((up, down, pad, size, rng.normal(size=(kh, kw)).astype(np.float32)))
    return out


@pytest.mark.parametrize("dtype,tol", [(tf.float64, 1e-12), (tf.float32, 2e-6)])
def test_upfirdn_kernel_equals_reference_over_random_geometries(kernels, dtype, tol):
    rng = np.random.default_rng(5)
    for up, down, pad, (h, w), k in _random_geometries(60, seed=11):
        x = tf.constant(rng.normal(size=(2, h, w, 3)), dtype)
        results = {}
        for impl in ("ref", "custom"):
            with tf.GradientTape() as outer:
                outer.watch(x)
                with tf.GradientTape() as inner:
                    inner.watch(x)
                    y = upfirdn_2d(x, k, up=up, down=down, pad=pad, impl=impl)
                    loss = tf.reduce_sum(y * y * y)           # nonlinear: the second derivative is not 0
                g = inner.gradient(loss, x)
                second = tf.reduce_sum(g * tf.sin(x))
            results[impl] = [y.numpy(), g.numpy(), outer.gradient(second, x).numpy()]
        for name, r, c in zip(("y", "dx", "d2x"), results["ref"], results["custom"]):
            assert r.shape == c.shape, (up, down, pad, (h, w), k.shape, name)
            scale = max(np.max(np.abs(r)), 1e-30)
            assert np.max(np.abs(r - c)) <= tol * scale, (up, down, pad, (h, w), k.shape, name)


def test_upfirdn_helpers_and_flip_use_the_kernel(kernels):
    rng = np.random.default_rng(2)
    x = tf.constant(rng.normal(size=(2, 9, 7, 5)), tf.float64)
    w = tf.constant(rng.normal(size=(3, 3, 5, 4)), tf.float64)
    k = [1, 3, 3, 1]
    for fn in (lambda impl: upsample_2d(x, k, impl=impl), lambda impl: downsample_2d(x, k, impl=impl),
               lambda impl: filter_2d(x, k, gain=2.0, impl=impl),
               lambda impl: upsample_conv_2d(x, w, k, impl=impl), lambda impl: conv_downsample_2d(x, w, k, impl=impl),
               lambda impl: upfirdn_2d(x, np.arange(6.0).reshape(2, 3), up=2, down=3, pad=(1, -1, 2, 0),
                                       flip_kernel=True, impl=impl)):
        np.testing.assert_allclose(fn("custom").numpy(), fn("ref").numpy(), rtol=1e-12, atol=1e-12)


def test_upfirdn_same_errors_from_both_implementations(kernels):
    x = tf.zeros([1, 4, 4, 2])
    for impl in ("ref", "custom"):
        with pytest.raises(ValueError, match=r"padding \(-3, -2\) leaves 3 rows for a 4-tap filter"):
            upfirdn_2d(x, np.ones((4, 4)), up=2, pad=(-3, -2, 0, 0), impl=impl)
        with pytest.raises(ValueError, match=r"x must be \[N, H, W, C\], got shape \(4, 4, 2\)"):
            upfirdn_2d(tf.zeros([4, 4, 2]), np.ones((2, 2)), impl=impl)
        with pytest.raises(ValueError, match="non-empty 2-D kernel, got shape"):
            upfirdn_2d(x, np.ones((2, 2, 2)), impl=impl)
        with pytest.raises(ValueError, match="FIR kernel must be 1-D or square 2-D"):
            upsample_2d(x, np.ones((2, 2, 2)), impl=impl)
        with pytest.raises(ValueError, match="up/down factors must be positive integers"):
            upfirdn_2d(x, np.ones((2, 2)), up=0, impl=impl)
        with pytest.raises(ValueError, match="x must be floating point, got int32"):
            upfirdn_2d(tf.zeros([1, 4, 4, 2], tf.int32), np.ones((2, 2)), impl=impl)
    with pytest.raises(CustomOpsError,
                       match="UpFirDn2D: the CPU kernel supports bfloat16, float32 and float64, not float16"):
        upfirdn_2d(tf.zeros([1, 4, 4, 2], tf.float16), np.ones((2, 2)), impl="custom")
