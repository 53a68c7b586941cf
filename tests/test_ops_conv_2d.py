"""stylegan2_tf.ops.conv_2d.conv2d against tf.nn.conv2d and its registered gradients (float64): values,
first derivatives (input and filter), and second derivatives of the kind R1 and the path-length
penalty take (the gradient of a function of the input gradient). Winograd's form runs both ways:
the reference TensorFlow ops and the C++ kernel (custom_ops/winograd_conv_2d.cc)."""

import numpy as np
import pytest
import tensorflow as tf

from conftest import conv_derivatives, gan_losses_and_gradients

import stylegan2_tf.ops.conv_2d as conv2d_module
from stylegan2_tf.ops.conv_2d import (conv2d, filter_gradient_form, tap_filter_gradient, winograd_filter_gradient,
                                      winograd_kernel_tile)
from stylegan2_tf.ops.implementation import use_implementation

CASES = [  # (x shape, kernel shape, padding)
    ((2, 7, 6, 3), (3, 3, 3, 4), "SAME"),
    ((2, 7, 6, 3), (3, 3, 3, 4), "VALID"),
    ((1, 6, 8, 2), (2, 2, 2, 5), "SAME"),
    ((2, 5, 5, 4), (1, 1, 4, 3), "SAME"),
    ((1, 6, 7, 3), (3, 2, 3, 2), [[2, 0], [1, 3]]),
    ((2, 8, 8, 2), (3, 3, 2, 3), [[-1, 2], [0, -2]]),
    # Several of the kernel's blocks of 64 (filter gradient: 256) F(2x2) tiles, odd output sides, wide pads.
    ((3, 23, 28, 5), (3, 3, 5, 6), [[2, 1], [0, 3]]),
    # The same for F(4x4, 3x3)'s tiles (360 of them; sides 38 and 34, not multiples of 4).
    ((4, 37, 34, 3), (3, 3, 3, 4), [[1, 2], [2, 0]]),
    # 16 and more blocks of 64 tiles (F(4x4): 1088 tiles, F(2x2): 4216), where the forward kernel works
    # block by block; with fewer (the cases above) it shares out each of its steps.
    ((4, 66, 61, 2), (3, 3, 2, 3), [[1, 2], [2, 0]]),
]
# The forms, with the implementation each runs in: Winograd's through the reference ops and the kernel
# with either tile ('custom:2': F(2x2, 3x3), 'custom:4': F(4x4, 3x3)).
FORMS_3X3 = (("winograd", "ref"), ("winograd", "custom:2"), ("winograd", "custom:4"), ("taps", None),
             ("kernel", None))


def _reference(x, w, padding):
    """tf.nn.conv2d with the negative pads done as crops (tf.nn.conv2d takes none)."""
    if isinstance(padding, str):
        return tf.nn.conv2d(x, w, 1, padding)
    (top, bottom), (left, right) = padding
    x = x[:, max(-top, 0):x.shape[1] - max(-bottom, 0), max(-left, 0):x.shape[2] - max(-right, 0), :]
    pads = [[0, 0], [max(top, 0), max(bottom, 0)], [max(left, 0), max(right, 0)], [0, 0]]
    return tf.nn.conv2d(x, w, 1, pads)


def _in(impl, function, *args):
    """function(*args) inside use_implementation(impl); 'custom:T' also fixes the kernel's tile to T."""
    if impl is None:
        return function(*args)
    impl, _, tile = impl.partition(":")
    rule = conv2d_module.winograd_kernel_tile
    try:
        if tile:
            conv2d_module.winograd_kernel_tile = lambda x, w: int(tile)
        with use_implementation(impl):
            return function(*args)
    finally:
        conv2d_module.winograd_kernel_tile = rule


