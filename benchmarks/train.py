"""Training throughput: images/s and peak memory of the full StyleGAN2 training step.

  python benchmarks/train.py --res 64 --fmap-base 16384 --batch 32 --batch-gpu 4 --steps 8

Runs the training loop's own step functions (G main, path length every 4, D main, R1
every 16, EMA) on a synthetic dataset written to a temporary directory, after a
warm-up (tracing) minibatch. Reports ms/minibatch and img/s; the last line is
`img/s: <number>`. Peak memory: GPU allocator peak on a GPU, else the peak RSS.
"""

import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags, logging  # noqa: E402

flags.DEFINE_integer("res", 64, "Resolution.")
flags.DEFINE_integer("fmap-base", 16384, "Feature-map base (16384 = config F, 8192 = config E).")
flags.DEFINE_integer("batch", 32, "Global minibatch.")
flags.DEFINE_integer("batch-gpu", 4, "Per-replica sub-batch (batch / batch-gpu rounds of accumulation).")
flags.DEFINE_integer("steps", 8, "Timed minibatches (after one warm-up minibatch per phase pattern).")
flags.DEFINE_string("config", "config-f", "config-e / config-f / config-e-G*-D*.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    import tensorflow as tf

    from stylegan2_tf.data.synthetic import create_shapes_dataset
    from stylegan2_tf.networks import num_trainable_params
    from stylegan2_tf.training import TrainingOptions
    from stylegan2_tf.training.loop import Trainer

    tmp = tempfile.mkdtemp(prefix="bench-train-")
    try:
        create_shapes_dataset(os.path.join(tmp, "shapes"), num_images=64, resolution=FLAGS.res)
        opts = TrainingOptions(data_dir=tmp, dataset="shapes", result_dir=os.path.join(tmp, "results"),
                               config=FLAGS.config, fmap_base=FLAGS["fmap-base"].value, batch=FLAGS.batch,
                               batch_gpu=FLAGS["batch-gpu"].value, snapshot_ticks=0)
        t = Trainer(opts, echo=False)
        print(f"# {platform.node()} {platform.machine()}, {os.cpu_count()} cpus, TF {tf.__version__}")
        print(f"# {FLAGS.config} {FLAGS.res}x{FLAGS.res}, fmap_base {opts.fmap_base}, G {num_trainable_params(t.G):,} "
              f"D {num_trainable_params(t.D):,} params, batch {opts.batch} = {opts.rounds} round(s) x "
              f"{opts.batch_gpu}")
        data = t._dataset(0)
        times = []
        # Minibatch 0 runs all four phases (traces everything); then time a full reg cycle.
        for mb in range(FLAGS.steps + 1):
            rounds = tuple(next(data) for _ in range(opts.rounds))
            t.minibatch.assign(mb)  # picks the lazy-regularization phases
            t0 = time.perf_counter()
            out = t.train_minibatch(rounds)
            float(out["Loss/D/loss"].numpy())
            if mb > 0:
                times.append(time.perf_counter() - t0)
            else:
                print(f"warm-up (tracing) minibatch: {time.perf_counter() - t0:.1f} s")
        mean = statistics.mean(times)
        if tf.config.list_logical_devices("GPU"):
            mem, kind = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2 ** 20, "GPU peak"
        else:
            mem, kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process peak RSS"
        print(f"ms/minibatch: {mean * 1000:.0f} (mean of {len(times)}, incl. lazy regularization)")
        print(f"peak memory: {mem:.0f} MiB ({kind})")
        print(f"img/s: {opts.batch / mean:.3f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    app.run(main)
