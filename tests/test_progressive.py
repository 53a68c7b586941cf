"""Paper configs A-D: progressive growing, against NVIDIA's own TF1 outputs.

`sga-tiny16` (config A: G_style + D_basic) and `sgb-tiny16` (configs B-D: G_main with
G_synthesis_stylegan_revised + D_stylegan) are official-format pickles whose
references were computed by NVIDIA's TF1 code at lods 0, 0.5, 1, 1.7 and 2, in
float32 and float64 (fixtures/stylegan2_pkl/README.md).
"""

import contextlib
import json

import numpy as np
import pytest
import tensorflow as tf

from conftest import FIXTURES, output_errors, run_python
from pytorch_conventions import exact_lrelu_slope
from stylegan2_tf.networks import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig
from stylegan2_tf.networks.lod import LodError
from stylegan2_tf.official import NetworkPickleError, load_network_pkl, read_network_pickle
from stylegan2_tf.official.writer import save_network_pkl
from stylegan2_tf.ops import box_downsample_2d, nearest_upsample_2d
from stylegan2_tf.verify_pickle import compute_reference_outputs, reference_lods

GROWING = ("sga-tiny16", "sgb-tiny16")


def _nhwc(x):
    return np.transpose(np.asarray(x), [0, 2, 3, 1])


def _inputs(ref):
    return {k: ref[k] for k in ("z", "c", "rand_img", "rand_img8", "c8")}


@pytest.fixture(scope="module")
def growing_nets():
    return {name: load_network_pkl(FIXTURES / f"{name}.pkl") for name in GROWING}


@pytest.mark.parametrize("name", GROWING)
def test_verify_pickle_matches_nvidia_at_every_lod(name, tmp_path):
    ref = np.load(FIXTURES / f"{name}.npz")
    lods = json.loads(str(ref["meta"]))["lod_keys"]
    cand = tmp_path / "cand.npz"
    r = run_python(["-m", "stylegan2_tf.verify_pickle", "--pkl", FIXTURES / f"{name}.pkl",
                    "--inputs", FIXTURES / f"{name}.npz", "--out", cand])
    assert r.returncode == 0, r.stderr[-2000:]
    keys = set(np.load(cand).files)
    for lod in lods:
        for key in ("Gs/img_const", "G/img_const", "D/logits_Gs_img", "D/logits_rand", "D/logits_rand8",
                    "D/mbstd_rand8"):
            assert f"{key}/{lod}" in keys
    r = run_python([FIXTURES / "compare_outputs.py", "--ref", FIXTURES / f"{name}.npz", "--cand", cand,
                    "--require-all"])
    assert r.returncode == 0, r.stdout[-3000:]
    assert " 0 failed" in r.stdout


# Relative float64 tolerance, from NVIDIA's TF1 float64 evaluation. Config B computes lrelu with TF's
# LeakyRelu op, as we do; config A (StyleGAN1) computes max(x, 0.2 x) in float64, 3e-8 from the op's
# float32 slope attribute (0.2 -> 0.200000003) -- with the exact slope (tests/pytorch_conventions.py)
# config A is float64 rounding as well.
FLOAT64_RTOL = {"sga-tiny16": 1e-13, "sgb-tiny16": 1e-13}  # measured 2.2e-15 and 4.3e-15


@pytest.mark.parametrize("name", GROWING)
def test_float64_matches_nvidia_float64(name, float64):
    """Built in float64, every output is NVIDIA's float64 value (float32 errors are ~1e-6): each
    layer, each lod and each lerp in the same place."""
    ref = np.load(FIXTURES / f"{name}.npz")
    nets = load_network_pkl(FIXTURES / f"{name}.pkl")
    assert nets["G"].mapping.dense[0].weight.dtype == "float64"
    slope = exact_lrelu_slope() if name == "sga-tiny16" else contextlib.nullcontext()
    with slope:
        out = compute_reference_outputs(nets, _inputs(ref), reference_lods(ref))
    errors = {k: e for k, e in output_errors(out, ref).items() if not k.startswith("linear/")}
    assert len(errors) >= 34 and max(errors.values()) < FLOAT64_RTOL[name], errors


