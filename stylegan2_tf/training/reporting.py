"""What a run reports: log.txt (and stdout), the tick line, stats.jsonl, TensorBoard scalars,
and the metrics of its snapshots (through metrics.report, as run_metrics.py writes them).

`TickStats` collects the phases' loss statistics between two tick ends, out of the loop; a
non-finite value stops training there (the last snapshot stays untouched).
"""

import json
import math
import os
import resource
import time

import tensorflow as tf

from ..metrics.report import format_time, write_metric_result
from .errors import TrainingError

STATS_FILE = "stats.jsonl"
# Record keys that are positions, not quantities: not sent to TensorBoard.
_NOT_SCALARS = ("tick", "timestamp", "minibatch", "kimg", "resolution")


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


def cpu_mem_gb():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 30
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def gpu_mem_gb():
    try:
        if tf.config.list_logical_devices("GPU"):
            return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2 ** 30
    except (ValueError, tf.errors.OpError):
        pass
    return 0.0


class TickStats:
    """Sums of the per-minibatch statistics (tensors from the phases) over one tick."""

    def __init__(self):
        self.sums, self.counts = {}, {}

    def add(self, stats, minibatch, nimg):
        for k, v in stats.items():
            v = float(v.numpy())
            if not math.isfinite(v):
                raise TrainingError(f"non-finite {k} ({v}) at minibatch {minibatch} (kimg {nimg / 1000:.3f}); "
                                    f"stopping, the last snapshot is untouched")
            self.sums[k] = self.sums.get(k, 0.0) + v
            self.counts[k] = self.counts.get(k, 0) + 1

    def means(self):
        """-> {name: mean over the tick}, and starts the next tick."""
        means = {k: self.sums[k] / self.counts[k] for k in self.sums}
        self.sums, self.counts = {}, {}
        return means


class Reporter:
    """Writes a run's reports: files and TensorBoard events on the chief only (the other workers
    get a no-op summary writer and write no files)."""

    def __init__(self, run_dir, log, is_chief):
        self.run_dir, self.log, self.is_chief = run_dir, log, is_chief
        self.summary = tf.summary.create_file_writer(run_dir) if is_chief else tf.summary.create_noop_writer()

    def _append_stats(self, record):
        if self.is_chief:
            with open(os.path.join(self.run_dir, STATS_FILE), "a") as f:
                f.write(json.dumps(record) + "\n")

    def tick(self, record, stage):
        """One tick's end: the tick line, its stats.jsonl record and TensorBoard scalars.
        record: tick, kimg, minibatch, time, sec_per_tick, sec_per_kimg, maintenance, the means."""
        record = dict(record, img_per_sec=1000 / record["sec_per_kimg"], cpumem_gb=cpu_mem_gb(),
                      gpumem_gb=gpu_mem_gb(), timestamp=time.time())
        if stage.lod is not None:
            record.update(lod=stage.lod, resolution=stage.resolution)
        nimg = int(round(record["kimg"] * 1000))
        kimg_text = f"{record['kimg']:.1f}" if nimg >= 10000 else f"{record['kimg']:.3f}"
        lod_text = f"lod {stage.lod:<5.2f} " if stage.lod is not None else ""
        self.log(f"tick {record['tick']:<5d} kimg {kimg_text:<8s} {lod_text}minibatch {stage.batch:<5d} "
                 f"time {format_time(record['time']):<12s} sec/tick {record['sec_per_tick']:<7.1f} "
                 f"sec/kimg {record['sec_per_kimg']:<7.2f} maintenance {record['maintenance']:<6.1f} "
                 f"cpumem {record['cpumem_gb']:<5.2f} gpumem {record['gpumem_gb']:<5.2f}"
                 f"{self._augment_text(record)}")
        self._append_stats(record)
        with self.summary.as_default():
            for k, v in record.items():
                if k not in _NOT_SCALARS:
                    tf.summary.scalar(k if "/" in k else f"Progress/{k}", v, step=nimg)

    @staticmethod
    def _augment_text(record):
        """The tick line's augmentation fields: p (as NVIDIA's 'augment') and E[sign(D(reals))]."""
        signs = record.get("Loss/signs/real")
        return f" augment {record.get('Progress/augment', 0.0):.3f}" + ("" if signs is None else f" r_t {signs:.3f}")

    def image(self, name, grid, nimg):
        with self.summary.as_default():
            tf.summary.image(name, grid[None], step=nimg)

    def metrics(self, snapshot_name, results, tick, nimg):
        """The snapshot's metric results (compute_metric dicts): log lines, metric-<name>.txt /
        .jsonl, TensorBoard `Metrics/<name>` and one stats.jsonl record."""
        record = {"tick": tick, "kimg": nimg / 1000, "snapshot_pkl": snapshot_name, "timestamp": time.time()}
        for result in results:
            line = write_metric_result(self.run_dir, os.path.join(self.run_dir, snapshot_name), result,
                                       snapshot_pkl=snapshot_name, kimg=nimg / 1000, tick=tick)
            self.log(line)
            with self.summary.as_default():
                for k, v in result["results"].items():
                    tf.summary.scalar(f"Metrics/{k}", v, step=nimg)
            record.update({f"Metrics/{k}": v for k, v in result["results"].items()})
        self._append_stats(record)

    def flush(self):
        self.summary.flush()


class TickClock:
    """Wall-clock bookkeeping of ticks: time since the start, per tick and per kimg, and the
    maintenance (snapshots, metrics) done at the last tick's end."""

    def __init__(self, nimg):
        self.start = time.time()
        self.tick_start, self.tick_start_nimg = self.start, nimg
        self.maintenance = 0.0
        self.maintenance_start = None

    def tick_ends(self, nimg):
        """-> the timing fields of the tick ending at `nimg` images."""
        now = time.time()
        seconds = now - self.tick_start
        self.maintenance_start = now
        return {"time": now - self.start, "sec_per_tick": seconds,
                "sec_per_kimg": seconds / ((nimg - self.tick_start_nimg) / 1000), "maintenance": self.maintenance}

    def next_tick(self, nimg):
        self.tick_start = time.time()
        self.maintenance = self.tick_start - self.maintenance_start
        self.tick_start_nimg = nimg
