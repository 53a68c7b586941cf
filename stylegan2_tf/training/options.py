"""Training options and the paper's configurations (NVlabs/stylegan2 run_training.py).

  config-a                      StyleGAN1 G_style + D_basic, progressive growing, R1 every
                                minibatch (not lazy), no path length; fmap_base 8192
  config-b                      + weight demodulation: revised synthesis + D_stylegan
  config-c                      + lazy regularization
  config-d                      + path length regularization
  config-e                      fmap_base 8192,  R1 gamma 100, no growing, skip G / resnet D
  config-f                      fmap_base 16384, R1 gamma 10
  config-e-G{orig,skip,resnet}-D{orig,skip,resnet}   Table 2's architecture grid (config E)
Common: global batch 32, 4 per GPU, Adam lr 0.002 beta1 0 beta2 0.99 eps 1e-8, lazy
regularization (G every 4, D every 16 minibatches), path length weight 2 on half
batches, style mixing 0.9, G EMA half-life 10 kimg, mapping lrmul 0.01.
Configs A-D grow from 8x8 (600 kimg per resolution + 600 kimg fade), with the official
per-resolution minibatch (256 at 8x8 ... 32 from 128x128) and learning rate (0.001 up to
64x64 ... 0.003 at 512x512 and up); training/schedule.py.
"""

import dataclasses
import json
from dataclasses import dataclass
from typing import Optional

from ..networks import DiscriminatorConfig, GeneratorConfig
from ..networks.config import MIXED_DTYPES

# kimg per tick by resolution (official schedule); 4 for resolutions not listed.
TICK_KIMG = {8: 28, 16: 24, 32: 20, 64: 16, 128: 12, 256: 8, 512: 6, 1024: 4}

ARCHS = ("orig", "skip", "resnet")
GROWING_CONFIGS = ("config-a", "config-b", "config-c", "config-d")
CONFIGS = GROWING_CONFIGS + ("config-e", "config-f") + tuple(f"config-e-G{g}-D{d}" for g in ARCHS for d in ARCHS)


class TrainingError(ValueError):
    """Bad training input, caught before training starts (or a fatal training condition)."""


