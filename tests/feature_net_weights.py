"""Seeded random weights for the metrics' feature networks, by tensor name (numpy only).

The reference script (tests/fixtures/metrics/make_reference.py) fills the real
PyTorch networks (pytorch-fid's Inception, torchvision's VGG16, the lpips package)
with exactly these numbers and stores their outputs; the tests rebuild the same
weights from the stored key/shape lists, write them in the published file formats
and compare our networks' outputs with the stored ones. Scales keep activations
O(1) through the deep networks (He-normal convolutions, near-identity batch norm).
"""

import zlib

import numpy as np


def tensor_for(name, shape, seed=0):
    rng = np.random.default_rng(zlib.crc32(name.encode()) + 1000003 * seed)
    shape = tuple(shape)
    leaf = name.rsplit(".", 1)[-1]
    if name.endswith("num_batches_tracked"):
        return np.zeros(shape, np.int64)
    if name.startswith("lin"):                                   # LPIPS: non-negative 1x1 weights
        return (np.abs(rng.standard_normal(shape)) * 0.1).astype(np.float32)
    if leaf == "weight" and len(shape) >= 2:                      # conv / fc kernels
        fan_in = int(np.prod(shape[1:]))
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
    if ".bn." in name or name.startswith("bn"):
        if leaf == "weight":
            return (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
        if leaf == "running_var":
            return (1.0 + 0.2 * np.abs(rng.standard_normal(shape))).astype(np.float32)
        return (0.1 * rng.standard_normal(shape)).astype(np.float32)  # bias, running_mean
    return (0.05 * rng.standard_normal(shape)).astype(np.float32)    # conv / fc biases


def state_dict_for(keys_and_shapes, seed=0):
    return {name: tensor_for(name, shape, seed) for name, shape in keys_and_shapes}


def seeded_images(seed, n, size, channels=3):
    """uint8 NHWC: smooth gradients plus noise, so features vary between images."""
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0, 1, size), np.linspace(0, 1, size), indexing="ij")
    out = []
    for _ in range(n):
        a = rng.uniform(-1, 1, size=(3, channels))
        base = a[0] * yy[..., None] + a[1] * xx[..., None] + a[2] * (yy * xx)[..., None]
        img = 128 + 60 * base + rng.normal(0, 25, size=(size, size, channels))
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return np.stack(out)


def tiny_shapes(keys_and_shapes, divisor=8, fc_width=32):
    """The same networks with channel counts divided by `divisor` (RGB input and the 1008
    Inception classes kept; VGG's fc layers `fc_width` wide) -- for fast end-to-end tests."""
    out = []
    for name, shape in keys_and_shapes:
        shape = list(shape)
        if name.startswith("classifier."):
            layer = int(name.split(".")[1])
            if layer == 0:
                shape = [fc_width, shape[1] // divisor] if len(shape) == 2 else [fc_width]
            elif layer == 3:
                shape = [fc_width, fc_width] if len(shape) == 2 else [fc_width]
            else:
                shape = [shape[0], fc_width] if len(shape) == 2 else shape
        elif name == "fc.weight":
            shape = [shape[0], shape[1] // divisor]
        elif name == "fc.bias" or name.endswith("num_batches_tracked"):
            pass
        elif name.startswith("lin"):
            shape = [1, shape[1] // divisor, 1, 1]
        elif len(shape) == 4:
            shape = [shape[0] // divisor, shape[1] if shape[1] == 3 else shape[1] // divisor] + shape[2:]
        else:
            shape = [shape[0] // divisor]
        out.append((name, shape))
    return out


def write_tiny_feature_files(directory):
    """Tiny Inception (pytorch-fid layout, legacy format), VGG16 and LPIPS files in `directory`
    -> {"inception", "vgg16", "lpips"} paths as the metrics take them."""
    import json
    import os
    from torch_pth_writer import write_pth
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "fixtures", "metrics", "shapes.json")) as f:
        shapes = json.load(f)
    d = str(directory)
    files = {"inception": os.path.join(d, "pt_inception-tiny.pth"), "vgg16": os.path.join(d, "vgg16-tiny.pth")}
    write_pth(files["inception"], state_dict_for(tiny_shapes(shapes["inception"])), legacy=True)
    write_pth(files["vgg16"], state_dict_for(tiny_shapes(shapes["vgg16"])))
    write_pth(os.path.join(d, "vgg.pth"), state_dict_for(tiny_shapes(shapes["lpips_lin"])))
    files["lpips"] = f"{files['vgg16']},{os.path.join(d, 'vgg.pth')}"
    return files