@pytest.mark.parametrize("name", GROWING)
def test_linear_structure_references_agree(name, growing_nets):
    """NVIDIA's 'linear' structure (every level computed, lerp_clip) gives our recursive values."""
    ref = np.load(FIXTURES / f"{name}.npz")
    nets = growing_nets[name]
    for suffix, lod in reference_lods(ref).items():
        for net in (nets["G_ema"], nets["D"]):
            net.set_lod(lod)
        img = nets["G_ema"](ref["z"].astype(np.float32), noise_mode="const").numpy()
        np.testing.assert_allclose(img, _nhwc(ref[f"linear/Gs/img_const/{suffix}"]), atol=1e-4, rtol=0)
        logits = nets["D"](_nhwc(ref["rand_img"])).numpy()
        np.testing.assert_allclose(logits, ref[f"linear/D/logits_rand/{suffix}"], atol=1e-5, rtol=0)
    for net in (nets["G_ema"], nets["D"]):
        net.set_lod(0.0)


@pytest.mark.parametrize("name", GROWING)
def test_fractional_lod_is_lerp_of_neighbouring_levels(name, growing_nets):
    """G(lod = k + t) = lerp(G(k), G(k + 1), t) (nearest up-sampling commutes with the lerp), and
    at an integer lod k the image is constant over 2^k x 2^k blocks."""
    Gs = growing_nets[name]["G_ema"]
    ws = Gs.mapping(np.random.RandomState(0).randn(3, Gs.z_dim).astype(np.float32))
    images = {}
    for lod in (0.0, 1.0, 2.0, 0.25, 1.6):
        Gs.set_lod(lod)
        images[lod] = Gs.synthesize(ws, noise_mode="const").numpy()
    Gs.set_lod(0.0)
    for lod, k in ((0.25, 0.0), (1.6, 1.0)):
        t = lod - k
        np.testing.assert_allclose(images[lod], images[k] + (images[k + 1] - images[k]) * t, atol=1e-5, rtol=0)
    for k in (1, 2):
        f = 2 ** k
        blocks = images[float(k)].reshape(3, 16 // f, f, 16 // f, f, 3)
        # lod 2 (4x4) is the 8x8 level's fade at t = 1: a + (b - a) * 1, exact only up to rounding.
        assert np.ptp(blocks, axis=(2, 4)).max() <= (0 if k == 1 else 1e-6)
    assert np.ptp(images[0.0].reshape(3, 8, 2, 8, 2, 3), axis=(2, 4)).max() > 1e-3


@pytest.mark.parametrize("name", GROWING)
def test_discriminator_sees_box_averaged_images(name, growing_nets):
    """At integer lod k, D(X) = D(nearest_up(box_down(X, 2^k))): D judges the level's resolution."""
    D = growing_nets[name]["D"]
    x = np.random.RandomState(1).uniform(-1, 1, [4, 16, 16, 3]).astype(np.float32)
    for k in (1, 2):
        D.set_lod(k)
        coarse = nearest_upsample_2d(box_downsample_2d(x, 2 ** k), 2 ** k)
        np.testing.assert_allclose(D(x).numpy(), D(coarse).numpy(), atol=2e-6, rtol=0)
    D.set_lod(0.0)
    coarse = nearest_upsample_2d(box_downsample_2d(x, 2), 2)
    assert np.max(np.abs(D(x).numpy() - D(coarse).numpy())) > 1e-3


@pytest.mark.parametrize("name", GROWING)
def test_graph_level_switch_and_static_level_equal_eager(name, growing_nets):
    """One traced function serves every lod (tf.switch_case over the levels), a static level gives
    the same numbers, and so do the gradients w.r.t. every weight."""
    nets = growing_nets[name]
    G, D = nets["G"], nets["D"]
    z = tf.constant(np.random.RandomState(2).randn(4, G.z_dim).astype(np.float32))
    weights = G.trainable_variables + D.trainable_variables

    def loss(level=None):
        with tf.GradientTape() as tape:
            img = G(z, noise_mode="const", level=level)
            value = tf.reduce_sum(D(img, level=level) ** 2) + tf.reduce_sum(img ** 2) * 1e-3
        grads = tape.gradient(value, weights)
        return value, [tf.zeros_like(w) if g is None else g for g, w in zip(grads, weights)]

    traced = tf.function(loss)
    for lod, level_g, level_d in ((0.0, 0, 0), (0.5, 0, 0), (1.7, 1, 1), (2.0, 1, 2 if name == "sga-tiny16" else 1)):
        for net in (G, D):
            net.set_lod(lod)
        eager_value, eager_grads = loss()
        for value, grads in (traced(), _static(loss, level_g, level_d, G, D, z, weights)):
            np.testing.assert_allclose(value.numpy(), eager_value.numpy(), rtol=1e-5)
            for g, e in zip(grads, eager_grads):
                np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-4, atol=1e-6)
    assert traced.experimental_get_tracing_count() == 1
    for net in (G, D):
        net.set_lod(0.0)


