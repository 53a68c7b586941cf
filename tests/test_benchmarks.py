"""benchmarks/train.py, the script GPU users run to size --batch-gpu, on a tiny network: it trains,
its memory figure counts the step's tensors (at least every variable the step keeps alive), and its
profile (--profile, --profile-first) and generate.py's add up; the splitting itself is checked in
tests/test_op_profile.py."""

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
           "--batch", "2", "--batch-gpu", "2", "--steps", "1", "--profile", "1", "--profile-first"]
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
    check_profiles(out, ["G_main", "G_pl", "D_main", "D_r1"])
    # The first call's extra time: its two parts add up to it.
    m = re.search(r"first call ([0-9.]+) s, the same again ([0-9.]+) s: (-?[0-9.]+) s more = (-?[0-9.]+) s with no op "
                  r"running .* \+ (-?[0-9.]+) s more inside ops", out)
    assert m, out[-3000:]
    first, again, more, idle, inside = map(float, m.groups())
    assert more == pytest.approx(first - again, abs=0.11) and more == pytest.approx(idle + inside, abs=0.11)


def check_profiles(out, names):
    """Each `profile NAME:` block: busy time within the wall time, the kinds adding up to it."""
    for name in names:
        block = re.search(rf"profile {name}: wall ([0-9.]+) s per call .*?: ops running ([0-9.]+) s "
                          rf"\(([0-9]+) %\), none running ([0-9.]+) s[^\n]*\n((?:  [^\n]*\n)+)", out)
        assert block, (name, out[-3000:])
        wall, busy, busy_pct, idle = (float(v) for v in block.groups()[:4])
        assert busy <= wall + 1e-3 and busy + idle == pytest.approx(wall, abs=2e-3)
        assert busy_pct == pytest.approx(100 * busy / wall, abs=0.5 + 0.11 / wall)  # to 1 ms
        # The kinds' shares of the wall time (printed to 0.1 %) add up to the busy share (to 1 %).
        shares = [float(v) for v in re.findall(r"^  \S.*?\s[0-9.]+ s \(\s*([0-9.]+) %\)", block.group(5), re.M)]
        assert shares and sum(shares) == pytest.approx(busy_pct, abs=0.5 + 0.05 * len(shares)), block.group(0)
        assert re.search(r"convolution .* forward [0-9.]+\s+backward [0-9.]+", block.group(5)), block.group(0)


def test_generate_benchmark_profile_counts_the_convolutions():
    cmd = [sys.executable, str(ROOT / "benchmarks" / "generate.py"), "--res", "32", "--fmap-base", "256",
           "--batch", "2", "--reps", "1", "--warmup", "1", "--modconv", "nonfused", "--profile", "1"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env(CUDA_VISIBLE_DEVICES=""),
                         timeout=600, cwd=str(ROOT))
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout.replace("profile nonfused:", "profile generate:")
    check_profiles(out, ["generate"])
    # A forward pass: no op inside a gradient, and the convolutions' rate printed.
    assert re.search(r"convolution .* forward [0-9.]+\s+backward 0\.000\s+-> [0-9]+ GFLOP/s", out), out


@pytest.mark.parametrize("script", ["train.py", "generate.py"])
def test_a_negative_profile_count_is_refused(script):
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--profile", "-1"], capture_output=True,
                         text=True, env=subprocess_env(CUDA_VISIBLE_DEVICES=""), timeout=300, cwd=str(ROOT))
    assert res.returncode != 0 and "--profile=-1: -1 is not a non-negative integer" in res.stderr, res.stderr[-2000:]
    assert "Traceback" not in res.stderr


def test_strided_conv_benchmark_prints_each_form_and_the_rule():
    """benchmarks/strided_conv.py (the source of the strided filter-gradient rule's figures): one row
    per shape with six positive rates and the form the rule picks for that shape here."""
    cmd = [sys.executable, str(ROOT / "benchmarks" / "strided_conv.py"), "--shapes", "64:32:64,32:64:64",
           "--batch", "2", "--repeats", "1"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env(CUDA_VISIBLE_DEVICES=""),
                         timeout=600, cwd=str(ROOT))
    assert res.returncode == 0, res.stderr[-3000:]
    rows = re.findall(r"^\| (\d+) \| (\d+) \| (\d+) \|((?: \d+ \|){6}) (phases|kernel) \|$", res.stdout, re.M)
    assert [row[:3] for row in rows] == [("64", "32", "64"), ("32", "64", "64")], res.stdout
    import tensorflow as tf
    from stylegan2_tf.ops.strided_conv_2d import strided_filter_gradient_form
    for side, c, o, rates, form in rows:
        assert all(int(r) > 0 for r in rates.replace("|", " ").split())
        x = tf.zeros([1, int(side) + 1, int(side) + 1, int(c)])
        assert form == strided_filter_gradient_form(x, tf.zeros([3, 3, int(c), int(o)])), (side, form)
