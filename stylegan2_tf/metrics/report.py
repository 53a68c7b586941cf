"""Metric results on disk: `metric-<name>.txt` (one line per result, NVIDIA's layout) and
`metric-<name>.jsonl` (the whole result with its settings), written alike by run_metrics.py
and by the training loop at its snapshots."""

import datetime
import json
import os


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


def format_values(results):
    """'fid50k 12.3456' (small values with significant digits: 'ppl 3.2e-05')."""
    return " ".join(f"{k} {v:.4f}" if abs(v) >= 1e-3 or v == 0 else f"{k} {v:.6g}" for k, v in results.items())


def metric_line(network, result):
    """NVIDIA's line: '<network name> time <t> <name> <value> ...', marked when shortened."""
    marker = "" if result["protocol"] == "paper" else \
        f" [shortened: {result['num_fakes']} fakes, not the paper's protocol]"
    stem = os.path.splitext(os.path.basename(network))[0]
    return f"{stem} time {format_time(result['seconds'])} {format_values(result['results'])}{marker}"


def write_metric_result(result_dir, network, result, **fields):
    """Append `result` (a compute_metric dict) for the network file `network` to
    <result_dir>/metric-<name>.txt and .jsonl; `fields` join the JSON record. -> the text line."""
    os.makedirs(result_dir, exist_ok=True)
    line = metric_line(network, result)
    with open(os.path.join(result_dir, f"metric-{result['metric']}.txt"), "a") as f:
        f.write(line + "\n")
    record = dict(result, network=os.path.abspath(network),
                  timestamp=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), **fields)
    with open(os.path.join(result_dir, f"metric-{result['metric']}.jsonl"), "a") as f:
        f.write(json.dumps(record) + "\n")
    return line
