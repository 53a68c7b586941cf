#!/usr/bin/env python
"""Create, inspect and compare multi-resolution TFRecord datasets.

Run from the repository root, for example::

    python datasets/dataset_tool.py create_from_images datasets/mine ~/my-images --shuffle 1
    python datasets/dataset_tool.py create_from_zip datasets/mine ~/my-images.zip --resize 256
    python datasets/dataset_tool.py create_cifar10 datasets/cifar10 ~/downloads/cifar-10-python.tar.gz
    python datasets/dataset_tool.py create_digits datasets/digits32 --labels 0
    python datasets/dataset_tool.py info datasets/mine --verify 1
    python datasets/dataset_tool.py display datasets/mine --output grid.png

Type ``python datasets/dataset_tool.py <command> -h`` for the options of a
command.  See datasets/README.md for the format and the image-mode rules.
Errors about bad input are printed as ``Error: <file>: <problem>`` and the
tool exits with status 1 without leaving a partial dataset behind.
"""

import argparse
import os
import sys

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from stylegan2_tf import data as sd  # noqa: E402  (after the sys.path set-up)
from stylegan2_tf.errors import UserError  # noqa: E402


def _flag(p, name, **kwargs):
    """Option accepted with underscores (as NVIDIA's tool spells them) and with hyphens."""
    names = ["--" + name]
    if "_" in name:
        names.append("--" + name.replace("_", "-"))
    p.add_argument(*names, dest=name, **kwargs)


def _bool(value):
    v = str(value).lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError("expected 0 or 1, got %r" % value)


