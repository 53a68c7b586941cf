"""Computing the named metrics for a generator: sampling, features, caching, results.

Fakes: z ~ N(0, I) per sample, random noise, no truncation (psi = 1, as the official
`is_validation` runs), class labels drawn from the dataset's labels for conditional
networks; images are quantised to uint8 (`quantize_to_uint8`) before the feature
network. Reals: the dataset's stored uint8 images in file order; with
`mirror_augment` the mirrored copies follow the originals (stylegan2-ada-pytorch's
x-flip doubling). Sampling is in micro-batches whose random numbers depend only on
(seed, micro-batch index), so one replica or several compute the same samples.
"""

import contextlib
import dataclasses
import hashlib
import json
import os
import time
from typing import Callable, Optional

import numpy as np
import tensorflow as tf

from stylegan2_tf.metrics import statistics
from stylegan2_tf.metrics.definitions import METRICS, MetricError
from stylegan2_tf.metrics.image_prep import quantize_to_uint8
from stylegan2_tf.metrics.path_length import path_length_distances
from stylegan2_tf.metrics.sampling import micro_rng, progress, run_replicated

FEATURE_ENV = {"inception": "STYLEGAN2_TF_INCEPTION", "lpips": "STYLEGAN2_TF_LPIPS", "vgg16": "STYLEGAN2_TF_VGG16"}
CONFIG_ENV = "STYLEGAN2_TF_METRICS_CONFIG"
DEFAULT_CONFIG = os.path.join("~", ".config", "stylegan2_tf", "metrics.json")
FLAG_NAMES = {"inception": "--inception", "lpips": "--lpips", "vgg16": "--vgg16"}


def resolve_feature_files(inception=None, lpips=None, vgg16=None):
    """Feature-network paths: explicit values, else the STYLEGAN2_TF_<NAME> environment
    variables, else the JSON config file named by STYLEGAN2_TF_METRICS_CONFIG (default
    ~/.config/stylegan2_tf/metrics.json) with keys "inception", "lpips", "vgg16"."""
    given = {"inception": inception, "lpips": lpips, "vgg16": vgg16}
    config_path = os.path.expanduser(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)
    config = {}
    if os.path.isfile(config_path):
        try:
            with open(config_path) as f:
                config = json.load(f)
        except (OSError, ValueError) as e:
            raise MetricError(f"{config_path}: not a readable JSON metrics config ({e})") from None
        if not isinstance(config, dict):
            raise MetricError(f"{config_path}: expected a JSON object with keys inception, lpips, vgg16")
    out = {}
    for key in given:
        value = given[key] or os.environ.get(FEATURE_ENV[key]) or config.get(key)
        if isinstance(value, (list, tuple)):
            value = ",".join(map(str, value))
        out[key] = value or None
    return out


@dataclasses.dataclass
class MetricOptions:
    """What a metric run needs besides the metric's own definition."""
    G: object                                     # stylegan2_tf Generator
    tfrecord_dir: Optional[str] = None            # dataset directory (reals, labels)
    mirror_augment: bool = False
    feature_files: dict = dataclasses.field(default_factory=dict)
    cache_dir: Optional[str] = None               # real-image statistics cache
    num_images: Optional[int] = None              # shorten the run (not the paper's protocol)
    batch_size: int = 8                           # micro-batch per replica
    strategy: Optional[tf.distribute.Strategy] = None
    seed: int = 0
    progress: Optional[Callable[[str, int, int], None]] = None


