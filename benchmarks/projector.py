"""Projection cost: seconds per 1000-step projection on this machine.

  python benchmarks/projector.py --res 256 --fmap-base 16384 --steps 20
  python benchmarks/projector.py --res 1024 --fmap-base 16384 --steps 5      # config F at 1024

A random generator of the given config, full-size LPIPS (VGG16 + lin layers, random
weights: timings do not depend on them). Times --steps optimisation steps after one
warm-up step (the trace) and scales to 1000; the w statistics (10 000 mapped z) are
timed separately.
"""

import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from cpu_info import cpu_description  # noqa: E402  (benchmarks/, the script's directory)

flags.DEFINE_integer("res", 256, "Generator resolution.")
flags.DEFINE_integer("fmap-base", 16384, "Feature-map base (16384 = config F).")
flags.DEFINE_integer("steps", 20, "Timed steps.")
flags.DEFINE_integer("inter-op-threads", 1, "TF inter-op threads (0 = default).")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    import json
    import tensorflow as tf
    tf.config.threading.set_inter_op_parallelism_threads(FLAGS["inter-op-threads"].value)
    from feature_net_weights import state_dict_for
    from torch_pth_writer import write_pth
    from stylegan2_tf.metrics import load_lpips
    from stylegan2_tf.networks import Generator, GeneratorConfig
    from stylegan2_tf.ops.capabilities import onednn_enabled
    from stylegan2_tf.projector import Projector, ProjectorConfig

    print(f"CPU: {cpu_description()}; TensorFlow {tf.__version__}, oneDNN {'on' if onednn_enabled() else 'off'}")
    with open(os.path.join(ROOT, "tests", "fixtures", "metrics", "shapes.json")) as f:
        shapes = json.load(f)
    with tempfile.TemporaryDirectory() as tmp:
        vgg = [(k, v) for k, v in shapes["vgg16"] if k.startswith("features.")]
        write_pth(os.path.join(tmp, "vgg16.pth"), state_dict_for(vgg))
        write_pth(os.path.join(tmp, "vgg.pth"), state_dict_for(shapes["lpips_lin"]))
        lpips = load_lpips([os.path.join(tmp, "vgg16.pth"), os.path.join(tmp, "vgg.pth")])
    G = Generator(GeneratorConfig(img_resolution=FLAGS.res, fmap_base=FLAGS["fmap-base"].value)).build_weights()
    start = time.time()
    projector = Projector(G, lpips.network, ProjectorConfig(num_steps=FLAGS.steps + 1))
    print(f"w statistics (10 000 mapped z): {time.time() - start:.1f} s")
    target = np.random.default_rng(0).uniform(-1, 1, (FLAGS.res, FLAGS.res, 3)).astype(np.float32)
    steps = projector.steps(target)
    start = time.time()
    next(steps)
    print(f"first step (trace): {time.time() - start:.1f} s")
    start = time.time()
    for _ in steps:
        pass
    per_step = (time.time() - start) / FLAGS.steps
    print(f"{FLAGS.res}x{FLAGS.res}, fmap_base {FLAGS['fmap-base'].value}: {per_step:.2f} s/step, "
          f"{per_step * 1000 / 60:.1f} min per 1000-step projection")


if __name__ == "__main__":
    app.run(main)
