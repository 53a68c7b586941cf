"""Compute the paper's metrics for a network pickle.

  python run_metrics.py --network NET.pkl --metrics fid50k,ppl_wend --data-dir datasets --dataset ffhq \
      [--mirror-augment] [--num-gpus N] [--result-dir results] \
      [--inception classify_image_graph_def.pb] [--lpips vgg16-397923af.pth,vgg.pth] [--vgg16 vgg16-397923af.pth] \
      [--num-images N]

Metrics: fid50k, fid50k_full, kid50k, kid50k_full, is50k, ppl_zfull, ppl_wfull, ppl_zend, ppl_wend,
ppl2_wend, pr50k3, pr50k3_full (stylegan2_tf/metrics/README.md says what each one is and which
feature-network file it needs). Feature-network files are local; they can also come from the
environment (STYLEGAN2_TF_INCEPTION, STYLEGAN2_TF_LPIPS, STYLEGAN2_TF_VGG16) or a JSON config
(STYLEGAN2_TF_METRICS_CONFIG, default ~/.config/stylegan2_tf/metrics.json).

Each result is appended to <result-dir>/metric-<name>.txt (one line, NVIDIA's layout) and
<result-dir>/metric-<name>.jsonl (time, settings, protocol). --num-images shortens a run; its
results are marked "shortened", not the paper's protocol.
"""

import datetime
import json
import os
import sys
import time

from absl import app, flags

flags.DEFINE_string("network", None, "Network pickle (official NVIDIA TF1 format or our snapshot).")
flags.DEFINE_string("metrics", "fid50k", "Comma-separated metric names.")
flags.DEFINE_string("data-dir", None, "Directory holding datasets (for metrics that use reals).")
flags.DEFINE_string("dataset", None, "Dataset (a TFRecord directory under --data-dir).")
flags.DEFINE_bool("mirror-augment", False, "Reals include their mirror images (as the training run used).")
flags.DEFINE_integer("num-gpus", 1, "Replicas to spread the sampling over (GPUs; 1 on a CPU).")
flags.DEFINE_string("result-dir", "results", "Where metric-<name>.txt / .jsonl are written.")
flags.DEFINE_string("inception", None, "Inception file: classify_image_graph_def.pb or pytorch-fid's pt_inception-*.pth.")
flags.DEFINE_string("lpips", None, "LPIPS files: torchvision's vgg16-397923af.pth,lpips' weights/v0.1/vgg.pth.")
flags.DEFINE_string("vgg16", None, "VGG16 file for precision/recall: torchvision's vgg16-397923af.pth.")
flags.DEFINE_integer("num-images", None, "Use at most N fakes and reals (shortened run, not the paper's protocol).")
flags.DEFINE_integer("batch-size", 8, "Generated images per micro-batch and replica.")
flags.DEFINE_string("cache-dir", None, "Real-statistics cache (default $STYLEGAN2_TF_CACHE or ~/.cache/stylegan2_tf/metrics).")
flags.DEFINE_integer("seed", 0, "Seed of the sampling.")
FLAGS = flags.FLAGS


def flag(name):
    return FLAGS[name].value


class ProgressPrinter:
    """'fid50k: fakes 1200/50000, 35s, ETA 23m 41s' lines, at most every few seconds."""

    def __init__(self, metric_name, interval=5.0):
        self.metric_name, self.interval = metric_name, interval
        self.start, self.last, self.phase = time.time(), 0.0, None

    def __call__(self, what, done, total):
        from stylegan2_tf.training.loop import format_time
        now = time.time()
        if what != self.phase:
            self.phase, self.phase_start = what, now
        if now - self.last < self.interval and done < total:
            return
        self.last = now
        elapsed = now - self.phase_start
        eta = elapsed / done * (total - done) if done else 0.0
        print(f"{self.metric_name}: {what} {done}/{total}, {format_time(now - self.start)}, "
              f"ETA {format_time(eta)}", flush=True)


