"""Training throughput: images/s and peak memory of the full StyleGAN2 training step.

  python benchmarks/train.py --res 64 --fmap-base 16384 --batch 32 --batch-gpu 4 --steps 8
  python benchmarks/train.py --replicas 2 ...     # + scaling efficiency against 1 replica
  python benchmarks/train.py --fp16-res 2 ...     # float16 in the 2 highest resolutions
  python benchmarks/train.py --fp16-res 5 --mixed-dtype bfloat16 ...  # bfloat16 there (AMX CPUs)
  python benchmarks/train.py --modconv fused ...  # force a modulated-conv form (default: automatic)
  python benchmarks/train.py --xla all ...        # XLA-compile phases (all, or e.g. G_main,D_main)
  python benchmarks/train.py --phase-times 3 ...  # + each phase's step function alone (median of 3)
  python benchmarks/train.py --profile 2 ...      # + where each phase's time goes (profiler, 2 calls)
  python benchmarks/train.py --profile-first ...  # + what the first call spends beyond a later one

Runs the training loop's own step functions (G main, path length every 4, D main, R1
every 16, EMA) on a synthetic dataset written to a temporary directory, after a
warm-up (tracing) minibatch. Reports ms/minibatch and img/s; the last line is
`img/s: <number>`. Peak memory: TensorFlow's allocator peak, of the busiest GPU on a GPU
(per replica), else of the CPU allocator, which is what the step's tensors take there (with
`--modconv fused`, the GPU's form of the graph; see benchmarks/README.md, "Config F memory");
then the process peak RSS (which adds TensorFlow's own code, graphs and oneDNN's scratch).
With oneDNN off, TensorFlow's default CPU allocator keeps no statistics: set
TF_CPU_ALLOCATOR_USE_BFC=true for the allocator peak, else the first figure is the peak RSS.

--replicas N: MirroredStrategy over N GPUs, or over N logical CPU devices when the
machine has fewer GPUs (they share the CPU's cores, so this measures the cost of
distribution, not a speed-up). It first times 1 replica doing one replica's share
(batch / N), then N replicas, and prints the scaling efficiency
  img/s(N replicas) / (N x img/s(1 replica)),
and, for the same global batch, N replicas against 1 replica accumulating N times
as many rounds (what a single device does with the same math).
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
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as run_training.py does
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags, logging  # noqa: E402

from conv_flops import phase_conv_flops  # noqa: E402  (benchmarks/, the script's directory)
from cpu_info import cpu_flags  # noqa: E402
from op_profile import first_call_lines, profile_calls  # noqa: E402

flags.DEFINE_integer("res", 64, "Resolution.")
flags.DEFINE_integer("fmap-base", 16384, "Feature-map base (16384 = config F, 8192 = config E).")
flags.DEFINE_integer("batch", 32, "Global minibatch.")
flags.DEFINE_integer("batch-gpu", 4, "Per-replica sub-batch (batch / (batch-gpu x replicas) accumulation rounds).")
flags.DEFINE_integer("steps", 8, "Timed minibatches (after one warm-up minibatch per phase pattern).")
flags.DEFINE_string("config", "config-f", "config-e / config-f / config-e-G*-D*.")
flags.DEFINE_integer("replicas", 1, "Replicas (GPUs, else logical CPU devices); > 1 adds the scaling figures.")
flags.DEFINE_integer("fp16-res", 0, "float16 in the N highest resolutions (with loss scaling, conv clamp 256).")
flags.DEFINE_enum("mixed-dtype", "float16", ["float16", "bfloat16"], "dtype of the --fp16-res blocks.")
flags.DEFINE_enum("modconv", "auto", ["auto", "fused", "nonfused"],
                  "Modulated-conv form: automatic (fused on GPUs, non-fused on CPUs) or forced.")
flags.DEFINE_string("xla", "none", "Phases compiled with XLA: none, all, or a comma-separated list of "
                    "G_main, G_pl, D_main, D_r1 (one replica).")
flags.DEFINE_integer("phase-times", 0, "Also time each phase's step function alone (G main, path length, "
                     "D main, R1), median of N calls after the timed minibatches; 0: off.")
flags.DEFINE_integer("profile", 0, "Also profile N calls of each phase's step function (after the timed "
                     "minibatches) and print where the time goes: ops by kind, forward / backward, and "
                     "the time no op runs (benchmarks/op_profile.py); 0: off.", lower_bound=0)
flags.DEFINE_bool("profile-first", False, "Profile the first (all-phase) call and the same minibatch again, and "
                  "split what the first call spends beyond it into time with ops running (first-run setup "
                  "inside the kernels, by kind of op) and time with none (graph optimisation, instantiation).")
FLAGS = flags.FLAGS


def _peak_memory_mib(tf):
    """-> (MiB, what it is): the largest allocator peak over the devices that compute (every GPU,
    else the CPU), i.e. the tensors of the busiest replica: on a GPU its memory, on a CPU the same
    figure for the CPU's allocator (shared by logical CPU devices)."""
    names = [d.name for d in tf.config.list_logical_devices("GPU")] or ["/device:CPU:0"]
    peaks = []
    for name in names:
        try:
            peaks.append((tf.config.experimental.get_memory_info(name)["peak"], name.split("device:")[-1]))
        except (ValueError, tf.errors.OpError):  # an allocator without statistics
            pass
    if not peaks:
        return _peak_rss_mib(), "process peak RSS"
    peak, name = max(peaks)
    return peak / 2 ** 20, f"allocator peak, {name}"