class Evaluator:
    """Computes metrics for `opts.G`, keeping what later calls reuse: the loaded feature
    networks, the dataset's facts and the traced sampling functions (the training loop
    evaluates every snapshot with one Evaluator).

      evaluator = Evaluator(MetricOptions(G=None, feature_files=resolve_feature_files(), ...))
      evaluator.prepare(parse_metric_list("fid50k"))   # bad files / dataset: MetricError now
      result = evaluator.evaluate(metric, G)           # compute_metric's dict
    """

    def __init__(self, opts: MetricOptions):
        self.opts = opts
        self._networks = {}
        # Traced sampling functions and PPL's float32 copy of G, kept for later calls (training snapshots).
        self.reused = {}
        self._info = None
        self._labels = None

    def prepare(self, metrics, dataset=True):
        """Load every feature network `metrics` need and (with `dataset`) check the dataset
        against opts.G, so that a missing or bad file stops before any sampling."""
        for kind in dict.fromkeys(m.network for m in metrics):
            self.network(kind)
        if dataset and self.opts.tfrecord_dir and any(m.needs_dataset for m in metrics):
            self.info  # noqa: B018 (reads and checks the dataset)
        return self

    def evaluate(self, metric, G=None):
        """compute_metric for `G` (default: opts.G) with what this Evaluator has loaded."""
        if G is not None:
            self.opts.G = G
        return compute_metric(metric, self.opts, evaluator=self)

    # ---- feature networks
    def network(self, kind):
        if kind not in self._networks:
            from stylegan2_tf.metrics.loaders import load_inception, load_lpips, load_vgg16
            path = self.opts.feature_files.get(kind)
            if not path:
                raise MetricError(f"no {kind} file: pass {FLAG_NAMES[kind]} or set {FEATURE_ENV[kind]} "
                                  f"(see stylegan2_tf/metrics/README.md for the files)")
            loader = {"inception": load_inception, "lpips": load_lpips, "vgg16": load_vgg16}[kind]
            scope = self.opts.strategy.scope() if self.opts.strategy is not None else contextlib.nullcontext()
            with scope:
                self._networks[kind] = loader(path)
        return self._networks[kind]

    def network_digest(self, kind):
        """Short hash of the feature-network file(s): part of the real-statistics cache key."""
        h = hashlib.sha256()
        for path in str(self.opts.feature_files[kind]).split(","):
            h.update(os.path.basename(path).encode())
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 22), b""):
                    h.update(chunk)
        return h.hexdigest()[:12]

    # ---- dataset
    @property
    def info(self):
        if self._info is None:
            from stylegan2_tf.data import read_dataset_info
            if not self.opts.tfrecord_dir:
                raise MetricError("this metric needs reals: pass --data-dir and --dataset")
            res = self.opts.G.config.img_resolution
            info = read_dataset_info(self.opts.tfrecord_dir)   # DatasetError names the file
            if res not in info.resolutions:
                raise MetricError(f"{self.opts.tfrecord_dir}: dataset resolution {info.resolution} does not match the "
                                  f"network's {res}x{res}")
            info = read_dataset_info(self.opts.tfrecord_dir, res)
            if info.channels != self.opts.G.config.img_channels:
                raise MetricError(f"{self.opts.tfrecord_dir}: dataset images have {info.channels} channel(s), the "
                                  f"network's {self.opts.G.config.img_channels}")
            c_dim = self.opts.G.config.c_dim
            if c_dim and info.label_size != c_dim:
                raise MetricError(f"{self.opts.tfrecord_dir}: dataset labels have {info.label_size} entries, the "
                                  f"network's c_dim is {c_dim} (a conditional network's fakes take the dataset's "
                                  f"labels)")
            self._info = info
        return self._info

    def random_labels(self, rng, n):
        """Labels for n fakes of a conditional network, as NVIDIA's metrics draw them: the labels
        of n dataset images picked uniformly with replacement (so the classes come in the
        dataset's proportions). Without a dataset (PPL alone): one-hot classes, uniformly."""
        c_dim = self.opts.G.config.c_dim
        if c_dim == 0:
            return None
        if self._labels is None and self.opts.tfrecord_dir:
            self._labels = self.info.load_labels()   # info checks the label size
        if self._labels is not None:
            return self._labels[rng.integers(0, len(self._labels), n)]
        return np.eye(c_dim, dtype=np.float32)[rng.integers(0, c_dim, n)]


# --------------------------------------------------------------------------- fakes