@pytest.mark.parametrize("x_shape,w_shape,padding", CASES)
def test_tap_form_equals_tf_conv2d_to_second_order(x_shape, w_shape, padding, kernels):
    rng = np.random.default_rng(sum(x_shape) * 31 + sum(w_shape))
    x = tf.constant(rng.standard_normal(x_shape))
    w = tf.constant(rng.standard_normal(w_shape))
    y_ref = _reference(x, w, padding)
    probe = tf.constant(rng.standard_normal(y_ref.shape))
    want = conv_derivatives(lambda a, b: _reference(a, b, padding), x, w, probe)
    forms = FORMS_3X3 if w_shape[:2] == (3, 3) else (("taps", None), ("kernel", None))
    for form, impl in forms:
        got = _in(impl, conv_derivatives, lambda a, b: conv2d(a, b, padding, filter_gradient=form), x, w, probe)
        tolerance = 2e-11 if impl == "custom:4" else 1e-12   # F(4x4, 3x3) rounds 5-10x more
        for name, g, r in zip(("y", "dx", "dw", "d2x", "d2w"), got, want):
            np.testing.assert_allclose(g.numpy(), r.numpy(), rtol=tolerance, atol=tolerance,
                                       err_msg=f"{form} {impl} {name}")


@pytest.mark.parametrize("tile", [2, 4])
@pytest.mark.parametrize("pads", [[1, 1, 1, 1], [2, 1, 0, 3], [0, 0, 0, 0]])
def test_winograd_filter_gradient_kernel_has_gradients(pads, tile, kernels):
    """The kernel's filter gradient dW(x, dY) differentiated (its registered gradient: two
    convolutions), against TensorFlow's own filter gradient and its gradients: <g, dW> with respect
    to x and dY, then once more (the sum of squares of those) with respect to x, dY and g."""
    rng = np.random.default_rng(sum(pads))
    x = tf.constant(rng.standard_normal((2, 9, 8, 3)))
    out_h, out_w = 9 + pads[0] + pads[1] - 2, 8 + pads[2] + pads[3] - 2
    dy = tf.constant(rng.standard_normal((2, out_h, out_w, 4)))
    g = tf.constant(rng.standard_normal((3, 3, 3, 4)))

    def reference(x, dy):
        return tf.compat.v1.nn.conv2d_backprop_filter(x, [3, 3, 3, 4], dy, [1, 1, 1, 1],
                                                      [[0, 0], pads[:2], pads[2:], [0, 0]])

    def kernel(x, dy):
        return kernels.sg2_winograd_filter_gradient(x, dy, pads=pads, tile=tile)

    def derivatives(filter_gradient):
        with tf.GradientTape(persistent=True) as outer:
            outer.watch([x, dy, g])
            with tf.GradientTape() as inner:
                inner.watch([x, dy])
                dw = filter_gradient(x, dy)
                s = tf.reduce_sum(dw * g)
            d_x, d_dy = inner.gradient(s, [x, dy])
            penalty = tf.reduce_sum(tf.square(d_x)) + tf.reduce_sum(tf.square(d_dy))
        return [dw, d_x, d_dy, *outer.gradient(penalty, [x, dy, g])]

    for name, got, want in zip(("dw", "d/dx", "d/d(dy)", "d2/dx", "d2/d(dy)", "d2/dg"),
                               derivatives(kernel), derivatives(reference)):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("tile", [2, 4])
@pytest.mark.parametrize("x_shape", [(2, 40, 37, 16), (4, 66, 61, 16)])
def test_winograd_kernel_with_work_for_several_threads(x_shape, tile, kernels):
    """Channels enough for the kernel to split its work between threads: the forward pass's three
    shared steps (fewer than 16 blocks of 64 tiles: the first shape) and its block after block path
    (the second), the filter gradient's transforms and products, against TensorFlow's kernels."""
    rng = np.random.default_rng(x_shape[1])
    pads = [1, 2, 0, 1]
    x = tf.constant(rng.standard_normal(x_shape))
    w = tf.constant(rng.standard_normal((3, 3, x_shape[3], 24)))
    y = kernels.sg2_winograd_conv2d(x, w, pads=pads, tile=tile)
    tf_pads = [[0, 0], pads[:2], pads[2:], [0, 0]]
    np.testing.assert_allclose(y.numpy(), tf.nn.conv2d(x, w, 1, tf_pads).numpy(), rtol=0, atol=1e-11)
    dy = tf.constant(rng.standard_normal(y.shape))
    dw = kernels.sg2_winograd_filter_gradient(x, dy, pads=pads, tile=tile)
    want = tf.compat.v1.nn.conv2d_backprop_filter(x, w.shape, dy, [1, 1, 1, 1], tf_pads)
    np.testing.assert_allclose(dw.numpy(), want.numpy(), rtol=0, atol=1e-9)


