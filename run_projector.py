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
import sys
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


class CLIError(Exception):
    pass


def flag(name):
    return FLAGS[name].value


def load_target(path, res, channels):
    """Image file -> [res, res, channels] float in [-1, 1]: centre crop to a square, Lanczos resize."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as im:
            im.load()
            im = im.convert("RGB" if channels == 3 else "L")
    except FileNotFoundError:
        raise CLIError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise CLIError(f"{path}: not a readable image ({type(e).__name__})") from None
    w, h = im.size
    side = min(w, h)
    if side * 2 < res:
        raise CLIError(f"{path}: {w}x{h} is far smaller than the network's {res}x{res} (at least {res // 2} px needed)")
    left, top = (w - side) // 2, (h - side) // 2
    im = im.crop((left, top, left + side, top + side)).resize((res, res), Image.LANCZOS)
    x = np.asarray(im, np.float32).reshape(res, res, channels)
    return x / 127.5 - 1.0


def to_uint8(x):
    return np.clip(np.asarray(x) * 127.5 + 128.0, 0, 255).astype(np.uint8)


def save_png(x, path):
    from stylegan2_tf.generate import save_image
    save_image(to_uint8(x), path)


def projector_config():
    from stylegan2_tf.projector import ProjectorConfig
    if flag("num-steps") < 1 or flag("num-snapshots") < 1:
        raise CLIError("--num-steps and --num-snapshots must be >= 1")
    return ProjectorConfig(num_steps=flag("num-steps"), initial_learning_rate=flag("lr"),
                           regularize_noise_weight=flag("noise-reg-weight"),
                           initial_noise_factor=flag("initial-noise-factor"),
                           noise_ramp_length=flag("noise-ramp-length"), w_plus=flag("w-plus"), seed=flag("seed"))


def project_targets(G, projector, targets, outdir):
    """targets: [(name, [H, W, C] array)] -> rows of (name, distance, seconds)."""
    from PIL import Image
    from stylegan2_tf.projector import save_projection
    cfg = projector.cfg
    snapshot_steps = sorted({max(1, round(cfg.num_steps * (i + 1) / flag("num-snapshots")))
                             for i in range(flag("num-snapshots"))})
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

        result = projector.project(target, callback=callback)
        save_png(result["image"], os.path.join(tdir, "proj.png"))
        save_projection(os.path.join(tdir, "projected_w.npz"), G, result, cfg)
        gif = [Image.fromarray(f[..., 0] if f.shape[-1] == 1 else f) for f in frames]
        gif[0].save(os.path.join(tdir, "proj.gif"), save_all=True, append_images=gif[1:], duration=500, loop=0)
        rows.append((name, result["distance"], time.time() - start))
    return rows


def print_summary(rows, cfg):
    method = "paper's method (W)" if cfg.papers_method else "W+ (one w per layer; NOT the paper's method)"
    print(f"\nProjection summary: {cfg.num_steps} steps, {method}")
    print(f"{'target':<24s} {'LPIPS':>10s} {'seconds':>9s}")
    for name, dist, sec in rows:
        print(f"{name:<24s} {dist:10.5f} {sec:9.1f}")


def histogram_png(groups, threshold, path, bins=20):
    """Histogram of the distances (the paper's Fig. 9), one colour per group, the threshold as a
    red line. groups: [(label, distances)]."""
    from PIL import Image, ImageDraw
    colours = [(70, 110, 180), (230, 140, 40), (90, 160, 90)]
    groups = [(label, np.asarray(d, np.float64)) for label, d in groups if len(d)]
    hi = max(max(float(d.max()) for _, d in groups), threshold or 0.0) * 1.05 + 1e-12
    counts = [np.histogram(d, bins=bins, range=(0.0, hi))[0] for _, d in groups]
    w, h, pad = 640, 360, 40
    im = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(im)
    top = max(max(c.max() for c in counts), 1)
    bw = (w - 2 * pad) / bins
    sub = bw / len(groups)
    for g, c in enumerate(counts):
        for i, n in enumerate(c):
            x0 = pad + i * bw + g * sub
            y0 = h - pad - (h - 2 * pad) * n / top
            draw.rectangle([x0 + 1, y0, x0 + sub - 1, h - pad], fill=colours[g % len(colours)])
    draw.line([pad, h - pad, w - pad, h - pad], fill="black")
    if threshold is not None:
        x = pad + (w - 2 * pad) * threshold / hi
        draw.line([x, pad / 2, x, h - pad], fill=(200, 30, 30), width=2)
        draw.text((x + 4, pad / 2), f"threshold {threshold:.4g}", fill=(200, 30, 30))
    draw.text((pad, h - pad + 8), "0", fill="black")
    draw.text((w - pad - 60, h - pad + 8), f"{hi:.4g}", fill="black")
    legend = ", ".join(f"{label} ({len(d)})" for label, d in groups)
    draw.text((pad, 8), f"LPIPS distance after projection: {legend}", fill="black")
    for g, (label, _) in enumerate(groups):
        draw.rectangle([w - pad - 120, 8 + 14 * g, w - pad - 110, 18 + 14 * g], fill=colours[g % len(colours)])
        draw.text((w - pad - 104, 7 + 14 * g), label, fill="black")
    im.save(path)


def file_digest(path):
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def measured_with(cfg, lpips_files):
    """What the distances depend on: the network file, the LPIPS files (comma-separated paths) and
    the projection settings."""
    import dataclasses
    return dict(network=file_digest(flag("network")),
                lpips=sorted(file_digest(p.strip()) for p in lpips_files.split(",")),
                projection=dataclasses.asdict(cfg))


def read_calibration(path, cfg, lpips_files):
    """-> threshold from a calibration.json; one-line CLIError when it was measured otherwise."""
    import json
    try:
        with open(path) as f:
            cal = json.load(f)
        threshold, theirs = float(cal["threshold"]), cal["measured_with"]
    except FileNotFoundError:
        raise CLIError(f"{path}: no such file") from None
    except (ValueError, KeyError, TypeError) as e:
        raise CLIError(f"{path}: not a calibration.json of run_projector.py calibrate ({type(e).__name__})") from None
    mine = measured_with(cfg, lpips_files)
    if theirs.get("network") != mine["network"]:
        raise CLIError(f"{path}: calibrated for another network file (sha256 {str(theirs.get('network'))[:12]}..., "
                       f"{flag('network')} is {mine['network'][:12]}...)")
    if theirs.get("lpips") != mine["lpips"]:
        raise CLIError(f"{path}: calibrated with other LPIPS weights; distances would not be comparable")
    if theirs.get("projection") != mine["projection"]:
        diff = sorted(k for k in mine["projection"] if theirs.get("projection", {}).get(k) != mine["projection"][k])
        raise CLIError(f"{path}: calibrated with other projection settings ({', '.join(diff)} differ); "
                       f"use the same flags")
    return threshold


def main(argv):
    if len(argv) != 2 or argv[1] not in COMMANDS:
        got = " ".join(argv[1:]) or "nothing"
        sys.exit(f"error: expected one command of {', '.join(COMMANDS)}; got {got}")
    if not flag("network"):
        sys.exit("error: --network is required")
    from stylegan2_tf.metrics import FeatureNetworkError
    from stylegan2_tf.official import NetworkPickleError
    from stylegan2_tf.projector import ProjectionError
    from stylegan2_tf.generate import GenerationError
    from stylegan2_tf.data import DatasetError
    try:
        run(argv[1])
    except (CLIError, FeatureNetworkError, NetworkPickleError, ProjectionError, GenerationError, DatasetError) as e:
        sys.exit(f"error: {e}")


def run(command):
    from stylegan2_tf.loading import load_generator
    from stylegan2_tf.metrics import load_lpips
    from stylegan2_tf.metrics.evaluate import resolve_feature_files
    from stylegan2_tf.projector import Projector
    cfg = projector_config()
    lpips_files = resolve_feature_files(lpips=flag("lpips"))["lpips"]
    if not lpips_files:
        raise CLIError("no LPIPS file: pass --lpips or set STYLEGAN2_TF_LPIPS (see stylegan2_tf/metrics/README.md)")
    targets_spec = _check_command_inputs(command)
    threshold = flag("threshold")
    if command == "attribute" and threshold is None:     # before any projection: a mismatch stops at once
        threshold = read_calibration(flag("calibration"), cfg, lpips_files)
    lpips = load_lpips(lpips_files)
    print(f'Loading network from "{flag("network")}"...', flush=True)
    G = load_generator(flag("network"))
    res, ch = G.config.img_resolution, G.config.img_channels
    targets = _targets(command, targets_spec, G, res, ch)
    projector = Projector(G, lpips.network, cfg)
    if not cfg.papers_method:
        print("--w-plus: one w per layer (W+), not the paper's method", flush=True)
    outdir = flag("outdir")
    os.makedirs(outdir, exist_ok=True)
    if command == "calibrate":
        calibrate(G, projector, targets, outdir, cfg, lpips_files)
        return
    rows = project_targets(G, projector, targets, outdir)
    print_summary(rows, cfg)
    if command == "attribute":
        print(f"\n{'image':<24s} {'LPIPS':>10s}  verdict (threshold {threshold:g})")
        with open(os.path.join(outdir, "attribution.txt"), "w") as f:
            for name, dist, _ in rows:
                verdict = "made by this network" if dist <= threshold else "not made by this network"
                line = f"{name:<24s} {dist:10.5f}  {verdict}"
                print(line)
                f.write(line + "\n")
        histogram_png([("images", [r[1] for r in rows])], threshold, os.path.join(outdir, "distances.png"))
        print(f"Wrote {os.path.join(outdir, 'attribution.txt')} and distances.png")


def calibrate(G, projector, targets, outdir, cfg, lpips_files):
    """Project the network's own images and real ones; write the separating threshold."""
    import json
    from stylegan2_tf.projector import choose_threshold
    generated, real = targets
    gen_rows = project_targets(G, projector, generated, os.path.join(outdir, "generated"))
    real_rows = project_targets(G, projector, real, os.path.join(outdir, "real"))
    print_summary(gen_rows + real_rows, cfg)
    gen_d, real_d = [r[1] for r in gen_rows], [r[1] for r in real_rows]
    choice = choose_threshold(gen_d, real_d)
    cal = dict(choice, rule="maximum balanced accuracy; midpoint of the widest gap among ties",
               generated={n: d for n, d, _ in gen_rows}, real={n: d for n, d, _ in real_rows},
               dataset=os.path.join(flag("data-dir"), flag("dataset")), truncation_psi=flag("truncation-psi"),
               network_path=flag("network"), lpips_paths=lpips_files.split(","),
               measured_with=measured_with(cfg, lpips_files))
    path = os.path.join(outdir, "calibration.json")
    with open(path + ".tmp", "w") as f:
        json.dump(cal, f, indent=1)
    os.replace(path + ".tmp", path)
    histogram_png([("generated", gen_d), ("real", real_d)], choice["threshold"],
                  os.path.join(outdir, "distances.png"))
    print(f"\nThreshold {choice['threshold']:.5g}: generated accepted {choice['generated_accepted']:.1%}, "
          f"real rejected {choice['real_rejected']:.1%} (balanced accuracy {choice['balanced_accuracy']:.1%})")
    if choice["balanced_accuracy"] < 0.75:
        print("Warning: the two distributions overlap; attribution with this network and these settings is "
              "unreliable (more projection steps, a better-trained network?)")
    print(f"Wrote {path} and distances.png; use: run_projector.py attribute --calibration {path}")


def _check_command_inputs(command):
    if command == "project-generated-images":
        from stylegan2_tf.generate import parse_range
        if not flag("seeds"):
            raise CLIError("project-generated-images needs --seeds")
        return parse_range(flag("seeds"), "--seeds")
    if command in ("project-real-images", "calibrate"):
        if not flag("dataset"):
            raise CLIError(f"{command} needs --dataset (and --data-dir)")
        if command == "project-real-images":
            return os.path.join(flag("data-dir"), flag("dataset"))
        from stylegan2_tf.generate import parse_range
        if not flag("seeds"):
            raise CLIError("calibrate needs --seeds (the network's own images) as well as --dataset (real ones)")
        return parse_range(flag("seeds"), "--seeds"), os.path.join(flag("data-dir"), flag("dataset"))
    if command == "project":
        if not flag("target"):
            raise CLIError("project needs --target IMAGE (repeatable)")
        return list(flag("target"))
    if not flag("images") or not os.path.isdir(flag("images")):
        raise CLIError(f"attribute needs --images DIR (a directory of images); got {flag('images')!r}")
    if flag("threshold") is None and not flag("calibration"):
        raise CLIError("attribute needs --calibration FILE (from run_projector.py calibrate) or --threshold T")
    if flag("calibration") and not os.path.isfile(flag("calibration")):
        raise CLIError(f"{flag('calibration')}: no such file")
    files = sorted(os.path.join(flag("images"), f) for f in os.listdir(flag("images"))
                   if f.lower().endswith(IMAGE_SUFFIXES))
    if not files:
        raise CLIError(f"{flag('images')}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    return files


def _targets(command, spec, G, res, ch):
    if command == "calibrate":
        return (_targets("project-generated-images", spec[0], G, res, ch),
                _targets("project-real-images", spec[1], G, res, ch))
    if command == "project-generated-images":
        from stylegan2_tf.generate import class_labels, seed_to_z
        out = []
        for seed in spec:
            c = class_labels(G, None, 1)
            img = G(seed_to_z(seed, G.config.z_dim), c=c, truncation_psi=flag("truncation-psi"), noise_mode="const")
            out.append((f"seed{seed:04d}", img.numpy()[0]))
        return out
    if command == "project-real-images":
        from stylegan2_tf.data import iter_images, read_dataset_info
        info = read_dataset_info(spec)
        if res not in info.resolutions:
            raise CLIError(f"{spec}: no {res}x{res} images (has {info.resolutions}) for this network")
        info = read_dataset_info(spec, res)
        if info.channels != ch:
            raise CLIError(f"{spec}: {info.channels}-channel images, the network makes {ch}")
        out = []
        for path in info.files:
            for img in iter_images(path):
                if len(out) == flag("num-images"):
                    return out
                out.append((f"image{len(out):04d}", img.transpose(1, 2, 0).astype(np.float32) / 127.5 - 1.0))
        return out
    return [(os.path.splitext(os.path.basename(p))[0], load_target(p, res, ch)) for p in spec]


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    app.run(main)