def _fake_features(ctx, num, feature_fn, stream, key=None):
    """Features of `num` generated images, [num, D]. `key` names `feature_fn` so that its
    traced sampling step is reused by later calls with the same generator."""
    opts, G = ctx.opts, ctx.opts.G
    b = opts.batch_size
    num_micro = -(-num // b)
    cache_key = None if key is None else ("fakes", key, id(G))
    step = ctx.reused.get(cache_key)
    if step is None:
        @tf.function(reduce_retracing=True)
        def step(z, c, noise_seed):
            img = G(z, c=c, truncation_psi=1.0, noise_mode="random", noise_seed=noise_seed)
            return feature_fn(quantize_to_uint8(img))
        if cache_key is not None:
            ctx.reused[cache_key] = step

    def inputs(i):
        rng = micro_rng(opts.seed, stream, i)
        z = tf.constant(rng.standard_normal([b, G.config.z_dim]), tf.float32)
        c = ctx.random_labels(rng, b)
        c = None if c is None else tf.constant(c, tf.float32)
        return z, c, tf.constant(rng.integers(0, 2 ** 31 - 1, 2), tf.int32)

    out = []
    for done, feats in enumerate(run_replicated(opts, step, inputs, num_micro), 1):
        out.append(feats)
        progress(opts, "fakes", min(done * b, num), num)
    return np.concatenate(out, axis=0)[:num]


# --------------------------------------------------------------------------- reals

def _real_images(ctx, max_reals, batch):
    """uint8 NHWC batches of the first `max_reals` reals (None = all); mirrored copies after."""
    from stylegan2_tf.data.pipeline import parse_records
    info = ctx.info
    count = _real_count(ctx, max_reals)
    ds = tf.data.TFRecordDataset(list(info.files)).batch(batch).map(lambda r: parse_records(r, info.shape))
    done = 0
    for flip in ([False, True] if ctx.opts.mirror_augment else [False]):
        for images in ds:
            images = tf.transpose(images, [0, 2, 3, 1])
            if flip:
                images = tf.reverse(images, axis=[2])
            take = min(count - done, int(images.shape[0]))
            if take <= 0:
                return
            yield images[:take]
            done += take
            progress(ctx.opts, "reals", done, count)
            if done >= count:
                return


def _real_count(ctx, max_reals):
    """Reals a metric reads; a one-line error when the dataset has fewer."""
    available = ctx.info.num_images * (2 if ctx.opts.mirror_augment else 1)
    count = available if max_reals is None else max_reals
    if count > available:
        mirrored = " (x2 mirrored)" if ctx.opts.mirror_augment else ""
        raise MetricError(f"{ctx.opts.tfrecord_dir}: {ctx.info.num_images} images{mirrored} but {count} reals are "
                          f"needed; use the metric's _full variant or --num-images")
    return count


def _real_features(ctx, metric, max_reals, feature_fn, what):
    """Features (or their mean/cov) of the reals, cached on disk by dataset, resolution,
    count, mirroring, feature-network file and, for mean/cov, the covariance normalisation (fid50k
    and fid50k_full read the same reals when a dataset has at most 50k images)."""
    opts = ctx.opts
    count = _real_count(ctx, max_reals)
    cache_file = None
    if opts.cache_dir:
        kind = f"meancov{metric.options['ddof']}" if what == "meancov" else what
        key = "-".join([os.path.basename(os.path.normpath(opts.tfrecord_dir)), str(ctx.info.resolution), str(count),
                        "mirror" if opts.mirror_augment else "nomirror", metric.network,
                        ctx.network_digest(metric.network), kind])
        cache_file = os.path.join(opts.cache_dir, key + ".npz")
        if os.path.isfile(cache_file):
            with np.load(cache_file) as data:
                return {k: data[k] for k in data.files}
    feats = np.concatenate([feature_fn(images) for images in _real_images(ctx, max_reals, 64)], axis=0)
    if what == "meancov":
        mu, sigma = statistics.feature_mean_cov(feats, metric.options["ddof"])
        result = {"mu": mu, "sigma": sigma}
    else:
        result = {"features": feats}
    if cache_file:
        os.makedirs(opts.cache_dir, exist_ok=True)
        tmp = cache_file + ".tmp.npz"
        np.savez(tmp, **result)
        os.replace(tmp, cache_file)
    return result


# --------------------------------------------------------------------------- metrics

def compute_metric(metric, opts: MetricOptions, evaluator=None):
    """-> dict with 'results' {name: value}, 'metric', 'num_fakes', 'num_reals', 'protocol', 'seconds'."""
    if isinstance(metric, str):
        if metric not in METRICS:
            raise MetricError(f"unknown metric '{metric}'; available: {', '.join(METRICS)}")
        metric = METRICS[metric]
    ctx = evaluator or Evaluator(opts)
    start = time.time()
    num_fakes = metric.num_fakes if opts.num_images is None else min(metric.num_fakes, int(opts.num_images))
    max_reals = metric.max_reals
    if opts.num_images is not None and max_reals != 0:
        max_reals = int(opts.num_images) if max_reals is None else min(max_reals, int(opts.num_images))
        max_reals = min(max_reals, _real_count(ctx, None))
    num_reals = 0 if max_reals == 0 else _real_count(ctx, max_reals)  # dataset errors before generating
    o = metric.options

    if metric.kind in ("fid", "kid", "is"):
        inception = ctx.network("inception")
        feature_fn = (lambda x: inception.network(_inception_input(x))) if metric.kind != "is" else \
            (lambda x: tf.matmul(inception.network(_inception_input(x)), inception.network.softmax_weights))
        host_features = inception.features
    elif metric.kind == "pr":
        vgg = ctx.network("vgg16")
        feature_fn = lambda x: vgg.network(_vgg_input(x))  # noqa: E731
        host_features = vgg.features
    else:
        host_features = feature_fn = None

    if metric.kind == "fid":
        real = _real_features(ctx, metric, max_reals, host_features, "meancov")
        fake = _fake_features(ctx, num_fakes, feature_fn, stream=1, key="inception")
        mu, sigma = statistics.feature_mean_cov(fake, o["ddof"])
        results = {metric.name: statistics.frechet_distance(mu, sigma, real["mu"], real["sigma"])}
    elif metric.kind == "kid":
        real = _real_features(ctx, metric, max_reals, host_features, "features")["features"]
        fake = _fake_features(ctx, num_fakes, feature_fn, stream=1, key="inception")
        results = {metric.name: statistics.kernel_inception_distance(
            real, fake, o["num_subsets"], o["max_subset_size"], seed=opts.seed)}
    elif metric.kind == "is":
        logits = _fake_features(ctx, num_fakes, feature_fn, stream=1, key="inception-logits")
        mean, std = statistics.inception_score(statistics.softmax(logits), min(o["num_splits"], num_fakes))
        results = {metric.name: mean, metric.name + "_std": std}
    elif metric.kind == "pr":
        real = _real_features(ctx, metric, max_reals, host_features, "features")["features"]
        fake = _fake_features(ctx, num_fakes, feature_fn, stream=2, key="vgg16")
        k = o["nhood_size"]
        precision, recall = statistics.precision_recall(real, fake, k, o["row_batch_size"], o["col_batch_size"])
        results = {metric.name + "_precision": precision, metric.name + "_recall": recall}
    else:
        distances = path_length_distances(ctx, metric, num_fakes)
        results = {metric.name: statistics.filtered_path_length(distances)}

    paper = opts.num_images is None
    return {"metric": metric.name, "results": {k: float(v) for k, v in results.items()},
            "num_fakes": num_fakes, "num_reals": num_reals, "protocol": "paper" if paper else "shortened",
            "origin": metric.origin, "seconds": time.time() - start}


def _inception_input(images_uint8):
    from stylegan2_tf.metrics.inception import preprocess_for_inception
    if images_uint8.shape[-1] == 1:
        images_uint8 = tf.tile(images_uint8, [1, 1, 1, 3])
    return preprocess_for_inception(images_uint8)


def _vgg_input(images_uint8):
    from stylegan2_tf.metrics.vgg16 import preprocess_for_vgg16
    if images_uint8.shape[-1] == 1:
        images_uint8 = tf.tile(images_uint8, [1, 1, 1, 3])
    return preprocess_for_vgg16(images_uint8)


def compute_metrics(metrics, opts: MetricOptions):
    """Several metrics sharing loaded feature networks; yields one result dict per metric."""
    evaluator = Evaluator(opts)
    for metric in metrics:
        yield evaluator.evaluate(metric)
