"""Metrics during training: run_training.py --metrics at every snapshot, files from the environment."""

import json
import pytest

from conftest import ROOT, run_python
from feature_net_weights import write_tiny_feature_files

pytestmark = pytest.mark.slow



def test_training_computes_metrics_at_snapshots(tmp_path):
    from stylegan2_tf.data.synthetic import create_shapes_dataset
    create_shapes_dataset(str(tmp_path / "shapes16"), num_images=32, resolution=16)
    files = write_tiny_feature_files(tmp_path)
    config = tmp_path / "metrics.json"   # one file from the config, one from the environment
    config.write_text(json.dumps({"lpips": files["lpips"].split(",")}))
    env = {"STYLEGAN2_TF_INCEPTION": files["inception"], "STYLEGAN2_TF_METRICS_CONFIG": str(config)}
    r = run_python([ROOT / "run_training.py", "--data-dir", tmp_path, "--dataset", "shapes16", "--result-dir",
                    tmp_path / "results", "--config", "config-f", "--fmap-base", "64", "--fmap-max", "16",
                    "--latent-dim", "16", "--mapping-layers", "2", "--batch", "8", "--batch-gpu", "8",
                    "--total-kimg", "0.016", "--tick-kimg", "0.008", "--snapshot-ticks", "1",
                    "--metrics", "fid50k_full,ppl2_wend", "--metrics-num-images", "8"], env=env, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    (run_dir,) = [p for p in (tmp_path / "results").iterdir() if p.is_dir() and not p.name.startswith(".")]
    fid_lines = (run_dir / "metric-fid50k_full.txt").read_text().splitlines()
    # The layout run_metrics.py writes (metrics/report.py), for the snapshot's pickle.
    assert len(fid_lines) >= 1 and fid_lines[0].startswith("network-snapshot-")
    assert "[shortened: 8 fakes, not the paper's protocol]" in fid_lines[0]
    fid_records = [json.loads(line) for line in (run_dir / "metric-fid50k_full.jsonl").read_text().splitlines()]
    assert len(fid_records) == len(fid_lines) and fid_records[0]["protocol"] == "shortened"
    assert fid_records[0]["network"] == str(run_dir / fid_records[0]["snapshot_pkl"])
    assert fid_records[0]["kimg"] > 0 and fid_records[0]["num_fakes"] == 8
    records = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    metric_records = [rec for rec in records if "Metrics/fid50k_full" in rec]
    assert len(metric_records) == len(fid_lines) and all("Metrics/ppl2_wend" in rec for rec in metric_records)
    assert metric_records[-1]["snapshot_pkl"].startswith("network-snapshot-")
    log = (run_dir / "log.txt").read_text()
    assert "fid50k_full" in log and "ppl2_wend" in log
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(run_dir)).Reload()
    assert "Metrics/fid50k_full" in events.Tags()["tensors"] + events.Tags()["scalars"]
