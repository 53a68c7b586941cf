"""Snapshots of a run: the image grid (reals.png, fakes*.png) and the network pickles
(network-snapshot-NNNNNN.pkl in NVIDIA's format, network-final.pkl) with the checkpoint
saved beside them."""

import math
import os

import numpy as np
import tensorflow as tf

from ..data import make_dataset
from ..generate import image_grid, save_image, to_uint8
from ..official.writer import save_network_pkl
from .errors import TrainingError

FINAL_PKL = "network-final.pkl"
SNAPSHOT_PKL = "network-snapshot-{}.pkl"
FAKES_PNG = "fakes{}.png"


def kimg_label(nimg, tick_nimg, run_dir=None, pattern=None):
    """The NNNNNN in `network-snapshot-NNNNNN.pkl` / `fakesNNNNNN.png`: whole kimg, as NVIDIA's
    names. Ticks shorter than 1 kimg would give several files one name, so then (and whenever
    the whole-kimg file of `pattern` already exists in `run_dir`, as after a short final tick)
    the label carries the images too: 000000.256 = 256 images."""
    label = f"{nimg // 1000:06d}"
    taken = run_dir is not None and os.path.exists(os.path.join(run_dir, pattern.format(label)))
    if tick_nimg < 1000 or taken:
        label = f"{nimg // 1000:06d}.{nimg % 1000:03d}"
    return label


def grid_size(opts, resolution):
    """(columns, rows) of the snapshot grid: --grid-size, else about a 1920x1080 screen."""
    if opts.grid_size:
        return opts.grid_size, opts.grid_size
    return int(np.clip(1920 // resolution, 4, 16)), int(np.clip(1080 // resolution, 4, 16))


def class_rows(labels, gw, gh):
    """Record indices for a grid whose rows each show one label value (one class), the values in
    order (class 0 first for one-hot labels) and repeated when there are fewer than rows, each
    row's records in file order, repeated when the class has fewer than columns."""
    keys = [tuple(row) for row in np.asarray(labels)]
    values = sorted(set(keys), reverse=True)
    members = {v: [i for i, k in enumerate(keys) if k == v] for v in values}
    rows = []
    for y in range(gh):
        group = members[values[y % len(values)]]
        rows += [group[x % len(group)] for x in range(gw)]
    return rows


def _records(dataset_path, info, indices):
    """(images, labels) of the records `indices`, read in file order."""
    wanted, found = set(indices), {}
    ds = make_dataset(dataset_path, batch_size=256, shuffle_buffer=0, repeat=False, deterministic=True, info=info,
                      drop_remainder=False)
    start = 0
    for images, labels in ds:
        for i in range(len(images)):
            if start + i in wanted:
                found[start + i] = (images[i].numpy(), labels[i].numpy())
        start += len(images)
        if len(found) == len(wanted):
            break
    return np.stack([found[i][0] for i in indices]), np.stack([found[i][1] for i in indices])


class ImageGrid:
    """The fixed latents (and labels) of the fakes grid, drawn from the run's seed, and the reals
    of reals.png (written once per run directory): the first records of the dataset, or for a
    labelled dataset one row per class, as stylegan2-ada-pytorch lays its grid out."""

    def __init__(self, opts, g_cfg, dataset_path, info, run_dir):
        self.run_dir = run_dir
        self.batch = max(opts.batch_gpu, 8)
        self.wh = grid_size(opts, info.resolution)
        n = self.wh[0] * self.wh[1]
        if g_cfg.c_dim and info.label_size:
            reals, labels = _records(dataset_path, info, class_rows(info.load_labels(), *self.wh))
        else:
            ds = make_dataset(dataset_path, batch_size=n, shuffle_buffer=0, repeat=True, deterministic=True,
                              info=info, drop_remainder=False)
            reals, labels = next(iter(ds))
            reals, labels = reals.numpy(), labels.numpy()
        if len(reals) < n:  # tiny datasets: repeat
            reals = np.concatenate([reals] * math.ceil(n / len(reals)))
            labels = np.concatenate([labels] * math.ceil(n / len(labels)))
        self.z = np.random.RandomState(opts.seed).randn(n, g_cfg.z_dim).astype(np.float32)
        self.c = np.asarray(labels, np.float32)[:n] if g_cfg.c_dim else None
        path = os.path.join(run_dir, "reals.png")
        if not os.path.exists(path):
            save_image(self.arrange(to_uint8(tf.constant(reals[:n])).numpy()), path)

    def arrange(self, images):
        gw, gh = self.wh
        return image_grid([[images[y * gw + x] for x in range(gw)] for y in range(gh)])

    def fakes(self, G):
        """The grid of G's images (constant noise)."""
        out = []
        for i in range(0, len(self.z), self.batch):
            c = None if self.c is None else self.c[i:i + self.batch]
            out.append(to_uint8(G(self.z[i:i + self.batch], c=c, noise_mode="const")).numpy())
        return self.arrange(np.concatenate(out))

    def save_fakes(self, G, name):
        grid = self.fakes(G)
        save_image(grid, os.path.join(self.run_dir, name))
        return grid


def check_finite_weights(state):
    for net in (state.G, state.D):
        for v in net.trainable_variables:
            if not np.all(np.isfinite(v.numpy())):
                raise TrainingError(f"non-finite weights in {v.path} at minibatch {int(state.minibatch.numpy())} "
                                    f"(kimg {state.nimg / 1000:.3f}); the last snapshot is untouched")


def snapshot_name(nimg, tick_nimg, run_dir, final=False):
    if final:
        return FINAL_PKL
    return SNAPSHOT_PKL.format(kimg_label(nimg, tick_nimg, run_dir, SNAPSHOT_PKL))


def save_snapshot(state, run_dir, name, is_chief, module_src=None, checkpoint=True):
    """The network pickle (written atomically; chief only) and, with `checkpoint`, the whole
    training state's checkpoint. Non-finite weights are refused before anything is written."""
    check_finite_weights(state)
    if is_chief:
        save_network_pkl(os.path.join(run_dir, name), state.G, state.D, state.G_ema, module_src=module_src)
    if checkpoint:
        state.save_checkpoint(is_chief)
