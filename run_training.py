"""Train StyleGAN2 (the paper's configs A-F) on a TFRecord dataset.

  python run_training.py --data-dir datasets --dataset ffhq --config config-f --num-gpus 8 \
      [--total-kimg 25000] [--gamma 10] [--mirror-augment] [--metrics none]
  python run_training.py --dataset ffhq --config config-a [--lod-kimg 600 --lod-transition-kimg 600]
      (configs A-D grow progressively from 8x8; snapshots are official config A-D pickles)
  python run_training.py --resume latest          # continue the newest run exactly

Several machines (the same command on each; --task-index 0 is the chief, which writes the results):
  python run_training.py ... --num-gpus 8 --worker-hosts host1:2222,host2:2222 --task-index 0
or TF_CONFIG='{"cluster": {"worker": ["host1:2222", "host2:2222"]}, "task": {"type": "worker", "index": 0}}'.

Results go to results/NNNNN-<dataset>-<config>-<gpus>gpu/ (-<workers>x<gpus>gpu/ with several
workers): reals.png, fakes*.png, network-snapshot-NNNNNN.pkl (NVIDIA's format), network-final.pkl,
log.txt, stats.jsonl, TensorBoard events and checkpoints/ (the whole training state, for --resume).
"""

import os
import sys
import typing

if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from stylegan2_tf.cli import prefer_onednn_kernels
    prefer_onednn_kernels()  # before TensorFlow loads (the options below import it)

from absl import app, flags  # noqa: E402

from stylegan2_tf.training.options import OPTION_FIELDS  # noqa: E402

# Every TrainingOptions field with a `flag` becomes a flag: its type, default and help come from
# the field (stylegan2_tf/training/options.py), the one place an option is defined.
FLAG_FIELDS = {f.metadata["flag"]: f for f in OPTION_FIELDS.values() if f.metadata["flag"]}


def _define_option_flags():
    for name, field in FLAG_FIELDS.items():
        meta = field.metadata
        default = meta.get("cli_default", field.default)
        kind = next((t for t in typing.get_args(field.type) if t is not type(None)), field.type)
        if meta["choices"]:
            flags.DEFINE_enum(name, default, list(meta["choices"]), meta["help"])
        elif kind is bool:
            flags.DEFINE_bool(name, default, meta["help"])
        elif kind is int:
            flags.DEFINE_integer(name, default, meta["help"])
        elif kind is float:
            flags.DEFINE_float(name, default, meta["help"])
        else:
            flags.DEFINE_string(name, default, meta["help"])


_define_option_flags()
flags.DEFINE_string("resume", None, "Continue a run: 'latest', a run directory or a checkpoint in one.")
flags.DEFINE_string("worker-hosts", None, "Multi-worker training: host:port of every worker, comma-separated, the "
                    "chief first (same on all workers). Alternative to TF_CONFIG.")
flags.DEFINE_integer("task-index", None, "Multi-worker training: this worker's position in --worker-hosts (0 = chief).")
FLAGS = flags.FLAGS


def options_from_flags(resume):
    """The run's TrainingOptions: the flags, or for --resume the run's own options with the flags
    given explicitly on top (checked against the run when it opens)."""
    from stylegan2_tf.training import TrainingError, TrainingOptions, saved_options
    given = {field.name: FLAGS[name].value for name, field in FLAG_FIELDS.items() if FLAGS[name].present}
    if resume:
        return saved_options(resume, FLAGS["result-dir"].value).replace(**given)
    if not FLAGS["dataset"].value:
        raise TrainingError("--dataset is required (or --resume)")
    values = {field.name: FLAGS[name].value for name, field in FLAG_FIELDS.items()}
    # Configs A-D: an explicit --batch / --batch-gpu replaces the per-resolution dictionaries.
    values["resolution_dicts"] = not ("batch" in given or "batch_gpu" in given)
    return TrainingOptions(**values)


def main(argv):
    from absl import logging
    logging.set_verbosity(logging.WARNING)  # TF's checkpoint/saver chatter
    if len(argv) > 1:
        sys.exit(f"error: unexpected arguments {' '.join(argv[1:])}")
    from stylegan2_tf.cli import run
    run(train, FLAGS["resume"].value, FLAGS["worker-hosts"].value, FLAGS["task-index"].value)


def train(resume, worker_hosts, task_index):
    from stylegan2_tf.training import resolve_cluster, train_from_options
    # Several workers: TF_CONFIG or the flags (pure parsing; no TensorFlow operation may run before
    # train_from_options creates the strategy).
    cluster = resolve_cluster(os.environ.get("TF_CONFIG"), worker_hosts, task_index)
    train_from_options(options_from_flags(resume), resume=resume, cluster=cluster)


if __name__ == "__main__":
    app.run(main)
