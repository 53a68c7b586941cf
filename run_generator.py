"""Generate images with a StyleGAN2 network (official NVIDIA .pkl or our snapshots).

  python run_generator.py generate-images --network NET.pkl --seeds 0-9,42 \
      [--truncation-psi PSI] [--noise-mode const|random|none] [--class IDX] [--outdir out]
  python run_generator.py generate-images --network NET.pkl --projected-w out/target/projected_w.npz
  python run_generator.py style-mixing-example --network NET.pkl --row-seeds 85,100,75 \
      --col-seeds 55,821,1789 [--col-styles 0-6] [--truncation-psi PSI]
  python run_generator.py interpolate --network NET.pkl --seeds 0,1,2 [--frames 24] [--fps 12]
  python run_generator.py export --network NET.pkl --outdir exported_generator \
      [--format savedmodel|tflite|onnx|tfjs] [--part generator|mapping|synthesis] [--precision float16] [--force]

Truncation defaults to the network's official one: psi 0.5 on every layer (configs B-F),
psi 0.7 on the first 8 layers (config A, StyleGAN1's G_style).
"""

import json
import os
import time

import numpy as np
from absl import app, flags

COMMANDS = ("generate-images", "style-mixing-example", "interpolate", "export")

flags.DEFINE_string("network", None, "Network pickle (official NVIDIA TF1 format or our snapshot).")
flags.DEFINE_string("seeds", None, "Seeds, e.g. 0-9,42 (generate-images, interpolate).")
flags.DEFINE_float("truncation-psi", None, "Truncation psi (1 = off; default: the network's official value, "
                   "0.5, or 0.7 for config A).")
flags.DEFINE_integer("truncation-cutoff", None, "Truncate only the first N layers of w (default: the network's "
                     "official value: all layers, or 8 for config A).")
flags.DEFINE_enum("noise-mode", "const", ["const", "random", "none"], "Noise inputs.")
flags.DEFINE_integer("class", None, "Class index for conditional networks.")
flags.DEFINE_string("outdir", "out", "Output directory.")
flags.DEFINE_string("projected-w", None, "generate-images: the image of a run_projector.py projected_w.npz (its w and "
                    "noise maps) instead of seeds.")
flags.DEFINE_integer("batch-size", 8, "Images per forward pass.")
flags.DEFINE_string("row-seeds", None, "style-mixing-example: seeds of the rows (coarse styles kept).")
flags.DEFINE_string("col-seeds", None, "style-mixing-example: seeds of the columns (their styles mixed in).")
flags.DEFINE_string("col-styles", "0-6", "style-mixing-example: w layers taken from the column seed.")
flags.DEFINE_integer("frames", 24, "interpolate: frames between consecutive seeds.")
flags.DEFINE_integer("fps", 12, "interpolate: frames per second of the GIF.")
flags.DEFINE_bool("fused-modconv", None, "Force the fused (grouped) or non-fused modulated conv.")
flags.DEFINE_string("format", "savedmodel", "export: savedmodel, tflite, onnx (needs the export extra) or tfjs.")
flags.DEFINE_string("part", "generator", "export: generator (z, psi -> images), mapping (z, psi -> w) or "
                    "synthesis (w -> images).")
flags.DEFINE_string("precision", "float32", "export: float32, or float16 (tflite: half-precision weights).")
flags.DEFINE_bool("force", False, "export: replace an earlier export in --outdir.")
flags.DEFINE_bool("check", True, "export: run the export in its runtime on seeds 0-3 and compare with Keras.")
FLAGS = flags.FLAGS


def _progress(prefix):
    start = time.time()

    def report(done, total):
        print(f"{prefix}: {done}/{total} images ({time.time() - start:.1f} s)", flush=True)
    return report