def _static(loss, level_g, level_d, G, D, z, weights):
    with tf.GradientTape() as tape:
        img = G(z, noise_mode="const", level=level_g)
        value = tf.reduce_sum(D(img, level=level_d) ** 2) + tf.reduce_sum(img ** 2) * 1e-3
    grads = tape.gradient(value, weights)
    return value, [tf.zeros_like(w) if g is None else g for g, w in zip(grads, weights)]


def test_fused_scale_up_convolution_is_the_official_transposed_convolution():
    """At >= 128 px config A's up-convolution is NVIDIA's conv2d_transpose with the padded, summed
    kernel, which equals nearest up-sampling + a conv with the flipped kernel (not the stored one)."""
    from stylegan2_tf.layers import fused_scale_at, upscale_conv2d
    rs = np.random.RandomState(3)
    x = tf.constant(rs.randn(2, 6, 6, 5).astype(np.float32))
    w = rs.randn(3, 3, 5, 4).astype(np.float32)
    # The official fused op, written from its definition (in NHWC).
    wt = np.transpose(w, [0, 1, 3, 2])                                   # [k, k, out, in]
    wt = np.pad(wt, [[1, 1], [1, 1], [0, 0], [0, 0]])
    wt = wt[1:, 1:] + wt[:-1, 1:] + wt[1:, :-1] + wt[:-1, :-1]           # 4x4
    official = tf.nn.conv2d_transpose(x, wt, [2, 12, 12, 4], strides=2, padding="SAME").numpy()
    np.testing.assert_allclose(upscale_conv2d(x, w, fused_scale=True).numpy(), official, atol=1e-5, rtol=0)
    assert np.max(np.abs(upscale_conv2d(x, w, fused_scale=False).numpy() - official)) > 1e-2
    assert (fused_scale_at(64), fused_scale_at(128)) == (False, True)
    cfg = GeneratorConfig(z_dim=8, w_dim=8, mapping_fmaps=8, mapping_layers=1, img_resolution=128, fmap_base=32,
                          fmap_max=8, architecture="stylegan1")
    fused = {b.resolution: b.conv0.fused_scale for b in Generator(cfg).synthesis.blocks if b.resolution > 4}
    assert fused == {8: False, 16: False, 32: False, 64: False, 128: True}


def test_official_truncation_defaults():
    a = GeneratorConfig(architecture="stylegan1", img_resolution=16)
    b = GeneratorConfig(architecture="revised", img_resolution=16)
    assert a.default_truncation == (0.7, 8) and b.default_truncation == (0.5, None)