def _peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_training(tmp, replicas, batch, label):
    """-> img/s of `replicas` replicas on a global `batch` (prints the details)."""
    import tensorflow as tf

    from stylegan2_tf.networks import num_trainable_params
    from stylegan2_tf.training import TrainingOptions, make_strategy
    from stylegan2_tf.training import Trainer

    opts = TrainingOptions(data_dir=tmp, dataset="shapes", result_dir=os.path.join(tmp, "results"),
                           config=FLAGS.config, fmap_base=FLAGS["fmap-base"].value, batch=batch,
                           batch_gpu=FLAGS["batch-gpu"].value, num_gpus=replicas, snapshot_ticks=0,
                           fp16_res=FLAGS["fp16-res"].value, mixed_dtype=FLAGS["mixed-dtype"].value,
                           xla=FLAGS.xla,
                           fused_modconv={"auto": None, "fused": True, "nonfused": False}[FLAGS.modconv])
    t = Trainer(opts, strategy=make_strategy(replicas), echo=False)
    devices = t.strategy.extended.worker_devices if replicas > 1 else ["default device"]
    print(f"## {label}: {FLAGS.config} {FLAGS.res}x{FLAGS.res}, fmap_base {opts.fmap_base}, "
          f"G {num_trainable_params(t.state.G):,} D {num_trainable_params(t.state.D):,} params, batch {opts.batch} = "
          f"{opts.rounds} round(s) x {replicas} replica(s) x {opts.batch_gpu}, "
          f"fp16_res {opts.fp16_res}{f' ({opts.mixed_dtype})' if opts.fp16_res else ''}, "
          f"modconv {FLAGS.modconv}, xla {FLAGS.xla}, "
          f"devices {', '.join(d.split('/')[-1] for d in devices)}")
    data = t.dataset(0)
    times = []
    profiles = {}

    def minibatch():       # the current `rounds`
        float(t.train_minibatch(rounds)["Loss/D/loss"].numpy())     # waits for the step

    # Minibatch 0 runs all four phases (traces everything); then time a full reg cycle.
    for mb in range(FLAGS.steps + 1):
        rounds = tuple(next(data) for _ in range(opts.rounds))
        t.state.minibatch.assign(mb)  # picks the lazy-regularization phases
        if mb == 0:
            tracing, graph_ops = trace_phases(t, rounds)
        t0 = time.perf_counter()
        if mb == 0 and FLAGS["profile-first"].value:
            profiles["first"] = profile_calls(minibatch, 1)
        else:
            minibatch()
        if mb > 0:
            times.append(time.perf_counter() - t0)
        else:
            first = time.perf_counter() - t0
            print(f"first minibatch: {tracing + first:.1f} s = Python tracing {tracing:.1f} s (the four phases' "
                  f"graphs built: {graph_ops:,} ops, functions included) + first call {first:.1f} s (graph "
                  f"optimisation, then the step)")
    mean = statistics.mean(times)
    # The same all-phase minibatch again, traced and optimised: what the first call spent beyond it
    # is graph optimisation and first-run setup (oneDNN primitives, allocations).
    t.state.minibatch.assign(0)
    t0 = time.perf_counter()
    if FLAGS["profile-first"].value:
        profiles["again"] = profile_calls(minibatch, 1)
    else:
        minibatch()
    again = time.perf_counter() - t0
    print(f"time to first step: {tracing + first - again:.1f} s = Python tracing {tracing:.1f} s + first call "
          f"{first:.1f} s - the same four phases again {again:.1f} s")
    if profiles:
        print("\n".join(first_call_lines(profiles["first"], profiles["again"])))
    if FLAGS["phase-times"].value:
        print(f"phase times (median of {FLAGS['phase-times'].value} calls): {time_phases(t, rounds)}")
    if FLAGS.profile:
        profile_phases(t, rounds)
    mem, kind = _peak_memory_mib(tf)
    print(f"ms/minibatch: {mean * 1000:.0f} (mean of {len(times)}, incl. lazy regularization)")
    print(f"peak memory so far: {mem:.0f} MiB ({kind}); process peak RSS {_peak_rss_mib():.0f} MiB")
    ips = opts.batch / mean
    print(f"img/s: {ips:.3f}")
    return ips


