"""A local web explorer of a generator: seeds, truncation, noise, style mixing, latent directions and a
2-D pad over two of them, feature maps and ToRGB outputs, projection of an uploaded image, downloads.

  python run_explorer.py --network NET.pkl [--port 8000] [--networks DIR] [--directions FILE] [--lpips FILE]

Serves http://127.0.0.1:PORT/ (another address only with --host). Directions: --directions FILE (from
run_generator.py directions), else 10 SeFa directions (GANSpace for configs A-D).
"""

import os

from absl import app, flags

flags.DEFINE_string("network", None, "Network pickle to open.")
flags.DEFINE_string("networks", None, "A folder whose .pkl files the page may switch to (by name only).")
flags.DEFINE_string("directions", None, "directions.npz to offer as sliders (default: SeFa of the network).")
flags.DEFINE_string("lpips", None, "LPIPS weights for projecting uploads (or STYLEGAN2_TF_LPIPS).")
flags.DEFINE_integer("projection-steps", 1000, "Projection steps per upload.")
flags.DEFINE_string("host", "127.0.0.1", "Address to bind (others can reach the page if not 127.0.0.1).")
flags.DEFINE_integer("port", 8000, "Port (0: any free one, printed).")
FLAGS = flags.FLAGS


def main(argv):
    from stylegan2_tf.cli import run
    from stylegan2_tf.ops import custom_ops
    custom_ops.prebuilt_kernels_only()  # generation: the kernels if built before, never a compile
    run(start, argv)


def start(argv):
    from stylegan2_tf.explorer import ExplorerApp, ExplorerError, make_server
    from stylegan2_tf.metrics import resolve_feature_files
    if len(argv) > 1:
        raise ExplorerError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS.network:
        raise ExplorerError("--network is required")
    if FLAGS.networks and not os.path.isdir(FLAGS.networks):
        raise ExplorerError(f"--networks {FLAGS.networks}: not a folder")
    lpips = resolve_feature_files(lpips=FLAGS.lpips)["lpips"]
    explorer = ExplorerApp(FLAGS.network, FLAGS.networks, FLAGS.directions, lpips, FLAGS["projection-steps"].value)
    server = make_server(explorer, FLAGS.host, FLAGS.port)
    print(f"Explorer of {FLAGS.network}: http://{FLAGS.host}:{server.server_address[1]}/  (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from stylegan2_tf.cli import prefer_onednn_kernels
    prefer_onednn_kernels()  # before TensorFlow loads
    app.run(main)
