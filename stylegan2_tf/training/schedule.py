"""The training schedule: level of detail, minibatch, learning rate, tick length and G's
moving-average decay over time.

Configs E and F train at full resolution with constant settings. Configs A-D grow
progressively as NVlabs/stylegan2 `training_loop.training_schedule` does: start at
`lod_initial_resolution` (8x8), show `lod_kimg` thousand images at each resolution,
then fade the next one in over `lod_transition_kimg`:

  stage = floor(kimg / (lod_kimg + lod_transition_kimg)),  t = kimg - stage * (both)
  lod   = max(log2 R - log2 initial - stage - max(t - lod_kimg, 0) / lod_transition_kimg, 0)

and, by the resolution R / 2^floor(lod), the official minibatch, per-GPU minibatch and
learning-rate dictionaries. The loop evaluates the schedule every `minibatch_repeats`
minibatches (as the official loop does), resets Adam's state whenever floor(lod) or
ceil(lod) changes (`resets_optimizer`), and feeds the reals through `ops.fade_reals`
(official process_reals).
"""

import math
from dataclasses import dataclass
from typing import Optional

# kimg per tick by resolution (official schedule); 4 for resolutions not listed.
TICK_KIMG = {8: 28, 16: 24, 32: 20, 64: 16, 128: 12, 256: 8, 512: 6, 1024: 4}
TICK_KIMG_BASE = 4

# Configs A-D (NVlabs/stylegan2 run_training.py): minibatch, per-GPU minibatch and learning rate
# by the resolution being trained.
GROWING_BATCH = {8: 256, 16: 128, 32: 64, 64: 32}        # else 32
GROWING_BATCH_GPU = {8: 32, 16: 16, 32: 8, 64: 4}        # else 4
GROWING_LR = {128: 0.0015, 256: 0.002, 512: 0.003, 1024: 0.003}   # else 0.001
GROWING_BATCH_BASE, GROWING_BATCH_GPU_BASE, GROWING_LR_BASE = 32, 4, 0.001


@dataclass(frozen=True)
class GrowthStage:
    """The schedule's settings at one point of training."""
    lod: Optional[float]      # None: no progressive growing
    resolution: int           # resolution of the finest level being trained
    batch: int
    batch_gpu: int
    lr: float
    tick_kimg: float


def lod_at(kimg, resolution, initial_resolution, lod_kimg, transition_kimg):
    """The official level of detail after `kimg` thousand images (see module docstring)."""
    stage_kimg = lod_kimg + transition_kimg
    stage = int(math.floor(kimg / stage_kimg)) if stage_kimg > 0 else 0
    within = kimg - stage * stage_kimg
    lod = math.log2(resolution) - math.floor(math.log2(initial_resolution)) - stage
    if transition_kimg > 0:
        lod -= max(within - lod_kimg, 0.0) / transition_kimg
    return max(lod, 0.0)


def growing_batches(resolution):
    """(minibatch, per-GPU minibatch) of the official dictionaries at `resolution`."""
    return (GROWING_BATCH.get(resolution, GROWING_BATCH_BASE),
            GROWING_BATCH_GPU.get(resolution, GROWING_BATCH_GPU_BASE))


def growth_stage(opts, cur_nimg, resolution):
    """-> GrowthStage for TrainingOptions `opts` after `cur_nimg` images, full resolution
    `resolution`."""
    lod = None
    level_res = resolution
    batch, batch_gpu, lr = opts.batch, opts.batch_gpu, opts.lr
    if opts.progressive:
        lod = lod_at(cur_nimg / 1000.0, resolution, opts.lod_initial_resolution, opts.lod_kimg,
                     opts.lod_transition_kimg)
        level_res = 2 ** (int(round(math.log2(resolution))) - int(math.floor(lod)))
        if opts.resolution_dicts:
            batch, batch_gpu = growing_batches(level_res)
            lr = GROWING_LR.get(level_res, GROWING_LR_BASE)
    tick = opts.tick_kimg if opts.tick_kimg is not None else TICK_KIMG.get(level_res, TICK_KIMG_BASE)
    return GrowthStage(lod=lod, resolution=level_res, batch=batch, batch_gpu=batch_gpu, lr=lr, tick_kimg=float(tick))


def resets_optimizer(prev_lod, lod):
    """Official reset_opt_for_new_lod: when new layers appear or the fade ends (floor or ceil
    of lod changes); prev_lod < 0 means nothing trained yet."""
    if lod is None:
        return False
    return math.floor(lod) != math.floor(prev_lod) or math.ceil(lod) != math.ceil(prev_lod)


def ema_beta(batch, ema_kimg):
    """Per-minibatch decay of the G average: half-life of `ema_kimg` thousand images."""
    return 0.5 ** (batch / (ema_kimg * 1000.0)) if ema_kimg > 0 else 0.0
