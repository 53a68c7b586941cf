"""The two forms of `upsample_conv_2d` (G's 2x up-convolution + [1,3,3,1] FIR): ms per
forward + backward (gradients for x and w) at the shapes of StyleGAN2's blocks.

  python benchmarks/upsample_conv.py                          # batch 4, the default shapes
  python benchmarks/upsample_conv.py --shapes 64:512:256,128:256:128 --repeats 9

'phases': f*f stride-1 convolutions at input resolution, interleaved (one extra copy of the
output); 'transposed': one conv2d_transpose. `upsample_conv_form` (ops/upfirdn_2d.py) picks the
transposed form for ungrouped convolutions; the last column says which it picks.
"""

import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from cpu_info import cpu_flags  # noqa: E402  (benchmarks/, the script's directory)

# output resolution : input channels : output channels (fmap_base 8192 / 16384 blocks)
DEFAULT_SHAPES = "8:512:512,16:512:512,32:512:512,32:256:256,64:512:512,64:512:256,64:128:128,128:512:512," \
                 "128:256:128,128:64:64,256:128:64"
flags.DEFINE_string("shapes", DEFAULT_SHAPES, "res:in_channels:out_channels, comma-separated.")
flags.DEFINE_integer("batch", 4, "Batch.")
flags.DEFINE_integer("repeats", 7, "Timed calls per form and shape (median).")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    import numpy as np
    import tensorflow as tf
    from stylegan2_tf.ops.capabilities import onednn_enabled
    from stylegan2_tf.ops.upfirdn_2d import UPSAMPLE_CONV_FORMS, upsample_conv_2d, upsample_conv_form

    print(f"# {os.cpu_count()} cpus ({cpu_flags()}), TF {tf.__version__}, oneDNN "
          f"{'on' if onednn_enabled() else 'off'}, {len(tf.config.list_physical_devices('GPU'))} GPU(s)")
    print(f"batch {FLAGS.batch}, float32, forward + backward, median of {FLAGS.repeats} calls (ms)")
    print(f"{'res':>5s} {'in':>5s} {'out':>5s} " + " ".join(f"{f:>11s}" for f in UPSAMPLE_CONV_FORMS) + "   auto")
    rng = np.random.default_rng(0)
    for spec in FLAGS.shapes.split(","):
        res, cin, cout = (int(v) for v in spec.split(":"))
        x = tf.constant(rng.standard_normal([FLAGS.batch, res // 2, res // 2, cin]), tf.float32)
        w = tf.constant(rng.standard_normal([3, 3, cin, cout]) / np.sqrt(9 * cin), tf.float32)
        row = []
        for form in UPSAMPLE_CONV_FORMS:
            @tf.function
            def step(x, w, form=form):
                with tf.GradientTape() as tape:
                    tape.watch([x, w])
                    y = upsample_conv_2d(x, w, k=[1, 3, 3, 1], form=form)
                    loss = tf.reduce_sum(y * y)
                return tape.gradient(loss, [x, w])
            [g.numpy() for g in step(x, w)]
            times = []
            for _ in range(FLAGS.repeats):
                t0 = time.perf_counter()
                [g.numpy() for g in step(x, w)]
                times.append(time.perf_counter() - t0)
            row.append(1000 * statistics.median(times))
        print(f"{res:5d} {cin:5d} {cout:5d} " + " ".join(f"{t:11.1f}" for t in row) +
              f"   {upsample_conv_form()}", flush=True)


if __name__ == "__main__":
    app.run(main)