class Network:
    """The loaded generator with the options every command shares: truncation (the flags, else
    the network's official defaults), class, noise mode and batch size."""

    def __init__(self, path, truncation_psi, truncation_cutoff, class_idx, noise_mode, batch_size, fused_modconv):
        from stylegan2_tf.generate import GenerationError, ImageSynthesizer, check_psi
        from stylegan2_tf.loading import load_generator
        if not path:
            raise GenerationError("--network is required")
        if truncation_psi is not None:
            check_psi(truncation_psi)
        if batch_size < 1:
            raise GenerationError("--batch-size must be >= 1")
        print(f'Loading network from "{path}"...', flush=True)
        self.G = load_generator(path)
        self.synth = ImageSynthesizer(self.G, noise_mode=noise_mode, fused_modconv=fused_modconv)
        psi, cutoff = self.G.config.default_truncation
        self.psi = psi if truncation_psi is None else truncation_psi
        self.cutoff = cutoff if truncation_cutoff is None else truncation_cutoff
        self.class_idx, self.noise_mode, self.batch_size = class_idx, noise_mode, batch_size

    def ws(self, seeds):
        """w of the seeds' z, truncated, for the chosen class."""
        from stylegan2_tf.generate import class_labels, seed_to_z
        z = np.concatenate([seed_to_z(s, self.G.config.z_dim) for s in seeds])
        return self.synth.map(z, class_labels(self.G, self.class_idx, len(seeds)), psi=self.psi,
                              cutoff=self.cutoff).numpy()


def generate_images(net, seeds, projected_w, outdir):
    """seedNNNN.png for every seed, or projected.png: the image of a projected_w.npz."""
    from stylegan2_tf.generate import class_labels, ensure_outdir, parse_range, save_image, seed_to_z
    if projected_w:
        return generate_from_projection(net.G, projected_w, outdir)
    seeds = parse_range(seeds, "--seeds")
    c = class_labels(net.G, net.class_idx, len(seeds))
    outdir = ensure_outdir(outdir)
    z = np.concatenate([seed_to_z(s, net.G.config.z_dim) for s in seeds])
    images = net.synth.generate(z, c, psi=net.psi, cutoff=net.cutoff, batch_size=net.batch_size,
                                progress=_progress("Generating"))
    for seed, img in zip(seeds, images):
        save_image(img, os.path.join(outdir, f"seed{seed:04d}.png"))
    print(f"Wrote {len(seeds)} images to {outdir}")


def generate_from_projection(G, projected_w, outdir):
    from stylegan2_tf.generate import ensure_outdir, save_image, to_uint8
    from stylegan2_tf.projector import load_projection
    ws = load_projection(projected_w, G)
    outdir = ensure_outdir(outdir)
    image = to_uint8(G.synthesize(ws, noise_mode="const")).numpy()[0]
    path = os.path.join(outdir, "projected.png")
    save_image(image, path)
    print(f"Wrote {path}")


def style_mixing_example(net, row_seeds, col_seeds, col_styles, outdir):
    """grid.png: the row seeds' images with the column seeds' `col_styles` w layers mixed in.
    col_styles None: the layers 0-6 that exist below the last."""
    from stylegan2_tf.generate import GenerationError, ensure_outdir, image_grid, parse_range, save_image
    G = net.G
    row_seeds = parse_range(row_seeds, "--row-seeds")
    col_seeds = parse_range(col_seeds, "--col-seeds")
    if col_styles is None:  # the default 0-6 is for big networks: keep what exists
        col_styles = [s for s in range(7) if s < G.num_ws - 1] or [0]
    else:
        col_styles = parse_range(col_styles, "--col-styles")
    if max(col_styles) >= G.num_ws:
        raise GenerationError(f"--col-styles: this network has w layers 0-{G.num_ws - 1}, got {max(col_styles)}")
    outdir = ensure_outdir(outdir)
    seeds = list(dict.fromkeys(row_seeds + col_seeds))
    w_of = dict(zip(seeds, net.ws(seeds)))
    mixed = []
    for r in row_seeds:
        for col in col_seeds:
            w = w_of[r].copy()
            w[col_styles] = w_of[col][col_styles]
            mixed.append(w)
    all_ws = np.stack([w_of[s] for s in seeds] + mixed)
    images = net.synth.synthesize(all_ws, batch_size=net.batch_size, progress=_progress("Style mixing"))
    img_of = dict(zip(seeds, images[:len(seeds)]))
    mixed_imgs = iter(images[len(seeds):])
    rows = [[None] + [img_of[col] for col in col_seeds]]
    for r in row_seeds:
        rows.append([img_of[r]] + [next(mixed_imgs) for _ in col_seeds])
    for s in seeds:
        save_image(img_of[s], os.path.join(outdir, f"seed{s:04d}.png"))
    path = os.path.join(outdir, "grid.png")
    save_image(image_grid(rows), path)
    print(f"Wrote {path}")