def build_parser(prog="dataset_tool.py"):
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Create multi-resolution TFRecord datasets (NVIDIA StyleGAN2 format) and inspect them.",
        epilog='Type "%s <command> -h" for the options of a command.' % prog,
    )
    sub = parser.add_subparsers(dest="command", metavar="command")
    sub.required = True

    def cmd(name, help_text, example):
        return sub.add_parser(name, help=help_text, description=help_text, epilog="Example: %s %s" % (prog, example))

    p = cmd("display", "Write a PNG grid of the first images of a dataset.",
            "display datasets/mnist --output mnist.png")
    p.add_argument("tfrecord_dir", help="Dataset directory")
    _flag(p, "output", help="PNG file to write (default: <name>-grid.png in the current directory)")
    _flag(p, "num_images", type=int, default=64, help="Number of images in the grid (default: 64)")
    _flag(p, "columns", type=int, default=None, help="Grid columns (default: square-ish)")
    _flag(p, "resolution", type=int, default=None, help="Which stored resolution (default: the largest)")

    p = cmd("extract", "Extract the images of a dataset as PNG files.", "extract datasets/mnist mnist-images")
    p.add_argument("tfrecord_dir", help="Dataset directory")
    p.add_argument("output_dir", help="Folder to write img%%08d.png (and dataset.json with labels) into")
    _flag(p, "resolution", type=int, default=None, help="Which stored resolution (default: the largest)")
    _flag(p, "max_images", type=int, default=None, help="Extract at most this many images")

    p = cmd("compare", "Compare two datasets image by image (and label by label).", "compare datasets/a datasets/b")
    p.add_argument("tfrecord_dir_a", help="First dataset directory")
    p.add_argument("tfrecord_dir_b", help="Second dataset directory")
    _flag(p, "ignore_labels", type=_bool, default=False, help="Ignore labels (default: 0)")

    p = cmd("info", "Print resolution, channels, image count and labels of a dataset.", "info datasets/ffhq --verify 1")
    p.add_argument("tfrecord_dir", help="Dataset directory")
    _flag(p, "resolution", type=int, default=None, help="Which stored resolution (default: the largest)")
    _flag(p, "verify", type=_bool, default=False,
          help="Read every record of every file (checksums, shapes) (default: 0)")

    def image_options(p):
        _flag(p, "shuffle", type=_bool, default=True, help="Shuffle the image order (default: 1)")
        _flag(p, "resize", type=int, default=None, help="Resize every image to RESIZE x RESIZE (power of two)")
        _flag(p, "resize_filter", choices=["lanczos", "box"], default="lanczos",
              help="Resize filter (default: lanczos)")
        _flag(p, "center_crop", type=_bool, default=True,
              help="With --resize: crop non-square images to their central square; 0 rejects them (default: 1)")
        _flag(p, "labels", default=None, help="dataset.json with labels (default: dataset.json at the root, if any)")
        _flag(p, "labels_from_folders", type=_bool, default=False,
              help="One class per top-level sub-folder (sorted by name; the names go to classes.json) (default: 0)")
        _flag(p, "max_images", type=int, default=None, help="Use at most this many images")

    p = cmd("create_from_images", "Create a dataset from a folder of images (recursive; PNG, JPEG, WebP).",
            "create_from_images datasets/mine ~/my-images")
    p.add_argument("tfrecord_dir", help="New dataset directory to be created")
    p.add_argument("image_dir", help="Folder containing the images")
    image_options(p)

    p = cmd("create_from_zip", "Create a dataset from a zip archive of images.",
            "create_from_zip datasets/mine my-images.zip")
    p.add_argument("tfrecord_dir", help="New dataset directory to be created")
    p.add_argument("zip_file", help="Zip archive containing the images")
    image_options(p)

    p = cmd("create_cifar10", "Create a dataset for CIFAR-10 (python version).",
            "create_cifar10 datasets/cifar10 ~/downloads/cifar-10-python.tar.gz")
    p.add_argument("tfrecord_dir", help="New dataset directory to be created")
    p.add_argument("cifar10_dir", help="cifar-10-batches-py folder or cifar-10-python.tar.gz")

    p = cmd("create_cifar100", "Create a dataset for CIFAR-100 (python version).",
            "create_cifar100 datasets/cifar100 ~/downloads/cifar-100-python.tar.gz")
    p.add_argument("tfrecord_dir", help="New dataset directory to be created")
    p.add_argument("cifar100_dir", help="cifar-100-python folder or cifar-100-python.tar.gz")

    p = cmd("create_mnist", "Create a dataset for MNIST.", "create_mnist datasets/mnist ~/downloads/mnist")
    p.add_argument("tfrecord_dir", help="New dataset directory to be created")
    p.add_argument("mnist_dir", help="Folder containing train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz")

    p = cmd("create_digits", "Create a dataset from scikit-learn's bundled handwritten digits (offline; "
            "needs scikit-learn).", "create_digits datasets/digits32 --resolution 32 --labels 0")
    p.add_argument("tfrecord_dir", help="New dataset directory to be created")
    _flag(p, "resolution", type=int, default=32, help="Upscale the 8x8 scans to this power of two (default: 32)")
    _flag(p, "labels", type=_bool, default=True,
          help="Store the class labels (training then makes a conditional network) (default: 1)")
    _flag(p, "max_images", type=int, default=None, help="The first N scans only (default: all 1,797)")

    p = cmd("create_lsun", "Create a dataset for one LSUN category (LMDB; needs the lmdb package).",
            "create_lsun datasets/lsun-car-100k ~/downloads/lsun/car_lmdb --resolution 256 --max_images 100000")
    p.add_argument("tfrecord_dir", help="New dataset directory to be created")
    p.add_argument("lmdb_dir", help="Folder containing the LMDB database")
    _flag(p, "resolution", type=int, default=256, help="Output resolution (default: 256)")
    _flag(p, "max_images", type=int, default=None, help="Maximum number of images (default: all)")

    p = cmd("create_lsun_wide", "Create an LSUN dataset with a non-square aspect ratio on a square canvas.",
            "create_lsun_wide datasets/lsun-car-512x384 ~/downloads/lsun/car_lmdb --width 512 --height 384")
    p.add_argument("tfrecord_dir", help="New dataset directory to be created")
    p.add_argument("lmdb_dir", help="Folder containing the LMDB database")
    _flag(p, "width", type=int, default=512, help="Output width, a power of two (default: 512)")
    _flag(p, "height", type=int, default=384, help="Output height (default: 384)")
    _flag(p, "max_images", type=int, default=None, help="Maximum number of images (default: all)")

    p = cmd("create_celeba", "Create a dataset for CelebA (128x128 crops of the aligned images).",
            "create_celeba datasets/celeba ~/downloads/celeba")
    p.add_argument("tfrecord_dir", help="New dataset directory to be created")
    p.add_argument("celeba_dir", help="Folder containing img_align_celeba_png/ (or img_align_celeba/)")
    _flag(p, "cx", type=int, default=89, help="Center X coordinate (default: 89)")
    _flag(p, "cy", type=int, default=121, help="Center Y coordinate (default: 121)")

    for name, p in sub.choices.items():
        if name.startswith("create_"):
            _flag(p, "overwrite", type=_bool, default=False,
                  help="Replace an existing non-empty dataset directory (default: 0)")
    return parser


