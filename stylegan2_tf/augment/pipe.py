"""The augmentation pipeline of ADA (Karras et al. 2020, "Training Generative Adversarial
Networks with Limited Data"), transform for transform, parameter for parameter and draw for
draw stylegan2-ada-pytorch's `AugmentPipe`; NHWC.

Each transform has a probability multiplier (0 = off); it applies to an image with probability
multiplier * p, p being the overall strength that ADA adjusts. In order:
  blit      xflip, rotate90, xint (integer translation)
  geometric scale, rotate (before and after aniso, each with 1 - sqrt(1 - p), so that one of
            them happens with p), aniso, xfrac; composed as one inverse transform and executed
            once: reflect-pad by the margin the transformed corners need, 2x up (symlet-6),
            bilinear resampling, 2x down and crop
  colour    brightness, contrast, lumaflip, hue, saturation; one 4x4 colour matrix per image
            (luma axis (1, 1, 1)/sqrt(3); 1-channel images use its mean row)
  filter    imgfilter: gains for four frequency bands, normalised to the 1/f spectrum
  corrupt   noise (Gaussian, |N(0, 1)| * noise_std per image), cutout (a square of zeros)
"""

import dataclasses
import math
from dataclasses import dataclass
from typing import Tuple

import numpy as np
import tensorflow as tf

from . import matrices as m
from .filters import FILTER_BAND_POWER, FILTER_BANK, GEOMETRIC_LOWPASS
from .sampling import bilinear_sample, separable_fir

BLIT = ("xflip", "rotate90", "xint")
GEOMETRIC = ("scale", "rotate", "aniso", "xfrac")
COLOR = ("brightness", "contrast", "lumaflip", "hue", "saturation")
TRANSFORMS = BLIT + GEOMETRIC + COLOR + ("imgfilter", "noise", "cutout")


@dataclass(frozen=True)
class AugmentConfig:
    """Probability multipliers and strengths; defaults as stylegan2-ada-pytorch's AugmentPipe."""
    # Pixel blitting.
    xflip: float = 0.0
    rotate90: float = 0.0
    xint: float = 0.0
    xint_max: float = 0.125            # integer translation range, relative to the image size
    # General geometric transforms.
    scale: float = 0.0
    rotate: float = 0.0
    aniso: float = 0.0
    xfrac: float = 0.0
    scale_std: float = 0.2             # log2 standard deviation of isotropic scaling
    rotate_max: float = 1.0            # rotation range, 1 = full circle
    aniso_std: float = 0.2             # log2 standard deviation of anisotropic scaling
    xfrac_std: float = 0.125           # fractional translation, relative to the image size
    # Colour transforms.
    brightness: float = 0.0
    contrast: float = 0.0
    lumaflip: float = 0.0
    hue: float = 0.0
    saturation: float = 0.0
    brightness_std: float = 0.2
    contrast_std: float = 0.5          # log2
    hue_max: float = 1.0               # 1 = full circle
    saturation_std: float = 1.0        # log2
    # Image-space filtering.
    imgfilter: float = 0.0
    imgfilter_bands: Tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)
    imgfilter_std: float = 1.0         # log2 standard deviation of a band's gain
    # Image-space corruptions.
    noise: float = 0.0
    cutout: float = 0.0
    noise_std: float = 0.1
    cutout_size: float = 0.5           # side of the square, relative to the image size

    def __post_init__(self):
        object.__setattr__(self, "imgfilter_bands", tuple(float(b) for b in self.imgfilter_bands))
        if len(self.imgfilter_bands) != FILTER_BANK.shape[0]:
            raise ValueError(f"imgfilter_bands needs {FILTER_BANK.shape[0]} values, got {len(self.imgfilter_bands)}")
        for f in dataclasses.fields(self):
            values = getattr(self, f.name)
            values = values if isinstance(values, tuple) else (values,)
            if any(not math.isfinite(v) or v < 0 for v in values):
                raise ValueError(f"augmentation {f.name} must be finite and >= 0, got {getattr(self, f.name)}")

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["imgfilter_bands"] = list(d["imgfilter_bands"])
        return d

    @classmethod
    def from_dict(cls, d):
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown augmentation parameter(s) {', '.join(sorted(unknown))}; known: "
                             f"{', '.join(f.name for f in dataclasses.fields(cls))}")
        return cls(**d)

    @property
    def active(self):
        """The transforms with a non-zero multiplier, in the pipeline's order."""
        return tuple(name for name in TRANSFORMS if getattr(self, name) > 0)