@dataclass
class TrainingOptions:
    # What to train on.
    data_dir: str = "datasets"
    dataset: str = ""
    result_dir: str = "results"
    config: str = "config-f"
    mirror_augment: bool = False
    # Length and schedule.
    total_kimg: float = 25000
    tick_kimg: Optional[float] = None      # None = TICK_KIMG by resolution
    snapshot_ticks: int = 10
    minibatch_repeats: int = 4             # minibatches between tick checks (official structure; math unchanged)
    image_snapshot_ticks: Optional[int] = None  # None = snapshot_ticks
    # Batches.
    batch: int = 32
    batch_gpu: int = 4
    num_gpus: int = 1                      # replicas (GPUs) per worker
    num_workers: int = 1                   # workers (processes, usually machines); set from the cluster
    # Optimization.
    lr: float = 0.002
    beta1: float = 0.0
    beta2: float = 0.99
    epsilon: float = 1e-8
    r1_gamma: Optional[float] = None       # None = config default
    g_reg_interval: int = 4
    d_reg_interval: int = 16
    pl_weight: float = 2.0
    pl_decay: float = 0.01
    pl_batch_shrink: int = 2
    style_mixing_prob: float = 0.9
    ema_kimg: float = 10.0
    # Progressive growing (configs A-D): kimg per resolution and per fade, the first resolution,
    # and whether the official per-resolution minibatch / learning-rate dictionaries apply (False:
    # batch, batch_gpu and lr stay as given at every resolution).
    lod_kimg: float = 600.0
    lod_transition_kimg: float = 600.0
    lod_initial_resolution: int = 8
    resolution_dicts: bool = True
    # Network overrides.
    fmap_base: Optional[int] = None
    fmap_max: Optional[int] = None
    mapping_layers: Optional[int] = None
    latent_dim: Optional[int] = None       # z_dim = w_dim (small experiments)
    # Mixed precision (NVlabs/stylegan2-ada): float16 in the fp16_res highest resolutions of
    # G and D; conv_clamp None = 256 when fp16_res > 0 (ADA's value), else no clamp.
    # mixed_dtype 'bfloat16' computes those blocks in bfloat16 instead: float32's range, so
    # no loss scaling (CPUs with AVX512-BF16/AMX, GPUs from Ampere on).
    fp16_res: int = 0
    mixed_dtype: str = "float16"
    conv_clamp: Optional[float] = None
    # Modulated-conv form: None = automatic (fused on GPUs, non-fused on CPUs); True/False forces it.
    fused_modconv: Optional[bool] = None
    # Phases compiled with XLA (jit_compile): 'none', 'all' or names from training.phases.PHASES,
    # comma-separated. Inside XLA the custom ops give way to the reference ops; one replica only.
    xla: str = "none"
    # Misc.
    seed: int = 1000
    metrics: str = "none"                  # metric names computed at every snapshot (stylegan2_tf.metrics)
    metrics_num_images: Optional[int] = None  # shorten those metrics (not the paper's protocol)
    grid_size: Optional[int] = None        # snapshot grid is grid_size x grid_size (default by resolution)
    embed_module_src: Optional[str] = None  # file whose text goes into snapshots' build_module_src
    collective_timeout: float = 600.0      # multi-worker: seconds without progress before giving up (0 = never)

    @property
    def loss_scaling(self):
        """Dynamic loss scaling: float16 blocks only (bfloat16 has float32's exponent range)."""
        return self.fp16_res > 0 and self.mixed_dtype == "float16"

    @property
    def xla_phases(self):
        """The phases `xla` names, as a tuple in PHASES order."""
        from .phases import PHASES
        names = [n.strip() for n in str(self.xla).split(",") if n.strip()]
        if names in (["none"], []):
            return ()
        if names == ["all"]:
            return PHASES
        unknown = [n for n in names if n not in PHASES]
        if unknown:
            raise TrainingError(f"--xla {self.xla}: unknown phase(s) {', '.join(unknown)}; use 'none', 'all' or "
                                f"a comma-separated list of {', '.join(PHASES)}")
        return tuple(n for n in PHASES if n in names)

    def validate(self):
        if self.config not in CONFIGS:
            raise TrainingError(f"--config {self.config!r} is unknown; choose from {', '.join(CONFIGS)}")
        if self.batch < 1 or self.batch_gpu < 1 or self.num_gpus < 1 or self.num_workers < 1:
            raise TrainingError("--batch, --batch-gpu, --num-gpus and the number of workers must be >= 1")
        if self.batch % (self.batch_gpu * self.replicas):
            workers = f" ({self.num_workers} workers x {self.num_gpus})" if self.num_workers > 1 else ""
            raise TrainingError(f"--batch {self.batch} is not divisible by --batch-gpu {self.batch_gpu} x "
                                f"{self.replicas} replica(s){workers}")
        if self.collective_timeout < 0:
            raise TrainingError("--collective-timeout must be >= 0 (0 = no limit)")
        if self.progressive:
            self._validate_growth()
        if self.batch_gpu % self.pl_batch_shrink and self.path_length:
            raise TrainingError(f"--batch-gpu {self.batch_gpu} must be divisible by the path-length batch shrink "
                                f"{self.pl_batch_shrink}")
        if self.total_kimg <= 0:
            raise TrainingError("--total-kimg must be > 0")
        if self.minibatch_repeats < 1:
            raise TrainingError("minibatch_repeats must be >= 1")
        if self.snapshot_ticks < 0:
            raise TrainingError("--snapshot-ticks must be >= 0")
        if self.fp16_res < 0:
            raise TrainingError("--fp16-res must be >= 0")
        if self.mixed_dtype not in MIXED_DTYPES:
            raise TrainingError(f"--mixed-dtype must be one of {', '.join(MIXED_DTYPES)}, got {self.mixed_dtype!r}")
        if self.mixed_dtype != "float16" and self.fp16_res == 0:
            raise TrainingError(f"--mixed-dtype {self.mixed_dtype} applies to the --fp16-res blocks: give "
                                f"--fp16-res N (N > 0 highest resolutions)")
        if self.xla_phases and self.replicas > 1:  # (xla_phases also checks the names)
            raise TrainingError(f"--xla {self.xla}: XLA-compiled phases run with one replica per process; "
                                f"this run has {self.replicas} (--num-gpus / workers)")
        if self.conv_clamp is not None and not self.conv_clamp > 0:
            raise TrainingError("--conv-clamp must be > 0")
        from stylegan2_tf.metrics.definitions import MetricError, parse_metric_list
        try:
            parse_metric_list(self.metrics)
        except MetricError as e:
            raise TrainingError(f"--metrics: {e}") from None
        if self.metrics_num_images is not None and self.metrics_num_images < 2:
            raise TrainingError("--metrics-num-images must be at least 2")
        return self

    def _validate_growth(self):
        if self.lod_kimg < 0 or self.lod_transition_kimg < 0 or self.lod_kimg + self.lod_transition_kimg <= 0:
            raise TrainingError(f"--lod-kimg {self.lod_kimg:g} and --lod-transition-kimg "
                                f"{self.lod_transition_kimg:g} must be >= 0 with a positive sum")
        r = self.lod_initial_resolution
        if r < 4 or r & (r - 1):
            raise TrainingError(f"lod_initial_resolution must be a power of two >= 4, got {r}")
        if self.fp16_res:
            raise TrainingError(f"--config {self.config} (progressive growing) trains in float32: --fp16-res must "
                                f"be 0")
        if self.resolution_dicts:
            from .schedule import GROWING_BATCH, GROWING_BATCH_BASE, GROWING_BATCH_GPU, GROWING_BATCH_GPU_BASE
            for res in sorted(set(GROWING_BATCH) | set(GROWING_BATCH_GPU)) + [None]:
                batch = GROWING_BATCH.get(res, GROWING_BATCH_BASE)
                gpu = GROWING_BATCH_GPU.get(res, GROWING_BATCH_GPU_BASE)
                if batch % (gpu * self.replicas):
                    raise TrainingError(f"--config {self.config}: the official minibatch {batch} at "
                                        f"{res or 'other resolutions'} is not divisible by {gpu} x {self.replicas} "
                                        f"replicas; give --batch and --batch-gpu to use them at every resolution")

    @property
    def progressive(self):
        """Configs A-D grow progressively."""
        return self.config in GROWING_CONFIGS

    @property
    def lazy_regularization(self):
        """Configs A and B regularize every minibatch, in the main step (not lazily)."""
        return self.config not in ("config-a", "config-b")

    @property
    def path_length(self):
        """Path-length regularization: configs D, E and F."""
        return self.config not in ("config-a", "config-b", "config-c") and self.pl_weight > 0

    @property
    def gamma(self):
        if self.r1_gamma is not None:
            return float(self.r1_gamma)
        return 100.0 if self.config.startswith("config-e") else 10.0

    @property
    def replicas(self):
        """Replicas over all workers (strategy.num_replicas_in_sync)."""
        return self.num_gpus * self.num_workers

    @property
    def rounds(self):
        """Gradient-accumulation rounds per minibatch (official minibatch multiplier)."""
        return self.batch // (self.batch_gpu * self.replicas)

    def network_configs(self, resolution, channels, c_dim):
        fmap_base = self.fmap_base or (16384 if self.config == "config-f" else 8192)
        g_arch, d_arch = "skip", "resnet"
        if self.config == "config-a":
            g_arch, d_arch = "stylegan1", "basic"
        elif self.progressive:
            g_arch, d_arch = "revised", "stylegan"
        if self.config.startswith("config-e-"):
            parts = self.config.split("-")
            g_arch, d_arch = parts[2][1:], parts[3][1:]
        g_kw = dict(img_resolution=resolution, img_channels=channels, c_dim=c_dim, fmap_base=fmap_base,
                    architecture=g_arch, label_mode="concat", fused_modconv=self.fused_modconv)
        d_kw = dict(img_resolution=resolution, img_channels=channels, c_dim=c_dim, fmap_base=fmap_base,
                    architecture=d_arch, label_mode="project", mbstd_group_size=4)
        if self.fmap_max:
            g_kw["fmap_max"] = d_kw["fmap_max"] = self.fmap_max
        if self.mapping_layers:
            g_kw["mapping_layers"] = self.mapping_layers
        if self.latent_dim:
            g_kw.update(z_dim=self.latent_dim, w_dim=self.latent_dim, mapping_fmaps=self.latent_dim)
        clamp = self.conv_clamp
        if clamp is None and self.fp16_res > 0:
            clamp = 256.0
        for kw in (g_kw, d_kw):
            kw.update(num_fp16_res=int(self.fp16_res), mixed_dtype=self.mixed_dtype,
                      conv_clamp=None if clamp is None else float(clamp))
        return GeneratorConfig(**g_kw), DiscriminatorConfig(**d_kw)

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d):
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


