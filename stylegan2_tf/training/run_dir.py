"""The run directory: a new one per run (results/NNNNN-<desc>), or the one a run resumes,
with the options it was started with (training_options.json) and its checkpoints/.

Several workers: every worker checks its dataset and options, and the chief opens the run
directory; two all-gathers make every worker fail alike (`agree_on_run_dir`).
"""

import json
import os
import re

import tensorflow as tf

from ..data import read_dataset_info
from ..data.errors import DatasetError
from ..networks import DiscriminatorConfig, GeneratorConfig
from .cluster import all_gather_json
from .errors import TrainingError
from .options import RESUME_INVARIANTS, WORKER_LOCAL, TrainingOptions

OPTIONS_FILE = "training_options.json"
CHECKPOINT_DIR = "checkpoints"


def checkpoint_dir(run_dir):
    return os.path.join(run_dir, CHECKPOINT_DIR)


def new_run_dir(result_dir, desc):
    """results/NNNNN-<desc>, NNNNN one past the highest existing id."""
    os.makedirs(result_dir, exist_ok=True)
    ids = [int(m.group(1)) for m in (re.match(r"^(\d+)-", d) for d in os.listdir(result_dir)) if m]
    path = os.path.join(result_dir, f"{max(ids, default=-1) + 1:05d}-{desc}")
    os.makedirs(path)
    return path


def find_resume_dir(resume, result_dir):
    """--resume: 'latest' (newest run in result_dir with a checkpoint), a run directory,
    or a checkpoint directory / prefix inside one. -> run directory."""
    if resume == "latest":
        runs = []
        if os.path.isdir(result_dir):
            for d in os.listdir(result_dir):
                full = os.path.join(result_dir, d)
                if re.match(r"^\d+-", d) and tf.train.latest_checkpoint(checkpoint_dir(full)):
                    runs.append(full)
        if not runs:
            raise TrainingError(f"--resume latest: no run with a checkpoint under {result_dir}")
        return sorted(runs)[-1]
    path = os.path.abspath(resume)
    for cand in (path, os.path.dirname(path), os.path.dirname(os.path.dirname(path))):
        if os.path.isfile(os.path.join(cand, OPTIONS_FILE)):
            if not tf.train.latest_checkpoint(checkpoint_dir(cand)):
                raise TrainingError(f"--resume {resume}: run {cand} has no checkpoint yet")
            return cand
    raise TrainingError(f"--resume {resume}: not a run directory or checkpoint of this trainer")


def read_run_file(run_dir):
    """-> (TrainingOptions, {'resolution', 'channels', 'label_size'[, 'networks']}) of a run directory."""
    with open(os.path.join(run_dir, OPTIONS_FILE)) as f:
        saved = json.load(f)
    return TrainingOptions.from_dict(saved["options"]), {k: v for k, v in saved.items() if k != "options"}


def saved_options(resume, result_dir):
    """The TrainingOptions a run was started with (for --resume), with today's result_dir."""
    opts, _ = read_run_file(find_resume_dir(resume, result_dir))
    return opts.replace(result_dir=result_dir)


def open_dataset(opts):
    """-> (dataset path, DatasetInfo) of --data-dir/--dataset."""
    path = os.path.join(opts.data_dir, opts.dataset)
    if not opts.dataset or not os.path.isdir(path):
        raise TrainingError(f"dataset {path!r} not found (--data-dir / --dataset)")
    try:
        return path, read_dataset_info(path)
    except DatasetError as e:
        raise TrainingError(f"dataset {path}: {e}") from None


