"""Project images into a network's latent space (paper Appendix D) and attribute images to it (§5.1).

  python run_projector.py project-generated-images --network NET.pkl --seeds 0-4 [--truncation-psi 1]
  python run_projector.py project-real-images --network NET.pkl --data-dir datasets --dataset NAME --num-images 5
  python run_projector.py project --network NET.pkl --target photo.jpg [--target other.png ...]
  python run_projector.py calibrate --network NET.pkl --seeds 0-49 --data-dir datasets --dataset NAME --num-images 50
  python run_projector.py attribute --network NET.pkl --images DIR --calibration out/calibration.json
  python run_projector.py attribute --network NET.pkl --images DIR --threshold T

Common: --lpips FILE[,FILE2] (or STYLEGAN2_TF_LPIPS / the metrics config; see
stylegan2_tf/metrics/README.md), --num-steps 1000, --num-snapshots 5, --outdir out,
--lr 0.1, --noise-reg-weight 1e5, --initial-noise-factor 0.05, --noise-ramp-length 0.75,
--w-plus (one w per layer: NOT the paper's method; outputs are marked).

Per target, <outdir>/<name>/ gets target.png, proj.png, stepNNNN.png snapshots, proj.gif
(target | projection over the snapshots) and projected_w.npz, which
`run_generator.py generate-images --projected-w` turns back into the same image.

calibrate projects the network's own images (--seeds) and real ones (--dataset) and writes
calibration.json: the threshold that best separates the two distance distributions (see
stylegan2_tf.projector.choose_threshold), both distributions and what they were measured with.
attribute takes that file (or a plain --threshold) and refuses one made with another network,
other LPIPS weights or other projection settings.
"""

import os
import time

import numpy as np
from absl import app, flags

COMMANDS = ("project-generated-images", "project-real-images", "project", "calibrate", "attribute")

flags.DEFINE_string("network", None, "Network pickle (official NVIDIA TF1 format or our snapshot).")
flags.DEFINE_string("lpips", None, "LPIPS file(s): vgg16_zhang_perceptual.pkl, or vgg16-397923af.pth,vgg.pth.")
flags.DEFINE_integer("num-steps", 1000, "Optimisation steps per target.")
flags.DEFINE_integer("num-snapshots", 5, "Snapshots saved per target (the last is the result).")
flags.DEFINE_string("outdir", "out", "Output directory.")
flags.DEFINE_float("lr", 0.1, "Initial learning rate.")
flags.DEFINE_float("noise-reg-weight", 1e5, "Noise regularisation weight (alpha).")
flags.DEFINE_float("initial-noise-factor", 0.05, "w noise: factor x sigma_w at the start.")
flags.DEFINE_float("noise-ramp-length", 0.75, "Fraction of the steps over which the w noise ramps down to 0.")
flags.DEFINE_bool("w-plus", False, "Optimise one w per layer (W+): not the paper's method.")
flags.DEFINE_integer("seed", 123, "Seed (w statistics, initial noise maps, w noise).")
flags.DEFINE_string("seeds", None, "project-generated-images, calibrate: seeds of the generated targets, e.g. 0-4.")
flags.DEFINE_float("truncation-psi", 1.0, "project-generated-images: truncation of the targets.")
flags.DEFINE_string("data-dir", "datasets", "project-real-images, calibrate: directory holding datasets.")
flags.DEFINE_string("dataset", None, "project-real-images, calibrate: dataset name.")
flags.DEFINE_integer("num-images", 3, "project-real-images, calibrate: how many real images (the first ones).")
flags.DEFINE_multi_string("target", None, "project: image file(s); centre-cropped and resized to the network.")
flags.DEFINE_string("images", None, "attribute: directory of images to test.")
flags.DEFINE_float("threshold", None, "attribute: LPIPS distance at or below which an image counts as this "
                   "network's (default: the one in --calibration).")
