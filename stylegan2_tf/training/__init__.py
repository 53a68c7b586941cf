"""Training: options and the paper's configs, losses, phases, the tf.distribute training loop.

  options.py    TrainingOptions: every option, its flag, help and resume rule
  configs.py    the paper's configs A-F -> network configs
  schedule.py   growth stages (lod, batch, learning rate, tick length) over time
  losses.py     the per-sample loss terms; phases.py: the four phases as step functions
  state.py      networks, optimizers, counters and their checkpoint
  transfer.py   a run from a pickle's networks (--resume-pkl), Freeze-D
  loop.py       Trainer: a run's set-up and its loop; launch.py: starting a run
  run_dir.py, reporting.py, snapshots.py, machine.py: what a run writes and checks
  strategy.py, cluster.py: devices and workers
docs/ARCHITECTURE.md says where to add an option, a phase or a metric.
"""

from .cluster import WorkerCluster, cluster_from_flags, parse_tf_config, resolve_cluster
from .configs import CONFIGS
from .launch import complete_options, train_from_options
from .loop import Trainer
from .losses import StyleGAN2Loss, mix_styles
from .optimizer import lazy_adam_params
from .errors import TrainingError
from .options import RESUME_INVARIANTS, TrainingOptions
from .run_dir import saved_options
from .schedule import TICK_KIMG, ema_beta
from .strategy import detect_num_gpus, make_strategy

__all__ = ["WorkerCluster", "cluster_from_flags", "parse_tf_config", "resolve_cluster", "CONFIGS",
           "complete_options", "train_from_options", "Trainer", "StyleGAN2Loss", "mix_styles", "lazy_adam_params",
           "RESUME_INVARIANTS", "TrainingError", "TrainingOptions", "saved_options", "TICK_KIMG", "ema_beta",
           "detect_num_gpus", "make_strategy"]
