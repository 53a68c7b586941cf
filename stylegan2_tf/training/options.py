"""Training options: one frozen dataclass, one field per option.

Each field's metadata is the one place that says what the option is:
  flag       its command-line flag in run_training.py (None: settable from Python only)
  help       the flag's help text
  resume     must agree between a run and its resumption (the math of the run)
  local      may differ between the workers of one multi-worker run (paths, timeouts)
  choices    the allowed values of a string option
  network    the network-config field it feeds (named in the network's own error messages)
  cli_default  the flag's default where it differs from the field's
  before     the value of runs whose options file predates the option (their behaviour then)
run_training.py makes its flags from these fields; `RESUME_INVARIANTS` and `WORKER_LOCAL`
are derived from them. `validate()` checks the options and builds the network configs (whose
own rules it does not restate); the options are frozen, so what was validated is what runs
(`replace` makes a changed copy).
"""

import dataclasses
import json
from dataclasses import dataclass
from typing import Optional

from ..augment import PRESETS as AUGMENT_PRESETS
from ..metrics.definitions import MetricError, parse_metric_list
from ..networks.config import MIXED_DTYPES
from . import checks, configs
from .augmentation import AUG_MODES
from .errors import TrainingError
from .phases import PHASE_NAMES


def option(default, help="", flag=None, resume=False, local=False, choices=None, network=None, **extra):
    return dataclasses.field(default=default, metadata=dict(flag=flag, help=help, resume=resume, local=local,
                                                            choices=choices, network=network, **extra))