def test_winograd_kernel_refuses_bad_inputs(kernels):
    x, w = tf.zeros([1, 5, 5, 2]), tf.zeros([3, 3, 2, 4])
    bad = tf.errors.InvalidArgumentError
    with pytest.raises(bad, match=r"tile must be 2 or 4 \(F\(2x2, 3x3\) or F\(4x4, 3x3\)\), got 3"):
        kernels.sg2_winograd_conv2d(x, w, pads=[1, 1, 1, 1], tile=3)
    with pytest.raises(bad, match="pads must be 4 non-negative amounts"):
        kernels.sg2_winograd_conv2d(x, w, pads=[1, -1, 1, 1])
    with pytest.raises(bad, match=r"WinogradConv2D: w must be \[3, 3, C, O\] for x \[N, H, W, C\], got w \[2,2,2,4\]"):
        kernels.sg2_winograd_conv2d(x, tf.zeros([2, 2, 2, 4]), pads=[1, 1, 1, 1])
    with pytest.raises(bad, match=r"WinogradConv2D: x \[1,2,2,2\] padded by \[0, 0, 0, 0\] is smaller than the 3x3"):
        kernels.sg2_winograd_conv2d(tf.zeros([1, 2, 2, 2]), w, pads=[0, 0, 0, 0])
    with pytest.raises(bad, match=r"WinogradFilterGradient: dy \[1,4,5,4\] does not match x \[1,5,5,2\]'s output"):
        kernels.sg2_winograd_filter_gradient(x, tf.zeros([1, 4, 5, 4]), pads=[1, 1, 1, 1], tile=4)


def test_winograd_kernel_is_what_runs(kernels):
    """With the kernels (implementation 'custom' or 'auto'), Winograd's form is the kernel's two ops,
    forward and backward, and none of the reference's batched products; with 'ref', the reverse."""
    x, w = tf.zeros([1, 16, 16, 8]), tf.zeros([3, 3, 8, 8])

    def op_types():
        def step(x, w):
            with tf.GradientTape() as tape:
                tape.watch([x, w])
                y = conv2d(x, w, filter_gradient="winograd")
            return tape.gradient(y, [x, w])
        graph = tf.function(step, autograph=False).get_concrete_function(x, w).graph
        return {op.type for op in graph.get_operations()}
    for impl in ("custom", "auto"):
        types = _in(impl, op_types)
        assert {"Sg2WinogradConv2D", "Sg2WinogradFilterGradient"} <= types and "BatchMatMulV2" not in types, impl
    types = _in("ref", op_types)
    assert "BatchMatMulV2" in types and not {"Sg2WinogradConv2D", "Sg2WinogradFilterGradient"} & types


@pytest.mark.parametrize("pads, kernel_size", [(((1, 1), (1, 1)), (3, 3)), (((0, 2), (2, -1)), (3, 3)),
                                                (((0, 2), (1, 0)), (3, 2)), (((0, 0), (0, 0)), (2, 2)),
                                                (((2, 0), (0, 3)), (1, 1))])