@pytest.mark.parametrize("name", GROWING)
def test_written_pickle_is_nvidias_layout_and_reloads(name, growing_nets, tmp_path):
    nets = growing_nets[name]
    for net in (nets["G"], nets["D"], nets["G_ema"]):
        net.set_lod(1.5)
    path = tmp_path / "out.pkl"
    save_network_pkl(path, nets["G"], nets["D"], nets["G_ema"])
    theirs, ours = read_network_pickle(FIXTURES / f"{name}.pkl"), read_network_pickle(path)

    def same(a, b, where):
        assert a.build_func_name == b.build_func_name, where
        assert list(a.variables) == list(b.variables), where
        for key, value in a.variables.items():
            if key == "lod":
                assert float(b.variables[key]) == 1.5 and np.asarray(b.variables[key]).dtype == np.float32
            else:
                np.testing.assert_array_equal(b.variables[key], value, err_msg=f"{where}/{key}")
        assert {k: v for k, v in b.static_kwargs.items() if k in a.static_kwargs} == a.static_kwargs, where
        assert sorted(a.components) == sorted(b.components)
        for key in a.components:
            same(a.components[key], b.components[key], f"{where}/{key}")

    for a, b, where in zip(theirs, ours, ("G", "D", "Gs")):
        same(a, b, where)
    again = load_network_pkl(path)
    z = np.random.RandomState(4).randn(2, 32).astype(np.float32)
    np.testing.assert_array_equal(again["G_ema"](z, noise_mode="const").numpy(),
                                  nets["G_ema"](z, noise_mode="const").numpy())
    assert float(again["D"].lod.numpy()) == 1.5 and float(again["G"].synthesis.lod.numpy()) == 1.5
    for net in (nets["G"], nets["D"], nets["G_ema"]):
        net.set_lod(0.0)


def test_lod_out_of_range_is_one_line_error():
    G = Generator(GeneratorConfig(z_dim=8, w_dim=8, mapping_fmaps=8, mapping_layers=1, img_resolution=16,
                                  fmap_base=32, fmap_max=8, architecture="revised"))
    for bad in (-0.5, 2.01, float("nan")):
        with pytest.raises(LodError, match=r"outside 0\.\.2 \(resolution 16") as e:
            G.set_lod(bad)
        assert "\n" not in str(e.value)
    D = Discriminator(DiscriminatorConfig(img_resolution=16, fmap_base=32, fmap_max=8, architecture="stylegan",
                                          label_mode="project"))
    with pytest.raises(LodError, match="lod=3 is outside"):
        D.set_lod(3)
    E = Generator(GeneratorConfig(z_dim=8, w_dim=8, mapping_fmaps=8, mapping_layers=1, img_resolution=16,
                                  fmap_base=32, fmap_max=8))
    with pytest.raises(ValueError, match="has no level of detail"):
        E.set_lod(1)


def _tampered(path, tamper):
    from test_pickle_safety import _dump_states
    states = read_network_pickle(FIXTURES / "sga-tiny16.pkl")
    tamper(*states)
    _dump_states(path, states)
    return path


def _set_lod(state, value):
    state.state["variables"] = [(k, np.float32(value) if k == "lod" else v) for k, v in state.state["variables"]]


