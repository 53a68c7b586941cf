"""Image generation helpers shared by run_generator.py, export and benchmarks.

Conventions of NVIDIA's generate scripts: z for a seed is
`np.random.RandomState(seed).randn(1, z_dim)`; images are converted to uint8 as
`clip(img * 127.5 + 128, 0, 255)` truncated (i.e. [-1, 1] -> [0, 255], rounded).
"""

import math
import os
import re

import numpy as np
import tensorflow as tf

from .layers import check_noise_mode
from .errors import UserError

PSI_RANGE = (-1.0, 2.0)


class GenerationError(UserError):
    """Bad user input for generation (seeds, psi, class, network kind)."""


def parse_range(text, what="--seeds"):
    """'0-9,42' -> [0, 1, ..., 9, 42] (inclusive ranges, order kept)."""
    if text is None or not str(text).strip():
        raise GenerationError(f"{what}: empty; expected a list like 0-9,42")
    out = []
    for part in str(text).split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
        if not m:
            raise GenerationError(f"{what}: cannot parse {part!r} in {text!r}; expected a list like 0-9,42")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise GenerationError(f"{what}: range {part!r} is descending")
        out.extend(range(lo, hi + 1))
    return out


def check_psi(psi):
    psi = float(psi)
    if not math.isfinite(psi) or not PSI_RANGE[0] <= psi <= PSI_RANGE[1]:
        raise GenerationError(f"--truncation-psi {psi} is out of range [{PSI_RANGE[0]}, {PSI_RANGE[1]}] "
                              f"(1 = no truncation, 0 = the average image)")
    return psi


def seed_to_z(seed, z_dim):
    if not 0 <= seed < 2 ** 32:
        raise GenerationError(f"seed {seed} is out of range [0, 2**32)")
    return np.random.RandomState(seed).randn(1, z_dim).astype(np.float32)


def class_labels(G, class_idx, n):
    """One-hot labels [n, c_dim] for conditional G, None for unconditional; validates."""
    c_dim = G.config.c_dim
    if c_dim == 0:
        if class_idx is not None:
            raise GenerationError("--class given, but this network is unconditional (no class labels)")
        return None
    if class_idx is None:
        raise GenerationError(f"this network is conditional ({c_dim} classes): pass --class IDX")
    if not 0 <= class_idx < c_dim:
        raise GenerationError(f"--class {class_idx} is out of range [0, {c_dim - 1}]")
    c = np.zeros([n, c_dim], np.float32)
    c[:, class_idx] = 1
    return c


def to_uint8(img):
    """NHWC float images in [-1, 1] -> uint8 [0, 255] (tensor in, tensor out)."""
    return tf.cast(tf.clip_by_value(img * 127.5 + 128.0, 0.0, 255.0), tf.uint8)


class ImageSynthesizer:
    """Compiled z/w -> uint8 images for one generator; batches any number of inputs.

    fused_modconv: True / False forces the form; None keeps the network's choice, normally
    automatic (fused on GPUs, non-fused on CPUs, where TF's grouped convolutions are 1.3-7x
    slower; benchmarks/generate.py). Both forms give the same images up to float rounding."""

    def __init__(self, G, noise_mode="const", fused_modconv=None):
        check_noise_mode(noise_mode)
        self.G = G
        self.noise_mode = noise_mode
        self.fused_modconv = None if fused_modconv is None else bool(fused_modconv)
        self._map = tf.function(self._map_impl, reduce_retracing=True)
        self._synth = tf.function(self._synth_impl, reduce_retracing=True)

    def _map_impl(self, z, c, psi, cutoff):
        return self.G.mapping(z, c, truncation_psi=psi, truncation_cutoff=cutoff)

    def _synth_impl(self, ws):
        return to_uint8(self.G.synthesize(ws, noise_mode=self.noise_mode, fused_modconv=self.fused_modconv))

    def map(self, z, c=None, psi=1.0, cutoff=None):
        z = tf.convert_to_tensor(z, tf.float32)
        c = None if c is None else tf.convert_to_tensor(c, tf.float32)
        return self._map(z, c, tf.constant(psi, tf.float32), cutoff)

    def synthesize(self, ws, batch_size=8, progress=None):
        """ws [N, num_ws, w_dim] -> uint8 numpy [N, H, W, C], in batches."""
        ws = np.asarray(ws, np.float32)
        out = []
        for start in range(0, len(ws), batch_size):
            out.append(self._synth(tf.convert_to_tensor(ws[start:start + batch_size])).numpy())
            if progress is not None:
                progress(min(start + batch_size, len(ws)), len(ws))
        return np.concatenate(out, axis=0) if out else np.zeros([0], np.uint8)

    def generate(self, z, c=None, psi=1.0, cutoff=None, batch_size=8, progress=None):
        return self.synthesize(self.map(z, c, psi, cutoff), batch_size=batch_size, progress=progress)


def save_image(array, path):
    """uint8 HWC (C = 1 or 3) -> PNG."""
    from PIL import Image
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    Image.fromarray(array).save(path)


def image_grid(rows):
    """rows: list of lists of HWC uint8 images (None = blank) -> one HWC grid."""
    ref = next(img for row in rows for img in row if img is not None)
    h, w, c = ref.shape
    grid = np.zeros([len(rows) * h, max(len(r) for r in rows) * w, c], np.uint8)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            if img is not None:
                grid[i * h:(i + 1) * h, j * w:(j + 1) * w] = img
    return grid


def ensure_outdir(path):
    """The output folder, made if missing; GenerationError when a file has that name."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise GenerationError(f"{path}: exists and is not a directory (--outdir)")
    os.makedirs(path, exist_ok=True)
    return path
