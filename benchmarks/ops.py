"""The custom kernels against the reference ops: ms per call and peak memory, config F shapes,
then the effect on a whole training step and on generation, side by side.

  python benchmarks/ops.py                    # 256² and 1024² shapes, batch 4, float32
  python benchmarks/ops.py --res 256 --repeats 10 --pairs 0      # the ops only
  python benchmarks/ops.py --res '' --pairs 3 \
      --train-args='--res 128 --fmap-base 8192 --batch 8 --batch-gpu 4 --steps 4'

Each op case (op x shape x impl) runs in its own process, so that its peak RSS is its own: a
forward pass, then forward + backward (the gradient of sum(y * dy)), each timed over --repeats
calls inside a tf.function after one warm-up call.

The whole-step effect: benchmarks/train.py and benchmarks/generate.py are run --pairs times each
way, alternating ref and custom ($STYLEGAN2_TF_OPS) so that the machine's drift hits both; each
pair gives a ratio custom / ref of img/s, and the median ratio is printed beside the medians.
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
flags.DEFINE_integer("pairs", 3, "Alternating ref / custom runs of the whole-step scripts (0: none).")
flags.DEFINE_string("train-args", "--res 128 --fmap-base 8192 --batch 8 --batch-gpu 4 --steps 4 --config config-e",
                    "Arguments of benchmarks/train.py for the training-step comparison ('' to skip).")
flags.DEFINE_string("generate-args", "--res 256 --fmap-base 16384 --batch 4 --reps 3 --modconv nonfused",
                    "Arguments of benchmarks/generate.py for the generation comparison ('' to skip).")
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
    for res in (int(r) for r in FLAGS.res if r):
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
    if ratios:
        print("\nref / custom, forward + backward:")
        for label, res, ratio in ratios:
            print(f"  {res:>4d}  {label:<40s} {ratio:5.2f}x")
    for script, args in (("train.py", FLAGS["train-args"].value), ("generate.py", FLAGS["generate-args"].value)):
        if FLAGS.pairs and args:
            whole_step(script, args.split(), FLAGS.pairs)


def img_per_s(script, args, impl):
    env = dict(os.environ, STYLEGAN2_TF_OPS=impl)
    r = subprocess.run([sys.executable, os.path.join(HERE, script), *args], capture_output=True, text=True, env=env)
    lines = [line for line in r.stdout.splitlines() if line.startswith("img/s:")]
    if r.returncode != 0 or not lines:
        last = (r.stderr.strip().splitlines() or ['?'])[-1]
        raise SystemExit(f"{script} {' '.join(args)} with {impl} failed: {last}")
    return float(lines[-1].split()[1])


def whole_step(script, args, pairs):
    """Alternating runs of a whole-step script with the reference ops and with the kernels."""
    import statistics
    print(f"\n{script} {' '.join(args)}: img/s, alternating ref and custom")
    rows = []
    for i in range(pairs):
        ref = img_per_s(script, args, "ref")
        custom = img_per_s(script, args, "custom")
        rows.append((ref, custom, custom / ref))
        print(f"  pair {i + 1}: ref {ref:8.3f}  custom {custom:8.3f}  custom/ref {custom / ref:5.3f}", flush=True)
    print(f"  median: ref {statistics.median(r[0] for r in rows):8.3f}  custom "
          f"{statistics.median(r[1] for r in rows):8.3f}  custom/ref {statistics.median(r[2] for r in rows):5.3f} "
          f"(range {min(r[2] for r in rows):.3f}-{max(r[2] for r in rows):.3f})")


if __name__ == "__main__":
    app.run(main)
