"""The paper's metrics: FID, KID, IS, perceptual path length, precision/recall.

`Evaluator` computes the named metrics (`definitions.METRICS`) for a generator;
`write_metric_result` stores a result as run_metrics.py and the training loop do. Feature
networks are read from local files (`load_inception`, `load_lpips`, `load_vgg16`); the
statistics live in `statistics`, the image preparation in `image_prep`, perceptual path length's
sampling in `path_length`, and the micro-batches spread over replicas in `sampling`.
"""

from stylegan2_tf.metrics.definitions import METRICS, MetricError, parse_metric_list
from stylegan2_tf.metrics.evaluate import Evaluator, MetricOptions, compute_metric, resolve_feature_files
from stylegan2_tf.metrics.inception import FeatureNetworkError
from stylegan2_tf.metrics.loaders import load_inception, load_lpips, load_vgg16
from stylegan2_tf.metrics.report import format_time, write_metric_result

__all__ = ["METRICS", "MetricError", "parse_metric_list", "Evaluator", "MetricOptions", "compute_metric",
           "resolve_feature_files", "FeatureNetworkError", "load_inception", "load_lpips", "load_vgg16",
           "format_time", "write_metric_result"]
