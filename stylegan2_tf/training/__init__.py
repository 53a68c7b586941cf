"""Training: options and configs, losses, the tf.distribute training loop."""

import json
import os

from .losses import StyleGAN2Loss, mix_styles
from .options import (CONFIGS, TICK_KIMG, TrainingError, TrainingOptions, ema_beta, lazy_adam_params)


def saved_options(resume, result_dir):
    """The TrainingOptions a run was started with (for --resume)."""
    from .loop import OPTIONS_FILE, find_resume_dir
    run_dir = find_resume_dir(resume, result_dir)
    with open(os.path.join(run_dir, OPTIONS_FILE)) as f:
        opts = TrainingOptions.from_dict(json.load(f)["options"])
    opts.result_dir = result_dir
    return opts


def make_strategy(num_gpus):
    """Default strategy for one replica; MirroredStrategy over `num_gpus` GPUs. Without enough
    GPUs, a process that has split its CPU into at least `num_gpus` logical devices (tests,
    `tf.config.set_logical_device_configuration` before TensorFlow initializes) mirrors over
    those CPU devices instead."""
    import tensorflow as tf
    if num_gpus == 1:
        return tf.distribute.get_strategy()
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) >= num_gpus:
        return tf.distribute.MirroredStrategy([d.name for d in gpus[:num_gpus]])
    cpus = tf.config.list_logical_devices("CPU")
    if len(cpus) >= num_gpus:
        return tf.distribute.MirroredStrategy([d.name for d in cpus[:num_gpus]])
    raise TrainingError(f"--num-gpus {num_gpus} requested, but {len(gpus)} GPU(s) are visible")


def train_from_options(opts, resume=None, strategy=None, stop_after_ticks=None, echo=True):
    from .loop import Trainer
    opts.validate()
    strategy = strategy or make_strategy(opts.num_gpus)
    trainer = Trainer(opts, resume=resume, strategy=strategy, echo=echo)
    return trainer.train(stop_after_ticks=stop_after_ticks)


__all__ = ["StyleGAN2Loss", "mix_styles", "CONFIGS", "TICK_KIMG", "TrainingError", "TrainingOptions", "ema_beta",
           "lazy_adam_params", "saved_options", "make_strategy", "train_from_options"]