def run(args):
    c = args.command
    if c == "display":
        out = args.output or "%s-grid.png" % sd.dataset_name(args.tfrecord_dir)
        n, labels = sd.display(args.tfrecord_dir, out, args.num_images, args.columns, args.resolution)
        if labels.shape[1]:
            print("Labels (argmax): %s" % labels.argmax(axis=1).tolist())
        print("Wrote a grid of %d images to %s" % (n, out))
    elif c == "extract":
        n = sd.extract(args.tfrecord_dir, args.output_dir, args.resolution, args.max_images)
        print("Extracted %d images to %s" % (n, args.output_dir))
    elif c == "compare":
        r = sd.compare(args.tfrecord_dir_a, args.tfrecord_dir_b, args.ignore_labels)
        if r.num_a != r.num_b:
            print("Datasets contain different numbers of images (%d vs %d)" % (r.num_a, r.num_b))
        for i in r.different_images[:20]:
            print("Image %d is different" % i)
        for i in r.different_labels[:20]:
            print("Label %d is different" % i)
        n = min(r.num_a, r.num_b)
        print("Identical images: %d / %d" % (r.identical_images, n))
        if r.identical_labels is not None:
            print("Identical labels: %d / %d" % (r.identical_labels, n))
        return 0 if r.identical else 2
    elif c == "info":
        info = sd.read_dataset_info(args.tfrecord_dir, args.resolution)
        print(sd.describe(info))
        if args.verify:
            for path, shape, count in sd.verify_dataset(args.tfrecord_dir):
                print("Verified:    %s shape %s, %d records" % (path, "x".join(map(str, shape)), count))
    elif c in ("create_from_images", "create_from_zip"):
        src = args.image_dir if c == "create_from_images" else args.zip_file
        fn = sd.create_from_images if c == "create_from_images" else sd.create_from_zip
        n = fn(args.tfrecord_dir, src, shuffle=args.shuffle, resize=args.resize, resize_filter=args.resize_filter,
               center_crop=args.center_crop, labels_json=args.labels, max_images=args.max_images,
               overwrite=args.overwrite, verbose=True, labels_from_folders=args.labels_from_folders)
        print("Created %s with %d images" % (args.tfrecord_dir, n))
    elif c == "create_cifar10":
        n = sd.create_cifar10(args.tfrecord_dir, args.cifar10_dir, overwrite=args.overwrite, verbose=True)
        print("Created %s with %d images" % (args.tfrecord_dir, n))
    elif c == "create_cifar100":
        n = sd.create_cifar100(args.tfrecord_dir, args.cifar100_dir, overwrite=args.overwrite, verbose=True)
        print("Created %s with %d images" % (args.tfrecord_dir, n))
    elif c == "create_mnist":
        n = sd.create_mnist(args.tfrecord_dir, args.mnist_dir, overwrite=args.overwrite, verbose=True)
        print("Created %s with %d images" % (args.tfrecord_dir, n))
    elif c == "create_digits":
        n = sd.create_digits(args.tfrecord_dir, args.resolution, labels=args.labels, overwrite=args.overwrite,
                             verbose=True, max_images=args.max_images)
        print("Created %s with %d images" % (args.tfrecord_dir, n))
    elif c == "create_lsun":
        n = sd.create_lsun(args.tfrecord_dir, args.lmdb_dir, args.resolution, args.max_images,
                           overwrite=args.overwrite, verbose=True)
        print("Created %s with %d images" % (args.tfrecord_dir, n))
    elif c == "create_lsun_wide":
        n = sd.create_lsun_wide(args.tfrecord_dir, args.lmdb_dir, args.width, args.height, args.max_images,
                                overwrite=args.overwrite, verbose=True)
        print("Created %s with %d images" % (args.tfrecord_dir, n))
    elif c == "create_celeba":
        n = sd.create_celeba(args.tfrecord_dir, args.celeba_dir, args.cx, args.cy, overwrite=args.overwrite,
                             verbose=True)
        print("Created %s with %d images" % (args.tfrecord_dir, n))
    return 0


def main(argv=None):
    """Entry point; returns the exit status (1 on bad input, 2 when `compare` finds differences)."""
    parser = build_parser(os.path.basename(sys.argv[0]) if argv is None else "dataset_tool.py")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return run(args)
    except UserError as exc:
        print("Error: %s" % exc, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