flags.DEFINE_string("calibration", None, "attribute: calibration.json written by `calibrate` for this network.")
FLAGS = flags.FLAGS

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def to_uint8(x):
    return np.clip(np.asarray(x) * 127.5 + 128.0, 0, 255).astype(np.uint8)


def save_png(x, path):
    from stylegan2_tf.generate import save_image
    save_image(to_uint8(x), path)


class Projection:
    """What every command shares: the network, LPIPS and projection settings, the output folder.
    `load()` reads the network and LPIPS files (after a command has checked its own inputs)."""

    def __init__(self, network, lpips, cfg, num_snapshots, outdir):
        from stylegan2_tf.errors import UserError
        from stylegan2_tf.metrics import resolve_feature_files
        if not network:
            raise UserError("--network is required")
        if cfg.num_steps < 1 or num_snapshots < 1:
            raise UserError("--num-steps and --num-snapshots must be >= 1")
        self.network, self.cfg, self.num_snapshots, self.outdir = network, cfg, num_snapshots, outdir
        self.lpips_files = resolve_feature_files(lpips=lpips)["lpips"]
        if not self.lpips_files:
            raise UserError("no LPIPS file: pass --lpips or set STYLEGAN2_TF_LPIPS (see "
                            "stylegan2_tf/metrics/README.md)")
        self.G = self.projector = None

    def load(self):
        from stylegan2_tf.loading import load_generator
        from stylegan2_tf.metrics import load_lpips
        from stylegan2_tf.projector import Projector
        lpips = load_lpips(self.lpips_files)
        print(f'Loading network from "{self.network}"...', flush=True)
        self.G = load_generator(self.network)
        self.projector = Projector(self.G, lpips.network, self.cfg)
        if not self.cfg.papers_method:
            print("--w-plus: one w per layer (W+), not the paper's method", flush=True)
        os.makedirs(self.outdir, exist_ok=True)
        return self

    @property
    def shape(self):
        return self.G.config.img_resolution, self.G.config.img_channels

    def project(self, targets, outdir=None):
        """targets: [(name, [H, W, C] array)] -> rows of (name, distance, seconds); per target a
        folder with target.png, stepNNNN.png, proj.png, proj.gif and projected_w.npz."""
        from PIL import Image
        from stylegan2_tf.projector import save_projection
        G, cfg, outdir = self.G, self.cfg, outdir or self.outdir
        snapshot_steps = sorted({max(1, round(cfg.num_steps * (i + 1) / self.num_snapshots))
                                 for i in range(self.num_snapshots)})
        rows = []
        for index, (name, target) in enumerate(targets):
            tdir = os.path.join(outdir, name)
            os.makedirs(tdir, exist_ok=True)
            save_png(target, os.path.join(tdir, "target.png"))
            frames, start = [], time.time()

            def callback(step, dist, loss, w):
                if step in snapshot_steps:
                    ws = w[0] if cfg.w_plus else np.tile(w.numpy()[0], [G.num_ws, 1])
                    img = G.synthesize(np.asarray(ws, np.float32)[np.newaxis], noise_mode="const")[0].numpy()
                    save_png(img, os.path.join(tdir, f"step{step:04d}.png"))
                    frames.append(np.concatenate([to_uint8(target), to_uint8(img)], axis=1))
                if step % 50 == 0 or step == cfg.num_steps:
                    elapsed = time.time() - start
                    eta = elapsed / step * (cfg.num_steps - step)
                    print(f"{name} ({index + 1}/{len(targets)}): step {step}/{cfg.num_steps} lpips {dist:.4f} "
                          f"loss {loss:.4g}, {elapsed:.0f} s, ETA {eta:.0f} s", flush=True)

            result = self.projector.project(target, callback=callback)
            save_png(result["image"], os.path.join(tdir, "proj.png"))
            save_projection(os.path.join(tdir, "projected_w.npz"), G, result, cfg)
            gif = [Image.fromarray(f[..., 0] if f.shape[-1] == 1 else f) for f in frames]
            gif[0].save(os.path.join(tdir, "proj.gif"), save_all=True, append_images=gif[1:], duration=500, loop=0)
            rows.append((name, result["distance"], time.time() - start))
        print_summary(rows, cfg)
        return rows


