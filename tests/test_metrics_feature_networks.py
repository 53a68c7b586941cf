"""Feature networks for the metrics: file readers, loaders, and outputs against references.

References: files written by PyTorch itself (tests/fixtures/torch), and outputs of
pytorch-fid's Inception, torchvision's VGG16 and the lpips package computed on
seeded weights (tests/fixtures/metrics, made by make_reference.py).
"""

import json
import os
import pathlib
import pickle

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from feature_net_weights import state_dict_for, seeded_images  # noqa: E402
from torch_pth_writer import write_pth  # noqa: E402
from stylegan2_tf.metrics import FeatureNetworkError, load_inception, load_lpips, load_vgg16  # noqa: E402
from stylegan2_tf.torch_files import TorchFileError, read_torch_state_dict  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
TORCH_FIXTURES = HERE / "fixtures" / "torch"
METRIC_FIXTURES = HERE / "fixtures" / "metrics"


@pytest.fixture(scope="module")
def reference():
    return dict(np.load(METRIC_FIXTURES / "reference.npz"))


@pytest.fixture(scope="module")
def shapes():
    with open(METRIC_FIXTURES / "shapes.json") as f:
        return json.load(f)


# --------------------------------------------------------------------------- .pth reader

@pytest.mark.parametrize("name", ["zip", "legacy"])
def test_torch_reader_reads_files_written_by_torch(name):
    ref = np.load(TORCH_FIXTURES / "reference.npz")
    sd = read_torch_state_dict(TORCH_FIXTURES / f"{name}.pth")
    assert list(sd) == list(ref.files)
    for key in ref.files:
        assert sd[key].dtype == ref[key].dtype and sd[key].shape == ref[key].shape, key
        np.testing.assert_array_equal(sd[key], ref[key], err_msg=key)
    # The non-contiguous view and the storage offset came out right.
    np.testing.assert_array_equal(sd["x.t"], np.arange(24, dtype=np.float32).reshape(4, 6).T)
    np.testing.assert_array_equal(sd["x.slice"], np.arange(6, 18, dtype=np.float32).reshape(2, 6))


@pytest.mark.parametrize("legacy", [False, True])
def test_torch_writer_round_trip(tmp_path, legacy):
    sd = {"a.weight": np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32),
          "a.bias": np.arange(4, dtype=np.int64), "h": np.ones(3, np.float16), "s": np.array(2.5, np.float32)}
    path = tmp_path / "w.pth"
    write_pth(path, sd, legacy=legacy)
    back = read_torch_state_dict(path)
    for key, value in sd.items():
        assert back[key].dtype == value.dtype and back[key].shape == value.shape
        np.testing.assert_array_equal(back[key], value)


def _legacy_with_global(path, module, name):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    with open(path, "wb") as f:
        pickle.dump(0x1950A86A20F9469CFC6C, f, protocol=2)
        pickle.dump(1001, f, protocol=2)
        pickle.dump({}, f, protocol=2)
        data = pickle.dumps({"w": Evil()}, protocol=2)
        assert b"c__builtin__\nprint\n" in data
        data = data.replace(b"c__builtin__\nprint\n", f"c{module}\n{name}\n".encode())
        f.write(data)


