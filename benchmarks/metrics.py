"""Metric cost: seconds per 1,000 images (PPL: path samples) for each metric at 256x256 on this machine.

  python benchmarks/metrics.py --res 256 --fmap-base 16384 --num 32 [--metrics fid50k_full,is50k,...]

Full-size feature networks with random weights (the real files give the same timings):
the FID Inception (pytorch-fid .pth layout), torchvision's VGG16 with its 4096-wide fc
layers, LPIPS v0.1; all written to a temporary directory first. The generator is a
random config at --res with --fmap-base (16384 = config F). For each metric the fakes'
side (generation, uint8 quantisation, feature network; PPL: both ends of each path and
LPIPS) runs once with --num samples after a warm-up micro-batch, scaled to 1,000; the
generator alone is timed too, so the feature network's share is visible. The reals'
side costs the feature network alone and is computed once per dataset (cached). The
statistics (FID's covariance and matrix square root, KID, the P&R distances) are timed
at the official sizes on random features.
"""

import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from cpu_info import cpu_description  # noqa: E402  (benchmarks/, the script's directory)

flags.DEFINE_integer("res", 256, "Generator resolution.")
flags.DEFINE_integer("fmap-base", 16384, "Generator feature-map base (16384 = config F).")
flags.DEFINE_integer("num", 32, "Images (path samples) timed per metric.")
flags.DEFINE_integer("batch", 8, "Micro-batch.")
flags.DEFINE_string("metrics", "fid50k_full,is50k,pr50k3_full,ppl_wend,ppl2_wend", "Metrics to time.")
flags.DEFINE_integer("inter-op-threads", 1, "TF inter-op threads (0 = default).")
FLAGS = flags.FLAGS


def write_feature_files(directory):
    import json
    from feature_net_weights import state_dict_for
    from torch_pth_writer import write_pth
    with open(os.path.join(ROOT, "tests", "fixtures", "metrics", "shapes.json")) as f:
        shapes = json.load(f)
    vgg = [(k, v) for k, v in shapes["vgg16"]]
    # shapes.json's VGG16 has 256-wide fc layers (test size); the real network's are 4096 wide.
    full_fc = {"classifier.0.weight": [4096, 25088], "classifier.0.bias": [4096], "classifier.3.weight": [4096, 4096],
               "classifier.3.bias": [4096], "classifier.6.weight": [1000, 4096], "classifier.6.bias": [1000]}
    vgg = [(k, full_fc.get(k, v)) for k, v in vgg]
    paths = {"inception": os.path.join(directory, "pt_inception.pth"), "vgg16": os.path.join(directory, "vgg16.pth")}
    write_pth(paths["inception"], state_dict_for(shapes["inception"]), legacy=True)
    write_pth(paths["vgg16"], state_dict_for(vgg))
    write_pth(os.path.join(directory, "vgg.pth"), state_dict_for(shapes["lpips_lin"]))
    paths["lpips"] = f"{paths['vgg16']},{os.path.join(directory, 'vgg.pth')}"
    return paths


def main(argv):
    del argv
    import tensorflow as tf
    tf.config.threading.set_inter_op_parallelism_threads(FLAGS["inter-op-threads"].value)
    from stylegan2_tf.metrics import statistics
    from stylegan2_tf.metrics.definitions import parse_metric_list
    from stylegan2_tf.metrics.evaluate import MetricOptions, Evaluator, _fake_features, _inception_input, _vgg_input
    from stylegan2_tf.metrics.path_length import path_length_distances
    from stylegan2_tf.metrics.image_prep import quantize_to_uint8
    from stylegan2_tf.networks import Generator, GeneratorConfig
    from stylegan2_tf.ops.capabilities import onednn_enabled

    metrics = parse_metric_list(FLAGS.metrics)
    print(f"CPU: {cpu_description()}; TensorFlow {tf.__version__}, oneDNN {'on' if onednn_enabled() else 'off'}")
    G = Generator(GeneratorConfig(img_resolution=FLAGS.res, fmap_base=FLAGS["fmap-base"].value)).build_weights()
    n, b = FLAGS.num, FLAGS.batch

    gen = tf.function(lambda z: quantize_to_uint8(G(z, truncation_psi=1.0, noise_mode="random")))
    z = tf.random.normal([b, G.config.z_dim])
    gen(z)
    start = time.time()
    for _ in range(-(-n // b)):
        gen(z).numpy()
    g_sec = (time.time() - start) / (-(-n // b) * b) * 1000
    print(f"{'generator alone':<16s} {g_sec:9.1f} s / 1k images", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        files = write_feature_files(tmp)
        for metric in metrics:
            ctx = Evaluator(MetricOptions(G=G, feature_files=files, batch_size=b))
            net = ctx.network(metric.network)
            if metric.kind == "ppl":
                run = lambda count: path_length_distances(ctx, metric, count)  # noqa: E731
                per_sample = 2
            else:
                if metric.network == "inception":
                    fn = lambda x: net.network(_inception_input(x))  # noqa: E731
                else:
                    fn = lambda x: net.network(_vgg_input(x))  # noqa: E731
                run = lambda count: _fake_features(ctx, count, fn, stream=1)  # noqa: E731
                per_sample = 1
            run(b)                                  # trace + warm up
            start = time.time()
            run(n)
            sec = (time.time() - start) / n * 1000
            unit = "path samples" if metric.kind == "ppl" else "images"
            print(f"{metric.name:<16s} {sec:9.1f} s / 1k {unit} (feature network and sampling overhead: "
                  f"{sec - g_sec * per_sample:.1f} s)", flush=True)

    # The statistics at the official sizes, timed on random features.
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((50000, 2048)).astype(np.float32)
    start = time.time()
    mu, sigma = statistics.feature_mean_cov(feats, 1)
    t_cov = time.time() - start
    start = time.time()
    statistics.frechet_distance(mu, sigma, mu + 0.1, sigma)
    print(f"FID statistics: mean/cov of 50k x 2048 {t_cov:.1f} s, Frechet distance (sqrtm) {time.time() - start:.1f} s")
    start = time.time()
    statistics.kernel_inception_distance(feats[:25000], feats[25000:], 100, 1000, seed=0)
    print(f"KID statistics: 100 subsets of 1000 {time.time() - start:.1f} s")
    m = 4000
    vgg_feats = np.maximum(rng.standard_normal((2 * m, 4096)), 0).astype(np.float32)
    start = time.time()
    statistics.precision_recall(vgg_feats[:m], vgg_feats[m:], 3)
    t = time.time() - start
    print(f"P&R statistics: {m} x {m} in {t:.1f} s; 50k x 50k (quadratic) ~ {t * (50000 / m) ** 2 / 60:.0f} min")


if __name__ == "__main__":
    app.run(main)