def print_summary(rows, cfg):
    method = "paper's method (W)" if cfg.papers_method else "W+ (one w per layer; NOT the paper's method)"
    print(f"\nProjection summary: {cfg.num_steps} steps, {method}")
    print(f"{'target':<24s} {'LPIPS':>10s} {'seconds':>9s}")
    for name, dist, sec in rows:
        print(f"{name:<24s} {dist:10.5f} {sec:9.1f}")


# --------------------------------------------------------------------------- targets

def _seeds(seeds, command):
    from stylegan2_tf.errors import UserError
    from stylegan2_tf.generate import parse_range
    if not seeds:
        raise UserError(f"{command} needs --seeds" + (" (the network's own images) as well as --dataset (real ones)"
                                                       if command == "calibrate" else ""))
    return parse_range(seeds, "--seeds")


def _dataset_dir(data_dir, dataset, command):
    from stylegan2_tf.errors import UserError
    if not dataset:
        raise UserError(f"{command} needs --dataset (and --data-dir)")
    return os.path.join(data_dir, dataset)


def generated_targets(G, seeds, truncation_psi):
    from stylegan2_tf.generate import class_labels, seed_to_z
    return [(f"seed{seed:04d}", G(seed_to_z(seed, G.config.z_dim), c=class_labels(G, None, 1),
                                  truncation_psi=truncation_psi, noise_mode="const").numpy()[0]) for seed in seeds]


def real_targets(dataset_dir, num_images, res, channels):
    from stylegan2_tf.data import iter_images, read_dataset_info
    from stylegan2_tf.errors import UserError
    info = read_dataset_info(dataset_dir)
    if res not in info.resolutions:
        raise UserError(f"{dataset_dir}: no {res}x{res} images (has {info.resolutions}) for this network")
    info = read_dataset_info(dataset_dir, res)
    if info.channels != channels:
        raise UserError(f"{dataset_dir}: {info.channels}-channel images, the network makes {channels}")
    out = []
    for path in info.files:
        for img in iter_images(path):
            if len(out) == num_images:
                return out
            out.append((f"image{len(out):04d}", img.transpose(1, 2, 0).astype(np.float32) / 127.5 - 1.0))
    return out


def file_targets(paths, res, channels):
    from stylegan2_tf.projector import load_target_image
    return [(os.path.splitext(os.path.basename(p))[0], load_target_image(p, res, channels)) for p in paths]


# --------------------------------------------------------------------------- commands

def project_generated_images(run, seeds, truncation_psi):
    seeds = _seeds(seeds, "project-generated-images")
    run.load()
    run.project(generated_targets(run.G, seeds, truncation_psi))


def project_real_images(run, data_dir, dataset, num_images):
    dataset_dir = _dataset_dir(data_dir, dataset, "project-real-images")
    run.load()
    run.project(real_targets(dataset_dir, num_images, *run.shape))


def project(run, targets):
    from stylegan2_tf.errors import UserError
    if not targets:
        raise UserError("project needs --target IMAGE (repeatable)")
    run.load()
    run.project(file_targets(targets, *run.shape))


