"""Projecting images into the latent space (paper Appendix D, NVlabs/stylegan2 `projector.py`).

One w (the same on every layer: unextended W) and every noise map are optimised so that
G(w, noise) matches the target under LPIPS:

  w starts at mu_w, the mean of 10 000 mapped z; sigma_w is their RMS distance to it.
  Step i of N, t = i / N:
    learning rate  0.1 * ramp-up min(1, t / 0.05) * cosine ramp-down over the last 25 %;
    w + N(0, 1) * 0.05 * sigma_w * max(0, 1 - t / 0.75)^2 goes into the synthesis;
    loss = LPIPS(G, target) (both box-downsampled to 256 when larger)
         + 1e5 * sum over noise maps and their 2x2-average pyramids down to 8x8 of the
           squared autocorrelations at one-pixel shifts (wrap-around), both axes;
    Adam (beta1 0.9, beta2 0.999, eps 1e-8, TF1's form), then each noise map is
    renormalised to zero mean and unit variance.

`w_plus=True` optimises one w per layer instead: not the paper's method, and the
outputs say so.
"""

import dataclasses
import math

import numpy as np
import tensorflow as tf

from stylegan2_tf.metrics.image_prep import box_downsample_to
from .errors import UserError


@dataclasses.dataclass
class ProjectorConfig:
    num_steps: int = 1000
    w_avg_samples: int = 10000
    initial_learning_rate: float = 0.1
    initial_noise_factor: float = 0.05
    lr_rampdown_length: float = 0.25
    lr_rampup_length: float = 0.05
    noise_ramp_length: float = 0.75
    regularize_noise_weight: float = 1e5
    w_plus: bool = False
    seed: int = 123

    @property
    def papers_method(self):
        return not self.w_plus


class ProjectionError(UserError):
    """Bad target, network or projection file."""


def learning_rate_at(step, cfg: ProjectorConfig):
    t = step / cfg.num_steps
    ramp = min(1.0, (1.0 - t) / cfg.lr_rampdown_length)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    ramp *= min(1.0, t / cfg.lr_rampup_length)
    return cfg.initial_learning_rate * ramp


def w_noise_scale_at(step, cfg: ProjectorConfig, w_std):
    t = step / cfg.num_steps
    return w_std * cfg.initial_noise_factor * max(0.0, 1.0 - t / cfg.noise_ramp_length) ** 2


