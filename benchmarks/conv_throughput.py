"""The convolution ceiling of a training step: how fast this machine runs one 3x3 convolution
(forward, input gradient, filter gradient) at the shapes of StyleGAN2's blocks, per dtype, and
how many convolution FLOPs the main phases of one minibatch need, so that a measured phase time
reads as a fraction of what the convolutions alone allow.

  python benchmarks/conv_throughput.py                                 # 128², fmap_base 8192, batch 4
  python benchmarks/conv_throughput.py --res 32 --fmap-base 2048 --dtypes float32
  python benchmarks/conv_throughput.py --dtypes float32 --forms --shapes 64/128,32/256,16/512

The FLOPs are counted as `conv_flops.py` says (convolutions only; path length and R1 left out).

The last two columns time the filter gradient as `stylegan2_tf.ops.conv_2d` computes it where its
rule says so: one [C, rows] x [rows, C] matrix product per tap over the padded input
(`tap_filter_gradient`), and Winograd's F(2x2, 3x3) with its transforms (`winograd_filter_gradient`:
16 products, 2.25x fewer multiply-adds, as direct-equivalent GFLOP/s); --forms adds the forward
pass and forward + both gradients of `conv2d` with each filter-gradient form ('kernel', 'taps',
'winograd': Winograd's forward too, through TensorFlow's ops and, where the C++ kernels build,
through custom_ops/winograd_conv_2d.cc: 'winograd kernel'). The rule (TAP_GRADIENT_MIN_PIXELS, WINOGRAD_MIN_PIXELS /
_CHANNELS in stylegan2_tf/ops/conv_2d.py, per kind of CPU kernels) comes from these columns.

--winograd also times the batched matrix products that Winograd F(2x2, 3x3) would put in place
of each convolution (16 products of [batch x side²/4, C] x [C, C], 2.25x fewer multiplies), as
direct-equivalent GFLOP/s: the convolution's FLOPs over the products' time. That is an upper
bound on what the algorithm could give here, before its input and output transforms.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from conv_flops import forward_conv_flops, phase_conv_flops  # noqa: E402  (benchmarks/, the script's directory)
from cpu_info import cpu_description  # noqa: E402
import timing  # noqa: E402

flags.DEFINE_integer("res", 128, "Resolution of the networks.")
flags.DEFINE_integer("fmap-base", 8192, "Feature-map base (16384 = config F).")
flags.DEFINE_integer("batch", 4, "Batch of the timed convolutions (the per-replica sub-batch).")
flags.DEFINE_integer("minibatch", 8, "Images per minibatch, for the per-phase FLOPs.")
flags.DEFINE_list("dtypes", ["float32", "bfloat16"], "dtypes to time.")
flags.DEFINE_integer("repeats", 5, "Timed calls per convolution (median).")
flags.DEFINE_bool("winograd", False, "Also time the matrix products of Winograd F(2x2, 3x3).")
flags.DEFINE_list("shapes", None, "side/channels pairs to time instead of the networks' (e.g. 64/128,32/512).")
flags.DEFINE_bool("forms", False, "Also time conv2d's forward and forward + both gradients with each "
                  "filter-gradient form (float32).")
FLAGS = flags.FLAGS


def conv_shapes(res, fmap_base):
    """(side, channels) of the 3x3 same-resolution convolutions, from the top resolution down to 16²."""
    from stylegan2_tf.networks import GeneratorConfig
    cfg = GeneratorConfig(img_resolution=res, fmap_base=fmap_base)
    return [(2 ** r, cfg.nf(r - 1)) for r in range(cfg.resolution_log2, 3, -1)]


def timed_shapes():
    """(side, channels) pairs: --shapes, else the networks' (`conv_shapes`)."""
    if FLAGS.shapes:
        return [tuple(int(v) for v in pair.split("/")) for pair in FLAGS.shapes]
    return conv_shapes(FLAGS.res, FLAGS["fmap-base"].value)