def calibrate(run, seeds, truncation_psi, data_dir, dataset, num_images):
    """Project the network's own images and real ones; write calibration.json with the threshold
    that separates the two distance distributions best, and the histogram."""
    from stylegan2_tf.attribution import histogram_png, write_calibration
    dataset_dir = _dataset_dir(data_dir, dataset, "calibrate")
    seeds = _seeds(seeds, "calibrate")
    run.load()
    generated = generated_targets(run.G, seeds, truncation_psi)
    real = real_targets(dataset_dir, num_images, *run.shape)
    gen_rows = run.project(generated, os.path.join(run.outdir, "generated"))
    real_rows = run.project(real, os.path.join(run.outdir, "real"))
    path = os.path.join(run.outdir, "calibration.json")
    choice = write_calibration(path, {n: d for n, d, _ in gen_rows}, {n: d for n, d, _ in real_rows}, run.network,
                               run.cfg, run.lpips_files, dataset=dataset_dir, truncation_psi=truncation_psi)
    histogram_png([("generated", [r[1] for r in gen_rows]), ("real", [r[1] for r in real_rows])],
                  choice["threshold"], os.path.join(run.outdir, "distances.png"))
    print(f"\nThreshold {choice['threshold']:.5g}: generated accepted {choice['generated_accepted']:.1%}, "
          f"real rejected {choice['real_rejected']:.1%} (balanced accuracy {choice['balanced_accuracy']:.1%})")
    if choice["balanced_accuracy"] < 0.75:
        print("Warning: the two distributions overlap; attribution with this network and these settings is "
              "unreliable (more projection steps, a better-trained network?)")
    print(f"Wrote {path} and distances.png; use: run_projector.py attribute --calibration {path}")


def attribute(run, images, threshold, calibration):
    """Project every image of the folder `images`; a verdict per image against `threshold`, or
    the threshold of `calibration` (checked against this network and these settings first)."""
    from stylegan2_tf.attribution import histogram_png, read_calibration, verdict
    from stylegan2_tf.errors import UserError
    if not images or not os.path.isdir(images):
        raise UserError(f"attribute needs --images DIR (a directory of images); got {images!r}")
    if threshold is None and not calibration:
        raise UserError("attribute needs --calibration FILE (from run_projector.py calibrate) or --threshold T")
    if calibration and not os.path.isfile(calibration):
        raise UserError(f"{calibration}: no such file")
    files = sorted(os.path.join(images, f) for f in os.listdir(images) if f.lower().endswith(IMAGE_SUFFIXES))
    if not files:
        raise UserError(f"{images}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    if threshold is None:     # before any projection: a mismatch stops at once
        threshold = read_calibration(calibration, run.network, run.cfg, run.lpips_files)
    run.load()
    rows = run.project(file_targets(files, *run.shape))
    print(f"\n{'image':<24s} {'LPIPS':>10s}  verdict (threshold {threshold:g})")
    with open(os.path.join(run.outdir, "attribution.txt"), "w") as f:
        for name, dist, _ in rows:
            line = f"{name:<24s} {dist:10.5f}  {verdict(dist, threshold)}"
            print(line)
            f.write(line + "\n")
    histogram_png([("images", [r[1] for r in rows])], threshold, os.path.join(run.outdir, "distances.png"))
    print(f"Wrote {os.path.join(run.outdir, 'attribution.txt')} and distances.png")


def main(argv):
    from stylegan2_tf.cli import run_command
    run_command(argv, COMMANDS, dispatch)


def dispatch(command):
    from stylegan2_tf.projector import ProjectorConfig
    f = FLAGS
    cfg = ProjectorConfig(num_steps=f["num-steps"].value, initial_learning_rate=f.lr,
                          regularize_noise_weight=f["noise-reg-weight"].value,
                          initial_noise_factor=f["initial-noise-factor"].value,
                          noise_ramp_length=f["noise-ramp-length"].value, w_plus=f["w-plus"].value, seed=f.seed)
    run = Projection(f.network, f.lpips, cfg, f["num-snapshots"].value, f.outdir)
    if command == "project-generated-images":
        project_generated_images(run, f.seeds, f["truncation-psi"].value)
    elif command == "project-real-images":
        project_real_images(run, f["data-dir"].value, f.dataset, f["num-images"].value)
    elif command == "project":
        project(run, f.target)
    elif command == "calibrate":
        calibrate(run, f.seeds, f["truncation-psi"].value, f["data-dir"].value, f.dataset, f["num-images"].value)
    else:
        attribute(run, f.images, f.threshold, f.calibration)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from stylegan2_tf.cli import prefer_onednn_kernels
    prefer_onednn_kernels()  # before TensorFlow loads
    app.run(main)
