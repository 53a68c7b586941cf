"""The StyleGAN2 training loop on tf.distribute (default strategy on one device,
MirroredStrategy on several).

Per minibatch (official order): G main step, G path-length step every
`g_reg_interval` minibatches, D main step, D R1 step every `d_reg_interval`
minibatches, then the G moving average (Gs); the steps are in phases.py. Every step
accumulates gradients over `rounds` = batch / (batch_gpu x replicas) sub-batches before
one Adam update, and updates the running means (w_avg, pl_mean) once from the whole
minibatch, so a small device reproduces the math of the full batch. Randomness: one
checkpointed `tf.random.Generator` gives each minibatch a seed, from which every
(phase, sub-batch) draws statelessly (N replicas x R rounds == 1 replica x N*R rounds),
and with the seeded per-epoch data order a resumed run continues the exact sequence.
The schedule (schedule.py) sets the lod, batch and learning rate of growing configs.
"""

import json
import math
import os
import re
import resource
import shutil
import tempfile
import time

import numpy as np
import tensorflow as tf

from ..data import make_dataset, read_dataset_info
from ..data.errors import DatasetError
from ..generate import image_grid, save_image, to_uint8
from ..networks import Discriminator, Generator
from ..official.writer import save_network_pkl
from ..ops.capabilities import cpu_grouped_conv_gradient, onednn_bfloat16, onednn_enabled
from .loss_scaling import DynamicLossScale
from .losses import StyleGAN2Loss
from .optimizer import FusedAdam
from .options import RESUME_INVARIANTS, TrainingError, TrainingOptions, ema_beta, lazy_adam_params
from .phases import PHASES, PhaseSteps
from .schedule import reset_optimizer_state, resets_optimizer, schedule
from .cluster import all_gather_json, cluster_of_strategy

OPTIONS_FILE = "training_options.json"
CHECKPOINT_DIR = "checkpoints"


class Logger:
    """Prints to stdout and appends to <run_dir>/log.txt."""

    def __init__(self, path=None, echo=True):
        self.path = path
        self.echo = echo

    def __call__(self, msg=""):
        if self.echo:
            print(msg, flush=True)
        if self.path:
            with open(self.path, "a") as f:
                f.write(msg + "\n")


