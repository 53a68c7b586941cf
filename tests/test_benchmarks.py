"""benchmarks/train.py, the script GPU users run to size --batch-gpu, on a tiny network: it trains,
and its memory figure counts the step's tensors (at least every variable the step keeps alive)."""

import re
import subprocess
import sys
import pytest

from conftest import ROOT, subprocess_env

pytestmark = pytest.mark.slow


def test_train_benchmark_reports_an_allocator_peak_that_holds_the_variables():
    # With oneDNN on, TensorFlow's CPU allocator keeps statistics; with it off, only the BFC one does.
    env = subprocess_env(CUDA_VISIBLE_DEVICES="", TF_CPU_ALLOCATOR_USE_BFC="true")
    cmd = [sys.executable, str(ROOT / "benchmarks" / "train.py"), "--res", "16", "--fmap-base", "256",
           "--batch", "2", "--batch-gpu", "2", "--steps", "1"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=str(ROOT))
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout
    g, d = (int(n.replace(",", "")) for n in re.search(r"G ([0-9,]+) D ([0-9,]+) params", out).groups())
    peak = float(re.search(r"peak memory so far: ([0-9.]+) MiB \(allocator peak, CPU:0\)", out).group(1))
    rss = float(re.search(r"process peak RSS ([0-9.]+) MiB", out).group(1))
    # float32 G, its moving average, D, and Adam's two slots for each of G and D, all alive at once.
    variables_mib = 4 * (4 * g + 3 * d) / 2 ** 20
    assert variables_mib < peak < rss, (variables_mib, peak, rss)
    assert float(re.search(r"img/s: ([0-9.]+)", out).group(1)) > 0
