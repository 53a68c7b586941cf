"""The paper's metrics: FID, KID, IS, perceptual path length, precision/recall.

Feature networks are read from local files (`load_inception`, `load_lpips`,
`load_vgg16`); the statistics live in `statistics`, the image preparation in
`image_prep`.
"""

from stylegan2_tf.metrics.inception import FeatureNetworkError
from stylegan2_tf.metrics.loaders import load_inception, load_lpips, load_vgg16

__all__ = ["FeatureNetworkError", "load_inception", "load_lpips", "load_vgg16"]