def _preset(*names):
    return {name: 1.0 for name in names}


# stylegan2-ada-pytorch's --augpipe presets (train.py).
PRESETS = {
    "blit": _preset(*BLIT),
    "geom": _preset(*GEOMETRIC),
    "color": _preset(*COLOR),
    "filter": _preset("imgfilter"),
    "noise": _preset("noise"),
    "cutout": _preset("cutout"),
    "bg": _preset(*BLIT, *GEOMETRIC),
    "bgc": _preset(*BLIT, *GEOMETRIC, *COLOR),
    "bgcf": _preset(*BLIT, *GEOMETRIC, *COLOR, "imgfilter"),
    "bgcfn": _preset(*BLIT, *GEOMETRIC, *COLOR, "imgfilter", "noise"),
    "bgcfnc": _preset(*BLIT, *GEOMETRIC, *COLOR, "imgfilter", "noise", "cutout"),
}


def preset(name):
    """AugmentConfig of a preset name (ValueError naming the known ones)."""
    if name not in PRESETS:
        raise ValueError(f"unknown augmentation preset {name!r}; choose from {', '.join(PRESETS)}")
    return AugmentConfig(**PRESETS[name])


class AugmentPipe:
    """augment(images, p, source) -> images. images: [N, H, W, C] (any float dtype: computed in
    float32, returned in the input's dtype); p: the strength, a float32 scalar (tensor or
    variable); source: where the random numbers come from (random_source.py). Differentiable
    with respect to the images. p == 0 returns the images unchanged."""

    def __init__(self, config: AugmentConfig = None):
        self.config = config if config is not None else AugmentConfig()

    def __call__(self, images, p, source):
        images = tf.convert_to_tensor(images)
        if not self.config.active:
            return images
        p = tf.cast(p, tf.float32)
        # At p = 0 every transform is the identity, but executing it costs rounding: skipped.
        return tf.cond(p > 0, lambda: tf.cast(self._augment(tf.cast(images, tf.float32), p, source), images.dtype),
                       lambda: images)

    # ------------------------------------------------------------------------------------------
    def _augment(self, x, p, source):
        cfg = self.config
        n, h, w, c = x.shape
        if n is None or h is None or w is None or c is None:
            raise ValueError(f"augmentation needs static image shapes, got {x.shape}")
        g_inv = self._blit_and_geometric(n, h, w, p, source)
        if g_inv is not None:
            x = self._execute_geometric(x, g_inv)
        color = self._color(n, c, p, source)
        if color is not None:
            x = self._execute_color(x, color)
        if cfg.imgfilter > 0:
            x = self._filter(x, p, source)
        if cfg.noise > 0:
            sigma = tf.abs(source.normal([n, 1, 1, 1])) * cfg.noise_std
            sigma = tf.where(source.uniform([n, 1, 1, 1]) < cfg.noise * p, sigma, 0.0)
            noise = tf.transpose(source.normal([n, c, h, w]), [0, 2, 3, 1])   # drawn NCHW, as theirs
            x = x + noise * sigma
        if cfg.cutout > 0:
            x = x * self._cutout_mask(n, h, w, p, source)
        return x

    @staticmethod
    def _chance(source, shape, probability):
        """True with the given probability: uniform draw < probability."""
        return source.uniform(shape) < probability

    def _blit_and_geometric(self, n, h, w, p, source):
        """The inverse geometric transform (output pixel -> input pixel), [N, 3, 3], or None when
        no geometric transform is enabled."""
        cfg = self.config
        if not any(getattr(cfg, name) > 0 for name in BLIT + GEOMETRIC):
            return None
        g = tf.eye(3, batch_shape=[n])
        if cfg.xflip > 0:
            i = tf.floor(source.uniform([n]) * 2)
            i = tf.where(self._chance(source, [n], cfg.xflip * p), i, 0.0)
            g = g @ m.scale2d(1 / (1 - 2 * i), 1, n)
        if cfg.rotate90 > 0:
            i = tf.floor(source.uniform([n]) * 4)
            i = tf.where(self._chance(source, [n], cfg.rotate90 * p), i, 0.0)
            g = g @ m.rotate2d(np.float32(np.pi / 2) * i, n)
        if cfg.xint > 0:
            t = (source.uniform([n, 2]) * 2 - 1) * cfg.xint_max
            t = tf.where(self._chance(source, [n, 1], cfg.xint * p), t, 0.0)
            g = g @ m.translate2d(-tf.round(t[:, 0] * w), -tf.round(t[:, 1] * h), n)
        if cfg.scale > 0:
            s = tf.math.pow(2.0, source.normal([n]) * cfg.scale_std)
            s = tf.where(self._chance(source, [n], cfg.scale * p), s, 1.0)
            g = g @ m.scale2d(1 / s, 1 / s, n)
        # Rotation before and after the anisotropic scaling, each with p_rot: P(either) = rotate * p.
        p_rot = 1 - tf.sqrt(tf.clip_by_value(1 - cfg.rotate * p, 0.0, 1.0))
        if cfg.rotate > 0:
            g = g @ m.rotate2d(self._rotation(n, p_rot, source), n)
        if cfg.aniso > 0:
            s = tf.math.pow(2.0, source.normal([n]) * cfg.aniso_std)
            s = tf.where(self._chance(source, [n], cfg.aniso * p), s, 1.0)
            g = g @ m.scale2d(1 / s, 1 / (1 / s), n)        # (the reference inverts s twice)
        if cfg.rotate > 0:
            g = g @ m.rotate2d(self._rotation(n, p_rot, source), n)
        if cfg.xfrac > 0:
            t = source.normal([n, 2]) * cfg.xfrac_std
            t = tf.where(self._chance(source, [n, 1], cfg.xfrac * p), t, 0.0)
            g = g @ m.translate2d(-t[:, 0] * w, -t[:, 1] * h, n)
        return g

    def _rotation(self, n, p_rot, source):
        theta = (source.uniform([n]) * 2 - 1) * np.float32(np.pi) * self.config.rotate_max
        return tf.where(self._chance(source, [n], p_rot), theta, 0.0)

    @staticmethod
    def _execute_geometric(x, g_inv):
        """Resample x at g_inv (output pixel -> input pixel, centred coordinates): reflect-pad by
        the margin the transformed corners need, upsample 2x, sample bilinearly at twice the
        resolution, downsample 2x and crop to the input size."""
        n, h, w, c = x.shape
        taps = GEOMETRIC_LOWPASS
        pad = taps.size // 4                                 # 3 pixels of filter support
        cx, cy = (w - 1) / 2, (h - 1) / 2
        corners = m.constant([[-cx, cx, cx, -cx], [-cy, -cy, cy, cy], [1, 1, 1, 1]])
        cp = g_inv @ corners                                 # [N, 3, 4]
        xs, ys = tf.reshape(cp[:, 0], [-1]), tf.reshape(cp[:, 1], [-1])
        margin = tf.stack([tf.reduce_max(-xs), tf.reduce_max(-ys), tf.reduce_max(xs), tf.reduce_max(ys)])
        margin = margin + m.constant([pad * 2 - cx, pad * 2 - cy] * 2)
        margin = tf.minimum(tf.maximum(margin, 0.0), m.constant([w - 1, h - 1] * 2))
        mx0, my0, mx1, my1 = tf.unstack(tf.cast(tf.math.ceil(margin), tf.int32))
        x = tf.pad(x, [[0, 0], [my0, my1], [mx0, mx1], [0, 0]], mode="REFLECT")
        g_inv = m.translate2d(tf.cast(mx0 - mx1, tf.float32) / 2, tf.cast(my0 - my1, tf.float32) / 2, n) @ g_inv
        # Twice the resolution: pixel centres at 2x + 0.5.
        x = separable_fir(x, taps, up=2, pad=((taps.size + 1) // 2, (taps.size - 2) // 2), gain=4.0)
        g_inv = m.scale2d(2, 2, n) @ g_inv @ m.scale2d(0.5, 0.5, n)
        g_inv = m.translate2d(-0.5, -0.5, n) @ g_inv @ m.translate2d(0.5, 0.5, n)
        # Sample an output of (size + 2 pad) * 2 pixels: normalised coordinates in and out.
        out_h, out_w = (h + pad * 2) * 2, (w + pad * 2) * 2
        in_h, in_w = tf.shape(x)[1], tf.shape(x)[2]
        to_norm_in = tf.cast(2.0 / tf.cast(in_w, tf.float64), tf.float32), \
            tf.cast(2.0 / tf.cast(in_h, tf.float64), tf.float32)
        g_inv = m.scale2d(*to_norm_in, n) @ g_inv @ m.scale2d(out_w / 2, out_h / 2, n)
        gx = (2 * np.arange(out_w, dtype=np.float64) + 1) / out_w - 1     # pixel centres in [-1, 1]
        gy = (2 * np.arange(out_h, dtype=np.float64) + 1) / out_h - 1
        gx, gy = np.meshgrid(gx.astype(np.float32), gy.astype(np.float32))
        theta = g_inv[:, :2, :, None, None]                                 # [N, 2, 3, 1, 1]
        sx = theta[:, 0, 0] * gx + theta[:, 0, 1] * gy + theta[:, 0, 2]     # [N, out_h, out_w]
        sy = theta[:, 1, 0] * gx + theta[:, 1, 1] * gy + theta[:, 1, 2]
        ix = ((sx + 1) * tf.cast(in_w, tf.float32) - 1) / 2
        iy = ((sy + 1) * tf.cast(in_h, tf.float32) - 1) / 2
        x = bilinear_sample(x, ix, iy)
        # Down 2x, cropping the 2 * pad extra pixels (the reference's padding for a 2x decimation of
        # an even-length filter, minus that margin), filter correlated (not flipped).
        return separable_fir(x, taps, down=2, pad=(-pad * 2 + (taps.size - 1) // 2, -pad * 2 + (taps.size - 2) // 2),
                             convolve=False)

    def _color(self, n, c, p, source):
        """The colour transform [N, 4, 4] (colour in -> colour out), or None when none is enabled."""
        cfg = self.config
        enabled = [name for name in COLOR if getattr(cfg, name) > 0 and (c > 1 or name not in ("hue", "saturation"))]
        if not enabled:
            return None
        if c not in (1, 3):
            raise ValueError(f"colour augmentations ({', '.join(enabled)}) need 1 or 3 channels, got {c}")
        C = tf.eye(4, batch_shape=[n])
        luma = np.array([1, 1, 1, 0], np.float64) / np.sqrt(3)
        vv = m.constant(np.outer(luma, luma))
        if cfg.brightness > 0:
            b = source.normal([n]) * cfg.brightness_std
            b = tf.where(self._chance(source, [n], cfg.brightness * p), b, 0.0)
            C = m.translate3d(b, b, b, n) @ C
        if cfg.contrast > 0:
            s = tf.math.pow(2.0, source.normal([n]) * cfg.contrast_std)
            s = tf.where(self._chance(source, [n], cfg.contrast * p), s, 1.0)
            C = m.scale3d(s, s, s, n) @ C
        if cfg.lumaflip > 0:
            i = tf.floor(source.uniform([n, 1, 1]) * 2)
            i = tf.where(self._chance(source, [n, 1, 1], cfg.lumaflip * p), i, 0.0)
            C = (tf.eye(4) - 2 * vv * i) @ C                 # Householder reflection across the luma plane
        if cfg.hue > 0 and c > 1:
            theta = (source.uniform([n]) * 2 - 1) * np.float32(np.pi) * cfg.hue_max
            theta = tf.where(self._chance(source, [n], cfg.hue * p), theta, 0.0)
            C = m.rotate3d(luma, theta, n) @ C
        if cfg.saturation > 0 and c > 1:
            s = tf.math.pow(2.0, source.normal([n, 1, 1]) * cfg.saturation_std)
            s = tf.where(self._chance(source, [n, 1, 1], cfg.saturation * p), s, 1.0)
            C = (vv + (tf.eye(4) - vv) * s) @ C
        return C

    @staticmethod
    def _execute_color(x, C):
        if x.shape[-1] == 3:
            return tf.einsum("nij,nhwj->nhwi", C[:, :3, :3], x) + C[:, None, None, :3, 3]
        row = tf.reduce_mean(C[:, :3, :], axis=1)           # [N, 4]: grey in -> grey out
        return x * tf.reduce_sum(row[:, :3], axis=1)[:, None, None, None] + row[:, None, None, 3:]

    def _filter(self, x, p, source):
        cfg = self.config
        n, h, w, c = x.shape
        bands = FILTER_BANK.shape[0]
        half = FILTER_BANK.shape[1] // 2
        if half >= min(h, w):
            raise ValueError(f"imgfilter needs images larger than {half}x{half} (its reflection padding), got "
                             f"{h}x{w}")
        power = m.constant(FILTER_BAND_POWER)
        gains = tf.ones([n, bands])
        for band, strength in enumerate(cfg.imgfilter_bands):
            t = tf.math.pow(2.0, source.normal([n]) * cfg.imgfilter_std)
            t = tf.where(self._chance(source, [n], cfg.imgfilter * p * strength), t, 1.0)
            t = tf.where(np.arange(bands) == band, t[:, None], 1.0)            # gain t in this band only
            t = t / tf.sqrt(tf.reduce_sum(power * tf.square(t), axis=-1, keepdims=True))   # keep the power
            gains = gains * t
        taps = gains @ m.constant(FILTER_BANK)               # [N, 43]: each image's filter
        # Every (image, channel) as one channel of a depthwise convolution.
        y = tf.reshape(tf.transpose(x, [1, 2, 0, 3]), [1, h, w, n * c])
        y = tf.pad(y, [[0, 0], [half, half], [half, half], [0, 0]], mode="REFLECT")
        per_channel = tf.reshape(tf.tile(taps[:, None, :], [1, c, 1]), [n * c, -1])     # [N*C, 43]
        kernel = tf.transpose(per_channel)                                              # [43, N*C]
        y = tf.nn.depthwise_conv2d(y, tf.reshape(kernel, [1, -1, n * c, 1]), [1, 1, 1, 1], "VALID")
        y = tf.nn.depthwise_conv2d(y, tf.reshape(kernel, [-1, 1, n * c, 1]), [1, 1, 1, 1], "VALID")
        return tf.transpose(tf.reshape(y, [h, w, n, c]), [2, 0, 1, 3])

    def _cutout_mask(self, n, h, w, p, source):
        """[N, H, W, 1]: 0 inside each image's square (side cutout_size, centre uniform), else 1."""
        cfg = self.config
        size = tf.where(self._chance(source, [n, 1, 1, 1, 1], cfg.cutout * p), np.float32(cfg.cutout_size), 0.0)
        size = tf.broadcast_to(size, [n, 2, 1, 1, 1])
        centre = source.uniform([n, 2, 1, 1, 1])
        xs = (np.arange(w, dtype=np.float32) + 0.5) / w
        ys = (np.arange(h, dtype=np.float32) + 0.5) / h
        outside_x = tf.abs(xs.reshape([1, 1, w]) - centre[:, 0, 0]) >= size[:, 0, 0] / 2    # [N, 1, W]
        outside_y = tf.abs(ys.reshape([1, h, 1]) - centre[:, 1, 0]) >= size[:, 1, 0] / 2    # [N, H, 1]
        return tf.cast(outside_x | outside_y, tf.float32)[..., None]