def write_result(result_dir, network, result, settings):
    from stylegan2_tf.training.loop import format_time
    os.makedirs(result_dir, exist_ok=True)
    name = result["metric"]
    values = " ".join(f"{k} {v:.4f}" if abs(v) >= 1e-3 or v == 0 else f"{k} {v:.6g}"
                      for k, v in result["results"].items())
    marker = "" if result["protocol"] == "paper" else f" [shortened: {result['num_fakes']} fakes, not the paper's protocol]"
    line = f"{os.path.splitext(os.path.basename(network))[0]} time {format_time(result['seconds'])} {values}{marker}"
    with open(os.path.join(result_dir, f"metric-{name}.txt"), "a") as f:
        f.write(line + "\n")
    record = dict(result, network=os.path.abspath(network), settings=settings,
                  timestamp=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    with open(os.path.join(result_dir, f"metric-{name}.jsonl"), "a") as f:
        f.write(json.dumps(record) + "\n")
    return line


def main(argv):
    if len(argv) > 1:
        sys.exit(f"error: unexpected arguments {' '.join(argv[1:])}")
    if not flag("network"):
        sys.exit("error: --network is required")
    from stylegan2_tf.data import DatasetError
    from stylegan2_tf.metrics import FeatureNetworkError
    from stylegan2_tf.metrics.definitions import MetricError, parse_metric_list
    from stylegan2_tf.official import NetworkPickleError
    try:
        run(parse_metric_list(flag("metrics")))
    except (MetricError, FeatureNetworkError, NetworkPickleError, DatasetError) as e:
        sys.exit(f"error: {e}")


def run(metrics):
    from stylegan2_tf.metrics.evaluate import MetricOptions, _Context, compute_metric, resolve_feature_files
    from stylegan2_tf.metrics.definitions import MetricError
    if not metrics:
        raise MetricError("no metrics requested (--metrics)")
    if flag("num-images") is not None and flag("num-images") < 2:
        raise MetricError("--num-images must be at least 2")
    files = resolve_feature_files(flag("inception"), flag("lpips"), flag("vgg16"))
    tfrecord_dir = None
    if any(m.needs_dataset for m in metrics):
        if not flag("dataset"):
            raise MetricError(f"{metrics[0].name if metrics[0].needs_dataset else 'this metric'} uses reals: "
                              f"pass --data-dir and --dataset")
        tfrecord_dir = os.path.join(flag("data-dir") or "datasets", flag("dataset"))
    cache_dir = flag("cache-dir") or os.environ.get("STYLEGAN2_TF_CACHE") or \
        os.path.join(os.path.expanduser("~"), ".cache", "stylegan2_tf", "metrics")

    from stylegan2_tf.training import TrainingError, make_strategy
    try:
        strategy = make_strategy(flag("num-gpus")) if flag("num-gpus") > 1 else None
    except TrainingError as e:
        raise MetricError(str(e)) from None
    from stylegan2_tf.loading import load_generator
    print(f'Loading network from "{flag("network")}"...', flush=True)
    if strategy is not None:
        with strategy.scope():
            G = load_generator(flag("network"))
    else:
        G = load_generator(flag("network"))
    opts = MetricOptions(G=G, tfrecord_dir=tfrecord_dir, mirror_augment=flag("mirror-augment"), feature_files=files,
                         cache_dir=cache_dir, num_images=flag("num-images"), batch_size=flag("batch-size"),
                         strategy=strategy, seed=flag("seed"))
    ctx = _Context(opts)
    for kind in dict.fromkeys(m.network for m in metrics):   # every file checked before any sampling
        ctx.network(kind)
    if tfrecord_dir:
        ctx.info                                                # dataset problems before sampling too
    settings = {"dataset": tfrecord_dir, "mirror_augment": flag("mirror-augment"), "num_gpus": flag("num-gpus"),
                "num_images": flag("num-images"), "seed": flag("seed"),
                "feature_files": {k: v for k, v in files.items() if v}}
    if flag("num-images") is not None:
        print(f"--num-images {flag('num-images')}: a shortened run, not the paper's protocol", flush=True)
    for metric in metrics:
        opts.progress = ProgressPrinter(metric.name)
        result = compute_metric(metric, opts, _ctx=ctx)
        print(write_result(flag("result-dir"), flag("network"), result, settings), flush=True)


if __name__ == "__main__":
    app.run(main)