def trace_phases(t, rounds):
    """(seconds, ops): the time to trace every phase that minibatch 0 runs (tf.function building its
    graph, before any graph optimisation or execution, which the first call does), and the ops in
    those graphs and the functions they call."""
    import tensorflow as tf

    from stylegan2_tf.training.phases import phases_of, runs_at
    steps = t.steps(t.state.stage)
    seed = tf.zeros([2], tf.int64)
    t0 = time.perf_counter()
    concrete = [steps[phase.name].get_concrete_function(rounds, seed)
                for phase in phases_of(t.opts) if runs_at(phase, t.opts, 0)]
    seconds = time.perf_counter() - t0
    graphs = [f.graph.as_graph_def() for f in concrete]
    ops = sum(len(g.node) + sum(len(fn.node_def) for fn in g.library.function) for g in graphs)
    return seconds, ops


def time_phases(t, rounds):
    """Each of the loop's four step functions alone on the same rounds (all traced by the warm-up
    minibatch): '<phase> <median> s | ...'. They train as they run, like the loop's own calls."""
    import tensorflow as tf
    seed = tf.constant([1, 2], tf.int64)
    parts = []
    for name, step in t.steps(t.state.stage).items():
        seconds = []
        for _ in range(FLAGS["phase-times"].value):
            t0 = time.perf_counter()
            stats = step(rounds, seed)
            [float(v.numpy()) for v in stats.values()]      # wait for the results
            seconds.append(time.perf_counter() - t0)
        parts.append(f"{name} {statistics.median(seconds):.2f} s")
    return " | ".join(parts)


def profile_phases(t, rounds):
    """Each step function profiled alone (after one unprofiled call), with the convolutions' GFLOP/s
    where the FLOPs are counted (G main, D main; conv_flops.py)."""
    import tensorflow as tf
    seed = tf.constant([1, 2], tf.int64)
    flops = phase_conv_flops(FLAGS.res, t.opts.fmap_base, t.opts.batch)      # every replica of this process
    for name, step in t.steps(t.state.stage).items():
        def call():
            [float(v.numpy()) for v in step(rounds, seed).values()]      # wait for the results
        call()
        report = profile_calls(call, FLAGS.profile)
        print(f"profile {name}: " + "\n".join(report.lines(flops.get(name))), flush=True)


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    n = FLAGS.replicas
    if n < 1 or FLAGS.batch % (n * FLAGS["batch-gpu"].value):
        sys.exit(f"error: --batch {FLAGS.batch} must be divisible by --replicas {n} x --batch-gpu "
                 f"{FLAGS['batch-gpu'].value}")
    import tensorflow as tf
    if n > 1 and len(tf.config.list_physical_devices("GPU")) < n:
        # Before TensorFlow initializes its devices: N logical devices on the CPU.
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)

    from stylegan2_tf.data.synthetic import create_shapes_dataset

    from stylegan2_tf.ops.capabilities import onednn_enabled
    print(f"# {platform.node()} {platform.machine()}, {os.cpu_count()} cpus ({cpu_flags()}), TF {tf.__version__}, "
          f"oneDNN {'on' if onednn_enabled() else 'off'}, {len(tf.config.list_physical_devices('GPU'))} GPU(s)")
    tmp = tempfile.mkdtemp(prefix="bench-train-")
    try:
        create_shapes_dataset(os.path.join(tmp, "shapes"), num_images=64, resolution=FLAGS.res)
        if n == 1:
            time_training(tmp, 1, FLAGS.batch, "1 replica")
            return
        share = time_training(tmp, 1, FLAGS.batch // n, f"1 replica, one replica's share (batch / {n})")
        accumulated = time_training(tmp, 1, FLAGS.batch, f"1 replica, the whole batch ({n}x the rounds)")
        many = time_training(tmp, n, FLAGS.batch, f"{n} replicas")
        print(f"scaling efficiency ({n} replicas / ({n} x 1 replica)): {many / (n * share):.3f}")
        print(f"same global batch ({n} replicas / 1 replica accumulating): {many / accumulated:.3f}")
        print(f"img/s: {many:.3f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    app.run(main)
