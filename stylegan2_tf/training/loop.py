"""The StyleGAN2 training loop on tf.distribute (default strategy on one device,
MirroredStrategy on several, MultiWorkerMirroredStrategy over machines).

Per minibatch (official order): G main step, G path-length step every `g_reg_interval`
minibatches, D main step, D R1 step every `d_reg_interval` minibatches (phases.py), then
the G moving average. Every step accumulates gradients over `rounds` = batch / (batch_gpu x
replicas) sub-batches before one Adam update, and updates the running means (w_avg,
pl_mean) once from the whole minibatch, so a small device reproduces the math of the full
batch. Randomness: one checkpointed `tf.random.Generator` gives each minibatch a seed, from
which every (phase, sub-batch) draws statelessly (N replicas x R rounds == 1 replica x N*R
rounds); with the seeded per-epoch data order a resumed run continues the exact sequence.
The schedule (schedule.py) sets the lod, batch and learning rate of growing configs.

`Trainer.__init__` sets a run up and `Trainer.train` runs it, each as a sequence of sections;
the state lives in state.py, the run directory in run_dir.py, the reports in reporting.py
and the snapshots in snapshots.py.
"""

import os

import tensorflow as tf

from ..data import make_dataset
from ..errors import UserError
from ..metrics import Evaluator, MetricOptions, parse_metric_list, resolve_feature_files
from .cluster import cluster_of_strategy
from .machine import check_modconv_form, machine_line, precision_warning
from .errors import TrainingError
from .options import TrainingOptions
from .phases import PhaseSteps, phases_of, runs_at
from .reporting import Logger, Reporter, TickClock, TickStats
from .run_dir import agree_on_run_dir, checkpoint_dir, open_dataset, open_run_dir, saved_network_configs
from .schedule import growth_stage
from .snapshots import FAKES_PNG, ImageGrid, kimg_label, save_snapshot, snapshot_name
from .state import TrainingState
from .transfer import check_start_lod, load_networks, pickle_network_configs


