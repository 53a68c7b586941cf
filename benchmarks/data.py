#!/usr/bin/env python
"""Throughput of the TFRecord input pipeline (images/s), on synthetic data.

Writes a temporary dataset of random RGB images at each requested resolution
(full-resolution file only, which the reader accepts), then pulls batches from
``make_dataset`` (shuffle, repeat, mirror augment, uint8 -> float NHWC in
[-1, 1], prefetch) for ``--seconds`` and reports images per second.  The
files are small enough to sit in the page cache, so this measures decoding
and conversion, not disk bandwidth.

    python benchmarks/data.py                      # 256 and 1024
    python benchmarks/data.py --res 1024 --batch 4 --seconds 20

The last line is ``img/s: <number>``: the lowest rate over the resolutions
measured (the one that bounds training).
"""

import gc
import os
import shutil
import sys
import tempfile
import time

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

flags.DEFINE_list("res", ["256", "1024"], "Resolutions to measure (comma separated).")
flags.DEFINE_integer("batch", 32, "Batch size.")
flags.DEFINE_integer("num-images", 256, "Images in each synthetic dataset.")
flags.DEFINE_float("seconds", 10.0, "Measuring time per resolution (after warm-up).")
flags.DEFINE_bool("mirror", True, "Enable mirror augmentation.")
flags.DEFINE_string("tmp_dir", None, "Where to write the synthetic datasets (default: system temp).")
FLAGS = flags.FLAGS


def write_synthetic(root, res, n):
    import tensorflow as tf

    from stylegan2_tf.data import encode_image, tfrecord_path

    d = os.path.join(root, "synthetic%d" % res)
    os.makedirs(d)
    rng = np.random.default_rng(0)
    with tf.io.TFRecordWriter(tfrecord_path(d, int(res).bit_length() - 1)) as w:
        for _ in range(n):
            w.write(encode_image(rng.integers(0, 256, (3, res, res), dtype=np.uint8)))
    return d


def measure(d, batch, seconds, mirror):
    from stylegan2_tf.data import make_dataset

    ds = make_dataset(d, batch_size=batch, mirror_augment=mirror, repeat=True)
    it = iter(ds)
    for _ in range(3):  # warm-up: graph tracing, autotuning, buffers
        next(it)
    n = 0
    t0 = time.perf_counter()
    while True:
        images, _ = next(it)
        n += int(images.shape[0])
        dt = time.perf_counter() - t0
        if dt >= seconds:
            return n / dt


def main(argv):
    del argv
    import tensorflow as tf

    print("TensorFlow %s, %d CPU cores visible" % (tf.__version__, os.cpu_count()))
    root = tempfile.mkdtemp(prefix="data-bench-", dir=FLAGS.tmp_dir)
    rates = []
    try:
        for res in (int(r) for r in FLAGS.res):
            n = FLAGS["num-images"].value
            t0 = time.perf_counter()
            d = write_synthetic(root, res, n)
            print("res %d: wrote %d images (%.0f MB) in %.1f s" % (res, n, n * 3 * res * res / 2**20,
                                                                   time.perf_counter() - t0))
            os.sync()  # no write-back of the new file during the measurement
            gc.collect()  # nor leftovers of the previous resolution's pipeline
            rate = measure(d, FLAGS.batch, FLAGS.seconds, FLAGS.mirror)
            print("res %d batch %d mirror %d: %.1f img/s (%.0f MB/s of pixels)"
                  % (res, FLAGS.batch, FLAGS.mirror, rate, rate * 3 * res * res / 2**20))
            rates.append(rate)
            shutil.rmtree(d)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("img/s: %.1f" % min(rates))


if __name__ == "__main__":
    app.run(main)
