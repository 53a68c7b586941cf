"""The ADA augmentation pipe's cost per minibatch: forward, and forward + the gradient with respect to
the images (what D's phases add: the fakes' gradient flows back through the pipe), per preset, at
p = 1 (every transform applied) and p = 0.5, traced once (tf.function) and timed over repeats. A
GPU, when TensorFlow sees one, runs it; the printout names the device and the CPU flags.

  python benchmarks/augment.py                         # 256², batch 8, presets bgc and bgcfnc
  python benchmarks/augment.py --res 1024 --batch 4 --presets bgc

With --aug noaug the trainer builds no pipe: its phases are the graph they were before (ADA off
costs nothing; tests/test_training_loop.py's bitwise runs cover that the numbers are unchanged).
"""

import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from cpu_info import cpu_description  # noqa: E402  (benchmarks/, the script's directory)

flags.DEFINE_integer("res", 256, "Image resolution.")
flags.DEFINE_integer("batch", 8, "Images per call (one minibatch's reals or fakes on one device).")
flags.DEFINE_list("presets", ["bgc", "bgcfnc"], "Augmentation presets to time.")
flags.DEFINE_list("p", ["1.0", "0.5"], "Strengths to time.")
flags.DEFINE_integer("repeats", 10, "Timed calls per figure (after one warm-up call).")
FLAGS = flags.FLAGS


def main(_):
    import numpy as np
    import tensorflow as tf
    from stylegan2_tf.augment import AugmentPipe, preset
    device = "GPU" if tf.config.list_logical_devices("GPU") else "CPU"
    print(f"{device}; {cpu_description()}; TensorFlow {tf.__version__}; {FLAGS.res}x{FLAGS.res}, batch {FLAGS.batch}")
    images = tf.constant(np.random.RandomState(0).uniform(-1, 1, [FLAGS.batch, FLAGS.res, FLAGS.res, 3]),
                         tf.float32)
    gen = tf.random.Generator.from_seed(0)
    for name in FLAGS.presets:
        pipe = AugmentPipe(preset(name))

        @tf.function
        def forward(x, p):
            return pipe(x, p, gen)

        @tf.function
        def backward(x, p):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(tf.square(pipe(x, p, gen)))
            return tape.gradient(loss, x)

        for p in FLAGS.p:
            p = tf.constant(float(p))
            for label, fn in (("forward", forward), ("forward+grad", backward)):
                fn(images, p).numpy()           # trace and warm up
                times = []
                for _ in range(FLAGS.repeats):
                    start = time.perf_counter()
                    fn(images, p).numpy()
                    times.append(time.perf_counter() - start)
                ms = 1000 * statistics.median(times)
                print(f"{name:<7s} p {float(p):.2f} {label:<13s} {ms:8.1f} ms per call  "
                      f"{ms / FLAGS.batch:7.2f} ms per image (median of {FLAGS.repeats}; min {1000 * min(times):.1f})")


if __name__ == "__main__":
    app.run(main)