def format_time(seconds):
    """'42s', '3m 07s', '2h 05m 09s', '1d 02h 03m'."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {(s // 60) % 60:02d}m {s % 60:02d}s"
    return f"{s // 86400}d {(s // 3600) % 24:02d}h {(s // 60) % 60:02d}m"


def _cpu_mem_gb():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 30
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def _gpu_mem_gb():
    try:
        if tf.config.list_logical_devices("GPU"):
            return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2 ** 30
    except (ValueError, tf.errors.OpError):
        pass
    return 0.0


def new_run_dir(result_dir, desc):
    """results/NNNNN-<desc>, NNNNN one past the highest existing id."""
    os.makedirs(result_dir, exist_ok=True)
    ids = [int(m.group(1)) for m in (re.match(r"^(\d+)-", d) for d in os.listdir(result_dir)) if m]
    path = os.path.join(result_dir, f"{max(ids, default=-1) + 1:05d}-{desc}")
    os.makedirs(path)
    return path


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


def find_resume_dir(resume, result_dir):
    """--resume: 'latest' (newest run in result_dir with a checkpoint), a run directory,
    or a checkpoint directory / prefix inside one. -> run directory."""
    if resume == "latest":
        runs = []
        if os.path.isdir(result_dir):
            for d in os.listdir(result_dir):
                full = os.path.join(result_dir, d)
                if re.match(r"^\d+-", d) and tf.train.latest_checkpoint(os.path.join(full, CHECKPOINT_DIR)):
                    runs.append(full)
        if not runs:
            raise TrainingError(f"--resume latest: no run with a checkpoint under {result_dir}")
        return sorted(runs)[-1]
    path = os.path.abspath(resume)
    for cand in (path, os.path.dirname(path), os.path.dirname(os.path.dirname(path))):
        if os.path.isfile(os.path.join(cand, OPTIONS_FILE)):
            if not tf.train.latest_checkpoint(os.path.join(cand, CHECKPOINT_DIR)):
                raise TrainingError(f"--resume {resume}: run {cand} has no checkpoint yet")
            return cand
    raise TrainingError(f"--resume {resume}: not a run directory or checkpoint of this trainer")


class Trainer:
    def __init__(self, options: TrainingOptions, resume=None, strategy=None, echo=True, watchdog=None):
        self.opts = options.validate()
        self.strategy = strategy or tf.distribute.get_strategy()
        self.replicas = self.strategy.num_replicas_in_sync
        # Multi-worker (MultiWorkerMirroredStrategy): only the chief writes; the others get its run directory.
        self.cluster = cluster_of_strategy(self.strategy)
        self.is_chief = self.cluster is None or self.cluster.is_chief
        self.watchdog = watchdog
        workers = self.cluster.num_workers if self.cluster else 1
        if self.replicas != self.opts.replicas or workers != self.opts.num_workers:
            per = f" x {self.opts.num_workers} workers" if self.opts.num_workers > 1 else ""
            raise TrainingError(f"--num-gpus {self.opts.num_gpus}{per} but the strategy has {self.replicas} "
                                f"replica(s) on {workers} worker(s)")
        self.echo = echo
        self._check_modconv_form()
        self._metrics_setup()
        self._resume_checkpoint = None
        if self.cluster is None:
            self._open_dataset()
            self.run_dir = self._open_run_dir(resume)
        else:
            self.run_dir = self._agree_on_run_dir(resume)
        self.log = Logger(os.path.join(self.run_dir, "log.txt") if self.is_chief else None, echo=echo and self.is_chief)
        if self.watchdog is not None and self.is_chief:
            self.watchdog.set_log_path(self.log.path)
        self._note_machine()
        self._note_cpu_precision()
        self._build()
        self.resumed = False
        self._ckpt_nimg = None
        if resume:
            self._restore()

    def _check_modconv_form(self):
        """--fused-modconv forced on CPUs whose kernels cannot differentiate grouped convolutions
        is refused here, before anything is written (automatic never picks it there)."""
        if not self.opts.fused_modconv or tf.config.list_logical_devices("GPU"):
            return
        dtypes = [tf.float32] + ([tf.as_dtype(self.opts.mixed_dtype)] if self.opts.fp16_res > 0 else [])
        missing = [d.name for d in dtypes if not cpu_grouped_conv_gradient(d)]
        if missing:
            raise TrainingError(
                f"--fused-modconv: this TensorFlow cannot differentiate grouped convolutions on the CPU in "
                f"{' and '.join(missing)} (oneDNN is off, or lacks that dtype on this CPU); leave the option out "
                f"(automatic: non-fused on CPUs) or pass --nofused-modconv. Both forms give the same numbers.")

    def _note_machine(self):
        """TensorFlow's version, the devices and whether its oneDNN CPU kernels are on: what a speed
        figure or a rounding difference in the log depends on."""
        gpus = tf.config.list_logical_devices("GPU")
        onednn = {True: "on", False: "off", None: "unknown"}[onednn_enabled()]
        self.log(f"TensorFlow {tf.__version__}, {len(gpus)} GPU(s), oneDNN CPU kernels {onednn}")

    def _note_cpu_precision(self):
        """bfloat16 blocks on a CPU where TensorFlow does not run bfloat16 through oneDNN (oneDNN
        off, or a CPU without AVX-512 / AVX-NE-CONVERT) run its emulated bfloat16 kernels, measured
        12-15x slower than float32 (benchmarks/README.md): said in the log, not refused (the
        numbers are right)."""
        if (self.opts.fp16_res > 0 and self.opts.mixed_dtype == "bfloat16" and onednn_bfloat16() is False
                and not tf.config.list_logical_devices("GPU")):
            self.log("warning: --mixed-dtype bfloat16 on a CPU where TensorFlow has no oneDNN bfloat16 kernels "
                     "(TF_ENABLE_ONEDNN_OPTS=0, or a CPU without AVX-512): the emulated bfloat16 kernels run "
                     "12-15x slower than float32 here; leave --fp16-res out for float32")

    def _metrics_setup(self):
        """--metrics: names parsed and feature-network files (environment / config file) loaded
        now, so that a missing or bad file stops the run before anything is written."""
        from stylegan2_tf.metrics.definitions import MetricError, parse_metric_list
        from stylegan2_tf.metrics.evaluate import MetricOptions, _Context, resolve_feature_files
        from stylegan2_tf.metrics.inception import FeatureNetworkError
        self.metrics = parse_metric_list(self.opts.metrics)
        self._metric_ctx = None
        if not self.metrics or not self.is_chief:
            return
        files = resolve_feature_files()
        # One worker computes them; several replicas of one worker share the sampling.
        strategy = self.strategy if self.cluster is None and self.replicas > 1 else None
        mopts = MetricOptions(G=None, tfrecord_dir=os.path.join(self.opts.data_dir, self.opts.dataset or ""),
                              mirror_augment=self.opts.mirror_augment, feature_files=files,
                              cache_dir=os.path.join(self.opts.result_dir, ".metrics-cache"),
                              num_images=self.opts.metrics_num_images, batch_size=self.opts.batch_gpu,
                              strategy=strategy, seed=self.opts.seed)
        ctx = _Context(mopts)
        try:
            for kind in dict.fromkeys(m.network for m in self.metrics):
                ctx.network(kind)
        except (MetricError, FeatureNetworkError) as e:
            raise TrainingError(f"--metrics {self.opts.metrics}: {e} (training reads the files from "
                                f"STYLEGAN2_TF_INCEPTION / _LPIPS / _VGG16 or the metrics config file)") from None
        self._metric_ctx = ctx

    def _evaluate_metrics(self, snapshot_name):
        """Every --metrics metric for the EMA generator of this snapshot: log line,
        metric-<name>.txt / .jsonl in the run directory, TensorBoard `Metrics/<name>`, stats.jsonl."""
        if self._metric_ctx is None:
            return
        from stylegan2_tf.metrics.evaluate import compute_metric
        ctx = self._metric_ctx
        ctx.opts.G = self.Gs
        cur_nimg = int(self.cur_nimg.numpy())
        record = {"tick": int(self.cur_tick.numpy()), "kimg": cur_nimg / 1000, "snapshot_pkl": snapshot_name,
                  "timestamp": time.time()}
        for metric in self.metrics:
            result = compute_metric(metric, ctx.opts, _ctx=ctx)
            values = " ".join(f"{k} {v:.4f}" for k, v in result["results"].items())
            shortened = "" if result["protocol"] == "paper" else " (shortened)"
            self.log(f"{snapshot_name}: {values}{shortened}, {result['seconds']:.1f} s")
            stem = os.path.splitext(snapshot_name)[0]
            with open(os.path.join(self.run_dir, f"metric-{metric.name}.txt"), "a") as f:
                f.write(f"{stem} time {format_time(result['seconds'])} {values}{shortened}\n")
            with open(os.path.join(self.run_dir, f"metric-{metric.name}.jsonl"), "a") as f:
                f.write(json.dumps(dict(result, snapshot_pkl=snapshot_name, kimg=cur_nimg / 1000)) + "\n")
            with self.summary.as_default():
                for k, v in result["results"].items():
                    tf.summary.scalar(f"Metrics/{k}", v, step=cur_nimg)
            record.update({f"Metrics/{k}": v for k, v in result["results"].items()})
        with open(os.path.join(self.run_dir, "stats.jsonl"), "a") as f:
            f.write(json.dumps(record) + "\n")

    def _open_dataset(self):
        opts = self.opts
        dataset_path = os.path.join(opts.data_dir, opts.dataset)
        if not opts.dataset or not os.path.isdir(dataset_path):
            raise TrainingError(f"dataset {dataset_path!r} not found (--data-dir / --dataset)")
        try:
            self.data_info = read_dataset_info(dataset_path)
        except DatasetError as e:
            raise TrainingError(f"dataset {dataset_path}: {e}") from None
        self.dataset_path = dataset_path

    def _open_run_dir(self, resume):
        """Run directory: new, or the resumed run's (which must match)."""
        opts, dataset_path = self.opts, self.dataset_path
        if resume:
            run_dir = find_resume_dir(resume, opts.result_dir)
            with open(os.path.join(run_dir, OPTIONS_FILE)) as f:
                saved = TrainingOptions.from_dict(json.load(f)["options"])
            diffs = [k for k in RESUME_INVARIANTS if getattr(saved, k) != getattr(opts, k)]
            if diffs:
                raise TrainingError(f"--resume {resume}: the run was made with different settings: " + ", ".join(
                    f"{k}={getattr(saved, k)!r} (now {getattr(opts, k)!r})" for k in diffs))
            with open(os.path.join(run_dir, OPTIONS_FILE)) as f:
                res = json.load(f)["resolution"]
            if res != self.data_info.resolution:
                raise TrainingError(f"dataset {dataset_path} is {self.data_info.resolution}x"
                                    f"{self.data_info.resolution}, the checkpoint in {run_dir} is {res}x{res}")
        else:
            workers = f"{opts.num_workers}x" if opts.num_workers > 1 else ""
            desc = f"{opts.dataset}-{opts.config}-{workers}{opts.num_gpus}gpu"
            run_dir = new_run_dir(opts.result_dir, desc)
            with open(os.path.join(run_dir, OPTIONS_FILE), "w") as f:
                json.dump({"options": opts.to_dict(), "resolution": self.data_info.resolution,
                           "channels": self.data_info.channels, "label_size": self.data_info.label_size}, f,
                          indent=2, sort_keys=True)
        return run_dir

    def _agree_on_run_dir(self, resume):
        """Multi-worker setup, two all-gathers so that every worker fails alike: (1) each worker's
        dataset check and options (which must equal the chief's, paths aside); (2) the chief opens
        the run directory (new or resumed) and shares its path and the checkpoint to restore.
        The run directory's path must mean the same on every worker (a shared filesystem)."""
        c = self.cluster
        local = ("data_dir", "result_dir", "embed_module_src", "collective_timeout")
        mine = {"error": None, "options": {k: v for k, v in self.opts.to_dict().items() if k not in local}}
        try:
            self._open_dataset()
        except TrainingError as e:
            mine["error"] = str(e)
        everyone = all_gather_json(self.strategy, c, mine)
        failed = [f"{c.name(i)}: {p['error']}" for i, p in enumerate(everyone) if p["error"]]
        if failed:
            raise TrainingError("; ".join(failed))
        chief_opts = everyone[0]["options"]
        for i, p in enumerate(everyone[1:], 1):
            diffs = [f"{k}={p['options'].get(k)!r} (chief: {v!r})" for k, v in chief_opts.items()
                     if p["options"].get(k) != v]
            if diffs:
                raise TrainingError(f"{c.name(i)} has other options than the chief: {', '.join(diffs)}")
        mine = None
        if c.is_chief:
            mine = {"error": None, "run_dir": None, "checkpoint": None}
            try:
                mine["run_dir"] = os.path.abspath(self._open_run_dir(resume))
                if resume:
                    mine["checkpoint"] = tf.train.latest_checkpoint(os.path.join(mine["run_dir"], CHECKPOINT_DIR))
            except TrainingError as e:
                mine["error"] = str(e)
        chief = all_gather_json(self.strategy, c, mine)[0]
        if chief["error"]:
            raise TrainingError(f"{c.name(0)}: {chief['error']}")
        self._resume_checkpoint = chief["checkpoint"]
        return chief["run_dir"]

    # -- construction ---------------------------------------------------------------------------
    def _build(self):
        opts, info = self.opts, self.data_info
        self.g_cfg, self.d_cfg = opts.network_configs(info.resolution, info.channels, info.label_size)
        self.module_src = None
        if opts.embed_module_src:
            with open(opts.embed_module_src) as f:
                self.module_src = f.read()
        import keras
        keras.utils.set_random_seed(opts.seed)  # weight initialization
        with self.strategy.scope():
            self.G = Generator(self.g_cfg, name="G")
            self.D = Discriminator(self.d_cfg, name="D")
            self.Gs = Generator(self.g_cfg, name="G_ema")
            for dst, src in zip(self.Gs.variables, self.G.variables):
                dst.assign(src)
            self.loss = StyleGAN2Loss(self.G, self.D, r1_gamma=opts.gamma, pl_weight=opts.pl_weight,
                                      pl_decay=opts.pl_decay, pl_batch_shrink=opts.pl_batch_shrink,
                                      style_mixing_prob=opts.style_mixing_prob)
            g_lr, g_b1, g_b2 = lazy_adam_params(opts.lr, opts.beta1, opts.beta2, self._interval("g"))
            d_lr, d_b1, d_b2 = lazy_adam_params(opts.lr, opts.beta1, opts.beta2, self._interval("d"))
            self.opt_G = FusedAdam(learning_rate=g_lr, beta_1=g_b1, beta_2=g_b2, epsilon=opts.epsilon)
            self.opt_D = FusedAdam(learning_rate=d_lr, beta_1=d_b1, beta_2=d_b2, epsilon=opts.epsilon)
            self.opt_G.build(self.G.trainable_variables)
            self.opt_D.build(self.D.trainable_variables)
            # float16 blocks: dynamic loss scaling, one scale per phase (the regularizers' second-order
            # gradients need smaller scales than the main losses); an overflowing step is skipped.
            self.loss_scales = {}
            if opts.loss_scaling:
                self.loss_scales = {phase: DynamicLossScale(name=f"loss_scale_{phase}") for phase in PHASES}
            self.rng = tf.random.Generator.from_seed(opts.seed)
            self.cur_nimg = tf.Variable(0, dtype=tf.int64, trainable=False, name="cur_nimg")
            self.cur_tick = tf.Variable(0, dtype=tf.int64, trainable=False, name="cur_tick")
            self.minibatch = tf.Variable(0, dtype=tf.int64, trainable=False, name="minibatch")
            # The lod of the last minibatch (-1: none yet), for the Adam resets of growing runs.
            self.prev_lod = tf.Variable(-1.0, dtype=tf.float64, trainable=False, name="prev_lod")
            self.ema_beta = tf.Variable(ema_beta(opts.batch, opts.ema_kimg), dtype=tf.float64, trainable=False,
                                        name="ema_beta")
        # Networks are checkpointed as explicit variable lists: tf.train.Checkpoint does not descend into
        # the layer lists Keras 3 keeps (blocks, mapping layers), so tracking the models would miss them.
        self.ckpt = tf.train.Checkpoint(G=list(self.G.variables), D=list(self.D.variables),
                                        Gs=list(self.Gs.variables), opt_G=self.opt_G, opt_D=self.opt_D,
                                        pl_mean=self.loss.pl_mean, rng=self.rng, cur_nimg=self.cur_nimg,
                                        cur_tick=self.cur_tick, minibatch=self.minibatch, prev_lod=self.prev_lod,
                                        **{f"loss_scale_{k}": v for k, v in self.loss_scales.items()})
        self.ckpt_manager = tf.train.CheckpointManager(self.ckpt, os.path.join(self.run_dir, CHECKPOINT_DIR),
                                                       max_to_keep=2)
        self._step_cache = {}
        self._compile_ema()
        self.phase = None
        self._set_phase(schedule(opts, int(self.cur_nimg.numpy()), self.data_info.resolution))

    def _interval(self, net):
        """Lazy-regularization interval of G ('g') or D ('d'); None when regularizing every minibatch."""
        if not self.opts.lazy_regularization:
            return None
        return self.opts.g_reg_interval if net == "g" else self.opts.d_reg_interval

    def _levels(self, lod):
        """Static (G, D, reals) levels of detail for lod (None for networks that do not grow)."""
        if lod is None:
            return (None, None, None)
        from ..networks.lod import level_of
        return (level_of(lod, self.G.synthesis.num_levels), level_of(lod, self.D.body.num_levels),
                level_of(lod, self.d_cfg.max_lod + 1))

    def _set_phase(self, phase):
        """Apply the schedule: lod of G, D and Gs (with the Adam resets), learning rates and G's EMA
        decay. The per-replica batch may change, which the loop handles (new data iterator)."""
        opts = self.opts
        if phase.lod is not None:
            if resets_optimizer(float(self.prev_lod.numpy()), phase.lod):
                reset_optimizer_state(self.opt_G)
                reset_optimizer_state(self.opt_D)
            self.prev_lod.assign(phase.lod)
            for net in (self.G, self.D, self.Gs):
                net.set_lod(phase.lod)
        self.opt_G.learning_rate.assign(lazy_adam_params(phase.lr, opts.beta1, opts.beta2, self._interval("g"))[0])
        self.opt_D.learning_rate.assign(lazy_adam_params(phase.lr, opts.beta1, opts.beta2, self._interval("d"))[0])
        self.ema_beta.assign(ema_beta(phase.batch, opts.ema_kimg))
        self.phase = phase

    def _restore(self):
        path = self._resume_checkpoint or self.ckpt_manager.latest_checkpoint
        self.ckpt.restore(path).assert_existing_objects_matched()
        self.resumed = True
        self._ckpt_nimg = int(self.cur_nimg.numpy())
        # The schedule at the restored position (lod, learning rates, EMA decay), as the loop sets it there.
        self._set_phase(schedule(self.opts, self._ckpt_nimg, self.data_info.resolution))
        self.log(f"Resumed from {path} at kimg {int(self.cur_nimg.numpy()) / 1000:.1f}, "
                 f"tick {int(self.cur_tick.numpy())}")

    # -- data -----------------------------------------------------------------------------------
    def _dataset(self, start_nimg, batch_gpu=None):
        """Iterator of per-replica (images, labels) batches of `batch_gpu` (default: the current
        phase's), positioned after `start_nimg` images."""
        opts = self.opts
        batch_gpu = self.phase.batch_gpu if batch_gpu is None else batch_gpu

        def dataset_fn(ctx):
            # One input pipeline per worker; its replicas take successive batches.
            pipelines = ctx.num_input_pipelines if ctx is not None else 1
            return make_dataset(self.dataset_path, batch_size=batch_gpu, mirror_augment=opts.mirror_augment,
                                seed=opts.seed, deterministic=True, input_context=ctx, info=self.data_info,
                                start_position=start_nimg // pipelines)
        if self.replicas == 1 and not isinstance(self.strategy, (tf.distribute.MirroredStrategy,
                                                                  tf.distribute.MultiWorkerMirroredStrategy)):
            return iter(dataset_fn(None))
        return iter(self.strategy.distribute_datasets_from_function(dataset_fn))

    # -- steps ----------------------------------------------------------------------------------
    def _steps_for(self, phase):
        """The four step functions for the phase's batch sizes and levels of detail (compiled once each)."""
        key = (phase.batch, phase.batch_gpu, self._levels(phase.lod))
        if key not in self._step_cache:
            self._step_cache[key] = self._compile_steps(*key)
        return self._step_cache[key]

    def _compile_steps(self, batch, batch_gpu, levels):
        return PhaseSteps(self, batch, batch_gpu, levels).functions()

    def _compile_ema(self):
        beta = self.ema_beta

        @tf.function
        def update_ema():
            # Trainable variables: exponential moving average; the rest (noise maps, w_avg, lod): copied.
            for dst, src in zip(self.Gs.variables, self.G.variables):
                if src.trainable:
                    dst.assign(src + (dst - src) * tf.cast(beta, dst.dtype))
                else:
                    dst.assign(src)
        self._update_ema = update_ema

    # -- snapshots ------------------------------------------------------------------------------
    def _grid(self):
        opts, res = self.opts, self.data_info.resolution
        if opts.grid_size:
            gw = gh = opts.grid_size
        else:
            gw = int(np.clip(1920 // res, 4, 16))
            gh = int(np.clip(1080 // res, 4, 16))
        return gw, gh

    def _snapshot_setup(self):
        gw, gh = self._grid()
        n = gw * gh
        ds = make_dataset(self.dataset_path, batch_size=n, shuffle_buffer=0, repeat=True, deterministic=True,
                          info=self.data_info, drop_remainder=False)
        reals, labels = next(iter(ds))
        reals = reals.numpy()[:n]
        if len(reals) < n:  # tiny datasets: repeat
            reals = np.concatenate([reals] * math.ceil(n / len(reals)))[:n]
            labels = np.concatenate([labels.numpy()] * math.ceil(n / len(labels)))[:n]
        self.grid_wh = (gw, gh)
        self.grid_z = np.random.RandomState(self.opts.seed).randn(n, self.g_cfg.z_dim).astype(np.float32)
        self.grid_c = np.asarray(labels, np.float32)[:n] if self.g_cfg.c_dim else None
        path = os.path.join(self.run_dir, "reals.png")
        if not os.path.exists(path):
            save_image(self._grid_image(to_uint8(tf.constant(reals)).numpy()), path)

    def _grid_image(self, images):
        gw, gh = self.grid_wh
        return image_grid([[images[y * gw + x] for x in range(gw)] for y in range(gh)])

    def _fakes(self):
        out = []
        bs = max(self.opts.batch_gpu, 8)
        for i in range(0, len(self.grid_z), bs):
            c = None if self.grid_c is None else self.grid_c[i:i + bs]
            out.append(to_uint8(self.Gs(self.grid_z[i:i + bs], c=c, noise_mode="const")).numpy())
        return self._grid_image(np.concatenate(out))

    def _save_fakes(self, name):
        grid = self._fakes()
        save_image(grid, os.path.join(self.run_dir, name))
        with self.summary.as_default():
            tf.summary.image("fakes", grid[np.newaxis], step=int(self.cur_nimg.numpy()))

    def _check_finite_weights(self):
        for net in (self.G, self.D):
            for v in net.trainable_variables:
                if not np.all(np.isfinite(v.numpy())):
                    raise TrainingError(f"non-finite weights in {v.path} at minibatch {int(self.minibatch.numpy())} "
                                        f"(kimg {int(self.cur_nimg.numpy()) / 1000:.3f}); the last snapshot is "
                                        f"untouched")

    def _save_snapshot(self, final=False):
        """Network pickle (atomic) + whole-state checkpoint (its index is updated atomically).
        Multi-worker: the chief writes both; every other worker saves its checkpoint too (saving
        may take part in collectives) into a temporary directory that it deletes."""
        self._check_finite_weights()
        nimg = int(self.cur_nimg.numpy())
        if final:
            name = "network-final.pkl"
        else:
            pattern = "network-snapshot-{}.pkl"
            name = pattern.format(kimg_label(nimg, self._tick_nimg(), self.run_dir if self.is_chief else None, pattern))
        if self.is_chief:
            save_network_pkl(os.path.join(self.run_dir, name), self.G, self.D, self.Gs, module_src=self.module_src)
        if self._ckpt_nimg != nimg:
            if self.is_chief:
                self.ckpt_manager.save(checkpoint_number=nimg)
            else:
                scratch = tempfile.mkdtemp(prefix="stylegan2-worker-ckpt-")
                try:
                    tf.train.CheckpointManager(self.ckpt, scratch, max_to_keep=1).save(checkpoint_number=nimg)
                finally:
                    shutil.rmtree(scratch, ignore_errors=True)
            self._ckpt_nimg = nimg
        return name

    # -- the loop -------------------------------------------------------------------------------
    def train_minibatch(self, rounds, seed=None):
        """One minibatch: G main, G path length (every g_reg_interval), D main, D R1 (every
        d_reg_interval), then Gs. Does not advance the counters. `rounds`: `opts.rounds`
        (images, labels) sub-batches per replica (per-replica values under a MirroredStrategy);
        `seed`: int64 [2], drawn from the trainer's generator when None. -> summed loss stats."""
        opts = self.opts
        mb = int(self.minibatch.numpy())
        if seed is None:
            seed = self.rng.make_seeds(1)[:, 0]
        steps = self._steps_for(self.phase)
        stats = steps["G_main"](rounds, seed)
        if "G_pl" in steps and opts.g_reg_interval and mb % opts.g_reg_interval == 0:
            stats.update(steps["G_pl"](rounds, seed))
        stats.update(steps["D_main"](rounds, seed))
        if "D_r1" in steps and opts.d_reg_interval and mb % opts.d_reg_interval == 0:
            stats.update(steps["D_r1"](rounds, seed))
        self._update_ema()
        return stats

    def _tick_nimg(self):
        return int(self.phase.tick_kimg * 1000)

    def train(self, stop_after_ticks=None):
        """Train until total_kimg (or `stop_after_ticks` more ticks). Returns the run directory."""
        opts = self.opts
        self.summary = tf.summary.create_file_writer(self.run_dir) if self.is_chief else tf.summary.create_noop_writer()
        if self.is_chief:
            self._snapshot_setup()
        total_nimg = int(opts.total_kimg * 1000)
        if not self.resumed:
            p = self.phase
            growing = ""
            if p.lod is not None:
                growing = (f", growing from {p.resolution}x{p.resolution} (lod {p.lod:g}; {opts.lod_kimg:g} kimg per "
                           f"resolution + {opts.lod_transition_kimg:g} kimg fade)")
            self.log(f"Training {self.g_cfg.img_resolution}x{self.g_cfg.img_resolution} {opts.config} on "
                     f"{self.dataset_path} ({self.data_info.num_images} images), batch {p.batch} = "
                     f"{p.batch // (p.batch_gpu * self.replicas)} round(s) x {self.replicas} replica(s) x "
                     f"{p.batch_gpu}{growing}; run dir {self.run_dir}")
            if self.is_chief:
                save_image(self._fakes(), os.path.join(self.run_dir, "fakes_init.png"))
        data, data_batch_gpu = None, None
        image_ticks = opts.image_snapshot_ticks if opts.image_snapshot_ticks is not None else opts.snapshot_ticks
        start_time = time.time()
        tick_start_nimg = int(self.cur_nimg.numpy())
        tick_start_time = time.time()
        maintenance = 0.0
        ticks_done = 0
        sums, counts = {}, {}
        done = int(self.cur_nimg.numpy()) >= total_nimg
        while not done:
            mb = int(self.minibatch.numpy())
            if self.watchdog is not None:
                self.watchdog.beat(f"training (minibatch {mb})")
            # The schedule is evaluated every `minibatch_repeats` minibatches, as the official loop does.
            if mb % opts.minibatch_repeats == 0:
                self._set_phase(schedule(opts, int(self.cur_nimg.numpy()), self.data_info.resolution))
            phase = self.phase
            if phase.batch_gpu != data_batch_gpu:
                data, data_batch_gpu = self._dataset(int(self.cur_nimg.numpy()), phase.batch_gpu), phase.batch_gpu
            rounds = tuple(next(data) for _ in range(phase.batch // (phase.batch_gpu * self.replicas)))
            stats = self.train_minibatch(rounds)
            for k, v in stats.items():
                v = float(v.numpy())
                if not math.isfinite(v):
                    raise TrainingError(f"non-finite {k} ({v}) at minibatch {mb} (kimg "
                                        f"{int(self.cur_nimg.numpy()) / 1000:.3f}); stopping, the last snapshot is "
                                        f"untouched")
                sums[k] = sums.get(k, 0.0) + v
                counts[k] = counts.get(k, 0) + 1
            self.minibatch.assign_add(1)
            self.cur_nimg.assign_add(phase.batch)
            cur_nimg = int(self.cur_nimg.numpy())
            # Like the official loop, the end of training and of a tick is looked at only after every
            # `minibatch_repeats` minibatches (so totals can overshoot by up to repeats - 1 minibatches).
            if int(self.minibatch.numpy()) % opts.minibatch_repeats:
                continue
            done = cur_nimg >= total_nimg
            tick_nimg = self._tick_nimg()
            if cur_nimg < tick_start_nimg + tick_nimg and not done:
                continue

            # End of tick.
            self.cur_tick.assign_add(1)
            ticks_done += 1
            tick = int(self.cur_tick.numpy())
            now = time.time()
            tick_time = now - tick_start_time
            tick_kimg = (cur_nimg - tick_start_nimg) / 1000
            means = {k: sums[k] / counts[k] for k in sums}
            means["pl_mean"] = float(self.loss.pl_mean.numpy())
            for k, scaler in self.loss_scales.items():
                means[f"loss_scale_{k}"] = float(scaler.scale.numpy())
            record = {"tick": tick, "kimg": cur_nimg / 1000, "minibatch": int(self.minibatch.numpy()),
                      "time": now - start_time, "sec_per_tick": tick_time, "sec_per_kimg": tick_time / tick_kimg,
                      "img_per_sec": tick_kimg * 1000 / tick_time, "maintenance": maintenance,
                      "cpumem_gb": _cpu_mem_gb(), "gpumem_gb": _gpu_mem_gb(), "timestamp": now, **means}
            if phase.lod is not None:
                record.update(lod=phase.lod, resolution=phase.resolution)
            kimg_text = f"{cur_nimg / 1000:.1f}" if cur_nimg >= 10000 else f"{cur_nimg / 1000:.3f}"
            lod_text = f"lod {phase.lod:<5.2f} " if phase.lod is not None else ""
            self.log(f"tick {tick:<5d} kimg {kimg_text:<8s} {lod_text}minibatch {phase.batch:<5d} "
                     f"time {format_time(now - start_time):<12s} sec/tick {tick_time:<7.1f} "
                     f"sec/kimg {tick_time / tick_kimg:<7.2f} maintenance {maintenance:<6.1f} "
                     f"cpumem {record['cpumem_gb']:<5.2f} gpumem {record['gpumem_gb']:<5.2f}")
            maint_start = time.time()
            if self.is_chief:
                with open(os.path.join(self.run_dir, "stats.jsonl"), "a") as f:
                    f.write(json.dumps(record) + "\n")
            with self.summary.as_default():
                for k, v in record.items():
                    if k not in ("tick", "timestamp", "minibatch", "kimg", "resolution"):
                        tf.summary.scalar(k if "/" in k else f"Progress/{k}", v, step=cur_nimg)
            stop = done or (stop_after_ticks is not None and ticks_done >= stop_after_ticks)
            if image_ticks and (done or tick % image_ticks == 0) and self.is_chief:
                self._save_fakes("fakes{}.png".format(kimg_label(cur_nimg, tick_nimg, self.run_dir, "fakes{}.png")))
            if opts.snapshot_ticks and (done or tick % opts.snapshot_ticks == 0):
                name = self._save_snapshot()
                self.log(f"Saved {name}")
                if self.is_chief:
                    self._evaluate_metrics(name)
            self.summary.flush()
            sums, counts = {}, {}
            maintenance = time.time() - maint_start
            tick_start_nimg = cur_nimg
            tick_start_time = time.time()
            if stop:
                break
        if int(self.cur_nimg.numpy()) >= total_nimg:
            self._save_snapshot(final=True)
            self.log("Saved network-final.pkl. Done.")
        self.summary.flush()
        return self.run_dir