def test_torch_reader_refuses_code(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    _legacy_with_global(path, "os", "system")
    with pytest.raises(TorchFileError, match=r"evil\.pth: refusing to load global 'os\.system'"):
        read_torch_state_dict(path)
    assert "pwned" not in capsys.readouterr().out


def test_torch_reader_truncated_and_garbage(tmp_path):
    data = (TORCH_FIXTURES / "legacy.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[:-40])
    with pytest.raises(TorchFileError, match=r"cut\.pth: truncated"):
        read_torch_state_dict(tmp_path / "cut.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file at all")
    with pytest.raises(TorchFileError, match=r"junk\.pth: "):
        read_torch_state_dict(tmp_path / "junk.pth")
    with pytest.raises(TorchFileError, match=r"missing\.pth: no such file"):
        read_torch_state_dict(tmp_path / "missing.pth")


# --------------------------------------------------------------------------- Inception

@pytest.fixture(scope="module")
def inception_pth(tmp_path_factory, shapes):
    path = tmp_path_factory.mktemp("inception") / "pt_inception-2015-12-05-seeded.pth"
    write_pth(path, state_dict_for(shapes["inception"], seed=0), legacy=True)  # as pytorch-fid's file
    return path


def test_inception_from_pytorch_fid_file_matches_pytorch_fid(inception_pth, reference):
    net = load_inception(inception_pth)
    images = reference["inception_images"]
    feats = net.features(images)
    assert feats.shape == (2, 2048) and feats.dtype == np.float32
    np.testing.assert_allclose(feats, reference["inception_features"], rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(net.logits(images), reference["inception_logits_nobias"], rtol=2e-4, atol=5e-5)


def test_inception_resizes_like_the_graph(inception_pth):
    """Any input size is resized to 299 inside the network, by TF1's legacy bilinear rule."""
    from stylegan2_tf.metrics.image_prep import resize_bilinear_legacy
    net = load_inception(inception_pth)
    small = seeded_images(seed=5, n=2, size=64)
    resized = tf.cast(resize_bilinear_legacy(small, (299, 299)), tf.float32)
    expected = net.network((resized - 128.0) * 0.0078125).numpy()
    np.testing.assert_allclose(net.features(small), expected, rtol=1e-5, atol=1e-6)
    gray = small[..., :1]
    np.testing.assert_allclose(net.features(gray), net.features(np.repeat(gray, 3, axis=-1)), rtol=1e-6)


# A GraphDef written node by node as the 2015 graph is (names, ops and attributes of
# classify_image_graph_def.pb): Conv2D + BatchNormWithGlobalNormalization + Relu per
# 'conv' scope, TF1 Concat joins, producer version 3. Channel widths are divided by 8.

def _graph_builder():
    from tensorflow.core.framework import attr_value_pb2, graph_pb2, node_def_pb2, types_pb2

    graph = graph_pb2.GraphDef()
    graph.versions.producer = 3
    float_t = attr_value_pb2.AttrValue(type=types_pb2.DT_FLOAT)

    def node(name, op, inputs, **attrs):
        n = node_def_pb2.NodeDef(name=name, op=op, input=list(inputs))
        for k, v in attrs.items():
            n.attr[k].CopyFrom(v)
        graph.node.append(n)
        return name

    def const(name, value, dtype=np.float32):
        return node(name, "Const", [], dtype=attr_value_pb2.AttrValue(type=tf.as_dtype(dtype).as_datatype_enum),
                    value=attr_value_pb2.AttrValue(tensor=tf.make_tensor_proto(np.asarray(value, dtype))))

    def ints(values):
        return attr_value_pb2.AttrValue(list=attr_value_pb2.AttrValue.ListValue(i=list(values)))

    def s(text):
        return attr_value_pb2.AttrValue(s=text.encode())

    return graph, node, const, ints, s, float_t, attr_value_pb2


def _write_tiny_inception_graphdef(path, rng, d=8):
    graph, node, const, ints, s, float_t, av = _graph_builder()
    node("ExpandDims", "Placeholder", [], dtype=float_t)
    const("ResizeBilinear/size", [299, 299], np.int32)
    node("ResizeBilinear", "ResizeBilinear", ["ExpandDims", "ResizeBilinear/size"], T=float_t,
         align_corners=av.AttrValue(b=False))
    const("Sub/y", 128.0)
    node("Sub", "Sub", ["ResizeBilinear", "Sub/y"], T=float_t)
    const("Mul/y", 0.0078125)
    node("Mul", "Mul", ["Sub", "Mul/y"], T=float_t)
    channels = {"Mul": 3}

    def conv(name, x, filters, kh, kw=None, stride=1, padding="SAME"):
        kw = kh if kw is None else kw
        cin = channels[x]
        const(f"{name}/conv2d_params", rng.standard_normal((kh, kw, cin, filters)) * np.sqrt(2 / (kh * kw * cin)))
        node(f"{name}/Conv2D", "Conv2D", [x, f"{name}/conv2d_params"], T=float_t, strides=ints([1, stride, stride, 1]),
             padding=s(padding), use_cudnn_on_gpu=av.AttrValue(b=True))
        const(f"{name}/batchnorm/beta", 0.1 * rng.standard_normal(filters))
        const(f"{name}/batchnorm/gamma", 1 + 0.1 * rng.standard_normal(filters))
        const(f"{name}/batchnorm/moving_mean", 0.1 * rng.standard_normal(filters))
        const(f"{name}/batchnorm/moving_variance", 1 + 0.2 * np.abs(rng.standard_normal(filters)))
        node(f"{name}/batchnorm", "BatchNormWithGlobalNormalization",
             [f"{name}/Conv2D", f"{name}/batchnorm/moving_mean", f"{name}/batchnorm/moving_variance",
              f"{name}/batchnorm/beta", f"{name}/batchnorm/gamma"],
             T=float_t, variance_epsilon=av.AttrValue(f=0.001), scale_after_normalization=av.AttrValue(b=True))
        node(name, "Relu", [f"{name}/batchnorm"], T=float_t)
        channels[name] = filters
        return name

    def pool(name, op, x, k, stride, padding):
        node(name, op, [x], T=float_t, ksize=ints([1, k, k, 1]), strides=ints([1, stride, stride, 1]),
             padding=s(padding))
        channels[name] = channels[x]
        return name

    def join(name, parts):
        const(f"{name}/concat_dim", 3, np.int32)
        node(name, "Concat", [f"{name}/concat_dim", *parts], N=av.AttrValue(i=len(parts)), T=float_t)
        channels[name] = sum(channels[p] for p in parts)
        return name

    x = conv("conv", "Mul", 32 // d, 3, stride=2, padding="VALID")
    x = conv("conv_1", x, 32 // d, 3, padding="VALID")
    x = conv("conv_2", x, 64 // d, 3)
    x = pool("pool", "MaxPool", x, 3, 2, "VALID")
    x = conv("conv_3", x, 80 // d, 1, padding="VALID")
    x = conv("conv_4", x, 192 // d, 3, padding="VALID")
    x = pool("pool_1", "MaxPool", x, 3, 2, "VALID")
    for m, pf in (("mixed", 32), ("mixed_1", 64), ("mixed_2", 64)):
        a = conv(f"{m}/conv", x, 64 // d, 1)
        b = conv(f"{m}/tower/conv_1", conv(f"{m}/tower/conv", x, 48 // d, 1), 64 // d, 5)
        c = conv(f"{m}/tower_1/conv", x, 64 // d, 1)
        c = conv(f"{m}/tower_1/conv_2", conv(f"{m}/tower_1/conv_1", c, 96 // d, 3), 96 // d, 3)
        p = conv(f"{m}/tower_2/conv", pool(f"{m}/tower_2/pool", "AvgPool", x, 3, 1, "SAME"), pf // d, 1)
        x = join(f"{m}/join", [a, b, c, p])
    a = conv("mixed_3/conv", x, 384 // d, 3, stride=2, padding="VALID")
    b = conv("mixed_3/tower/conv_1", conv("mixed_3/tower/conv", x, 64 // d, 1), 96 // d, 3)
    b = conv("mixed_3/tower/conv_2", b, 96 // d, 3, stride=2, padding="VALID")
    x = join("mixed_3/join", [a, b, pool("mixed_3/pool", "MaxPool", x, 3, 2, "VALID")])
    for m, c7 in (("mixed_4", 128), ("mixed_5", 160), ("mixed_6", 160), ("mixed_7", 192)):
        c7 //= d
        a = conv(f"{m}/conv", x, 192 // d, 1)
        b = conv(f"{m}/tower/conv", x, c7, 1)
        b = conv(f"{m}/tower/conv_2", conv(f"{m}/tower/conv_1", b, c7, 1, 7), 192 // d, 7, 1)
        c = conv(f"{m}/tower_1/conv", x, c7, 1)
        c = conv(f"{m}/tower_1/conv_2", conv(f"{m}/tower_1/conv_1", c, c7, 7, 1), c7, 1, 7)
        c = conv(f"{m}/tower_1/conv_4", conv(f"{m}/tower_1/conv_3", c, c7, 7, 1), 192 // d, 1, 7)
        p = conv(f"{m}/tower_2/conv", pool(f"{m}/tower_2/pool", "AvgPool", x, 3, 1, "SAME"), 192 // d, 1)
        x = join(f"{m}/join", [a, b, c, p])
    a = conv("mixed_8/tower/conv_1", conv("mixed_8/tower/conv", x, 192 // d, 1), 320 // d, 3, stride=2, padding="VALID")
    b = conv("mixed_8/tower_1/conv_1", conv("mixed_8/tower_1/conv", x, 192 // d, 1), 192 // d, 1, 7)
    b = conv("mixed_8/tower_1/conv_3", conv("mixed_8/tower_1/conv_2", b, 192 // d, 7, 1), 192 // d, 3, stride=2,
             padding="VALID")
    x = join("mixed_8/join", [a, b, pool("mixed_8/pool", "MaxPool", x, 3, 2, "VALID")])
    for m, pool_op in (("mixed_9", "AvgPool"), ("mixed_10", "MaxPool")):
        a = conv(f"{m}/conv", x, 320 // d, 1)
        t = conv(f"{m}/tower/conv", x, 384 // d, 1)
        t = join(f"{m}/tower/mixed", [conv(f"{m}/tower/mixed/conv", t, 384 // d, 1, 3),
                                      conv(f"{m}/tower/mixed/conv_1", t, 384 // d, 3, 1)])
        u = conv(f"{m}/tower_1/conv_1", conv(f"{m}/tower_1/conv", x, 448 // d, 1), 384 // d, 3)
        u = join(f"{m}/tower_1/mixed", [conv(f"{m}/tower_1/mixed/conv", u, 384 // d, 1, 3),
                                        conv(f"{m}/tower_1/mixed/conv_1", u, 384 // d, 3, 1)])
        p = conv(f"{m}/tower_2/conv", pool(f"{m}/tower_2/pool", pool_op, x, 3, 1, "SAME"), 192 // d, 1)
        x = join(f"{m}/join", [a, t, u, p])
    x = pool("pool_3", "AvgPool", x, 8, 1, "VALID")
    const("pool_3/_reshape/shape", [-1, channels[x]], np.int32)
    node("pool_3/_reshape", "Reshape", ["pool_3", "pool_3/_reshape/shape"], T=float_t,
         Tshape=av.AttrValue(type=tf.int32.as_datatype_enum))
    const("softmax/weights", rng.standard_normal((channels[x], 1008)) / np.sqrt(channels[x]))
    const("softmax/biases", 0.1 * rng.standard_normal(1008))
    node("softmax/logits/MatMul", "MatMul", ["pool_3/_reshape", "softmax/weights"], T=float_t,
         transpose_a=av.AttrValue(b=False), transpose_b=av.AttrValue(b=False))
    node("softmax/logits", "BiasAdd", ["softmax/logits/MatMul", "softmax/biases"], T=float_t)
    node("softmax", "Softmax", ["softmax/logits"], T=float_t)
    with open(path, "wb") as f:
        f.write(graph.SerializeToString())
    return graph


def _run_graphdef(graph_def, images):
    """Run the GraphDef the way the original FID code does: imported into an empty graph
    (which keeps its producer version, so the 2015 batch-norm op still runs), fed at ExpandDims."""
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
        with tf.compat.v1.Session(graph=graph) as sess:
            return sess.run(["pool_3/_reshape:0", "softmax/logits/MatMul:0"],
                            {"ExpandDims:0": images.astype(np.float32)})


def test_inception_from_graphdef_equals_running_the_graph(tmp_path):
    path = tmp_path / "classify_image_graph_def.pb"
    graph_def = _write_tiny_inception_graphdef(path, np.random.default_rng(0))
    images = seeded_images(seed=6, n=3, size=128)           # the graph resizes to 299 itself
    ref_pool3, ref_logits = _run_graphdef(graph_def, images)
    net = load_inception(path)
    assert net.network.width_divisor == 8 and net.num_features == ref_pool3.shape[1]
    np.testing.assert_allclose(net.features(images), ref_pool3, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(net.logits(images), ref_logits, rtol=1e-4, atol=1e-4)


def test_inception_graphdef_with_other_geometry_is_refused(tmp_path):
    path = tmp_path / "g.pb"
    graph_def = _write_tiny_inception_graphdef(path, np.random.default_rng(0))
    for n in graph_def.node:
        if n.name == "mixed_3/conv/Conv2D":
            n.attr["padding"].s = b"SAME"
    path.write_bytes(graph_def.SerializeToString())
    with pytest.raises(FeatureNetworkError, match=r"g\.pb: 'mixed_3/conv' uses strides"):
        load_inception(path)


# --------------------------------------------------------------------------- LPIPS and VGG16

@pytest.fixture(scope="module")
def vgg16_pth(tmp_path_factory, shapes):
    path = tmp_path_factory.mktemp("vgg") / "vgg16-seeded.pth"
    write_pth(path, state_dict_for(shapes["vgg16"], seed=0), legacy=True)
    return path


@pytest.fixture(scope="module")
def lin_pth(tmp_path_factory, shapes):
    path = tmp_path_factory.mktemp("lin") / "vgg.pth"
    write_pth(path, state_dict_for(shapes["lpips_lin"], seed=0), legacy=False)
    return path


def test_lpips_matches_the_lpips_package(vgg16_pth, lin_pth, reference):
    lpips = load_lpips(f"{lin_pth},{vgg16_pth}")            # either order
    d = lpips(reference["lpips_img0"], reference["lpips_img1"]).numpy()
    np.testing.assert_allclose(d, reference["lpips_distance"], rtol=2e-4, atol=1e-7)
    same = lpips(reference["lpips_img0"], reference["lpips_img0"]).numpy()
    np.testing.assert_array_equal(same, 0.0)


def test_vgg16_fc2_matches_torchvision(vgg16_pth, reference):
    vgg = load_vgg16(vgg16_pth)
    assert vgg.num_features == 256                       # fc width read from the file
    np.testing.assert_allclose(vgg.features(reference["vgg16_images"]), reference["vgg16_fc2"], rtol=2e-4, atol=2e-4)


# --------------------------------------------------------------------------- bad input

def test_loader_errors_name_the_file(tmp_path, vgg16_pth, lin_pth):
    with pytest.raises(FeatureNetworkError, match=r"nope\.pb: no such file"):
        load_inception(tmp_path / "nope.pb")
    (tmp_path / "text.pb").write_text("hello")
    with pytest.raises(FeatureNetworkError, match=r"text\.pb: not an Inception file"):
        load_inception(tmp_path / "text.pb")
    with pytest.raises(FeatureNetworkError, match=r"vgg16-seeded\.pth: not pytorch-fid's Inception weights"):
        load_inception(vgg16_pth)
    with pytest.raises(FeatureNetworkError, match=r"LPIPS needs two files"):
        load_lpips(vgg16_pth)
    with pytest.raises(FeatureNetworkError, match=r"exactly one file must hold torchvision's VGG16"):
        load_lpips([vgg16_pth, vgg16_pth])
    with pytest.raises(FeatureNetworkError, match=r"exactly one file must hold the LPIPS weights"):
        load_lpips([vgg16_pth, TORCH_FIXTURES / "zip.pth"])
    bad = state_dict_for([("lin0.model.1.weight", [1, 64, 1, 1]), ("lin1.model.1.weight", [1, 7, 1, 1]),
                          ("lin2.model.1.weight", [1, 256, 1, 1]), ("lin3.model.1.weight", [1, 512, 1, 1]),
                          ("lin4.model.1.weight", [1, 512, 1, 1])])
    write_pth(tmp_path / "badlin.pth", bad)
    with pytest.raises(FeatureNetworkError, match=r"badlin\.pth: 'lin1\.model\.1\.weight' has shape \(7,\)"):
        load_lpips([vgg16_pth, tmp_path / "badlin.pth"])
    with pytest.raises(FeatureNetworkError, match=r"vgg\.pth: missing tensor 'classifier\.0\.weight'"):
        load_vgg16(lin_pth)


def test_dnnlib_pickle_that_asks_for_code_is_refused(tmp_path, capsys):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    data = pickle.dumps({"dnnlib": Evil()}, protocol=2)
    (tmp_path / "inception_v3_features.pkl").write_bytes(data)
    with pytest.raises(FeatureNetworkError,
                       match=r"inception_v3_features\.pkl: .*refusing to load global '__builtin__\.print'"):
        load_inception(tmp_path / "inception_v3_features.pkl")
    assert "pwned" not in capsys.readouterr().out


def _write_nvidia_lpips_pkl(path, vgg_sd, lin_sd, build_func_name="lpips_network"):
    """vgg16_zhang_perceptual.pkl's layout: one dnnlib Network, TF1 variables conv<i>/conv<i>
    [3, 3, in, out], conv<i>/bias<i>, perceptual_weight_<k> [1, 1, C, 1]."""
    import io
    from stylegan2_tf.official.writer import _NetworkRecord, _Pickler
    indices = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
    variables = []
    for i, idx in enumerate(indices, 1):
        variables.append((f"conv{i}/conv{i}", vgg_sd[f"features.{idx}.weight"].transpose(2, 3, 1, 0)))
        variables.append((f"conv{i}/bias{i}", vgg_sd[f"features.{idx}.bias"]))
    for k in range(5):
        variables.append((f"perceptual_weight_{k}", lin_sd[f"lin{k}.model.1.weight"].transpose(2, 3, 1, 0)))
    state = dict(version=4, name="vgg16_perceptual_distance", static_kwargs={}, components={},
                 build_module_src="# module source (not executed)\n", build_func_name=build_func_name,
                 variables=variables)
    buf = io.BytesIO()
    _Pickler(buf, protocol=3).dump(_NetworkRecord(state))
    path.write_bytes(buf.getvalue())


def test_lpips_from_nvidia_pickle_matches_the_lpips_package(tmp_path, shapes, reference):
    vgg_sd = state_dict_for(shapes["vgg16"], seed=0)
    lin_sd = state_dict_for(shapes["lpips_lin"], seed=0)
    path = tmp_path / "vgg16_zhang_perceptual.pkl"
    _write_nvidia_lpips_pkl(path, vgg_sd, lin_sd)
    lpips = load_lpips(path)
    d = lpips(reference["lpips_img0"], reference["lpips_img1"]).numpy()
    np.testing.assert_allclose(d, reference["lpips_distance"], rtol=2e-4, atol=1e-7)
    _write_nvidia_lpips_pkl(tmp_path / "other.pkl", vgg_sd, lin_sd, build_func_name="G_main")
    with pytest.raises(FeatureNetworkError, match=r"other\.pkl: dnnlib network 'G_main', expected NVIDIA's LPIPS"):
        load_lpips(tmp_path / "other.pkl")
    with pytest.raises(FeatureNetworkError, match=r"the PyTorch files as a pair"):
        load_lpips([path, tmp_path / "other.pkl"])
