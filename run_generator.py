"""Generate images with a StyleGAN2 network (official NVIDIA .pkl or our snapshots).

  python run_generator.py generate-images --network NET.pkl --seeds 0-9,42 \
      [--truncation-psi PSI] [--noise-mode const|random|none] [--class IDX] [--outdir out]
  python run_generator.py generate-images --network NET.pkl --projected-w out/target/projected_w.npz
  python run_generator.py style-mixing-example --network NET.pkl --row-seeds 85,100,75 \
      --col-seeds 55,821,1789 [--col-styles 0-6] [--truncation-psi PSI]
  python run_generator.py interpolate --network NET.pkl --seeds 0,1,2 [--frames 24] [--fps 12] \
      [--space w|z] [--video gif|mp4]
  python run_generator.py directions --network NET.pkl --method sefa|ganspace --num 10 [--layers 0-5] \
      --outdir dirs
  python run_generator.py edit --network NET.pkl --seeds 0-3 --directions dirs/directions.npz --index 0 \
      --strengths -3,-1.5,0,1.5,3 [--layers 0-5] [--projected-w FILE] [--video mp4] --outdir out
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

COMMANDS = ("generate-images", "style-mixing-example", "interpolate", "directions", "edit", "export")

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
flags.DEFINE_integer("frames", 24, "interpolate: frames between consecutive seeds; edit: frames of the video's "
                     "sweep from the lowest strength to the highest (and as many back).")
flags.DEFINE_float("fps", 12, "interpolate, edit: frames per second of the video.")
flags.DEFINE_string("video", None, "interpolate (default gif), edit (default none): gif, or mp4 (H.264; needs the "
                    "video extra).")
flags.DEFINE_string("space", "w", "interpolate: w (linear in W) or z (spherical in Z, then mapped).")
flags.DEFINE_string("method", "sefa", "directions: sefa (from the style weights) or ganspace (PCA of mapped z).")
flags.DEFINE_integer("num", 10, "directions: how many directions to keep.")
flags.DEFINE_integer("samples", 100000, "directions --method ganspace: z samples.")
flags.DEFINE_string("layers", None, "directions: w layers to factorise / apply to (e.g. 0-5; default all); "
                    "edit: w layers to move (default: the directions' own).")
flags.DEFINE_string("directions", None, "edit: a directions.npz written by the directions command.")
flags.DEFINE_integer("index", 0, "edit: which direction of the file.")
flags.DEFINE_string("strengths", "-3,-1.5,0,1.5,3", "edit: steps along the direction, one column each (a step "
                    "is 1 for sefa, one standard deviation for ganspace).")
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


def interpolate(net, seeds, frames, fps, outdir, space, video):
    """A looping walk through the seeds (`frames` per step): linear in W, or spherical in Z and mapped."""
    from stylegan2_tf.editing.walks import linear_walk, slerp_walk
    from stylegan2_tf.generate import GenerationError, class_labels, ensure_outdir, parse_range, seed_to_z
    from stylegan2_tf.video import write_video
    seeds = parse_range(seeds, "--seeds")
    if len(seeds) < 2:
        raise GenerationError("interpolate needs at least two --seeds")
    if frames < 1:
        raise GenerationError("--frames must be >= 1")
    if space not in ("w", "z"):
        raise GenerationError(f"--space {space!r}: expected w or z")
    video = video or "gif"
    outdir = ensure_outdir(outdir)
    if space == "w":
        walk = linear_walk(net.ws(seeds), frames)
    else:
        z = slerp_walk(np.concatenate([seed_to_z(s, net.G.config.z_dim) for s in seeds]), frames)
        walk = net.synth.map(z, class_labels(net.G, net.class_idx, len(z)), psi=net.psi, cutoff=net.cutoff).numpy()
    images = net.synth.synthesize(walk, batch_size=net.batch_size, progress=_progress("Interpolating"))
    path = os.path.join(outdir, f"interpolate-{space}-" + "-".join(str(s) for s in seeds) + "." + video)
    write_video(images, path, fps, video)
    print(f"Wrote {path} ({len(images)} frames, looping)")


def directions(network, method, num, samples, layers, outdir):
    """directions.npz: unit vectors in W (SeFa or GANSpace) for `edit` and the explorer."""
    from stylegan2_tf import editing
    from stylegan2_tf.generate import ensure_outdir
    from stylegan2_tf.loading import load_generator
    G = load_generator(network)
    span = editing.parse_layers(layers, G.num_ws) if layers else None
    if method == "sefa":
        found = editing.sefa(G, num, span)
    elif method == "ganspace":
        found = editing.ganspace(G, num, samples=samples, layers=span)
    else:
        raise editing.EditingError(f"--method {method!r}: expected sefa or ganspace")
    path = os.path.join(ensure_outdir(outdir), "directions.npz")
    found.save(path)
    what = "eigenvalues" if method == "sefa" else "variances"
    print(f"Wrote {path}: {len(found.vectors)} {method} directions for w layers {found.layers[0]}-{found.layers[1]}; "
          f"{what} " + ", ".join(f"{v:.3g}" for v in found.values))


def edit(net, seeds, projected_w, directions_path, index, strengths, layers, frames, fps, outdir, video):
    """grid.png: rows the seeds (or the projected image), columns the strengths along one direction."""
    from stylegan2_tf import editing
    from stylegan2_tf.generate import GenerationError, ensure_outdir, image_grid, parse_range, save_image
    from stylegan2_tf.video import write_video
    if not directions_path:
        raise GenerationError("edit needs --directions (a directions.npz from the directions command)")
    found = editing.load_directions(directions_path, net.G)
    if found.network != editing.network_digest(net.G):
        print(f"note: {directions_path} was found in another network (weights differ); applying it anyway")
    try:
        steps = [float(v) for v in strengths.split(",")]
    except ValueError:
        raise GenerationError(f"--strengths {strengths!r}: expected numbers like -3,0,3") from None
    span = editing.parse_layers(layers, net.G.num_ws) if layers else None
    if projected_w:
        from stylegan2_tf.projector import load_projection
        ws, names = load_projection(projected_w, net.G), ["projected"]
    else:
        seeds = parse_range(seeds, "--seeds")
        ws, names = net.ws(seeds), [f"seed{s:04d}" for s in seeds]
    outdir = ensure_outdir(outdir)
    edited = np.concatenate([editing.apply_direction(ws, found, index, t, span) for t in steps])
    images = net.synth.synthesize(edited, batch_size=net.batch_size, progress=_progress("Editing"))
    images = images.reshape(len(steps), len(ws), *images.shape[1:])
    path = os.path.join(outdir, "grid.png")
    save_image(image_grid([list(images[:, i]) for i in range(len(ws))]), path)
    print(f"Wrote {path}: rows {', '.join(names)}; columns strengths {', '.join(f'{t:g}' for t in steps)} "
          f"of {found.method} direction {index}")
    if video:
        sweep = np.linspace(min(steps), max(steps), max(frames, 2))
        sweep = np.concatenate([sweep, sweep[-2:0:-1]])  # there and back: it loops
        walk = np.concatenate([editing.apply_direction(ws, found, index, t, span) for t in sweep])
        frames_ = net.synth.synthesize(walk, batch_size=net.batch_size).reshape(len(sweep), len(ws), *images.shape[2:])
        path = os.path.join(outdir, f"edit-{found.method}-{index}.{video}")
        write_video([np.concatenate(list(f), axis=1) for f in frames_], path, fps, video)
        print(f"Wrote {path} ({len(sweep)} frames, looping)")


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
    from stylegan2_tf.ops import custom_ops
    custom_ops.prebuilt_kernels_only()  # generation: the kernels if built before, never a compile
    run_command(argv, COMMANDS, dispatch)


def dispatch(command):
    f = FLAGS
    if command == "directions":  # weights only: no truncation, class or noise settings
        return directions(f.network, f.method, f.num, f.samples, f.layers, f.outdir)
    net = Network(f.network, f["truncation-psi"].value, f["truncation-cutoff"].value, f["class"].value,
                  f["noise-mode"].value, f["batch-size"].value, f["fused-modconv"].value)
    if command == "generate-images":
        generate_images(net, f.seeds, f["projected-w"].value, f.outdir)
    elif command == "style-mixing-example":
        col_styles = f["col-styles"].value if f["col-styles"].present else None
        style_mixing_example(net, f["row-seeds"].value, f["col-seeds"].value, col_styles, f.outdir)
    elif command == "interpolate":
        interpolate(net, f.seeds, f.frames, f.fps, f.outdir, f.space, f.video)
    elif command == "edit":
        edit(net, f.seeds, f["projected-w"].value, f.directions, f.index, f.strengths, f.layers, f.frames, f.fps,
             f.outdir, f.video)
    else:
        export(net, f.outdir, f.format, f.part, f.precision, f.force, f.check)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from stylegan2_tf.cli import prefer_onednn_kernels
    prefer_onednn_kernels()  # before TensorFlow loads
    app.run(main)
