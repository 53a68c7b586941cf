"""Loading the metrics' feature networks from local files, safely.

Nothing is downloaded. Each loader recognises the file by its content, reads it
without executing anything (protobuf parsing for a GraphDef; a restricted unpickler
for PyTorch files and dnnlib pickles), checks every shape against the network it
builds, and raises `FeatureNetworkError` with one line naming the file otherwise.

Where the files come from (see also stylegan2_tf/metrics/README.md):
  Inception  classify_image_graph_def.pb from inception-2015-12-05.tgz (Google's
             2015 release, the graph of the original FID code), or pytorch-fid's
             pt_inception-2015-12-05-6726825d.pth (the same weights, converted).
  LPIPS      torchvision's vgg16-397923af.pth + the lpips package's weights/v0.1/vgg.pth.
  VGG16      torchvision's vgg16-397923af.pth (fc2 features for precision/recall).
"""

import os
import zipfile

import numpy as np

from stylegan2_tf.metrics.inception import FeatureNetworkError, InceptionFeatures, InceptionV3FID
from stylegan2_tf.metrics.lpips import LPIPS, LPIPSDistance
from stylegan2_tf.torch_files import LEGACY_MAGIC_NUMBER, read_torch_state_dict
from stylegan2_tf.metrics.vgg16 import LPIPS_TAPS, VGG16FC2

__all__ = ["FeatureNetworkError", "load_inception", "load_lpips", "load_vgg16", "file_kind"]


def _split_paths(path_or_paths):
    if isinstance(path_or_paths, (list, tuple)):
        paths = [os.fspath(p) for p in path_or_paths]
    else:
        paths = [p for p in os.fspath(path_or_paths).split(",") if p]
    if not paths:
        raise FeatureNetworkError("no feature-network file given")
    for p in paths:
        if not os.path.isfile(p):
            raise FeatureNetworkError(f"{p}: no such file")
    return paths


