"""Perceptual path length (Karras et al. 2019, as NVlabs/stylegan2's metric computes it): LPIPS
distances between images at t and t + epsilon along random paths in Z (slerp) or W (lerp); the
statistic over them is `statistics.filtered_path_length`."""

import dataclasses

import numpy as np
import tensorflow as tf

from stylegan2_tf.metrics.image_prep import box_downsample_to, ppl_crop
from stylegan2_tf.metrics.sampling import micro_rng, progress, run_replicated


def _slerp(a, b, t):
    a = a / tf.norm(a, axis=-1, keepdims=True)
    b = b / tf.norm(b, axis=-1, keepdims=True)
    d = tf.reduce_sum(a * b, axis=-1, keepdims=True)
    p = t * tf.math.acos(d)
    c = b - d * a
    c = c / tf.norm(c, axis=-1, keepdims=True)
    d = a * tf.cos(p) + c * tf.sin(p)
    return d / tf.norm(d, axis=-1, keepdims=True)


def float32_generator(G, previous=None):
    """G itself, or a float32 copy holding G's current weights when some of its layers
    compute in float16 (PPL runs in float32). `previous`: a copy to refresh instead."""
    if getattr(G.config, "num_fp16_res", 0) == 0:
        return G
    G32 = previous
    if G32 is None:
        G32 = type(G)(dataclasses.replace(G.config, num_fp16_res=0))
        G32.build_weights()
    for dst, src in zip(G32.weights, G.weights):
        dst.assign(src)
    return G32


def path_length_distances(ctx, metric, num):
    """`num` samples of LPIPS(G(t), G(t + eps)) / eps^2, before outlier rejection."""
    opts = ctx.opts
    o = metric.options
    G = ctx.reused[("ppl-G32", id(opts.G))] = float32_generator(opts.G, ctx.reused.get(("ppl-G32", id(opts.G))))
    lpips = ctx.network("lpips")
    eps, space, crop = float(o["epsilon"]), o["space"], bool(o["crop"])
    b = opts.batch_size

    def step_impl(z0, z1, c, t, noise_seed):
        t = t[:, tf.newaxis]
        if space == "w":
            w0 = G.mapping(z0, c)
            w1 = G.mapping(z1, c)
            wt0 = w0 + (w1 - w0) * t[:, :, tf.newaxis]
            wt1 = w0 + (w1 - w0) * (t[:, :, tf.newaxis] + eps)
        else:
            wt0 = G.mapping(_slerp(z0, z1, t), c)
            wt1 = G.mapping(_slerp(z0, z1, t + eps), c)
        # The same noise for both ends of a pair (same stateless seed, same batch position).
        img0 = G.synthesize(wt0, noise_mode="random", noise_seed=noise_seed)
        img1 = G.synthesize(wt1, noise_mode="random", noise_seed=noise_seed)
        imgs = tf.concat([img0, img1], axis=0)
        if crop:
            imgs = ppl_crop(imgs)
        # NVlabs/stylegan2 order: crop first, then box-downsample the crop to 256.
        imgs = box_downsample_to(imgs, 256)
        if imgs.shape[-1] == 1:
            imgs = tf.tile(imgs, [1, 1, 1, 3])
        n = tf.shape(z0)[0]
        return lpips.network(imgs[:n], imgs[n:]) / (eps * eps)

    cache_key = ("ppl", metric.name, id(opts.G))
    step = ctx.reused.get(cache_key)
    if step is None:
        step = ctx.reused[cache_key] = tf.function(step_impl, reduce_retracing=True)

    def inputs(i):
        rng = micro_rng(opts.seed, 3, i)
        z = rng.standard_normal([2, b, G.config.z_dim])
        t = rng.uniform(0.0, 1.0, b) if o["sampling"] == "full" else np.zeros(b)
        c = ctx.random_labels(rng, b)
        return (tf.constant(z[0], tf.float32), tf.constant(z[1], tf.float32),
                None if c is None else tf.constant(c, tf.float32), tf.constant(t, tf.float32),
                tf.constant(rng.integers(0, 2 ** 31 - 1, 2), tf.int32))

    out = []
    num_micro = -(-num // b)
    for done, d in enumerate(run_replicated(opts, step, inputs, num_micro), 1):
        out.append(d)
        progress(opts, "paths", min(done * b, num), num)
    return np.concatenate(out)[:num]
