"""Looping walks through latent codes: linear in W, spherical in Z."""

import numpy as np


def linear_walk(ws, frames):
    """ws [K, ...] -> [K * frames, ...]: from each to the next (the last back to the first), `frames`
    steps each, w = a + (b - a) t for t = 0, 1/frames, ..."""
    out = []
    for i in range(len(ws)):
        a, b = ws[i], ws[(i + 1) % len(ws)]
        for t in np.arange(frames) / frames:
            out.append(a + (b - a) * np.float32(t))
    return np.stack(out).astype(np.float32)


def slerp(a, b, t):
    """Spherical interpolation between vectors a and b (angle between them in proportion t), with
    the length interpolated linearly: z of a Gaussian keeps a typical length along the way."""
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    ua, ub = a / na, b / nb
    omega = np.arccos(np.clip(np.dot(ua, ub), -1.0, 1.0))
    if omega < 1e-6:
        direction = ua
    else:
        direction = (np.sin((1 - t) * omega) * ua + np.sin(t * omega) * ub) / np.sin(omega)
    return direction * (na + (nb - na) * t)


def slerp_walk(zs, frames):
    """zs [K, z_dim] -> [K * frames, z_dim], spherical steps, looping like linear_walk."""
    zs = np.asarray(zs, np.float64)
    out = [slerp(zs[i], zs[(i + 1) % len(zs)], t) for i in range(len(zs)) for t in np.arange(frames) / frames]
    return np.stack(out).astype(np.float32)