def test_tap_filter_gradient_is_the_sum_over_positions(pads, kernel_size, kernels):
    # dW[i, j, c, o] = sum_{n,p,q} x_pad[n, p + i, q + j, c] dY[n, p, q, o], written out with numpy;
    # the taps and (3x3) Winograd's F(2x2, 3x3), with odd and even output sides.
    kh, kw = kernel_size
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 5, 4, 3))
    xp = np.pad(x, [(0, 0), [max(p, 0) for p in pads[0]], [max(p, 0) for p in pads[1]], (0, 0)])
    (top, bottom), (left, right) = ((max(-a, 0), max(-b, 0)) for a, b in pads)   # negative pads crop
    xp = xp[:, top:xp.shape[1] - bottom, left:xp.shape[2] - right]
    out_h, out_w = xp.shape[1] - kh + 1, xp.shape[2] - kw + 1
    dy = rng.standard_normal((2, out_h, out_w, 2))
    want = np.zeros((kh, kw, 3, 2))
    for i in range(kh):
        for j in range(kw):
            for n in range(2):
                for p in range(out_h):
                    for q in range(out_w):
                        want[i, j] += np.outer(xp[n, p + i, q + j], dy[n, p, q])
    got = tap_filter_gradient(tf.constant(x), tf.constant(dy), pads, kernel_size)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)
    if kernel_size == (3, 3):
        got = winograd_filter_gradient(tf.constant(x), tf.constant(dy), pads)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)
        # The kernel takes x cropped where a pad is negative, and the non-negative pads.
        x_cropped = x[:, top:x.shape[1] - bottom, left:x.shape[2] - right]
        pad_list = [max(p, 0) for pair in pads for p in pair]
        for tile in (2, 4):
            got = kernels.sg2_winograd_filter_gradient(tf.constant(x_cropped), tf.constant(dy), pads=pad_list,
                                                       tile=tile)
            np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12, err_msg=f"tile {tile}")


def test_float32_tap_form_within_rounding_of_the_kernel(kernels):
    rng = np.random.default_rng(2)
    x = tf.constant(rng.standard_normal((2, 16, 16, 8)), tf.float32)
    w = tf.constant(rng.standard_normal((3, 3, 8, 8)) / 8, tf.float32)
    probe = tf.constant(rng.standard_normal((2, 16, 16, 8)), tf.float32)
    want = conv_derivatives(lambda a, b: tf.nn.conv2d(a, b, 1, "SAME"), x, w, probe)
    for form, impl in FORMS_3X3[:4]:
        got = _in(impl, conv_derivatives, lambda a, b: conv2d(a, b, "SAME", filter_gradient=form), x, w, probe)
        for name, g, r in zip(("y", "dx", "dw", "d2x", "d2w"), got, want):
            scale = float(tf.reduce_max(tf.abs(r)))
            # F(4x4, 3x3)'s transforms (entries up to 8 and 1/24) round 5-10x more than F(2x2)'s.
            tolerance = 1e-5 if impl == "custom:4" else 2e-6
            np.testing.assert_allclose(g.numpy(), r.numpy(), rtol=0, atol=tolerance * scale,
                                       err_msg=f"{form} {impl} {name}")


def test_kernel_tile_rule():
    """F(4x4, 3x3) from 32x32 inputs on, at any channel count; F(2x2, 3x3) below."""
    def tile(side, channels, outputs, height=None):
        return winograd_kernel_tile(tf.zeros([1, height or side, side, channels]),
                                    tf.zeros([3, 3, channels, outputs]))
    assert tile(128, 64, 64) == 4 and tile(64, 128, 256) == 4 and tile(32, 512, 512) == 4 and tile(32, 512, 256) == 4
    assert tile(16, 512, 512) == 2 and tile(8, 512, 512) == 2 and tile(32, 128, 128, height=16) == 2
    assert tile(64, 64, 64, height=16) == 4