@dataclass(frozen=True)
class TrainingOptions:
    # What to train on, and where the results go.
    data_dir: str = option("datasets", "Directory holding datasets.", flag="data-dir", local=True)
    dataset: str = option("", "Dataset (a TFRecord directory under --data-dir).", flag="dataset", resume=True)
    result_dir: str = option("results", "Root directory for run results.", flag="result-dir", local=True)
    config: str = option("config-f", "config-a ... config-f (the paper's Table 1), or "
                         "config-e-G{orig,skip,resnet}-D{orig,skip,resnet}.", flag="config", resume=True)
    label_style: Optional[str] = option(None, "Conditional datasets: 'ada' (NVlabs/stylegan2-ada: G embeds the "
                                        "label beside z, D projects onto a label embedding; snapshots legacy.py "
                                        "converts) or 'stylegan2' (NVlabs/stylegan2: label concatenated to z, D "
                                        "projects per-class scores). Default: 'ada', 'stylegan2' for configs A-D.",
                                        flag="label-style", resume=True, choices=configs.LABEL_STYLES,
                                        before="stylegan2")
    mirror_augment: bool = option(False, "Mirror images left-right at random.", flag="mirror-augment", resume=True)
    # Length and schedule.
    total_kimg: float = option(25000.0, "Training length in thousands of real images.", flag="total-kimg")
    tick_kimg: Optional[float] = option(None, "kimg per tick (default: the official schedule by resolution).",
                                        flag="tick-kimg")
    snapshot_ticks: int = option(10, "Ticks between network snapshots and checkpoints (0 = only at the end).",
                                 flag="snapshot-ticks")
    minibatch_repeats: int = option(4, "Minibatches between looks at the schedule and the tick's end (official "
                                    "structure; the math is unchanged).")
    image_snapshot_ticks: Optional[int] = option(None, "Ticks between fakes images (None: snapshot_ticks).")
    # Batches.
    batch: int = option(32, "Global minibatch size (configs A-D: by default the official one per resolution, "
                        "256 at 8x8 ... 32 from 128x128; given, it holds at every resolution).", flag="batch",
                        resume=True)
    batch_gpu: int = option(4, "Minibatch per replica and round; smaller than batch/replicas accumulates (configs "
                            "A-D: by default the official one per resolution).", flag="batch-gpu", resume=True)
    num_gpus: int = option(1, "Replicas (GPUs) per worker; 0 = every visible GPU (1 on a CPU-only machine). "
                           "CPU-only workers run one replica.", flag="num-gpus", resume=True, cli_default=0)
    num_workers: int = option(1, "Workers (processes, usually machines); set from the cluster.", resume=True)
    # Optimization.
    lr: float = option(0.002, "Adam learning rate.", resume=True)
    beta1: float = option(0.0, "Adam beta1.", resume=True)
    beta2: float = option(0.99, "Adam beta2.", resume=True)
    epsilon: float = option(1e-8, "Adam epsilon.", resume=True)
    r1_gamma: Optional[float] = option(None, "R1 regularization weight (default: 10 for config F, 100 for config "
                                       "E).", flag="gamma")
    g_reg_interval: int = option(4, "Minibatches between G's path-length steps (lazy regularization).", resume=True)
    d_reg_interval: int = option(16, "Minibatches between D's R1 steps (lazy regularization).", resume=True)
    pl_weight: float = option(2.0, "Path-length regularization weight.", resume=True)
    pl_decay: float = option(0.01, "Decay of the path lengths' running mean.", resume=True)
    pl_batch_shrink: int = option(2, "The path-length batch is the minibatch / this.", resume=True)
    style_mixing_prob: float = option(0.9, "Style-mixing probability.", resume=True)
    ema_kimg: float = option(10.0, "Half-life of G's moving average in thousands of images.", resume=True)
    # Progressive growing (configs A-D).
    lod_kimg: float = option(600.0, "Configs A-D: thousands of images at each resolution before the next fades "
                             "in.", flag="lod-kimg", resume=True)
    lod_transition_kimg: float = option(600.0, "Configs A-D: thousands of images over which a new resolution fades "
                                        "in.", flag="lod-transition-kimg", resume=True)
    lod_initial_resolution: int = option(8, "Configs A-D: the first resolution.", resume=True)
    resolution_dicts: bool = option(True, "Configs A-D: the official per-resolution minibatch and learning rate "
                                    "(False: batch, batch_gpu and lr at every resolution).", resume=True)
    # Adaptive discriminator augmentation (ADA; stylegan2-ada-pytorch's --aug, --p, --target, --augpipe).
    aug: str = option("noaug", "Augment what D sees (reals and fakes): 'ada' adjusts the strength p to keep "
                      "E[sign(D(reals))] at --target (recommended for small datasets: a few thousand images or "
                      "fewer), 'fixed' uses --p, 'noaug' (the paper's configs) none.", flag="aug", resume=True,
                      choices=AUG_MODES, before="noaug")
    augment_p: Optional[float] = option(None, "--aug fixed: the augmentation strength p in [0, 1].", flag="p",
                                        resume=True)
    ada_target: float = option(0.6, "--aug ada: the target of E[sign(D(reals))], in (0, 1).", flag="target",
                               resume=True)
    augpipe: str = option("bgc", "The augmentations (stylegan2-ada-pytorch's presets): blit, geom, color, "
                          "filter, noise, cutout, bg, bgc, bgcf, bgcfn, bgcfnc.", flag="augpipe", resume=True,
                          choices=tuple(AUGMENT_PRESETS))
    ada_kimg: float = option(500.0, "--aug ada: thousands of images over which p can move by 1.", flag="ada-kimg",
                             resume=True)
    # Transfer learning: the networks of a pickle, with D's first layers frozen.
    resume_pkl: Optional[str] = option(None, "Start a new run from the networks of this pickle (NVIDIA's TF1, "
                                       "stylegan2-ada-pytorch or ours): G, D and G_ema, their architecture, widths, "
                                       "resolution, channels and labels come from it; Adam and pl_mean start "
                                       "afresh.", flag="resume-pkl", local=True)
    resume_kimg: float = option(0.0, "With --resume-pkl: the kimg the run's counters and schedule start at "
                                "(configs A-D: where the schedule's level of detail is the pickle's).",
                                flag="resume-kimg", resume=True)
    freeze_d: int = option(0, "Freeze-D: keep D's first N layers (from the image side: FromRGB, Conv0, Conv1, "
                           "Skip of each block) fixed.", flag="freeze-d", resume=True)
    # Network overrides.
    fmap_base: Optional[int] = option(None, "Override the config's fmap_base (small experiments).",
                                      flag="fmap-base", resume=True, network="fmap_base")
    fmap_max: Optional[int] = option(None, "Override fmap_max.", flag="fmap-max", resume=True, network="fmap_max")
    mapping_layers: Optional[int] = option(None, "Override the number of mapping layers.", flag="mapping-layers",
                                           resume=True, network="mapping_layers")
    latent_dim: Optional[int] = option(None, "Override z_dim = w_dim (small experiments).", flag="latent-dim",
                                       resume=True, network="z_dim")
    # Mixed precision (NVlabs/stylegan2-ada).
    fp16_res: int = option(0, "Compute the N highest resolutions of G and D in float16 (0 = float32 only).",
                           flag="fp16-res", resume=True, network="num_fp16_res")
    mixed_dtype: str = option("float16", "The --fp16-res blocks' dtype: float16 (with dynamic loss scaling; GPUs) "
                              "or bfloat16 (float32's range, no loss scaling; CPUs with AVX512-BF16/AMX, GPUs from "
                              "Ampere on).", flag="mixed-dtype", resume=True, choices=MIXED_DTYPES,
                              network="mixed_dtype")
    conv_clamp: Optional[float] = option(None, "Clamp conv outputs to +-X (default: 256 with --fp16-res > 0, else "
                                         "none).", flag="conv-clamp", resume=True, network="conv_clamp")
    # Speed settings (the same numbers either way).
    fused_modconv: Optional[bool] = option(None, "Force the fused (grouped) or non-fused modulated convolution "
                                           "(default: automatic, fused on GPUs and non-fused on CPUs; same numbers "
                                           "either way).", flag="fused-modconv")
    xla: str = option("none", "Compile these training phases with XLA: none, all, or a comma-separated list of "
                      f"{', '.join(PHASE_NAMES)} (one replica per process; the custom ops give way to the "
                      "reference ops inside XLA). A GPU setting: slower on CPUs.", flag="xla")
    # Misc.
    seed: int = option(1000, "Random seed (weights, latents, data order).", flag="seed", resume=True)
    metrics: str = option("none", "Metrics computed at every snapshot, e.g. fid50k,ppl_wend (none). "
                          "Feature-network files come from STYLEGAN2_TF_INCEPTION / _LPIPS / _VGG16 or the metrics "
                          "config file.", flag="metrics")
    metrics_num_images: Optional[int] = option(None, "Shorten the snapshot metrics to N fakes/reals (not the "
                                               "paper's protocol).", flag="metrics-num-images")
    grid_size: Optional[int] = option(None, "Snapshot image grid is N x N (default by resolution).",
                                      flag="grid-size")
    embed_module_src: Optional[str] = option(None, "File embedded as build_module_src in snapshots (for TF1 "
                                             "loading).", flag="embed-module-src", local=True)
    collective_timeout: float = option(600.0, "Multi-worker training: give up when the workers made no progress "
                                       "for this many seconds (a stalled worker; longer than the slowest snapshot "
                                       "save). 0 = never.", flag="collective-timeout", local=True)

    # -- what the config implies ----------------------------------------------------------------
    @property
    def progressive(self):
        return configs.is_progressive(self.config)

    @property
    def labels(self):
        """The label style in force: label_style, else the config's (configs.default_label_style)."""
        return self.label_style or configs.default_label_style(self.config)

    @property
    def lazy_regularization(self):
        return configs.has_lazy_regularization(self.config)

    @property
    def path_length(self):
        return configs.has_path_length(self.config) and self.pl_weight > 0

    @property
    def gamma(self):
        return float(self.r1_gamma) if self.r1_gamma is not None else configs.default_r1_gamma(self.config)

    @property
    def loss_scaling(self):
        """Dynamic loss scaling: float16 blocks only (bfloat16 has float32's exponent range)."""
        return self.fp16_res > 0 and self.mixed_dtype == "float16"

    @property
    def replicas(self):
        """Replicas over all workers (strategy.num_replicas_in_sync)."""
        return self.num_gpus * self.num_workers

    @property
    def rounds(self):
        """Gradient-accumulation rounds per minibatch (official minibatch multiplier)."""
        return self.batch // (self.batch_gpu * self.replicas)

    @property
    def xla_phases(self):
        """The phases `xla` names, in the order they run."""
        names = [n.strip() for n in str(self.xla).split(",") if n.strip()]
        if names in (["none"], []):
            return ()
        if names == ["all"]:
            return PHASE_NAMES
        unknown = [n for n in names if n not in PHASE_NAMES]
        if unknown:
            raise TrainingError(f"--xla {self.xla}: unknown phase(s) {', '.join(unknown)}; use 'none', 'all' or "
                                f"a comma-separated list of {', '.join(PHASE_NAMES)}")
        return tuple(n for n in PHASE_NAMES if n in names)

    def network_configs(self, resolution, channels, c_dim):
        return configs.network_configs(self, resolution, channels, c_dim)

    # -- checks -----------------------------------------------------------------------------------
    def validate(self):
        """-> self, or TrainingError naming the option."""
        if self.config not in configs.CONFIGS:
            raise TrainingError(f"--config {self.config!r} is unknown; choose from {', '.join(configs.CONFIGS)}")
        if self.batch < 1 or self.batch_gpu < 1 or self.num_gpus < 1 or self.num_workers < 1:
            raise TrainingError("--batch, --batch-gpu, --num-gpus and the number of workers must be >= 1")
        if self.batch % (self.batch_gpu * self.replicas):
            workers = f" ({self.num_workers} workers x {self.num_gpus})" if self.num_workers > 1 else ""
            raise TrainingError(f"--batch {self.batch} is not divisible by --batch-gpu {self.batch_gpu} x "
                                f"{self.replicas} replica(s){workers}")
        if self.batch_gpu % self.pl_batch_shrink and self.path_length:
            raise TrainingError(f"--batch-gpu {self.batch_gpu} must be divisible by the path-length batch shrink "
                                f"{self.pl_batch_shrink}")
        for name, low in (("total_kimg", None), ("minibatch_repeats", 1), ("snapshot_ticks", 0),
                          ("collective_timeout", 0), ("metrics_num_images", 2)):
            value = getattr(self, name)
            if value is not None and (value <= 0 if low is None else value < low):
                rule = "> 0" if low is None else f">= {low}"
                raise TrainingError(f"{self._flag(name)} must be {rule}, got {value}")
        if self.progressive:
            checks.validate_growth(self)
        if self.freeze_d < 0:
            raise TrainingError(f"--freeze-d must be >= 0, got {self.freeze_d}")
        if self.resume_kimg and not self.resume_pkl:
            raise TrainingError("--resume-kimg goes with --resume-pkl (--resume continues at the checkpoint's kimg)")
        if self.freeze_d and self.progressive:
            raise TrainingError(f"--freeze-d with --config {self.config}: Freeze-D applies to configs E and F")
        if self.resume_pkl:
            checks.validate_resume_pkl(self)
        if self.mixed_dtype != "float16" and self.fp16_res == 0:
            raise TrainingError(f"--mixed-dtype {self.mixed_dtype} applies to the --fp16-res blocks: give "
                                f"--fp16-res N (N > 0 highest resolutions)")
        checks.validate_labels(self)
        checks.validate_augmentation(self)
        if self.xla_phases and self.replicas > 1:  # (xla_phases also checks the names)
            raise TrainingError(f"--xla {self.xla}: XLA-compiled phases run with one replica per process; "
                                f"this run has {self.replicas} (--num-gpus / workers)")
        self._validate_networks()
        try:
            parse_metric_list(self.metrics)
        except MetricError as e:
            raise TrainingError(f"--metrics: {e}") from None
        return self

    def _validate_networks(self):
        """The network configs these options make (at 1024², the dataset's resolution is not known
        here) check the precision and size settings; their message is prefixed with the flags it
        names."""
        try:
            self.network_configs(1024, 3, 0)
        except ValueError as e:
            named = [f"{self._flag(f.name)} {getattr(self, f.name)}" for f in dataclasses.fields(self)
                     if f.metadata["network"] and f.metadata["network"] in str(e)]
            raise TrainingError(f"{', '.join(named) or '--config ' + self.config}: {e}") from None

    @staticmethod
    def _flag(name):
        flag = OPTION_FIELDS[name].metadata["flag"]
        return f"--{flag}" if flag else name

    # -- storage ---------------------------------------------------------------------------------
    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d):
        """Options as saved in training_options.json; fields a newer version added take the value
        that reproduces the older behaviour (`before`) or their defaults, fields it no longer has
        are dropped."""
        older = {k: f.metadata["before"] for k, f in OPTION_FIELDS.items() if "before" in f.metadata}
        return cls(**{**older, **{k: v for k, v in d.items() if k in OPTION_FIELDS}})

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


OPTION_FIELDS = {f.name: f for f in dataclasses.fields(TrainingOptions)}
# Options that must agree between a run and its resumption (the math of the run).
RESUME_INVARIANTS = tuple(name for name, f in OPTION_FIELDS.items() if f.metadata["resume"])
# Options that may differ between the workers of one run.
WORKER_LOCAL = tuple(name for name, f in OPTION_FIELDS.items() if f.metadata["local"])
