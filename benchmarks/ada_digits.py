"""ADA on small data, offline: the bundled digits setup (pretrained/README.md) trained on the first
200 of scikit-learn's 1,797 digits, once without augmentation and once with --aug ada, for the same
length; p and r_t over time from each run's stats.jsonl, and the quality of every snapshot's G_ema
fakes scored by a classifier fitted on all 1,797 digits:
  confident   the fraction of fakes the classifier gives one class with probability >= 0.9
  coverage    how many of the 10 classes the confident fakes cover
  balance     the entropy of the confident fakes' classes, in bits (log2 10 = 3.32: all equally often)
Fakes are scored as the scans were made: 32x32 grey averaged over 4x4 blocks to 8x8, 0..16.

  pip install ".[digits]"
  python benchmarks/ada_digits.py --workdir /tmp/ada-digits --kimg 20            # both runs, then scores
  python benchmarks/ada_digits.py --workdir /tmp/ada-digits --score-only          # scores again
  python benchmarks/ada_digits.py --workdir /tmp/ada-digits --kimg 60 --runs ada100  # p moving 5x faster
"""

import glob
import json
import os
import subprocess
import sys

import numpy as np
from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

flags.DEFINE_string("workdir", "/tmp/ada-digits", "Dataset and run directories go here.")
flags.DEFINE_float("kimg", 20.0, "Length of each run in thousands of images.")
flags.DEFINE_integer("images", 200, "The first N digits form the training set.")
flags.DEFINE_integer("fakes", 1000, "Fakes scored per snapshot.")
flags.DEFINE_bool("score_only", False, "Score existing runs only.")
flags.DEFINE_list("runs", ["noaug", "ada"], "Which of the runs below to train and score.")
FLAGS = flags.FLAGS
# ada100: p may move 5x faster than the default (--ada-kimg 500), so a short run reaches its balance.
RUNS = {"noaug": [], "ada": ["--aug", "ada"], "ada100": ["--aug", "ada", "--ada-kimg", "100"]}
# The bundled network's settings (pretrained/README.md), snapshots every 2 ticks.
COMMON = ["--fmap-base", "512", "--fmap-max", "128", "--latent-dim", "128", "--mapping-layers", "4", "--batch", "32",
          "--batch-gpu", "32", "--gamma", "0.05", "--tick-kimg", "2", "--snapshot-ticks", "2"]


def classifier():
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    digits = load_digits()
    return LogisticRegression(max_iter=5000, C=0.1).fit(digits.data, digits.target)


def score(clf, pkl, n):
    from stylegan2_tf.official import load_network_pkl
    G = load_network_pkl(pkl, load=("G_ema",))["G_ema"]
    z = np.random.RandomState(123).randn(n, G.config.z_dim).astype(np.float32)
    imgs = np.concatenate([G(z[i:i + 100], truncation_psi=1.0, noise_mode="const").numpy() for i in range(0, n, 100)])
    grey = (np.clip(imgs[..., 0], -1, 1) + 1) * 8.0                      # 0..16 as the scans
    scans = grey.reshape(n, 8, 4, 8, 4).mean(axis=(2, 4)).reshape(n, 64)
    prob = clf.predict_proba(scans)
    confident = prob.max(axis=1) >= 0.9
    classes = prob.argmax(axis=1)[confident]
    counts = np.bincount(classes, minlength=10)
    share = counts[counts > 0] / max(counts.sum(), 1)
    return dict(confident=float(confident.mean()), coverage=int((counts > 0).sum()),
                balance=float(-(share * np.log2(share)).sum()) if share.size else 0.0)


def main(_):
    work = FLAGS.workdir
    data = os.path.join(work, "data")
    env = dict(os.environ, PYTHONPATH=ROOT)
    runs = {name: RUNS[name] for name in FLAGS.runs}
    if not FLAGS.score_only and not os.path.isdir(os.path.join(data, "digits200")):
        subprocess.run([sys.executable, os.path.join(ROOT, "datasets", "dataset_tool.py"), "create_digits",
                        os.path.join(data, "digits200"), "--resolution", "32", "--labels", "0", "--max_images",
                        str(FLAGS.images)], check=True, env=env)
    if not FLAGS.score_only:
        for name, extra in runs.items():
            subprocess.run([sys.executable, os.path.join(ROOT, "run_training.py"), "--data-dir", data, "--dataset",
                            "digits200", "--result-dir", os.path.join(work, name), "--total-kimg", str(FLAGS.kimg),
                            *COMMON, *extra], check=True, env=env)
    clf = classifier()
    for name in runs:
        (run_dir,) = glob.glob(os.path.join(work, name, "*"))
        ticks = [json.loads(line) for line in open(os.path.join(run_dir, "stats.jsonl")) if '"tick"' in line]
        ticks = [t for t in ticks if "sec_per_kimg" in t]
        print(f"\n{name}: {run_dir}")
        print("  kimg   p      r_t    D real  D fake")
        for t in ticks:
            print(f"  {t['kimg']:5.1f}  {t.get('Progress/augment', 0):.3f}  {t.get('Loss/signs/real', 0):+.3f}  "
                  f"{t.get('Loss/D/real', 0):.3f}  {t.get('Loss/D/fake', 0):.3f}")
        print("  snapshot                         confident  coverage  balance")
        for pkl in sorted(glob.glob(os.path.join(run_dir, "network-snapshot-*.pkl"))):
            s = score(clf, pkl, FLAGS.fakes)
            print(f"  {os.path.basename(pkl):<32s} {s['confident']:.3f}      {s['coverage']:>2d}        "
                  f"{s['balance']:.2f}")


if __name__ == "__main__":
    app.run(main)
