"""benchmarks/op_profile.py, the breakdown `benchmarks/train.py --profile` prints: overlapping ops
share their time (closed form), and on a real profile every op lands in its pass and kind (the
custom kernels' gradients included) with the kinds adding up to the busy time."""

import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import op_profile  # noqa: E402


def test_overlapping_ops_share_their_time():
    b = op_profile.Breakdown()
    ps = 10 ** 12
    # conv alone 0-1 s, conv and Mul together 1-3 s, Mul alone 3-4 s, nothing 4-6 s, Sum 6-7 s, a
    # zero-length op at 8 s.
    b.add_ops([(0, 3 * ps, "_MklNativeConv2D", False), (1 * ps, 4 * ps, "Mul", True),
               (6 * ps, 7 * ps, "Sum", False), (8 * ps, 8 * ps, "AddN", True)])
    assert b.busy == pytest.approx(5.0)
    assert b.by_kind["convolution", "forward"] == pytest.approx(2.0)
    assert b.by_kind["element-wise and reductions", "backward"] == pytest.approx(2.0)
    assert b.by_kind["element-wise and reductions", "forward"] == pytest.approx(1.0)
    assert sum(b.by_kind.values()) == pytest.approx(b.busy)


@pytest.mark.parametrize("node, op_type, backward", [
    ("StatefulPartitionedCall/synthesis/b8/conv1/conv/Sum", "Sum", False),
    ("StatefulPartitionedCall/gradient_tape/D/b4/Mul", "Mul", True),
    ("StatefulPartitionedCall/fused_bias_act_grad_8/Sum", "Sum", True),
    ("upfirdn_2d_grad/Sg2UpFirDn2D", "Sg2UpFirDn2D", True),
    ("Sg2UpFirDn2D_1", "Sg2UpFirDn2D", False),
    ("StatefulPartitionedCall/AddN_3", "AddN", True),
])
def test_passes_by_node_name(node, op_type, backward):
    assert op_profile._in_gradient(node, op_type) is backward


def test_tap_filter_gradients_count_as_convolutions():
    """The matrix products of conv_2d's tap and stride-phase filter gradients are convolutions, in
    the gradient's scope: the node names a traced gradient of each gives them."""
    from stylegan2_tf.ops.conv_2d import conv2d
    from stylegan2_tf.ops.strided_conv_2d import strided_conv2d

    def graph_ops(conv, x_shape):
        def grads(x, w):
            with tf.GradientTape() as tape:
                tape.watch([x, w])
                total = tf.reduce_sum(conv(x, w))
            return tape.gradient(total, [x, w])
        spec = [tf.TensorSpec(x_shape), tf.TensorSpec([3, 3, 4, 4])]
        return tf.function(grads, autograph=False).get_concrete_function(*spec).graph.get_operations()
    for conv, x_shape in ((lambda x, w: conv2d(x, w, filter_gradient="taps"), [2, 8, 8, 4]),
                          (lambda x, w: strided_conv2d(x, w, 2, filter_gradient="phases"), [2, 9, 9, 4])):
        products = [op for op in graph_ops(conv, x_shape) if op.type == "MatMul"]
        assert len(products) == 9, [op.name for op in products]
        for op in products:
            assert op_profile.kind_of(op_profile._typed(op.name, op.type)) == "convolution", op.name
            assert op_profile._in_gradient(op.name, op.type), op.name
    assert op_profile.kind_of(op_profile._typed("dense/MatMul", "MatMul")) == "dense"


@pytest.mark.parametrize("op_type, kind", [
    ("_MklNativeConv2DBackpropFilter", "convolution"),
    ("Sg2WinogradConv2D", "convolution"),
    ("Sg2WinogradFilterGradient", "convolution"),    # a kernel, but a convolution's gradient
    ("Sg2UpFirDn2D", "FIR / bias+act kernels"),
    ("Sg2FusedBiasActGrad", "FIR / bias+act kernels"),
    ("BatchMatMulV2", "dense"),
])
def test_kinds_by_op_type(op_type, kind):
    assert op_profile.kind_of(op_type) == kind


def test_a_profiled_gradient_step():
    from stylegan2_tf.ops.fused_bias_act import fused_bias_act
    from stylegan2_tf.ops.upfirdn_2d import upsample_2d

    x = tf.constant(np.random.default_rng(0).standard_normal([2, 16, 16, 32]), tf.float32)
    w = tf.constant(np.random.default_rng(1).standard_normal([3, 3, 32, 32]), tf.float32)
    b = tf.zeros([32])

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch([x, w, b])
            y = upsample_2d(fused_bias_act(tf.nn.conv2d(x, w, 1, "SAME"), b, act="lrelu", impl="custom"), impl="custom")
            loss = tf.reduce_sum(tf.square(y))
        return tape.gradient(loss, [x, w, b])

    step()
    report = op_profile.profile_calls(lambda: [g.numpy() for g in step()], 2)
    assert report.calls == 2
    assert 0 < report.busy <= report.wall
    assert sum(report.by_kind.values()) == pytest.approx(report.busy, rel=1e-9)
    for kind in ("convolution", "FIR / bias+act kernels"):
        for phase in ("forward", "backward"):
            assert report.by_kind[kind, phase] > 0, (kind, phase, dict(report.by_kind))
    # The custom kernels' gradients: the FIR's adjoint is the FIR op again, inside the gradient;
    # the bias+act derivative (on a CPU in float32, with its bias sum: Sg2FusedBiasActGrad) only runs there.
    by_type = dict(report.by_type)
    assert by_type.get(("Sg2UpFirDn2D", "backward"), 0) > 0, by_type
    assert by_type.get(("Sg2FusedBiasActGrad", "backward"), 0) > 0, by_type
    for op in ("Sg2FusedBiasActGrad", "Sg2FusedBiasActDeriv"):
        assert (op, "forward") not in by_type, by_type
    lines = report.lines(conv_flops=1e9)
    assert lines[0].startswith("wall ") and "GFLOP/s" in "\n".join(lines)
    # The op types of the two kinds that make up most of a training step, by time.
    types = {line.split(":")[0].strip(): line for line in lines if "types:" in line}
    assert "Conv2D" in types["convolution types"], lines
    assert "Sg2UpFirDn2D" in types["FIR / bias+act types"] and "Sg2FusedBiasAct" in types["FIR / bias+act types"], lines