def interpolate(net, seeds, frames, fps, outdir):
    """A looping GIF walking linearly in W from seed to seed (`frames` per step)."""
    from PIL import Image

    from stylegan2_tf.generate import GenerationError, ensure_outdir, parse_range
    seeds = parse_range(seeds, "--seeds")
    if len(seeds) < 2:
        raise GenerationError("interpolate needs at least two --seeds")
    if frames < 1:
        raise GenerationError("--frames must be >= 1")
    outdir = ensure_outdir(outdir)
    ws = net.ws(seeds)
    # Linear walk in W (W is where the paper measures perceptual path length), looping back.
    walk = []
    for i in range(len(ws)):
        a, b = ws[i], ws[(i + 1) % len(ws)]
        for t in np.arange(frames) / frames:
            walk.append(a + (b - a) * t)
    images = net.synth.synthesize(np.stack(walk), batch_size=net.batch_size, progress=_progress("Interpolating"))
    frames_pil = [Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img) for img in images]
    path = os.path.join(outdir, "interpolate-" + "-".join(str(s) for s in seeds) + ".gif")
    frames_pil[0].save(path, save_all=True, append_images=frames_pil[1:], duration=int(1000 / max(fps, 1)), loop=0)
    print(f"Wrote {path} ({len(frames_pil)} frames)")


def export(net, outdir, fmt, part, precision, force, check):
    """One part of G in one format, checked in its runtime against Keras (`stylegan2_tf/export/`)."""
    from stylegan2_tf.export import export_generator
    if net.class_idx is not None:
        print("note: --class does not apply to export; conditional exports take class_idx as an input")
    result = export_generator(net.G, outdir, fmt, part, precision, truncation_cutoff=net.cutoff,
                              noise_mode=net.noise_mode, force=force, check=check)
    with open(os.path.join(result.folder, "signature.json")) as f:
        sig = json.load(f)

    def fmt_specs(specs):
        return ", ".join(f"{s['name']} {s['shape']} {s['dtype']}".replace("-1", "N") for s in specs)
    print(f"Wrote {fmt} {part} to {result.path}: {fmt_specs(sig['inputs'])} -> {fmt_specs(sig['outputs'])}")
    print(result.check or result.note or "not checked (--nocheck)")
    if fmt == "tfjs" and part == "generator":
        print(f"Browser: cd {result.folder} && python -m http.server, then open http://localhost:8000/")


def main(argv):
    from stylegan2_tf.cli import run_command
    run_command(argv, COMMANDS, dispatch)


def dispatch(command):
    f = FLAGS
    net = Network(f.network, f["truncation-psi"].value, f["truncation-cutoff"].value, f["class"].value,
                  f["noise-mode"].value, f["batch-size"].value, f["fused-modconv"].value)
    if command == "generate-images":
        generate_images(net, f.seeds, f["projected-w"].value, f.outdir)
    elif command == "style-mixing-example":
        col_styles = f["col-styles"].value if f["col-styles"].present else None
        style_mixing_example(net, f["row-seeds"].value, f["col-seeds"].value, col_styles, f.outdir)
    elif command == "interpolate":
        interpolate(net, f.seeds, f.frames, f.fps, f.outdir)
    else:
        export(net, f.outdir, f.format, f.part, f.precision, f.force, f.check)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    app.run(main)
