"""The training schedule: level of detail, minibatch, learning rate and tick length over time.

Configs E and F train at full resolution with constant settings. Configs A-D grow
progressively as NVlabs/stylegan2 `training_loop.training_schedule` does: start at
`lod_initial_resolution` (8x8), show `lod_kimg` thousand images at each resolution,
then fade the next one in over `lod_transition_kimg`:

  phase = floor(kimg / (lod_kimg + lod_transition_kimg)),  t = kimg - phase * (both)
  lod   = max(log2 R - log2 initial - phase - max(t - lod_kimg, 0) / lod_transition_kimg, 0)

and, by the resolution R / 2^floor(lod), the official minibatch, per-GPU minibatch and
learning-rate dictionaries. The loop evaluates the schedule every `minibatch_repeats`
minibatches (as the official loop does), resets Adam's state whenever floor(lod) or
ceil(lod) changes, and feeds the reals through `fade_reals` (official process_reals).
"""

import math
from dataclasses import dataclass
from typing import Optional

import tensorflow as tf

from ..ops import box_downsample_2d, nearest_upsample_2d
from .options import TICK_KIMG

# Configs A-D (NVlabs/stylegan2 run_training.py).
GROWING_BATCH = {8: 256, 16: 128, 32: 64, 64: 32}        # else 32
GROWING_BATCH_GPU = {8: 32, 16: 16, 32: 8, 64: 4}        # else 4
GROWING_LR = {128: 0.0015, 256: 0.002, 512: 0.003, 1024: 0.003}   # else 0.001
GROWING_BATCH_BASE, GROWING_BATCH_GPU_BASE, GROWING_LR_BASE = 32, 4, 0.001


@dataclass(frozen=True)
class Phase:
    """The schedule's settings at one point of training."""
    lod: Optional[float]      # None: no progressive growing
    resolution: int           # resolution of the finest level being trained
    batch: int
    batch_gpu: int
    lr: float
    tick_kimg: float


def lod_at(kimg, resolution, initial_resolution, lod_kimg, transition_kimg):
    """The official level of detail after `kimg` thousand images (see module docstring)."""
    phase_kimg = lod_kimg + transition_kimg
    phase = int(math.floor(kimg / phase_kimg)) if phase_kimg > 0 else 0
    within = kimg - phase * phase_kimg
    lod = math.log2(resolution) - math.floor(math.log2(initial_resolution)) - phase
    if transition_kimg > 0:
        lod -= max(within - lod_kimg, 0.0) / transition_kimg
    return max(lod, 0.0)


def schedule(opts, cur_nimg, resolution):
    """-> Phase for TrainingOptions `opts` after `cur_nimg` images, full resolution `resolution`."""
    lod = None
    level_res = resolution
    batch, batch_gpu, lr = opts.batch, opts.batch_gpu, opts.lr
    if opts.progressive:
        lod = lod_at(cur_nimg / 1000.0, resolution, opts.lod_initial_resolution, opts.lod_kimg,
                     opts.lod_transition_kimg)
        level_res = 2 ** (int(round(math.log2(resolution))) - int(math.floor(lod)))
        if opts.resolution_dicts:
            batch = GROWING_BATCH.get(level_res, GROWING_BATCH_BASE)
            batch_gpu = GROWING_BATCH_GPU.get(level_res, GROWING_BATCH_GPU_BASE)
            lr = GROWING_LR.get(level_res, GROWING_LR_BASE)
    tick = opts.tick_kimg if opts.tick_kimg is not None else TICK_KIMG.get(level_res, 4)
    return Phase(lod=lod, resolution=level_res, batch=batch, batch_gpu=batch_gpu, lr=lr, tick_kimg=float(tick))


def resets_optimizer(prev_lod, lod):
    """Official reset_opt_for_new_lod: when new layers appear or the fade ends (floor or ceil
    of lod changes); prev_lod < 0 means nothing trained yet."""
    if lod is None:
        return False
    return math.floor(lod) != math.floor(prev_lod) or math.ceil(lod) != math.ceil(prev_lod)


def fade_reals(x, lod, level):
    """Reals as the official process_reals feeds them at `lod` (x: full-resolution NHWC batch):
    averaged to the level's resolution R / 2^level (level = floor(lod), static), faded towards
    their next-coarser version by lod - level, and nearest-upsampled back to R.

    NVIDIA's dataset tool stores each lower resolution rounded to uint8; averaging the full
    resolution here skips that rounding (differences below one grey level)."""
    factor = 2 ** int(level)
    x = box_downsample_2d(x, factor)
    t = tf.cast(lod, x.dtype) - float(level)
    if x.shape[1] >= 2:
        coarse = nearest_upsample_2d(box_downsample_2d(x, 2), 2)
        x = x + (coarse - x) * t
    return nearest_upsample_2d(x, factor)


def reset_optimizer_state(opt):
    """Zero Adam's moments and step count (official reset_optimizer_state); the learning
    rate and hyper-parameters stay."""
    for v in list(getattr(opt, "_momentums", [])) + list(getattr(opt, "_velocities", [])):
        v.assign(tf.zeros_like(v))
    opt.iterations.assign(0)