def test_automatic_form(kernels):
    from stylegan2_tf.ops.capabilities import cpu_conv_kernels, cpu_flags, onednn_enabled
    flags = cpu_flags() or frozenset()
    avx2_onednn = bool(onednn_enabled()) and "avx2" in flags and "avx512f" not in flags
    assert (cpu_conv_kernels() == "onednn-avx2") == avx2_onednn

    def form(side, channels, outputs, kernels, kernel_size=3, height=None, dtype=tf.float32, winograd="ref"):
        x = tf.zeros([1, height or side, side, channels], dtype)
        w = tf.zeros([kernel_size, kernel_size, channels, outputs], dtype)
        return filter_gradient_form(x, w, kernels, winograd)

    # AVX2: Winograd for 3x3 kernels from 16x16 with >= 256 input and output channels through the
    # reference ops, from 8x8 with >= 32 through the kernel; else the taps from 64x64 outputs (any kernel).
    avx2 = "onednn-avx2"
    assert form(64, 4, 4, avx2) == "taps"
    assert form(64, 4, 4, avx2, height=32) == "kernel"
    assert form(64, 256, 256, avx2) == "winograd"
    assert form(16, 256, 512, avx2) == "winograd"
    assert form(16, 256, 256, avx2, height=8) == "kernel"
    assert form(32, 256, 128, avx2) == "kernel"
    assert form(64, 256, 128, avx2) == "taps"
    assert form(64, 128, 128, avx2) == "taps"
    assert form(64, 256, 256, avx2, kernel_size=2) == "taps"
    assert form(16, 256, 256, avx2, winograd="custom") == "winograd"
    assert form(64, 64, 128, avx2, winograd="custom") == "winograd"
    assert form(64, 32, 128, avx2, winograd="custom") == "winograd"
    assert form(64, 16, 128, avx2, winograd="custom") == "taps"
    assert form(32, 16, 128, avx2, winograd="custom") == "kernel"
    assert form(8, 256, 256, avx2, winograd="custom") == "winograd"
    # AVX-512: Winograd for 3x3 kernels from 16x16 with >= 256 channels through the reference ops,
    # from 8x8 with >= 32 through the kernel; never the taps.
    assert form(16, 256, 256, "onednn") == "winograd"
    assert form(64, 256, 512, "onednn") == "winograd"
    assert form(16, 512, 512, "onednn", height=8) == "kernel"
    assert form(64, 128, 128, "onednn") == "kernel"
    assert form(128, 4, 4, "onednn") == "kernel"
    assert form(128, 64, 128, "onednn", winograd="custom") == "winograd"
    assert form(16, 128, 64, "onednn", winograd="custom") == "winograd"
    assert form(128, 32, 64, "onednn", winograd="custom") == "winograd"
    assert form(128, 16, 64, "onednn", winograd="custom") == "kernel"
    assert form(8, 512, 512, "onednn", winograd="custom") == "winograd"
    assert form(8, 512, 512, "onednn", height=4, winograd="custom") == "kernel"
    assert form(128, 64, 64, "onednn", kernel_size=1, winograd="custom") == "kernel"
    # Eigen: Winograd through the kernel from 32 channels; else TensorFlow's kernels.
    assert form(64, 32, 64, "eigen", winograd="custom") == "winograd"
    assert form(64, 16, 64, "eigen", winograd="custom") == "kernel"
    for kernels in ("eigen", None):
        assert form(64, 512, 512, kernels) == "kernel"
    assert form(64, 512, 512, None, winograd="custom") == "kernel"
    assert form(64, 512, 512, avx2, dtype=tf.float64) == "kernel"
    assert form(64, 512, 512, "onednn", dtype=tf.float64, winograd="custom") == "kernel"
    assert filter_gradient_form(tf.zeros([1, 64, 64, 256]), tf.zeros([3, 3, 128, 256]), avx2) == "kernel"  # grouped
    # Automatic: this machine's kernels where x is computed on a CPU, and Winograd's kernel where the
    # kernels serve (built here; a CPU-only machine), else the reference ops.
    on_cpu = not tf.config.list_logical_devices("GPU")
    x, w = tf.zeros([1, 64, 64, 64]), tf.zeros([3, 3, 64, 64])
    winograd = "custom" if on_cpu else "ref"
    assert filter_gradient_form(x, w) == (filter_gradient_form(x, w, cpu_conv_kernels(), winograd) if on_cpu
                                          else "kernel")
    with use_implementation("custom" if winograd == "custom" else "ref"):
        assert filter_gradient_form(x, w, cpu_conv_kernels()) == filter_gradient_form(x, w, cpu_conv_kernels(),
                                                                                       winograd)


