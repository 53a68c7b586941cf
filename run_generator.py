"""Generate images with a StyleGAN2 network (official NVIDIA .pkl or our snapshots).

  python run_generator.py generate-images --network NET.pkl --seeds 0-9,42 \
      [--truncation-psi PSI] [--noise-mode const|random|none] [--class IDX] [--outdir out]
  python run_generator.py generate-images --network NET.pkl --projected-w out/target/projected_w.npz
  python run_generator.py style-mixing-example --network NET.pkl --row-seeds 85,100,75 \
      --col-seeds 55,821,1789 [--col-styles 0-6] [--truncation-psi PSI]
  python run_generator.py interpolate --network NET.pkl --seeds 0,1,2 [--frames 24] [--fps 12]
  python run_generator.py export --network NET.pkl --outdir exported_generator

Truncation defaults to the network's official one: psi 0.5 on every layer (configs B-F),
psi 0.7 on the first 8 layers (config A, StyleGAN1's G_style).
"""

import os
import sys
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
FLAGS = flags.FLAGS


def flag(name):
    return FLAGS[name].value


def _progress(prefix):
    start = time.time()

    def report(done, total):
        print(f"{prefix}: {done}/{total} images ({time.time() - start:.1f} s)", flush=True)
    return report


def truncation(G):
    """(psi, cutoff): the flags, else the network's official defaults."""
    psi, cutoff = G.config.default_truncation
    if flag("truncation-psi") is not None:
        psi = flag("truncation-psi")
    if flag("truncation-cutoff") is not None:
        cutoff = flag("truncation-cutoff")
    return psi, cutoff


def _load(path):
    from stylegan2_tf.loading import load_generator
    print(f'Loading network from "{path}"...', flush=True)
    return load_generator(path)


def generate_images(G, synth):
    from stylegan2_tf.generate import class_labels, ensure_outdir, parse_range, save_image, seed_to_z
    if flag("projected-w"):
        return generate_from_projection(G)
    seeds = parse_range(flag("seeds"), "--seeds")
    psi, cutoff = truncation(G)
    c = class_labels(G, flag("class"), len(seeds))
    outdir = ensure_outdir(flag("outdir"))
    z = np.concatenate([seed_to_z(s, G.config.z_dim) for s in seeds])
    images = synth.generate(z, c, psi=psi, cutoff=cutoff, batch_size=flag("batch-size"),
                            progress=_progress("Generating"))
    for seed, img in zip(seeds, images):
        save_image(img, os.path.join(outdir, f"seed{seed:04d}.png"))
    print(f"Wrote {len(seeds)} images to {outdir}")


def generate_from_projection(G):
    from stylegan2_tf.generate import GenerationError, ensure_outdir, save_image, to_uint8
    from stylegan2_tf.projector import ProjectionError, load_projection
    try:
        ws = load_projection(flag("projected-w"), G)
    except ProjectionError as e:
        raise GenerationError(str(e)) from None
    outdir = ensure_outdir(flag("outdir"))
    image = to_uint8(G.synthesize(ws, noise_mode="const")).numpy()[0]
    path = os.path.join(outdir, "projected.png")
    save_image(image, path)
    print(f"Wrote {path}")


def style_mixing_example(G, synth):
    from stylegan2_tf.generate import (GenerationError, class_labels, ensure_outdir, image_grid, parse_range,
                                       save_image, seed_to_z)
    row_seeds = parse_range(flag("row-seeds"), "--row-seeds")
    col_seeds = parse_range(flag("col-seeds"), "--col-seeds")
    col_styles = parse_range(flag("col-styles"), "--col-styles")
    if not FLAGS["col-styles"].present:  # the default 0-6 is for big networks: keep what exists
        col_styles = [s for s in col_styles if s < G.num_ws - 1] or [0]
    if max(col_styles) >= G.num_ws:
        raise GenerationError(f"--col-styles: this network has w layers 0-{G.num_ws - 1}, got {max(col_styles)}")
    outdir = ensure_outdir(flag("outdir"))
    seeds = list(dict.fromkeys(row_seeds + col_seeds))
    z = np.concatenate([seed_to_z(s, G.config.z_dim) for s in seeds])
    psi, cutoff = truncation(G)
    ws = synth.map(z, class_labels(G, flag("class"), len(seeds)), psi=psi, cutoff=cutoff).numpy()
    w_of = dict(zip(seeds, ws))
    mixed = []
    for r in row_seeds:
        for col in col_seeds:
            w = w_of[r].copy()
            w[col_styles] = w_of[col][col_styles]
            mixed.append(w)
    all_ws = np.stack([w_of[s] for s in seeds] + mixed)
    images = synth.synthesize(all_ws, batch_size=flag("batch-size"), progress=_progress("Style mixing"))
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


def interpolate(G, synth):
    from PIL import Image

    from stylegan2_tf.generate import GenerationError, class_labels, ensure_outdir, parse_range, seed_to_z
    seeds = parse_range(flag("seeds"), "--seeds")
    if len(seeds) < 2:
        raise GenerationError("interpolate needs at least two --seeds")
    frames = flag("frames")
    if frames < 1:
        raise GenerationError("--frames must be >= 1")
    outdir = ensure_outdir(flag("outdir"))
    z = np.concatenate([seed_to_z(s, G.config.z_dim) for s in seeds])
    psi, cutoff = truncation(G)
    ws = synth.map(z, class_labels(G, flag("class"), len(seeds)), psi=psi, cutoff=cutoff).numpy()
    # Linear walk in W (W is where the paper measures perceptual path length), looping back.
    walk = []
    for i in range(len(ws)):
        a, b = ws[i], ws[(i + 1) % len(ws)]
        for t in np.arange(frames) / frames:
            walk.append(a + (b - a) * t)
    images = synth.synthesize(np.stack(walk), batch_size=flag("batch-size"), progress=_progress("Interpolating"))
    frames_pil = [Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img) for img in images]
    path = os.path.join(outdir, "interpolate-" + "-".join(str(s) for s in seeds) + ".gif")
    frames_pil[0].save(path, save_all=True, append_images=frames_pil[1:], duration=int(1000 / max(flag("fps"), 1)),
                       loop=0)
    print(f"Wrote {path} ({len(frames_pil)} frames)")


def export(G, _synth):
    from stylegan2_tf.export import export_saved_model
    path = export_saved_model(G, flag("outdir"), noise_mode=flag("noise-mode"))
    print(f"Wrote SavedModel to {path} (signature serving_default: z, psi"
          f"{', class_idx' if G.config.c_dim else ''} -> images uint8 NHWC)")


def main(argv):
    if len(argv) != 2 or argv[1] not in COMMANDS:
        got = " ".join(argv[1:]) or "nothing"
        sys.exit(f"error: expected one command of {', '.join(COMMANDS)}; got {got}")
    if not flag("network"):
        sys.exit("error: --network is required")
    from stylegan2_tf.generate import GenerationError, ImageSynthesizer, check_psi
    from stylegan2_tf.official import NetworkPickleError
    try:
        if flag("truncation-psi") is not None:
            check_psi(flag("truncation-psi"))
        if flag("batch-size") < 1:
            raise GenerationError("--batch-size must be >= 1")
        G = _load(flag("network"))
        synth = ImageSynthesizer(G, noise_mode=flag("noise-mode"), fused_modconv=flag("fused-modconv"))
        {"generate-images": generate_images, "style-mixing-example": style_mixing_example,
         "interpolate": interpolate, "export": export}[argv[1]](G, synth)
    except (GenerationError, NetworkPickleError, FileExistsError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    app.run(main)