def noise_regularization(noise_maps):
    """Sum over maps [H, W] and their 2x2-average pyramids (down to 8x8) of the squared mean
    products with the map rolled by one pixel along each axis."""
    total = 0.0
    for v in noise_maps:
        v = tf.convert_to_tensor(v)
        size = int(v.shape[0])
        while True:
            total += tf.square(tf.reduce_mean(v * tf.roll(v, 1, axis=1))) + \
                tf.square(tf.reduce_mean(v * tf.roll(v, 1, axis=0)))
            if size <= 8:
                break
            v = tf.reduce_mean(tf.reshape(v, [size // 2, 2, size // 2, 2]), axis=[1, 3])
            size //= 2
    return total


def noise_variables(G):
    """The synthesis network's constant noise maps, in NVIDIA's noise<i> order."""
    return [v for v in G.synthesis.weights if v.path.endswith("noise_const")]


def w_statistics(G, num_samples=10000, seed=123, batch=1000):
    """mu_w [w_dim] and sigma_w (RMS distance of the samples to mu_w) from mapped z ~ N(0, I)."""
    z = np.random.RandomState(seed).randn(num_samples, G.config.z_dim).astype(np.float32)
    c_dim = G.config.c_dim
    ws = []
    for i in range(0, num_samples, batch):
        zb = z[i:i + batch]
        c = None if c_dim == 0 else np.eye(c_dim, dtype=np.float32)[np.arange(len(zb)) % c_dim]
        ws.append(G.mapping(tf.constant(zb), c=None if c is None else tf.constant(c))[:, 0].numpy())
    ws = np.concatenate(ws).astype(np.float64)
    mean = ws.mean(axis=0)
    std = float(np.sqrt(np.sum((ws - mean) ** 2) / num_samples))
    return mean.astype(np.float32), std


class Projector:
    """Projects one target at a time; `project()` runs every step, `steps()` yields progress."""

    def __init__(self, G, lpips, config: ProjectorConfig = None):
        self.G, self.lpips, self.cfg = G, lpips, config or ProjectorConfig()
        if G.config.img_resolution < 16:
            raise ProjectionError(f"the network's {G.config.img_resolution}x{G.config.img_resolution} images are "
                                  f"too small for LPIPS (16x16 at least)")
        self.w_avg, self.w_std = w_statistics(G, self.cfg.w_avg_samples, self.cfg.seed)
        self.noise_vars = noise_variables(G)
        self._step_fn = tf.function(self._step_impl, reduce_retracing=True)

    def _prepare(self, images):
        x = box_downsample_to(tf.cast(images, tf.float32), 256)
        if x.shape[-1] == 1:
            x = tf.tile(x, [1, 1, 1, 3])
        return x

    def _step_impl(self, w, m, v, noise_m, noise_v, target, lr, w_noise_scale, step, seed):
        b1, b2, eps = 0.9, 0.999, 1e-8
        noise_values = [n.value for n in self.noise_vars]
        with tf.GradientTape() as tape:
            tape.watch([w] + noise_values)
            w_in = w + tf.random.stateless_normal(tf.shape(w), seed=seed) * w_noise_scale
            ws = w_in if self.cfg.w_plus else tf.tile(w_in, [1, self.G.num_ws, 1])
            img = self.G.synthesize(ws, noise_mode="const")
            dist = self.lpips(self._prepare(img), target)
            reg = noise_regularization(noise_values)
            loss = tf.reduce_sum(dist) + reg * self.cfg.regularize_noise_weight
        grads = tape.gradient(loss, [w] + noise_values)
        # Adam as TF1's AdamOptimizer: bias correction folded into the step size, eps outside the sqrt.
        t = tf.cast(step + 1, tf.float32)
        lr_t = lr * tf.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        params, ms, vs = [w] + noise_values, [m] + noise_m, [v] + noise_v
        new_params, new_m, new_v = [], [], []
        for p, g, mm, vv in zip(params, grads, ms, vs):
            mm = b1 * mm + (1 - b1) * g
            vv = b2 * vv + (1 - b2) * tf.square(g)
            new_params.append(p - lr_t * mm / (tf.sqrt(vv) + eps))
            new_m.append(mm)
            new_v.append(vv)
        for var, value in zip(self.noise_vars, new_params[1:]):
            mean = tf.reduce_mean(value)
            std = tf.sqrt(tf.reduce_mean(tf.square(value - mean)))
            var.assign((value - mean) / std)
        return new_params[0], new_m[0], new_v[0], new_m[1:], new_v[1:], dist[0], loss

    def steps(self, target):
        """Optimise for `target` ([H, W, C] float in [-1, 1], the network's resolution); yields
        (step, lpips distance, loss, w) after each step. Noise maps are left at their result."""
        cfg, G = self.cfg, self.G
        res, ch = G.config.img_resolution, G.config.img_channels
        target = np.asarray(target, np.float32)
        if target.shape != (res, res, ch):
            raise ProjectionError(f"target has shape {target.shape}, the network makes {(res, res, ch)}")
        target = self._prepare(target[np.newaxis])
        rng = np.random.RandomState(cfg.seed)
        for var in self.noise_vars:
            var.assign(rng.randn(*var.shape).astype(np.float32))
        n_w = G.num_ws if cfg.w_plus else 1
        w = tf.constant(np.tile(self.w_avg[np.newaxis, np.newaxis], [1, n_w, 1]))
        m = tf.zeros_like(w)
        v = tf.zeros_like(w)
        noise_m = [tf.zeros(var.shape) for var in self.noise_vars]
        noise_v = [tf.zeros(var.shape) for var in self.noise_vars]
        for step in range(cfg.num_steps):
            lr = learning_rate_at(step, cfg)
            scale = w_noise_scale_at(step, cfg, self.w_std)
            seed = tf.constant([cfg.seed, step], tf.int32)
            w, m, v, noise_m, noise_v, dist, loss = self._step_fn(
                w, m, v, noise_m, noise_v, target, tf.constant(lr, tf.float32), tf.constant(scale, tf.float32),
                tf.constant(step, tf.int32), seed)
            yield step + 1, float(dist.numpy()), float(loss.numpy()), w

    def project(self, target, callback=None):
        """-> dict: 'ws' [num_ws, w_dim], 'noise' [maps in NVIDIA's noise<i> order], 'image' [H, W, C]
        in [-1, 1], 'distance'."""
        w = dist = None
        for step, dist, loss, w in self.steps(target):
            if callback is not None:
                callback(step, dist, loss, w)
        ws = w[0] if self.cfg.w_plus else tf.tile(w[0], [self.G.num_ws, 1])
        image = self.G.synthesize(ws[tf.newaxis], noise_mode="const")[0].numpy()
        final = float(self.lpips(self._prepare(image[np.newaxis]), self._prepare(
            np.asarray(target, np.float32)[np.newaxis]))[0].numpy())
        return {"ws": ws.numpy(), "noise": [var.numpy().copy() for var in self.noise_vars],
                "image": image, "distance": final}


# --------------------------------------------------------------------------- projected_w.npz

def save_projection(path, G, result, cfg: ProjectorConfig):
    """w, noise maps and what they belong to; `load_projection` regenerates the exact image."""
    arrays = {"ws": result["ws"].astype(np.float32)}
    for i, value in enumerate(result["noise"]):
        arrays[f"noise{i}"] = value.astype(np.float32)
    meta = dict(img_resolution=G.config.img_resolution, img_channels=G.config.img_channels, num_ws=G.num_ws,
                w_dim=G.config.w_dim, num_noise=len(result["noise"]), w_plus=cfg.w_plus,
                papers_method=cfg.papers_method, distance=result["distance"], num_steps=cfg.num_steps)
    np.savez(path, meta=np.array(repr(meta)), **arrays)


def load_projection(path, G):
    """-> ws [1, num_ws, w_dim]; assigns the stored noise maps to G's constant noise. One-line
    ProjectionError naming the file when it does not belong to this network."""
    import ast
    try:
        with np.load(path) as data:
            meta = ast.literal_eval(str(data["meta"]))
            ws = data["ws"]
            noise = [data[f"noise{i}"] for i in range(meta["num_noise"])]
    except FileNotFoundError:
        raise ProjectionError(f"{path}: no such file") from None
    except Exception as e:
        raise ProjectionError(f"{path}: not a projected_w.npz of this project ({type(e).__name__})") from None
    mine = dict(img_resolution=G.config.img_resolution, img_channels=G.config.img_channels, num_ws=G.num_ws,
                w_dim=G.config.w_dim)
    theirs = {k: meta.get(k) for k in mine}
    targets = noise_variables(G)
    if theirs != mine or len(noise) != len(targets) or any(n.shape != tuple(v.shape) for n, v in zip(noise, targets)):
        raise ProjectionError(f"{path}: projected for another network ({theirs}), this one is {mine}")
    for var, value in zip(targets, noise):
        var.assign(value)
    return ws[np.newaxis].astype(np.float32)


def load_target_image(path, res, channels):
    """Image file -> [res, res, channels] float in [-1, 1]: centre crop to a square, Lanczos resize."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as im:
            im.load()
            im = im.convert("RGB" if channels == 3 else "L")
    except FileNotFoundError:
        raise ProjectionError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise ProjectionError(f"{path}: not a readable image ({type(e).__name__})") from None
    w, h = im.size
    side = min(w, h)
    if side * 2 < res:
        raise ProjectionError(f"{path}: {w}x{h} is far smaller than the network's {res}x{res} (at least {res // 2} "
                              f"px needed)")
    left, top = (w - side) // 2, (h - side) // 2
    im = im.crop((left, top, left + side, top + side)).resize((res, res), Image.LANCZOS)
    return np.asarray(im, np.float32).reshape(res, res, channels) / 127.5 - 1.0