@pytest.mark.parametrize("tamper, message", [
    (lambda G, D, Gs: _set_lod(Gs, 1.0), r"Gs: the lod variables disagree \(Gs/lod=1, Gs/G_synthesis/lod=0\)"),
    (lambda G, D, Gs: _set_lod(D, 1.0), r"the lod variables of G, D and Gs disagree \(G/lod=0, D/lod=1, Gs/lod=0\)"),
    (lambda G, D, Gs: [_set_lod(n, 2.5) for n in (G, G.components["synthesis"], D, Gs, Gs.components["synthesis"])],
     r"G/lod=2\.5 is outside 0\.\.2"),
])
def test_pickle_lod_problems_are_one_line_errors(tmp_path, tamper, message):
    path = _tampered(tmp_path / "bad.pkl", tamper)
    with pytest.raises(NetworkPickleError, match=message) as e:
        load_network_pkl(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_pickle_at_a_lod_loads_at_that_lod(tmp_path, growing_nets):
    def at(G, D, Gs):
        for net in (G, G.components["synthesis"], D, Gs, Gs.components["synthesis"]):
            _set_lod(net, 1.7)
    nets = load_network_pkl(_tampered(tmp_path / "lod.pkl", at))
    ref = np.load(FIXTURES / "sga-tiny16.npz")
    img = nets["G_ema"](ref["z"].astype(np.float32), noise_mode="const").numpy()
    np.testing.assert_allclose(img, _nhwc(ref["Gs/img_const/lod1.7"]), atol=1e-4, rtol=0)


def test_style_mixing_and_export_work_at_a_lod(tmp_path):
    """A config B snapshot at lod 1.5: run_generator's style mixing and SavedModel export give the
    images of the network at that lod."""
    from test_pickle_safety import _dump_states

    states = read_network_pickle(FIXTURES / "sgb-tiny16.pkl")
    for net in states:
        _set_lod(net, 1.5)
        if "synthesis" in net.components:
            _set_lod(net.components["synthesis"], 1.5)
    pkl = tmp_path / "lod.pkl"
    _dump_states(pkl, states)
    r = run_python(["run_generator.py", "style-mixing-example", "--network", pkl, "--row-seeds", "1,2",
                    "--col-seeds", "3", "--col-styles", "0-1", "--outdir", tmp_path / "mix"])
    assert r.returncode == 0, r.stderr[-3000:]
    from PIL import Image
    grid = np.asarray(Image.open(tmp_path / "mix" / "grid.png"))
    assert grid.shape == (48, 32, 3)
    seed1 = np.asarray(Image.open(tmp_path / "mix" / "seed0001.png"))
    # lod 1.5 = level 1 faded with t = 0.5: the 8x8 image and the 4x4 one, both upsampled; so every
    # 2x2 block of the output is constant.
    assert np.ptp(seed1.reshape(8, 2, 8, 2, 3).astype(int), axis=(1, 3)).max() == 0
    r = run_python(["run_generator.py", "export", "--network", pkl, "--outdir", tmp_path / "saved"])
    assert r.returncode == 0, r.stderr[-3000:]
    nets = load_network_pkl(pkl, load=("G_ema",))
    z = np.random.RandomState(5).randn(2, 32).astype(np.float32)
    served = tf.saved_model.load(str(tmp_path / "saved")).signatures["serving_default"](
        z=tf.constant(z), psi=tf.constant(0.5))["images"].numpy()
    from stylegan2_tf.generate import to_uint8
    want = to_uint8(nets["G_ema"](z, truncation_psi=0.5, noise_mode="const")).numpy()
    assert np.abs(served.astype(int) - want.astype(int)).max() <= 1
    assert np.ptp(served.reshape(2, 8, 2, 8, 2, 3).astype(int), axis=(2, 4)).max() == 0


def test_projector_works_at_a_lod(tmp_path):
    """Projecting with a config A network at lod 1: every noise map of the growing synthesis is
    found, the result is an image of that level (constant over 2x2 blocks), and the saved w and
    noise maps give it back exactly."""
    from feature_net_weights import write_tiny_feature_files
    from stylegan2_tf.metrics import load_lpips
    from stylegan2_tf.projector import Projector, ProjectorConfig, load_projection, save_projection
    G = load_network_pkl(FIXTURES / "sga-tiny16.pkl", load=("G_ema",))["G_ema"]
    G.set_lod(1.0)
    lpips = load_lpips(write_tiny_feature_files(str(tmp_path))["lpips"])
    projector = Projector(G, lpips.network, ProjectorConfig(num_steps=5, w_avg_samples=100))
    assert len(projector.noise_vars) == 6
    target = G(np.random.RandomState(0).randn(1, 32).astype(np.float32), noise_mode="const").numpy()[0]
    result = projector.project(target)
    assert np.ptp(result["image"].reshape(8, 2, 8, 2, 3), axis=(1, 3)).max() <= 1e-6
    save_projection(tmp_path / "w.npz", G, result, projector.cfg)
    ws = load_projection(tmp_path / "w.npz", G)
    np.testing.assert_array_equal(G.synthesize(tf.constant(ws), noise_mode="const")[0].numpy(), result["image"])
