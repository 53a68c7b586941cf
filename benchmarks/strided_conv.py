"""The stride-2 3x3 convolutions of StyleGAN2's resampling blocks with each filter-gradient form of
`stylegan2_tf.ops.strided_conv_2d` ('kernel': TensorFlow's Conv2DBackpropFilter; 'phases': one matrix
product per tap over the input's stride phases), as GFLOP/s of the direct convolution:

  python benchmarks/strided_conv.py                           # batch 4, the default shapes
  python benchmarks/strided_conv.py --shapes 128:128:256 --repeats 15

A shape is side:C:O: D's down-sampling convolution reads a [batch, side + 1, side + 1, C] input
(after its FIR) and writes [batch, side / 2, side / 2, O]; G's transposed up-sampling convolution is
its adjoint (O channels in, C out at side + 1), whose filter gradient reads the C-channel side.
Columns: the filter gradient alone, and forward + both gradients of `strided_conv2d` (down) and of
`strided_conv2d_transpose` (up); the last column is the form the rule
(`strided_filter_gradient_form`) picks here.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from cpu_info import cpu_description  # noqa: E402  (benchmarks/, the script's directory)
import timing  # noqa: E402

# side : input channels : output channels (D's blocks at fmap_base 8192 / 16384)
DEFAULT_SHAPES = "1024:32:64,512:64:128,256:128:256,128:128:256,128:256:512,64:256:512,32:512:512,16:512:512"
flags.DEFINE_string("shapes", DEFAULT_SHAPES, "side:C:O, comma-separated.")
flags.DEFINE_integer("batch", 4, "Batch.")
flags.DEFINE_integer("repeats", 7, "Timed calls per form and shape (median).")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    import tensorflow as tf
    from stylegan2_tf.ops.conv_2d import filter_gradient_by_taps
    from stylegan2_tf.ops.strided_conv_2d import (STRIDED_FILTER_GRADIENT_FORMS, strided_conv2d,
                                                  strided_conv2d_transpose, strided_filter_gradient_form)

    def median_seconds(fn):
        return timing.median_seconds(fn, FLAGS.repeats)

    from stylegan2_tf.ops.capabilities import onednn_enabled
    print(f"# {cpu_description()}, TF {tf.__version__}, oneDNN {'on' if onednn_enabled() else 'off'}")
    print(f"# batch {FLAGS.batch}, float32, stride 2, 3x3, median of {FLAGS.repeats} calls, GFLOP/s "
          "(fwd+grads counts three convolutions)")
    columns = [f"{part} {form}" for part in ("filter grad", "down fwd+grads", "up fwd+grads")
               for form in STRIDED_FILTER_GRADIENT_FORMS]
    print("\n| side | C | O | " + " | ".join(columns) + " | rule |")
    print("| --- | --- | --- |" + " --- |" * len(columns) + " --- |")
    b = FLAGS.batch
    for spec in FLAGS.shapes.split(","):
        side, c, o = (int(v) for v in spec.split(":"))
        x = tf.random.stateless_normal([b, side + 1, side + 1, c], [1, 2])
        w = tf.random.stateless_normal([3, 3, c, o], [3, 4]) / (3 * c ** 0.5)
        dy = tf.random.stateless_normal([b, side // 2, side // 2, o], [5, 6])
        flops = 2 * b * (side // 2) ** 2 * 9 * c * o

        def filter_gradient(form):
            if form == "phases":
                return lambda: filter_gradient_by_taps(x, dy, (3, 3), 2)
            return lambda: tf.raw_ops.Conv2DBackpropFilter(input=x, filter_sizes=[3, 3, c, o], out_backprop=dy,
                                                           strides=[1, 2, 2, 1], padding="VALID")

        def both_gradients(form, up):
            def run():
                with tf.GradientTape() as tape:
                    tape.watch([x, w, dy])
                    if up:
                        y = strided_conv2d_transpose(dy, w, x.shape, 2, filter_gradient=form)
                        grads = tape.gradient(y, [dy, w], output_gradients=x)
                    else:
                        y = strided_conv2d(x, w, 2, filter_gradient=form)
                        grads = tape.gradient(y, [x, w], output_gradients=dy)
                # One tensor to wait for, y's sum in it, so that the graph keeps the forward pass.
                return tf.reduce_sum(y) + tf.add_n([tf.reduce_sum(g) for g in grads])
            return run
        rates = [flops / median_seconds(tf.function(filter_gradient(f), autograph=False)) / 1e9
                 for f in STRIDED_FILTER_GRADIENT_FORMS]
        for up in (False, True):
            rates += [3 * flops / median_seconds(tf.function(both_gradients(f, up), autograph=False)) / 1e9
                      for f in STRIDED_FILTER_GRADIENT_FORMS]
        print(f"| {side} | {c} | {o} | " + " | ".join(f"{r:.0f}" for r in rates)
              + f" | {strided_filter_gradient_form(x, w)} |", flush=True)


if __name__ == "__main__":
    app.run(main)