def test_exports_keep_tensorflows_convolution(monkeypatch):
    """Inside use_implementation('ref'), where every export traces, the automatic form is TensorFlow's
    own convolution: the graph holds Conv2D and none of Winograd's products."""
    import stylegan2_tf.ops.conv_2d as conv2d_module
    monkeypatch.setattr(conv2d_module, "_cpu_kernels", "onednn")
    monkeypatch.setattr(conv2d_module, "runs_on_cpu", lambda x: True)
    x, w = tf.zeros([1, 16, 16, 256]), tf.zeros([3, 3, 256, 256])

    def op_types():
        return {op.type for op in tf.function(lambda: conv2d(x, w)).get_concrete_function().graph.get_operations()}
    winograd = {"BatchMatMulV2", "Sg2WinogradConv2D"}   # the reference's products, or the kernel
    assert winograd & op_types() and "Conv2D" not in op_types()
    with use_implementation("ref"):
        assert "Conv2D" in op_types() and not winograd & op_types()


def test_bad_form():
    with pytest.raises(ValueError, match="filter_gradient"):
        conv2d(tf.zeros([1, 4, 4, 1]), tf.zeros([3, 3, 1, 1]), filter_gradient="im2col")
    with pytest.raises(ValueError, match="'winograd' needs a 3x3 kernel, got 2x2"):
        conv2d(tf.zeros([1, 4, 4, 1]), tf.zeros([2, 2, 1, 1]), filter_gradient="winograd")
    unknown_sides = tf.function(lambda x: conv2d(x, tf.zeros([3, 3, 1, 1]), filter_gradient="winograd"))
    with pytest.raises(ValueError, match="'winograd' form needs static spatial sizes"):
        unknown_sides.get_concrete_function(tf.TensorSpec([1, None, None, 1]))


def test_networks_train_the_same_with_either_filter_gradient(monkeypatch, kernels):
    """G and D at 64x64 (where the rule picks the tap form on AVX2 CPUs with oneDNN): the losses (D's
    with R1) and every variable's gradient with TensorFlow's kernels, with the taps, and with Winograd
    for every 3x3 convolution from 16x16 on (its channel threshold lowered for these narrow networks;
    the reference ops, then the C++ kernel), within float32 rounding."""
    import stylegan2_tf.ops.conv_2d as conv2d_module
    from stylegan2_tf.networks import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig
    G = Generator(GeneratorConfig(img_resolution=64, z_dim=16, w_dim=16, mapping_layers=2, fmap_base=128,
                                  fmap_max=16, fused_modconv=False))
    D = Discriminator(DiscriminatorConfig(img_resolution=64, fmap_base=128, fmap_max=16))
    z = tf.constant(np.random.default_rng(0).normal(size=(2, 16)), tf.float32)
    reals = tf.constant(np.random.default_rng(1).uniform(-1, 1, size=(2, 64, 64, 3)), tf.float32)
    G(z), D(reals)
    forms_used = []
    form_rule = conv2d_module.filter_gradient_form
    monkeypatch.setattr(conv2d_module, "filter_gradient_form", lambda x, w: forms_used.append(form_rule(x, w))
                        or forms_used[-1])
    monkeypatch.setattr(conv2d_module, "runs_on_cpu", lambda x: True)
    results = {}
    runs = (("kernel", False), ("taps", False), ("winograd", False), ("winograd kernel", True))
    for name, winograd_kernel in runs:
        form = name.split()[0]
        monkeypatch.setattr(conv2d_module, "_cpu_kernels", "eigen" if form == "kernel" else "onednn-avx2")
        channels = 1 if form == "winograd" else 10 ** 6
        monkeypatch.setattr(conv2d_module, "WINOGRAD_MIN_CHANNELS", {"ref": {"onednn-avx2": channels},
                                                                     "custom": {"onednn-avx2": channels}})
        monkeypatch.setattr(conv2d_module, "_winograd_kernel_serves", lambda x: winograd_kernel)
        forms_used.clear()
        results[name] = gan_losses_and_gradients(G, D, z, reals)
        assert form in forms_used, (name, set(forms_used))
    assert len({len(r) for r in results.values()}) == 1 and len(results["kernel"]) > 20
    for name in ("taps", "winograd", "winograd kernel"):
        for kernel, other in zip(results["kernel"], results[name]):
            np.testing.assert_allclose(other, kernel, rtol=1e-4, atol=1e-5 * max(np.max(np.abs(kernel)), 1e-6),
                                       err_msg=name)
