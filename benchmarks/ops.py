"""The custom kernels against the reference ops: ms per call and peak memory, config F shapes.

  python benchmarks/ops.py                    # 256² and 1024² shapes, batch 4, float32
  python benchmarks/ops.py --res 256 --repeats 10

Each case (op x shape x impl) runs in its own process, so that its peak RSS is its own: a
forward pass, then forward + backward (the gradient of sum(y * dy)), each timed over --repeats
calls inside a tf.function after one warm-up call. The training-step and generation effect is
measured by the whole-step scripts with the implementation forced by the environment:

  STYLEGAN2_TF_OPS=ref    python benchmarks/train.py --res 64 --fmap-base 16384 --batch 8 --batch-gpu 4
  STYLEGAN2_TF_OPS=custom python benchmarks/train.py --res 64 --fmap-base 16384 --batch 8 --batch-gpu 4
"""

import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from absl import app, flags  # noqa: E402

from cpu_info import cpu_description  # noqa: E402  (benchmarks/, the script's directory)

flags.DEFINE_list("res", ["256", "1024"], "Config-F resolutions whose top-block shapes are timed.")
flags.DEFINE_integer("batch", 4, "Batch.")
flags.DEFINE_integer("repeats", 5, "Timed calls per measurement.")
flags.DEFINE_string("case", None, "(internal) run one case and print its JSON.")
FLAGS = flags.FLAGS


def config_f_channels(res):
    """Feature maps of config F's block at `res` (fmap_base 16384, fmap_max 512)."""
    return min(16384 // (res // 2), 512)


def cases(res, batch):
    """(name, op, input shape) for the top block of a config-F network at `res`."""
    c = config_f_channels(res)
    half = res // 2
    return [
        ("bias+lrelu (conv output)", "bias_act", [batch, res, res, c]),
        ("upsample_2d x2, [1,3,3,1] (G skip)", "upsample", [batch, half, half, 3]),
        ("FIR after transposed conv (G up)", "fir_up", [batch, res + 1, res + 1, c]),
        ("downsample_2d /2, [1,3,3,1] (D skip)", "downsample", [batch, res, res, c]),
        ("FIR before strided conv (D down)", "fir_down", [batch, res, res, c]),
    ]


def run_case(spec):
    import numpy as np
    import tensorflow as tf
    from stylegan2_tf.ops import downsample_2d, fused_bias_act, setup_kernel, upfirdn_2d, upsample_2d
    op, shape, impl, repeats = spec["op"], spec["shape"], spec["impl"], spec["repeats"]
    x = tf.constant(np.random.default_rng(0).normal(size=shape).astype(np.float32))
    b = tf.constant(np.zeros(shape[-1], np.float32))
    k = [1, 3, 3, 1]
    fns = {
        "bias_act": lambda x: fused_bias_act(x, b, act="lrelu", impl=impl),
        "upsample": lambda x: upsample_2d(x, k, impl=impl),
        "downsample": lambda x: downsample_2d(x, k, impl=impl),
        # upsample_conv_2d's FIR (pad 1, 1 after the transposed conv) and conv_downsample_2d's (pad 2, 2).
        "fir_up": lambda x: upfirdn_2d(x, setup_kernel(k) * 4, pad=(1, 1), impl=impl),
        "fir_down": lambda x: upfirdn_2d(x, setup_kernel(k), pad=(2, 2), impl=impl),
    }
    fn = fns[op]
    forward = tf.function(fn)

    @tf.function
    def forward_backward(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
            loss = tf.reduce_sum(y * y)
        return tape.gradient(loss, x)

    out = {}
    for name, f in (("forward", forward), ("forward+backward", forward_backward)):
        f(x).numpy()
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            f(x).numpy()
            times.append(time.perf_counter() - t)
        out[name] = 1000 * sorted(times)[len(times) // 2]
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def main(argv):
    del argv
    if FLAGS.case:
        run_case(json.loads(FLAGS.case))
        return
    print(f"CPU: {cpu_description()}; oneDNN {'on' if os.environ.get('TF_ENABLE_ONEDNN_OPTS') == '1' else 'default'}")
    print(f"batch {FLAGS.batch}, float32, median of {FLAGS.repeats} calls; ms (peak RSS MiB of the process)")
    print(f"{'case':<40s} {'shape':<22s} {'impl':<7s} {'forward':>9s} {'fwd+bwd':>9s} {'peak MiB':>9s}")
    ratios = []
    for res in (int(r) for r in FLAGS.res):
        for label, op, shape in cases(res, FLAGS.batch):
            row = {}
            for impl in ("ref", "custom"):
                spec = dict(op=op, shape=shape, impl=impl, repeats=FLAGS.repeats)
                r = subprocess.run([sys.executable, os.path.abspath(__file__), "--case", json.dumps(spec)],
                                   capture_output=True, text=True)
                if r.returncode != 0:
                    print(f"{label:<40s} {impl}: failed: {r.stderr.strip().splitlines()[-1]}")
                    continue
                row[impl] = json.loads(r.stdout.strip().splitlines()[-1])
                m = row[impl]
                print(f"{label:<40s} {'x'.join(map(str, shape)):<22s} {impl:<7s} {m['forward']:9.1f} "
                      f"{m['forward+backward']:9.1f} {m['peak_rss_mib']:9.0f}", flush=True)
            if len(row) == 2:
                ratios.append((label, res, row["ref"]["forward+backward"] / row["custom"]["forward+backward"]))
    print("\nref / custom, forward + backward:")
    for label, res, ratio in ratios:
        print(f"  {res:>4d}  {label:<40s} {ratio:5.2f}x")


if __name__ == "__main__":
    app.run(main)