# Options that must agree between a run and its resumption (the math of the run).
RESUME_INVARIANTS = ("dataset", "config", "batch", "batch_gpu", "num_gpus", "num_workers", "lr", "beta1", "beta2",
                     "epsilon", "g_reg_interval", "d_reg_interval", "pl_weight", "pl_decay", "pl_batch_shrink",
                     "style_mixing_prob", "ema_kimg", "fmap_base", "fmap_max", "mapping_layers", "latent_dim",
                     "mirror_augment", "seed", "fp16_res", "mixed_dtype", "conv_clamp", "lod_kimg",
                     "lod_transition_kimg", "lod_initial_resolution", "resolution_dicts")


def lazy_adam_params(lr, beta1, beta2, interval):
    """Lazy regularization (paper App. B): with the regularizer applied every `interval`
    minibatches, the optimizer of that network uses lr * c, beta1^c, beta2^c, c = k/(k+1)."""
    if not interval:
        return lr, beta1, beta2
    c = interval / (interval + 1.0)
    return lr * c, beta1 ** c, beta2 ** c


def ema_beta(batch, ema_kimg):
    """Per-minibatch decay of the G average: half-life of `ema_kimg` thousand images."""
    return 0.5 ** (batch / (ema_kimg * 1000.0)) if ema_kimg > 0 else 0.0