class Trainer:
    """One training run: `Trainer(options).train()`.

    options: TrainingOptions; resume: 'latest', a run directory or a checkpoint in one;
    strategy: the tf.distribute strategy (default: the current one); echo: print the log too;
    watchdog: a cluster.Watchdog fed while a multi-worker run makes progress."""

    def __init__(self, options: TrainingOptions, resume=None, strategy=None, echo=True, watchdog=None):
        # Options and strategy.
        self.opts = opts = options.validate()
        self.strategy = strategy or tf.distribute.get_strategy()
        self.replicas = self.strategy.num_replicas_in_sync
        self.cluster = cluster_of_strategy(self.strategy)   # multi-worker: only the chief writes
        self.is_chief = self.cluster is None or self.cluster.is_chief
        self.watchdog = watchdog
        workers = self.cluster.num_workers if self.cluster else 1
        if self.replicas != opts.replicas or workers != opts.num_workers:
            per = f" x {opts.num_workers} workers" if opts.num_workers > 1 else ""
            raise TrainingError(f"--num-gpus {opts.num_gpus}{per} but the strategy has {self.replicas} "
                                f"replica(s) on {workers} worker(s)")
        check_modconv_form(opts)

        # Snapshot metrics: feature-network files checked before anything is written.
        self.metrics = parse_metric_list(opts.metrics)
        self.evaluator = self._snapshot_evaluator() if self.metrics and self.is_chief else None

        # Dataset, the networks' configs and the run directory (new, or the resumed run's). A new run
        # from a pickle (--resume-pkl) takes its networks' configs, checked against the dataset
        # before anything is written; a resumed run the configs it recorded.
        self.start_from = load_networks(opts.resume_pkl) if opts.resume_pkl and not resume else None
        self._pickle_configs = None
        checkpoint = None
        if self.cluster is None:
            self.dataset_path, self.data_info = open_dataset(opts)
            networks = None if resume else self._new_network_configs(self.data_info)
            self.run_dir = open_run_dir(opts, self.data_info, resume, networks)
        else:
            self.run_dir, self.dataset_path, self.data_info, checkpoint = agree_on_run_dir(
                opts, self.strategy, self.cluster, resume, self._new_network_configs)
        self.log = Logger(os.path.join(self.run_dir, "log.txt") if self.is_chief else None,
                          echo=echo and self.is_chief)
        if self.watchdog is not None and self.is_chief:
            self.watchdog.set_log_path(self.log.path)
        self.log(machine_line())
        warning = precision_warning(opts)
        if warning:
            self.log(warning)

        # Networks, optimizers, counters and their checkpoint.
        info = self.data_info
        recorded = saved_network_configs(self.run_dir) if resume else self._new_network_configs(info)
        self.g_cfg, self.d_cfg = recorded or opts.network_configs(info.resolution, info.channels, info.label_size)
        self.module_src = None
        if opts.embed_module_src:
            with open(opts.embed_module_src) as f:
                self.module_src = f.read()
        self.state = TrainingState(opts, self.g_cfg, self.d_cfg, self.strategy, checkpoint_dir(self.run_dir),
                                   start_from=self.start_from)
        if self.start_from is not None:
            g = self.g_cfg
            self.log(f"Starting from {opts.resume_pkl}: G {g.architecture}, D {self.d_cfg.architecture}, "
                     f"{g.img_resolution}x{g.img_resolution}x{g.img_channels}, {g.c_dim} label(s)"
                     + (f", at kimg {opts.resume_kimg:g}" if opts.resume_kimg else "")
                     + (f"; D's first {opts.freeze_d} layers frozen" if opts.freeze_d else ""))
        self._steps = {}
        self.state.apply_stage(growth_stage(opts, self.state.nimg, info.resolution))
        self.resumed = False
        self._checkpointed_nimg = None
        if resume:
            path = self.state.restore(checkpoint)
            self.resumed = True
            self._checkpointed_nimg = self.state.nimg
            # The schedule at the restored position (lod, learning rates, EMA decay), as the loop sets it there.
            self.state.apply_stage(growth_stage(opts, self.state.nimg, info.resolution))
            self.log(f"Resumed from {path} at kimg {self.state.nimg / 1000:.1f}, "
                     f"tick {int(self.state.cur_tick.numpy())}")

    def _new_network_configs(self, info):
        """The configs a new run records: those of the --resume-pkl networks (worked out and checked
        against the dataset once), or None (they follow from the options)."""
        if self.start_from is None or self._pickle_configs is not None:
            return self._pickle_configs
        opts = self.opts
        configs = pickle_network_configs(self.start_from["G"], self.start_from["D"], opts, info, opts.resume_pkl)
        check_start_lod(self.start_from, opts, info.resolution, opts.resume_pkl)
        self._pickle_configs = configs
        return configs

    def _snapshot_evaluator(self):
        """An Evaluator for the snapshots' G_ema, its files from the environment or the metrics
        config file. One worker computes the metrics; several replicas of one worker share the
        sampling."""
        opts = self.opts
        strategy = self.strategy if self.cluster is None and self.replicas > 1 else None
        evaluator = Evaluator(MetricOptions(
            G=None, tfrecord_dir=os.path.join(opts.data_dir, opts.dataset or ""), mirror_augment=opts.mirror_augment,
            feature_files=resolve_feature_files(), cache_dir=os.path.join(opts.result_dir, ".metrics-cache"),
            num_images=opts.metrics_num_images, batch_size=opts.batch_gpu, strategy=strategy, seed=opts.seed))
        try:
            evaluator.prepare(self.metrics, dataset=False)  # (the dataset is checked next, for training)
        except UserError as e:
            raise TrainingError(f"--metrics {opts.metrics}: {e} (training reads the files from "
                                f"STYLEGAN2_TF_INCEPTION / _LPIPS / _VGG16 or the metrics config file)") from None
        return evaluator

    # -- data and steps ---------------------------------------------------------------------------
    def dataset(self, start_nimg, batch_gpu=None):
        """Iterator of per-replica (images, labels) batches of `batch_gpu` (default: the current
        stage's), positioned after `start_nimg` images."""
        opts = self.opts
        batch_gpu = self.state.stage.batch_gpu if batch_gpu is None else batch_gpu

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

    def steps(self, stage):
        """The phases' step functions for the stage's batch sizes and levels of detail (traced once
        per layout)."""
        key = (stage.batch, stage.batch_gpu, self.state.levels(stage.lod))
        if key not in self._steps:
            s = self.state
            self._steps[key] = PhaseSteps(self.opts, s.loss, s.optimizers, s.loss_scales, self.strategy,
                                          *key).functions()
        return self._steps[key]

    def train_minibatch(self, rounds, seed=None):
        """One minibatch: each phase that runs in it (phases.PHASES, in order), then G_ema. Does not
        advance the counters. `rounds`: `opts.rounds` (images, labels) sub-batches per replica
        (per-replica values under a MirroredStrategy); `seed`: int64 [2], drawn from the state's
        generator when None. -> the phases' loss statistics, summed over replicas (and over the
        phases that report the same one: D's signs on reals)."""
        state = self.state
        minibatch = int(state.minibatch.numpy())
        if seed is None:
            seed = state.rng.make_seeds(1)[:, 0]
        steps = self.steps(state.stage)
        stats = {}
        for phase in phases_of(self.opts):
            if runs_at(phase, self.opts, minibatch):
                add_stats(stats, steps[phase.name](rounds, seed))
        state.update_ema()
        return stats

    # -- the loop ---------------------------------------------------------------------------------
    def train(self, stop_after_ticks=None):
        """Train until total_kimg (or `stop_after_ticks` more ticks). -> the run directory."""
        opts, state = self.opts, self.state
        resolution = self.data_info.resolution

        # Reports and the fixed image grid.
        reporter = Reporter(self.run_dir, self.log, self.is_chief)
        grid = ImageGrid(opts, self.g_cfg, self.dataset_path, self.data_info, self.run_dir) if self.is_chief else None
        if not self.resumed:
            self.log(self._start_line())
            if grid is not None:
                grid.save_fakes(state.G_ema, "fakes_init.png")

        # Minibatches, with a look at the schedule and the tick's end every `minibatch_repeats`
        # (as the official loop; totals can overshoot by up to repeats - 1 minibatches).
        total_nimg = int(opts.total_kimg * 1000)
        clock, tick_stats = TickClock(state.nimg), TickStats()
        data, data_batch_gpu = None, None
        ticks_done = 0
        done = state.nimg >= total_nimg
        while not done:
            minibatch = int(state.minibatch.numpy())
            if self.watchdog is not None:
                self.watchdog.beat(f"training (minibatch {minibatch})")
            if minibatch % opts.minibatch_repeats == 0:
                state.apply_stage(growth_stage(opts, state.nimg, resolution))
            stage = state.stage
            if stage.batch_gpu != data_batch_gpu:
                data, data_batch_gpu = self.dataset(state.nimg, stage.batch_gpu), stage.batch_gpu
            rounds = tuple(next(data) for _ in range(stage.batch // (stage.batch_gpu * self.replicas)))
            stats = state.augmentation.after_minibatch(self.train_minibatch(rounds), stage.batch)
            tick_stats.add(stats, minibatch, state.nimg)
            state.minibatch.assign_add(1)
            state.cur_nimg.assign_add(stage.batch)
            if (minibatch + 1) % opts.minibatch_repeats:
                continue
            done = state.nimg >= total_nimg
            if state.nimg < clock.tick_start_nimg + int(stage.tick_kimg * 1000) and not done:
                continue

            # End of tick: reports, images, snapshot and its metrics.
            state.cur_tick.assign_add(1)
            ticks_done += 1
            self._end_of_tick(reporter, grid, clock, tick_stats, done)
            clock.next_tick(state.nimg)
            if done or (stop_after_ticks is not None and ticks_done >= stop_after_ticks):
                break

        # The final network.
        if state.nimg >= total_nimg:
            self._snapshot(final=True)
            self.log("Saved network-final.pkl. Done.")
        reporter.flush()
        return self.run_dir

    def _start_line(self):
        opts, stage = self.opts, self.state.stage
        growing = ""
        if stage.lod is not None:
            growing = (f", growing from {stage.resolution}x{stage.resolution} (lod {stage.lod:g}; {opts.lod_kimg:g} "
                       f"kimg per resolution + {opts.lod_transition_kimg:g} kimg fade)")
        return (f"Training {self.g_cfg.img_resolution}x{self.g_cfg.img_resolution} {opts.config} on "
                f"{self.dataset_path} ({self.data_info.num_images} images), batch {stage.batch} = "
                f"{stage.batch // (stage.batch_gpu * self.replicas)} round(s) x {self.replicas} replica(s) x "
                f"{stage.batch_gpu}{growing}; run dir {self.run_dir}")

    def _end_of_tick(self, reporter, grid, clock, tick_stats, done):
        opts, state = self.opts, self.state
        tick, nimg, stage = int(state.cur_tick.numpy()), state.nimg, state.stage
        means = tick_stats.means()
        means["pl_mean"] = float(state.pl_mean.numpy())
        means["Progress/augment"] = float(state.augmentation.p.numpy())
        for k, scaler in state.loss_scales.items():
            means[f"loss_scale_{k}"] = float(scaler.scale.numpy())
        reporter.tick({"tick": tick, "kimg": nimg / 1000, "minibatch": int(state.minibatch.numpy()),
                       **clock.tick_ends(nimg), **means}, stage)
        tick_nimg = int(stage.tick_kimg * 1000)
        image_ticks = opts.image_snapshot_ticks if opts.image_snapshot_ticks is not None else opts.snapshot_ticks
        if image_ticks and (done or tick % image_ticks == 0) and grid is not None:
            name = FAKES_PNG.format(kimg_label(nimg, tick_nimg, self.run_dir, FAKES_PNG))
            reporter.image("fakes", grid.save_fakes(state.G_ema, name), nimg)
        if opts.snapshot_ticks and (done or tick % opts.snapshot_ticks == 0):
            name = self._snapshot()
            self.log(f"Saved {name}{state.augmentation.describe()}")
            if self.evaluator is not None:
                results = [self.evaluator.evaluate(metric, state.G_ema) for metric in self.metrics]
                reporter.metrics(name, results, tick, nimg)
        reporter.flush()

    def _snapshot(self, final=False):
        """Network pickle, and the checkpoint unless one exists at this image count. -> its name."""
        nimg = self.state.nimg
        tick_nimg = int(self.state.stage.tick_kimg * 1000)
        name = snapshot_name(nimg, tick_nimg, self.run_dir if self.is_chief else None, final)
        save_snapshot(self.state, self.run_dir, name, self.is_chief, self.module_src,
                      checkpoint=self._checkpointed_nimg != nimg)
        self._checkpointed_nimg = nimg
        return name


def add_stats(stats, more):
    """Add the statistics `more` into `stats`, summing those both have."""
    for k, v in more.items():
        stats[k] = stats[k] + v if k in stats else v
