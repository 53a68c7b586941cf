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

import contextlib
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
flags.DEFINE_string("inception", None,
                    "Inception file: classify_image_graph_def.pb or pytorch-fid's pt_inception-*.pth.")
flags.DEFINE_string("lpips", None, "LPIPS files: torchvision's vgg16-397923af.pth,lpips' weights/v0.1/vgg.pth.")
flags.DEFINE_string("vgg16", None, "VGG16 file for precision/recall: torchvision's vgg16-397923af.pth.")
flags.DEFINE_integer("num-images", None, "Use at most N fakes and reals (shortened run, not the paper's protocol).")
flags.DEFINE_integer("batch-size", 8, "Generated images per micro-batch and replica.")
flags.DEFINE_string("cache-dir", None,
                    "Real-statistics cache (default $STYLEGAN2_TF_CACHE or ~/.cache/stylegan2_tf/metrics).")
flags.DEFINE_integer("seed", 0, "Seed of the sampling.")
FLAGS = flags.FLAGS


class ProgressPrinter:
    """'fid50k: fakes 1200/50000, 35s, ETA 23m 41s' lines, at most every few seconds."""

    def __init__(self, metric_name, interval=5.0):
        self.metric_name, self.interval = metric_name, interval
        self.start, self.last, self.phase = time.time(), 0.0, None

    def __call__(self, what, done, total):
        from stylegan2_tf.metrics import format_time
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


def main(argv):
    if len(argv) > 1:
        sys.exit(f"error: unexpected arguments {' '.join(argv[1:])}")
    from stylegan2_tf.cli import run
    run(compute, network=FLAGS.network, metrics=FLAGS.metrics, data_dir=FLAGS["data-dir"].value,
        dataset=FLAGS.dataset, mirror_augment=FLAGS["mirror-augment"].value, num_gpus=FLAGS["num-gpus"].value,
        result_dir=FLAGS["result-dir"].value, inception=FLAGS.inception, lpips=FLAGS.lpips, vgg16=FLAGS.vgg16,
        num_images=FLAGS["num-images"].value, batch_size=FLAGS["batch-size"].value,
        cache_dir=FLAGS["cache-dir"].value, seed=FLAGS.seed)


def compute(network, metrics, data_dir, dataset, mirror_augment, num_gpus, result_dir, inception, lpips, vgg16,
            num_images, batch_size, cache_dir, seed):
    """Every metric of the comma-separated `metrics` for the network pickle `network`; each result
    is printed and appended to <result_dir>/metric-<name>.txt / .jsonl."""
    from stylegan2_tf.loading import load_generator
    from stylegan2_tf.metrics import (Evaluator, MetricError, MetricOptions, parse_metric_list,
                                      resolve_feature_files, write_metric_result)
    from stylegan2_tf.training.strategy import make_strategy
    if not network:
        raise MetricError("--network is required")
    metrics = parse_metric_list(metrics)
    if not metrics:
        raise MetricError("no metrics requested (--metrics)")
    if num_images is not None and num_images < 2:
        raise MetricError("--num-images must be at least 2")
    files = resolve_feature_files(inception, lpips, vgg16)
    tfrecord_dir = None
    if any(m.needs_dataset for m in metrics):
        if not dataset:
            raise MetricError(f"{metrics[0].name if metrics[0].needs_dataset else 'this metric'} uses reals: "
                              f"pass --data-dir and --dataset")
        tfrecord_dir = os.path.join(data_dir or "datasets", dataset)
    cache_dir = cache_dir or os.environ.get("STYLEGAN2_TF_CACHE") or \
        os.path.join(os.path.expanduser("~"), ".cache", "stylegan2_tf", "metrics")
    strategy = make_strategy(num_gpus) if num_gpus > 1 else None
    print(f'Loading network from "{network}"...', flush=True)
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        G = load_generator(network)
    opts = MetricOptions(G=G, tfrecord_dir=tfrecord_dir, mirror_augment=mirror_augment, feature_files=files,
                         cache_dir=cache_dir, num_images=num_images, batch_size=batch_size, strategy=strategy,
                         seed=seed)
    evaluator = Evaluator(opts).prepare(metrics)   # every file and the dataset checked before any sampling
    settings = {"dataset": tfrecord_dir, "mirror_augment": mirror_augment, "num_gpus": num_gpus,
                "num_images": num_images, "seed": seed, "feature_files": {k: v for k, v in files.items() if v}}
    if num_images is not None:
        print(f"--num-images {num_images}: a shortened run, not the paper's protocol", flush=True)
    for metric in metrics:
        opts.progress = ProgressPrinter(metric.name)
        result = evaluator.evaluate(metric)
        print(write_metric_result(result_dir, network, result, settings=settings), flush=True)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from stylegan2_tf.cli import prefer_onednn_kernels
    prefer_onednn_kernels()  # before TensorFlow loads
    app.run(main)
