"""The training settings a GPU user chooses, timed one after another with benchmarks/train.py:

  python benchmarks/train_settings.py --res 256 --fmap-base 16384 --batch 32 --steps 8
  python benchmarks/train_settings.py --res 64 --fmap-base 2048 --batch 8 --steps 4 \
      --settings "xla=none,all;modconv=fused,nonfused"

Each setting runs in its own process (a fresh device, its own peak memory): `--xla` (XLA per
phase), `--modconv` (fused or non-fused modulated convolution), `--fp16-res` (float16 in the
highest resolutions) and `--batch-gpu` (the sub-batch per replica: activation memory). One axis
varies at a time from the defaults (xla none, modconv auto, fp16-res 0, batch-gpu 4), unless
--grid asks for every combination. Prints a table of img/s, warm-up (tracing) seconds and peak
memory; see benchmarks/README.md for what was measured where.
"""

import itertools
import os
import re
import subprocess
import sys

from absl import app, flags

flags.DEFINE_integer("res", 256, "Resolution.")
flags.DEFINE_integer("fmap-base", 16384, "Feature-map base (16384 = config F).")
flags.DEFINE_integer("batch", 32, "Global minibatch.")
flags.DEFINE_integer("steps", 8, "Timed minibatches per setting.")
flags.DEFINE_string("settings", "xla=none,all;modconv=auto,fused,nonfused;fp16-res=0,4;batch-gpu=4,2",
                    "Axes as name=value,value;... (names: xla, modconv, fp16-res, batch-gpu).")
flags.DEFINE_bool("grid", False, "Every combination instead of one axis at a time.")
FLAGS = flags.FLAGS

DEFAULTS = {"xla": "none", "modconv": "auto", "fp16-res": "0", "batch-gpu": "4"}


def parse_axes(text):
    axes = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, _, values = part.partition("=")
        name = name.strip()
        if name not in DEFAULTS or not values:
            sys.exit(f"error: --settings: {part!r} is not name=value,... with a name from {', '.join(DEFAULTS)}")
        axes[name] = [v.strip() for v in values.split(",") if v.strip()]
    return axes


def settings(axes, grid):
    if grid:
        names = list(axes)
        for values in itertools.product(*(axes[n] for n in names)):
            yield {**DEFAULTS, **dict(zip(names, values))}
        return
    seen = []
    for name, values in axes.items():
        for value in values:
            s = {**DEFAULTS, name: value}
            if s not in seen:
                seen.append(s)
                yield s


def run(setting):
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "train.py")
    cmd = [sys.executable, script, f"--res={FLAGS.res}", f"--fmap-base={FLAGS['fmap-base'].value}",
           f"--batch={FLAGS.batch}", f"--steps={FLAGS.steps}"] + [f"--{k}={v}" for k, v in setting.items()]
    r = subprocess.run(cmd, capture_output=True, text=True)
    out = r.stdout + r.stderr

    def find(pattern):
        m = re.search(pattern, out)
        return m.group(1) if m else "-"
    if r.returncode:
        err = out.strip().splitlines()[-1] if out.strip() else f"exit {r.returncode}"
        return {"img/s": "failed", "warm-up s": "-", "peak MiB": "-", "note": err[:100]}
    return {"img/s": find(r"img/s: ([0-9.]+)"), "warm-up s": find(r"warm-up \(tracing\) minibatch: ([0-9.]+)"),
            "peak MiB": find(r"peak memory so far: ([0-9]+)"), "note": "", "machine": find(r"(?m)^# (.*)$")}


def main(argv):
    del argv
    axes = parse_axes(FLAGS.settings)
    cols = list(DEFAULTS) + ["img/s", "warm-up s", "peak MiB", "note"]
    print(f"# {FLAGS.res}x{FLAGS.res}, fmap_base {FLAGS['fmap-base'].value}, batch {FLAGS.batch}, "
          f"{FLAGS.steps} timed minibatches per setting")
    print("| " + " | ".join(cols) + " |")
    print("|" + " --- |" * len(cols))
    machine = None
    for s in settings(axes, FLAGS.grid):
        result = run(s)
        machine = machine or result.get("machine")
        print("| " + " | ".join(str({**s, **result}[c]) for c in cols) + " |", flush=True)
    print(f"machine: {machine}")


if __name__ == "__main__":
    app.run(main)
