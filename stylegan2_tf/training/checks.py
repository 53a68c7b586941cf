"""The checks of TrainingOptions.validate() that concern one group of options (opts: the
TrainingOptions; their messages name the flags)."""

from .errors import TrainingError
from .schedule import GROWING_BATCH, GROWING_BATCH_GPU, growing_batches


def validate_growth(opts):
    """Configs A-D: the growing schedule and the official per-resolution batches."""
    if opts.lod_kimg < 0 or opts.lod_transition_kimg < 0 or opts.lod_kimg + opts.lod_transition_kimg <= 0:
        raise TrainingError(f"--lod-kimg {opts.lod_kimg:g} and --lod-transition-kimg "
                            f"{opts.lod_transition_kimg:g} must be >= 0 with a positive sum")
    r = opts.lod_initial_resolution
    if r < 4 or r & (r - 1):
        raise TrainingError(f"lod_initial_resolution must be a power of two >= 4, got {r}")
    if opts.resolution_dicts:
        for res in sorted(set(GROWING_BATCH) | set(GROWING_BATCH_GPU)) + [None]:
            batch, gpu = growing_batches(res)
            if batch % (gpu * opts.replicas):
                raise TrainingError(f"--config {opts.config}: the official minibatch {batch} at "
                                    f"{res or 'other resolutions'} is not divisible by {gpu} x {opts.replicas} "
                                    f"replicas; give --batch and --batch-gpu to use them at every resolution")


def validate_resume_pkl(opts):
    """--resume-pkl: the sizes come from the pickle."""
    given = [opts._flag(name) for name in ("fmap_base", "fmap_max", "mapping_layers", "latent_dim")
             if getattr(opts, name) is not None]
    if given:
        raise TrainingError(f"--resume-pkl {opts.resume_pkl}: the networks' sizes come from the pickle; "
                            f"leave out {', '.join(given)}")
    if opts.resume_kimg < 0:
        raise TrainingError(f"--resume-kimg must be >= 0, got {opts.resume_kimg:g}")


def validate_labels(opts):
    """--label-style: what the config's networks and the snapshot formats allow."""
    if opts.label_style == "ada" and opts.progressive:
        raise TrainingError(f"--label-style ada with --config {opts.config}: the growing discriminator of "
                            f"configs A-D conditions by projection only (--label-style stylegan2)")
    if opts.label_style == "stylegan2" and (opts.fp16_res or opts.conv_clamp is not None):
        raise TrainingError("--fp16-res and --conv-clamp go with --label-style ada: the NVlabs/stylegan2 "
                            "format of conditional 'stylegan2' snapshots records neither")


def validate_augmentation(opts):
    """--aug and its settings (stylegan2-ada-pytorch's rules)."""
    if opts.aug == "noaug":
        given = [opts._flag(name) for name in ("augment_p",) if getattr(opts, name) is not None]
        if given:
            raise TrainingError(f"{', '.join(given)} goes with --aug fixed")
        return
    if opts.progressive:
        raise TrainingError(f"--aug {opts.aug} with --config {opts.config}: augmentation trains configs E and F "
                            f"(the growing configs A-D have no ADA in NVIDIA's code)")
    if opts.aug == "fixed" and (opts.augment_p is None or not 0 <= opts.augment_p <= 1):
        raise TrainingError(f"--aug fixed needs --p in [0, 1], got {opts.augment_p}")
    if opts.aug == "ada":
        if opts.augment_p is not None:
            raise TrainingError("--p goes with --aug fixed; --aug ada starts at p = 0 and adjusts it")
        if not 0 < opts.ada_target < 1:
            raise TrainingError(f"--target must be in (0, 1), got {opts.ada_target}")
        if not opts.ada_kimg > 0:
            raise TrainingError(f"--ada-kimg must be > 0, got {opts.ada_kimg}")
    if opts.xla_phases:
        raise TrainingError(f"--aug {opts.aug} with --xla {opts.xla}: the geometric augmentations pad by a margin "
                            f"known only at run time, which XLA does not compile")
