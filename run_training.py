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

from absl import app, flags

flags.DEFINE_string("result-dir", "results", "Root directory for run results.")
flags.DEFINE_string("data-dir", "datasets", "Directory holding datasets.")
flags.DEFINE_string("dataset", None, "Dataset (a TFRecord directory under --data-dir).")
flags.DEFINE_string("config", "config-f", "config-a ... config-f (the paper's Table 1), or "
                    "config-e-G{orig,skip,resnet}-D{orig,skip,resnet}.")
flags.DEFINE_integer("num-gpus", 0, "Replicas (GPUs) per worker; 0 = every visible GPU (1 on a CPU-only "
                     "machine). CPU-only workers run one replica.")
flags.DEFINE_float("total-kimg", 25000, "Training length in thousands of real images.")
flags.DEFINE_float("gamma", None, "R1 regularization weight (default: 10 for config F, 100 for config E).")
flags.DEFINE_bool("mirror-augment", False, "Mirror images left-right at random.")
flags.DEFINE_string("metrics", "none", "Metrics computed at every snapshot, e.g. fid50k,ppl_wend (none). Feature-network "
                    "files come from STYLEGAN2_TF_INCEPTION / _LPIPS / _VGG16 or the metrics config file.")
flags.DEFINE_integer("metrics-num-images", None, "Shorten the snapshot metrics to N fakes/reals (not the paper's "
                     "protocol).")
flags.DEFINE_string("resume", None, "Continue a run: 'latest', a run directory or a checkpoint in one.")
flags.DEFINE_integer("batch", 32, "Global minibatch size (configs A-D: by default the official one per resolution, "
                     "256 at 8x8 ... 32 from 128x128; given, it holds at every resolution).")
flags.DEFINE_integer("batch-gpu", 4, "Minibatch per replica and round; smaller than batch/replicas accumulates "
                     "(configs A-D: by default the official one per resolution).")
flags.DEFINE_float("lod-kimg", 600, "Configs A-D: thousands of images at each resolution before the next fades in.")
flags.DEFINE_float("lod-transition-kimg", 600, "Configs A-D: thousands of images over which a new resolution "
                   "fades in.")
flags.DEFINE_integer("seed", 1000, "Random seed (weights, latents, data order).")
flags.DEFINE_integer("snapshot-ticks", 10, "Ticks between network snapshots and checkpoints (0 = only at the end).")
flags.DEFINE_float("tick-kimg", None, "kimg per tick (default: the official schedule by resolution).")
flags.DEFINE_integer("fmap-base", None, "Override the config's fmap_base (small experiments).")
flags.DEFINE_integer("fmap-max", None, "Override fmap_max.")
flags.DEFINE_integer("mapping-layers", None, "Override the number of mapping layers.")
flags.DEFINE_integer("latent-dim", None, "Override z_dim = w_dim (small experiments).")
flags.DEFINE_integer("fp16-res", 0, "Compute the N highest resolutions of G and D in float16 (0 = float32 only).")
flags.DEFINE_enum("mixed-dtype", "float16", ["float16", "bfloat16"], "The --fp16-res blocks' dtype: float16 "
                  "(with dynamic loss scaling; GPUs) or bfloat16 (float32's range, no loss scaling; CPUs with "
                  "AVX512-BF16/AMX, GPUs from Ampere on).")
flags.DEFINE_float("conv-clamp", None, "Clamp conv outputs to +-X (default: 256 with --fp16-res > 0, else none).")
flags.DEFINE_bool("fused-modconv", None, "Force the fused (grouped) or non-fused modulated convolution (default: "
                  "automatic, fused on GPUs and non-fused on CPUs; same numbers either way).")
flags.DEFINE_string("xla", "none", "Compile these training phases with XLA: none, all, or a comma-separated list "
                    "of G_main, G_pl, D_main, D_r1 (one replica per process; the custom ops give way to the "
                    "reference ops inside XLA). A GPU setting: slower on CPUs.")
flags.DEFINE_integer("grid-size", None, "Snapshot image grid is N x N (default by resolution).")
flags.DEFINE_string("embed-module-src", None, "File embedded as build_module_src in snapshots (for TF1 loading).")
flags.DEFINE_string("worker-hosts", None, "Multi-worker training: host:port of every worker, comma-separated, the "
                    "chief first (same on all workers). Alternative to TF_CONFIG.")
flags.DEFINE_integer("task-index", None, "Multi-worker training: this worker's position in --worker-hosts (0 = chief).")
flags.DEFINE_float("collective-timeout", 600, "Multi-worker training: give up when the workers made no progress for "
                   "this many seconds (a stalled worker; longer than the slowest snapshot save). 0 = never.")
FLAGS = flags.FLAGS


def flag(name):
    return FLAGS[name].value


def main(argv):
    from absl import logging
    logging.set_verbosity(logging.WARNING)  # TF's checkpoint/saver chatter
    if len(argv) > 1:
        sys.exit(f"error: unexpected arguments {' '.join(argv[1:])}")
    from stylegan2_tf.training import (TrainingError, TrainingOptions, resolve_cluster, saved_options,
                                       train_from_options)
    fields = {"data-dir": "data_dir", "dataset": "dataset", "result-dir": "result_dir", "config": "config",
              "num-gpus": "num_gpus", "total-kimg": "total_kimg", "gamma": "r1_gamma",
              "collective-timeout": "collective_timeout",
              "mirror-augment": "mirror_augment", "metrics": "metrics", "metrics-num-images": "metrics_num_images", "batch": "batch", "batch-gpu": "batch_gpu",
              "seed": "seed", "snapshot-ticks": "snapshot_ticks", "tick-kimg": "tick_kimg", "fmap-base": "fmap_base",
              "fmap-max": "fmap_max", "mapping-layers": "mapping_layers", "latent-dim": "latent_dim",
              "grid-size": "grid_size", "embed-module-src": "embed_module_src", "fp16-res": "fp16_res",
              "mixed-dtype": "mixed_dtype", "conv-clamp": "conv_clamp", "fused-modconv": "fused_modconv",
              "lod-kimg": "lod_kimg", "lod-transition-kimg": "lod_transition_kimg", "xla": "xla"}
    resume = flag("resume")
    try:
        # Several workers: TF_CONFIG or the flags (pure parsing; no TensorFlow operation may run before
        # train_from_options creates the strategy).
        cluster = resolve_cluster(os.environ.get("TF_CONFIG"), flag("worker-hosts"), flag("task-index"))
        if resume:
            # Start from the run's own options; flags given explicitly override (and are checked).
            opts = saved_options(resume, flag("result-dir"))
            for name, field in fields.items():
                if FLAGS[name].present:
                    setattr(opts, field, flag(name))
        else:
            if not flag("dataset"):
                sys.exit("error: --dataset is required (or --resume)")
            opts = TrainingOptions(**{field: flag(name) for name, field in fields.items()})
            # Configs A-D: an explicit --batch / --batch-gpu replaces the per-resolution dictionaries.
            opts.resolution_dicts = not (FLAGS["batch"].present or FLAGS["batch-gpu"].present)
        train_from_options(opts, resume=resume, cluster=cluster)
    except TrainingError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # TensorFlow turns its oneDNN CPU kernels on by default only on AVX-512 CPUs; training steps
    # measured 1.2-1.4x faster with them on AVX2 too (benchmarks/README.md). Before TF is imported;
    # TF_ENABLE_ONEDNN_OPTS=0 still turns them off.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    app.run(main)