def file_kind(path):
    """'torch' (zip or legacy .pth), 'dnnlib' (NVIDIA pickle), 'graphdef' or 'unknown'."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if zipfile.is_zipfile(path):
        return "torch"
    if head[:1] == b"\x80" and LEGACY_MAGIC_NUMBER.to_bytes(10, "little") in head[:16]:
        return "torch"                                  # legacy: pickled magic number first
    if head[:1] == b"\x80" and b"dnnlib" in head:
        return "dnnlib"
    if head[:1] == b"\x80":
        return "pickle"
    return "graphdef" if head[:1] == b"\n" else "unknown"


def _set(variable, value, where, path):
    value = np.asarray(value, dtype=np.float32)
    if tuple(variable.shape) != value.shape:
        raise FeatureNetworkError(f"{path}: {where} has shape {value.shape}, expected {tuple(variable.shape)}")
    variable.assign(value)


def _read_dnnlib_network(path):
    """A single `dnnlib.tflib.network.Network` pickle -> NetworkState, read without running code."""
    from stylegan2_tf.official.unpickler import NetworkPickleError, NetworkState, RestrictedUnpickler
    try:
        with open(path, "rb") as f:
            net = RestrictedUnpickler(f).load()
    except NetworkPickleError as e:
        raise FeatureNetworkError(f"{path}: {e}") from None
    except Exception as e:
        raise FeatureNetworkError(f"{path}: not a readable pickle ({type(e).__name__})") from None
    if not isinstance(net, NetworkState):
        raise FeatureNetworkError(f"{path}: a pickle but not a dnnlib network ({type(net).__name__})")
    return net


def _refuse_dnnlib(path, what):
    net = _read_dnnlib_network(path)
    raise FeatureNetworkError(
        f"{path}: NVIDIA dnnlib pickle ({net.build_func_name or 'unknown network'}) -- not supported for {what}; "
        f"use the files listed in stylegan2_tf/metrics/README.md")


# --------------------------------------------------------------------------- Inception

def _read_graphdef(path):
    import tensorflow as tf
    graph_def = tf.compat.v1.GraphDef()
    try:
        with open(path, "rb") as f:
            graph_def.ParseFromString(f.read())
    except Exception as e:
        raise FeatureNetworkError(f"{path}: not a TensorFlow GraphDef ({type(e).__name__})") from None
    nodes = {node.name: node for node in graph_def.node}
    if not nodes:
        raise FeatureNetworkError(f"{path}: not a TensorFlow GraphDef (no nodes)")
    return nodes


def _inception_from_graphdef(path):
    import tensorflow as tf
    nodes = _read_graphdef(path)
    for required in ("pool_3", "softmax/weights", "softmax/biases", "conv/conv2d_params"):
        if required not in nodes:
            raise FeatureNetworkError(f"{path}: GraphDef has no node '{required}' -- not the 2015-12-05 Inception "
                                      f"graph")

    def const(name):
        node = nodes.get(name)
        if node is None or node.op != "Const":
            raise FeatureNetworkError(f"{path}: GraphDef has no constant '{name}'")
        return tf.make_ndarray(node.attr["value"].tensor)

    first = const("conv/conv2d_params")
    if first.ndim != 4 or first.shape[2] != 3 or 32 % first.shape[3]:
        raise FeatureNetworkError(f"{path}: first convolution has shape {first.shape}, expected [3, 3, 3, 32]")
    weights = const("softmax/weights")
    net = InceptionV3FID(width_divisor=32 // first.shape[3], num_classes=weights.shape[-1])
    for layer in net.conv_layers():
        g = layer.graph_name
        bn = nodes.get(f"{g}/batchnorm")
        conv = nodes.get(f"{g}/Conv2D")
        if bn is None or conv is None:
            raise FeatureNetworkError(f"{path}: GraphDef lacks '{g}/Conv2D' or '{g}/batchnorm'")
        strides = list(conv.attr["strides"].list.i)
        padding = conv.attr["padding"].s.decode()
        if strides[1:3] != [layer.strides, layer.strides] or padding != layer.padding:
            raise FeatureNetworkError(f"{path}: '{g}' uses strides {strides} padding {padding}, "
                                      f"expected {layer.strides} {layer.padding}")
        if "variance_epsilon" in bn.attr:
            layer.epsilon = float(bn.attr["variance_epsilon"].f)
        scale_after = bn.attr["scale_after_normalization"].b if "scale_after_normalization" in bn.attr else True
        _set(layer.kernel, const(f"{g}/conv2d_params"), f"'{g}/conv2d_params'", path)
        gamma = const(f"{g}/batchnorm/gamma") if scale_after else np.ones(layer.gamma.shape, np.float32)
        _set(layer.gamma, gamma, f"'{g}/batchnorm/gamma'", path)
        _set(layer.beta, const(f"{g}/batchnorm/beta"), f"'{g}/batchnorm/beta'", path)
        _set(layer.moving_mean, const(f"{g}/batchnorm/moving_mean"), f"'{g}/batchnorm/moving_mean'", path)
        _set(layer.moving_variance, const(f"{g}/batchnorm/moving_variance"), f"'{g}/batchnorm/moving_variance'", path)
    _set(net.softmax_weights, weights, "'softmax/weights'", path)
    _set(net.softmax_biases, const("softmax/biases"), "'softmax/biases'", path)
    return net


def _inception_from_torch(path):
    sd = read_torch_state_dict(path)
    first = sd.get("Conv2d_1a_3x3.conv.weight")
    if first is None or "fc.weight" not in sd:
        raise FeatureNetworkError(f"{path}: not pytorch-fid's Inception weights (no Conv2d_1a_3x3 / fc)")
    if first.ndim != 4 or first.shape[1] != 3 or 32 % first.shape[0]:
        raise FeatureNetworkError(f"{path}: Conv2d_1a_3x3 has shape {first.shape}, expected [32, 3, 3, 3]")
    net = InceptionV3FID(width_divisor=32 // first.shape[0], num_classes=sd["fc.weight"].shape[0])
    used = set()

    def take(key):
        if key not in sd:
            raise FeatureNetworkError(f"{path}: missing tensor '{key}'")
        used.add(key)
        return sd[key]

    for layer in net.conv_layers():
        t = layer.torch_name
        _set(layer.kernel, take(f"{t}.conv.weight").transpose(2, 3, 1, 0), f"'{t}.conv.weight'", path)
        _set(layer.gamma, take(f"{t}.bn.weight"), f"'{t}.bn.weight'", path)
        _set(layer.beta, take(f"{t}.bn.bias"), f"'{t}.bn.bias'", path)
        _set(layer.moving_mean, take(f"{t}.bn.running_mean"), f"'{t}.bn.running_mean'", path)
        _set(layer.moving_variance, take(f"{t}.bn.running_var"), f"'{t}.bn.running_var'", path)
    _set(net.softmax_weights, take("fc.weight").T, "'fc.weight'", path)
    _set(net.softmax_biases, take("fc.bias"), "'fc.bias'", path)
    unexpected = [k for k in sd if k not in used and not k.endswith("num_batches_tracked")]
    if unexpected:
        raise FeatureNetworkError(f"{path}: unexpected tensors for the FID Inception, e.g. '{unexpected[0]}'")
    return net


def load_inception(path, batch_size=64):
    """The 2015-12-05 FID Inception from a local `.pb` GraphDef or pytorch-fid `.pth`.

    Returns an object with `.features(uint8 NHWC) -> [N, 2048]` and
    `.logits(uint8 NHWC) -> [N, 1008]` (logits without the output bias).
    """
    (path,) = _split_paths(path)
    kind = file_kind(path)
    if kind == "graphdef":
        net = _inception_from_graphdef(path)
    elif kind == "torch":
        net = _inception_from_torch(path)
    elif kind in ("dnnlib", "pickle"):
        _refuse_dnnlib(path, "the Inception")
    else:
        raise FeatureNetworkError(f"{path}: not an Inception file (expected a .pb GraphDef or a pytorch-fid .pth)")
    return InceptionFeatures(net, source=path, batch_size=batch_size)


# --------------------------------------------------------------------------- VGG16 / LPIPS

def _vgg_convs_from_torch(convs, sd, path):
    for conv in convs.convs:
        i = conv.torch_index
        for key in (f"features.{i}.weight", f"features.{i}.bias"):
            if key not in sd:
                raise FeatureNetworkError(f"{path}: missing tensor '{key}' (not torchvision's VGG16)")
        _set(conv.kernel, sd[f"features.{i}.weight"].transpose(2, 3, 1, 0), f"'features.{i}.weight'", path)
        _set(conv.bias, sd[f"features.{i}.bias"], f"'features.{i}.bias'", path)


def _vgg_divisor(sd, path):
    w = sd.get("features.0.weight")
    if w is None or w.ndim != 4 or w.shape[1] != 3 or 64 % w.shape[0]:
        raise FeatureNetworkError(f"{path}: not torchvision's VGG16 (features.0.weight missing or not [64, 3, 3, 3])")
    return 64 // w.shape[0]


def load_lpips(path_or_paths):
    """LPIPS v0.1 (VGG16) from NVIDIA's `vgg16_zhang_perceptual.pkl`, or from torchvision's
    VGG16 `.pth` + the lpips package's `vgg.pth` (a list, or one string with the two paths
    comma-separated, in either order).

    Returns a callable `(img0, img1) -> [N]` on NHWC float images in [-1, 1].
    """
    paths = _split_paths(path_or_paths)
    kinds = {p: file_kind(p) for p in paths}
    if len(paths) == 1 and kinds[paths[0]] in ("dnnlib", "pickle"):
        return LPIPSDistance(_lpips_from_dnnlib(paths[0]), source=paths[0])
    for p, kind in kinds.items():
        if kind in ("dnnlib", "pickle"):
            raise FeatureNetworkError(f"{p}: a pickle; NVIDIA's vgg16_zhang_perceptual.pkl is given alone, "
                                      f"the PyTorch files as a pair")
        if kind != "torch":
            raise FeatureNetworkError(f"{p}: not a PyTorch .pth file (LPIPS needs torchvision's VGG16 + lpips' "
                                      f"vgg.pth)")
    if len(paths) != 2:
        raise FeatureNetworkError(f"{','.join(paths)}: LPIPS needs two files, torchvision's VGG16 and lpips' vgg.pth")
    dicts = {p: read_torch_state_dict(p) for p in paths}
    vgg_path = [p for p in paths if "features.0.weight" in dicts[p]]
    lin_path = [p for p in paths if "lin0.model.1.weight" in dicts[p]]
    if len(vgg_path) != 1:
        raise FeatureNetworkError(f"{','.join(paths)}: exactly one file must hold torchvision's VGG16 (features.*)")
    if len(lin_path) != 1:
        raise FeatureNetworkError(f"{','.join(paths)}: exactly one file must hold the LPIPS weights (lin0..lin4)")
    vgg_sd, lin_sd = dicts[vgg_path[0]], dicts[lin_path[0]]
    net = LPIPS(width_divisor=_vgg_divisor(vgg_sd, vgg_path[0]))
    _vgg_convs_from_torch(net.vgg, vgg_sd, vgg_path[0])
    for k, w in enumerate(net.lin):
        key = f"lin{k}.model.1.weight"
        if key not in lin_sd:
            raise FeatureNetworkError(f"{lin_path[0]}: missing tensor '{key}'")
        _set(w, lin_sd[key].reshape(-1), f"'{key}'", lin_path[0])
    assert len(net.lin) == len(LPIPS_TAPS)
    return LPIPSDistance(net, source=",".join(paths))


def _lpips_from_dnnlib(path):
    """NVIDIA's `vgg16_zhang_perceptual.pkl` (build function `lpips_network`): variables
    `conv<i>` [3, 3, in, out] and `bias<i>` for the 13 VGG16 convolutions, and
    `perceptual_weight_<k>` [1, 1, C, 1]. Its input convention ([0, 255], ImageNet mean/std)
    is the lpips package's ([-1, 1], shift/scale) written differently: (2u - 1 - shift) / scale
    = (u - mean) / std for the published constants; its 2x2 max pools pad ('SAME'), which
    only matters for odd sizes."""
    import re
    net = _read_dnnlib_network(path)
    if net.build_func_name != "lpips_network":
        raise FeatureNetworkError(f"{path}: dnnlib network '{net.build_func_name}', expected NVIDIA's LPIPS "
                                  f"(lpips_network, vgg16_zhang_perceptual.pkl)")
    found = {}
    for name, value in net.variables.items():
        leaf = name.rsplit("/", 1)[-1]
        m = re.fullmatch(r"(conv|bias)(\d+)|perceptual_weight_(\d+)", leaf)
        if m:
            key = (m.group(1), int(m.group(2))) if m.group(1) else ("lin", int(m.group(3)))
            found[key] = np.asarray(value)
    first = found.get(("conv", 1))
    if first is None or first.ndim != 4 or first.shape[2] != 3 or 64 % first.shape[3]:
        raise FeatureNetworkError(f"{path}: no VGG16 variable 'conv1' of shape [3, 3, 3, 64]")
    model = LPIPS(width_divisor=64 // first.shape[3])
    for i, conv in enumerate(model.vgg.convs, 1):
        for kind, var in (("conv", conv.kernel), ("bias", conv.bias)):
            if (kind, i) not in found:
                raise FeatureNetworkError(f"{path}: missing variable '{kind}{i}'")
            _set(var, found[(kind, i)], f"'{kind}{i}'", path)
    for k, w in enumerate(model.lin):
        if ("lin", k) not in found:
            raise FeatureNetworkError(f"{path}: missing variable 'perceptual_weight_{k}'")
        _set(w, found[("lin", k)].reshape(-1), f"'perceptual_weight_{k}'", path)
    return model


def load_vgg16(path, batch_size=64):
    """VGG16 fc2 features (after ReLU) from torchvision's `vgg16-397923af.pth`.

    Returns an object with `.features(uint8 NHWC) -> [N, 4096]`.
    """
    from stylegan2_tf.metrics.vgg16 import VGG16Features
    (path,) = _split_paths(path)
    kind = file_kind(path)
    if kind in ("dnnlib", "pickle"):
        _refuse_dnnlib(path, "VGG16")
    if kind != "torch":
        raise FeatureNetworkError(f"{path}: not a PyTorch .pth file (expected torchvision's vgg16-397923af.pth)")
    sd = read_torch_state_dict(path)
    for key in ("classifier.0.weight", "classifier.3.weight"):
        if key not in sd:
            raise FeatureNetworkError(f"{path}: missing tensor '{key}' (not torchvision's full VGG16)")
    net = VGG16FC2(width_divisor=_vgg_divisor(sd, path), fc_width=sd["classifier.3.weight"].shape[0])
    _vgg_convs_from_torch(net.convs, sd, path)
    _set(net.fc1_w, sd["classifier.0.weight"].T, "'classifier.0.weight'", path)
    _set(net.fc1_b, sd["classifier.0.bias"], "'classifier.0.bias'", path)
    _set(net.fc2_w, sd["classifier.3.weight"].T, "'classifier.3.weight'", path)
    _set(net.fc2_b, sd["classifier.3.bias"], "'classifier.3.bias'", path)
    return VGG16Features(net, source=path, batch_size=batch_size)