def main(argv):
    del argv
    import tensorflow as tf
    from stylegan2_tf.ops.capabilities import onednn_enabled
    from stylegan2_tf.ops.conv_2d import tap_filter_gradient, winograd_filter_gradient

    print(f"# {cpu_description()}, TF {tf.__version__}, oneDNN {'on' if onednn_enabled() else 'off'}")
    g, d = forward_conv_flops(FLAGS.res, FLAGS["fmap-base"].value)
    n = FLAGS.minibatch
    print(f"# {FLAGS.res}x{FLAGS.res}, fmap_base {FLAGS['fmap-base'].value}: forward convolutions per image "
          f"G {g / 1e9:.2f} GFLOP, D {d / 1e9:.2f} GFLOP")
    phases = phase_conv_flops(FLAGS.res, FLAGS["fmap-base"].value, n)
    print(f"# per minibatch of {n}: G main {phases['G_main'] / 1e9:.0f} GFLOP, "
          f"D main {phases['D_main'] / 1e9:.0f} GFLOP")

    def median_seconds(fn):
        return timing.median_seconds(fn, FLAGS.repeats)

    head = ["forward", "input grad", "filter grad"]
    if FLAGS.winograd:
        head += [f"Winograd {h}" for h in head]
    head += ["filter grad as taps", "filter grad Winograd"]
    print("| dtype | side | channels | " + " | ".join(f"{h} GFLOP/s" for h in head) + " |")
    print("| --- | --- | --- |" + " --- |" * len(head))
    b = FLAGS.batch
    for name in FLAGS.dtypes:
        dtype = tf.as_dtype(name)
        for side, c in timed_shapes():
            x = tf.cast(tf.random.stateless_normal([b, side, side, c], [1, 2]), dtype)
            w = tf.cast(tf.random.stateless_normal([3, 3, c, c], [3, 4]), dtype)
            dy = tf.cast(tf.random.stateless_normal([b, side, side, c], [5, 6]), dtype)
            strides = [1, 1, 1, 1]
            calls = (
                tf.function(lambda: tf.nn.conv2d(x, w, 1, "SAME")),
                tf.function(lambda: tf.raw_ops.Conv2DBackpropInput(
                    input_sizes=tf.shape(x), filter=w, out_backprop=dy, strides=strides, padding="SAME")),
                tf.function(lambda: tf.raw_ops.Conv2DBackpropFilter(
                    input=x, filter_sizes=tf.shape(w), out_backprop=dy, strides=strides, padding="SAME")))
            if FLAGS.winograd:
                # One product per point of the 4x4 tile transform, over every 2x2 output tile.
                tiles = b * (side // 2) ** 2
                v = tf.cast(tf.random.stateless_normal([16, tiles, c], [7, 8]), dtype)
                u = tf.cast(tf.random.stateless_normal([16, c, c], [9, 10]), dtype)
                dm = tf.cast(tf.random.stateless_normal([16, tiles, c], [11, 12]), dtype)
                calls += (tf.function(lambda: tf.matmul(v, u)),
                          tf.function(lambda: tf.matmul(dm, u, transpose_b=True)),
                          tf.function(lambda: tf.matmul(v, dm, transpose_a=True)))
            calls += (tf.function(lambda: tap_filter_gradient(x, dy, ((1, 1), (1, 1)), (3, 3))),
                      tf.function(lambda: winograd_filter_gradient(x, dy, ((1, 1), (1, 1)))))
            flops = 2 * b * side * side * 9 * c * c
            rates = [flops / median_seconds(fn) / 1e9 for fn in calls]
            print(f"| {name} | {side} | {c} | " + " | ".join(f"{r:.0f}" for r in rates) + " |", flush=True)
    if FLAGS.forms:
        time_forms(median_seconds)


def time_forms(median_seconds):
    """conv2d with filter_gradient 'kernel', 'taps' and 'winograd' (whose forward is Winograd's too;
    through TensorFlow's ops, then the C++ kernel where it builds): forward, and forward + input and
    filter gradient, as direct-equivalent GFLOP/s (float32)."""
    import tensorflow as tf
    from stylegan2_tf.ops import custom_ops
    from stylegan2_tf.ops.conv_2d import conv2d
    from stylegan2_tf.ops.implementation import use_implementation
    # (label, form, implementation Winograd runs in: the reference ops or the kernel)
    forms = [("kernel", "kernel", "auto"), ("taps", "taps", "auto"), ("winograd", "winograd", "ref")]
    if custom_ops.library() is not None:
        forms.append(("winograd kernel", "winograd", "custom"))
    print("\n| side | channels | " + " | ".join(f"{f} forward | {f} fwd+grads" for f, _, _ in forms) + " |")
    print("| --- | --- |" + " --- | --- |" * len(forms))
    b = FLAGS.batch
    for side, c in timed_shapes():
        x = tf.random.stateless_normal([b, side, side, c], [1, 2])
        w = tf.random.stateless_normal([3, 3, c, c], [3, 4]) / (3 * c ** 0.5)
        dy = tf.random.stateless_normal([b, side, side, c], [5, 6])
        flops = 2 * b * side * side * 9 * c * c
        rates = []
        for _, form, impl in forms:
            def forward(form=form):
                return conv2d(x, w, "SAME", filter_gradient=form)

            def forward_and_gradients(form=form):
                with tf.GradientTape() as tape:
                    tape.watch([x, w])
                    y = conv2d(x, w, "SAME", filter_gradient=form)
                dx, dw = tape.gradient(y, [x, w], output_gradients=dy)
                # One tensor to wait for, y's sum in it: the gradients do not need y, so without it
                # the graph would drop the forward pass.
                return tf.reduce_sum(y) + tf.reduce_sum(dx) + tf.reduce_sum(dw)
            with use_implementation(impl):   # traced (and so the implementation chosen) on the first call
                rates.append(flops / median_seconds(tf.function(forward, autograph=False)) / 1e9)
                rates.append(3 * flops / median_seconds(tf.function(forward_and_gradients, autograph=False)) / 1e9)
        print(f"| {side} | {c} | " + " | ".join(f"{r:.0f}" for r in rates) + " |", flush=True)


if __name__ == "__main__":
    app.run(main)