def open_run_dir(opts, info, resume, networks=None):
    """The run directory: new (with its options file, and `networks` (G and D configs) when they
    do not follow from the options alone), or the resumed run's, whose options and resolution
    must match."""
    if not resume:
        workers = f"{opts.num_workers}x" if opts.num_workers > 1 else ""
        run_dir = new_run_dir(opts.result_dir, f"{opts.dataset}-{opts.config}-{workers}{opts.num_gpus}gpu")
        record = {"options": opts.to_dict(), "resolution": info.resolution, "channels": info.channels,
                  "label_size": info.label_size}
        if networks is not None:
            record["networks"] = {"G": networks[0].to_dict(), "D": networks[1].to_dict()}
        with open(os.path.join(run_dir, OPTIONS_FILE), "w") as f:
            json.dump(record, f, indent=2, sort_keys=True)
        return run_dir
    run_dir = find_resume_dir(resume, opts.result_dir)
    saved, meta = read_run_file(run_dir)
    diffs = [k for k in RESUME_INVARIANTS if getattr(saved, k) != getattr(opts, k)]
    if diffs:
        raise TrainingError(f"--resume {resume}: the run was made with different settings: " + ", ".join(
            f"{k}={getattr(saved, k)!r} (now {getattr(opts, k)!r})" for k in diffs))
    if meta["resolution"] != info.resolution:
        raise TrainingError(f"dataset {os.path.join(opts.data_dir, opts.dataset)} is {info.resolution}x"
                            f"{info.resolution}, the checkpoint in {run_dir} is {meta['resolution']}x"
                            f"{meta['resolution']}")
    return run_dir


def saved_network_configs(run_dir):
    """(GeneratorConfig, DiscriminatorConfig) a run recorded, or None (they follow from its options)."""
    networks = read_run_file(run_dir)[1].get("networks")
    if networks is None:
        return None
    return GeneratorConfig.from_dict(networks["G"]), DiscriminatorConfig.from_dict(networks["D"])


def agree_on_run_dir(opts, strategy, cluster, resume, new_networks=lambda info: None):
    """Multi-worker setup -> (run directory, dataset path, DatasetInfo, checkpoint to restore).
    Two all-gathers so that every worker fails alike: (1) each worker's dataset check and
    options (which must equal the chief's, WORKER_LOCAL ones aside); (2) the chief opens the
    run directory (new or resumed; `new_networks(info)`: the network configs a new run records)
    and shares its path and the checkpoint to restore. The run directory's path must mean the
    same on every worker (a shared filesystem)."""
    mine = {"error": None, "options": {k: v for k, v in opts.to_dict().items() if k not in WORKER_LOCAL},
            "dataset": None}
    dataset = (None, None)
    try:
        dataset = open_dataset(opts)
        info = dataset[1]
        # What must be the same dataset on every worker (its path may differ): shape, size, labels.
        mine["dataset"] = {"resolution": info.resolution, "channels": info.channels, "images": info.num_images,
                           "label_size": info.label_size, "records_per_file": list(info.file_counts)}
    except TrainingError as e:
        mine["error"] = str(e)
    everyone = all_gather_json(strategy, cluster, mine)
    failed = [f"{cluster.name(i)}: {p['error']}" for i, p in enumerate(everyone) if p["error"]]
    if failed:
        raise TrainingError("; ".join(failed))
    chief_opts, chief_data = everyone[0]["options"], everyone[0]["dataset"]
    for i, p in enumerate(everyone[1:], 1):
        diffs = [f"{k}={p['options'].get(k)!r} (chief: {v!r})" for k, v in chief_opts.items()
                 if p["options"].get(k) != v]
        if diffs:
            raise TrainingError(f"{cluster.name(i)} has other options than the chief: {', '.join(diffs)}")
        diffs = [f"{k} {p['dataset'][k]} (chief: {v})" for k, v in chief_data.items() if p["dataset"][k] != v]
        if diffs:
            raise TrainingError(f"{cluster.name(i)} has another dataset {opts.dataset!r} than the chief: "
                                f"{', '.join(diffs)}")
    mine = None
    if cluster.is_chief:
        mine = {"error": None, "run_dir": None, "checkpoint": None}
        try:
            networks = None if resume else new_networks(dataset[1])
            mine["run_dir"] = os.path.abspath(open_run_dir(opts, dataset[1], resume, networks))
            if resume:
                mine["checkpoint"] = tf.train.latest_checkpoint(checkpoint_dir(mine["run_dir"]))
        except TrainingError as e:
            mine["error"] = str(e)
    chief = all_gather_json(strategy, cluster, mine)[0]
    if chief["error"]:
        raise TrainingError(f"{cluster.name(0)}: {chief['error']}")
    return chief["run_dir"], dataset[0], dataset[1], chief["checkpoint"]
