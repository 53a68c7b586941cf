"""Generator throughput: images/s and peak memory, fused vs non-fused modulated conv.

  python benchmarks/generate.py --res 256 --batch 8 --fmap-base 16384 --reps 5 --modconv auto
  python benchmarks/generate.py ... --profile 3   # + where the fastest path's time goes (profiler)

Builds G for the given config (random weights, or --network PKL), runs the mapping +
synthesis forward pass (const noise, psi 1) as one tf.function, warms up, and times
`--reps` batches per path. Prints a table; the last line is `img/s: <median of the
fastest path>`. Peak memory: GPU allocator peak on a GPU, else the process's peak RSS.
"""

import contextlib
import os
import platform
import resource
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from stylegan2_tf.cli import prefer_onednn_kernels  # noqa: E402

prefer_onednn_kernels()  # as run_generator.py does, before TensorFlow loads

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from conv_flops import forward_conv_flops  # noqa: E402  (benchmarks/, the script's directory)
from cpu_info import cpu_flags  # noqa: E402
from op_profile import profile_calls  # noqa: E402

flags.DEFINE_integer("res", 256, "Output resolution.")
flags.DEFINE_integer("batch", 8, "Batch size.")
flags.DEFINE_integer("fmap-base", 16384, "Feature-map base (16384 = config F, 8192 = config E).")
flags.DEFINE_integer("reps", 5, "Timed batches per path (after warm-up).")
flags.DEFINE_integer("warmup", 2, "Untimed batches per path.")
flags.DEFINE_enum("modconv", "auto", ["fused", "nonfused", "auto"], "Modulated conv path(s) to time.")
flags.DEFINE_string("network", None, "Optional network pickle instead of a random config.")
flags.DEFINE_string("device", None, "TF device, e.g. /GPU:0 or /CPU:0 (default: TF's choice).")
flags.DEFINE_integer("inter-op-threads", 1, "TF inter-op threads (0 = TF's default). 1 runs one op at a "
                     "time, each on all intra-op threads: on a small CPU concurrent ops only compete "
                     "for the same cores.")
flags.DEFINE_integer("intra-op-threads", 0, "TF intra-op threads (0 = TF's default, all cores).")
flags.DEFINE_integer("profile", 0, "Also profile N batches of the fastest path and print where the time goes "
                     "(ops by kind, the convolutions' GFLOP/s; benchmarks/op_profile.py); 0: off.", lower_bound=0)
FLAGS = flags.FLAGS


def peak_memory_mb(tf):
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2 ** 20, "GPU peak"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process peak RSS"


def main(argv):
    del argv
    import tensorflow as tf
    tf.config.threading.set_inter_op_parallelism_threads(FLAGS["inter-op-threads"].value)
    tf.config.threading.set_intra_op_parallelism_threads(FLAGS["intra-op-threads"].value)

    from stylegan2_tf.networks import Generator, GeneratorConfig, num_trainable_params
    if FLAGS.network:
        from stylegan2_tf.loading import load_generator
        G = load_generator(FLAGS.network)
    else:
        G = Generator(GeneratorConfig(img_resolution=FLAGS.res, fmap_base=FLAGS["fmap-base"].value))
    cfg = G.config
    batch = FLAGS.batch
    z = tf.constant(np.random.RandomState(0).randn(batch, cfg.z_dim).astype(np.float32))
    c = tf.one_hot(tf.zeros([batch], tf.int32), cfg.c_dim) if cfg.c_dim else None
    paths = {"fused": [True], "nonfused": [False], "auto": [True, False]}[FLAGS.modconv]
    from stylegan2_tf.ops.capabilities import onednn_enabled
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cpus "
          f"({cpu_flags()}), TF {tf.__version__}, oneDNN {'on' if onednn_enabled() else 'off'}, "
          f"devices {[d.name for d in tf.config.list_logical_devices()]}")
    print(f"# G {cfg.img_resolution}x{cfg.img_resolution}, fmap_base {cfg.fmap_base}, "
          f"{num_trainable_params(G):,} params, batch {batch}, threads inter-op "
          f"{tf.config.threading.get_inter_op_parallelism_threads()} intra-op "
          f"{tf.config.threading.get_intra_op_parallelism_threads()} (0 = default)")
    results, forwards = {}, {}
    device = tf.device(FLAGS.device) if FLAGS.device else None
    for fused in paths:
        @tf.function
        def forward(z, c, fused=fused):
            return G(z, c=c, noise_mode="const", fused_modconv=fused)
        forwards["fused" if fused else "nonfused"] = forward
        if device:
            device.__enter__()
        for _ in range(FLAGS.warmup):
            forward(z, c).numpy()
        times = []
        for _ in range(FLAGS.reps):
            t0 = time.perf_counter()
            forward(z, c).numpy()
            times.append(time.perf_counter() - t0)
        if device:
            device.__exit__(None, None, None)
        med = statistics.median(times)
        results["fused" if fused else "nonfused"] = (batch / med, med * 1000)
    mem, mem_kind = peak_memory_mb(tf)
    print(f"{'modconv':<10} {'img/s':>10} {'ms/batch':>10}")
    for name, (ips, ms) in results.items():
        print(f"{name:<10} {ips:>10.2f} {ms:>10.1f}")
    print(f"peak memory: {mem:.0f} MiB ({mem_kind})")
    best = max(results, key=lambda k: results[k][0])
    print(f"fastest: {best}")
    if FLAGS.profile:
        # Convolution FLOPs as conv_flops.py counts them, for the config E/F ('skip') generator.
        flops = batch * forward_conv_flops(cfg.img_resolution, cfg.fmap_base)[0] \
            if cfg.architecture == "skip" else None
        with (tf.device(FLAGS.device) if FLAGS.device else contextlib.nullcontext()):
            report = profile_calls(lambda: forwards[best](z, c).numpy(), FLAGS.profile)
        print(f"profile {best}: " + "\n".join(report.lines(flops)))
    print(f"img/s: {results[best][0]:.3f}")


if __name__ == "__main__":
    app.run(main)
