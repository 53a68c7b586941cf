"""Mixed precision (num_fp16_res, mixed_dtype, conv_clamp) in the networks, on tiny networks.

Tolerance for float16 against float32 with the same weights: float16 rounds every
activation with unit roundoff u = 2^-11 ~ 4.9e-4. A 16-32 px network computes ~10 rounded
stages in float16 (conv, bias/activation, resampling, noise) whose errors partly cancel;
measured max |fp16 - fp32| is 0.7-2.1e-3 of max |fp32| for G and D (all architectures).
The bound is 16u ~ 7.8e-3 of max |fp32|, a ~4x margin. Scalar penalties (R1, path length)
are sums over many such values: measured within 0.4%, checked at 2%.

bfloat16 keeps 8 significant bits (u = 2^-8 ~ 3.9e-3, 8x float16's): measured max |bf16 - fp32|
is 2.1-4.3u of max |fp32| for G and 0.4-2.7u for D, checked with the same 16u bound. Its
penalties: measured within 0.5%, checked at 4%.
"""

import math
import os
import re
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

sys.path.insert(0, os.path.dirname(__file__))
import _np_reference as ref  # noqa: E402

from stylegan2_tf.layers import EqualizedConv2d, EqualizedDense, SynthesisLayer, ToRGB, modulated_conv2d  # noqa: E402
from stylegan2_tf.networks import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig  # noqa: E402
from stylegan2_tf.networks.config import MIXED_DTYPES  # noqa: E402

U16 = 2.0 ** -11
FWD_RTOL = 16 * U16      # of max |fp32 output|
PENALTY_RTOL = 2e-2
# Per mixed_dtype: unit roundoff u and the bounds.
UNIT_ROUNDOFF = {"float16": U16, "bfloat16": 2.0 ** -8}
FWD_RTOLS = {name: 16 * u for name, u in UNIT_ROUNDOFF.items()}
PENALTY_RTOLS = {"float16": PENALTY_RTOL, "bfloat16": 2 * PENALTY_RTOL}
ARCHS = ("skip", "resnet", "orig")


def _g_cfg(res=32, arch="skip", **kw):
    return GeneratorConfig(z_dim=32, w_dim=32, img_resolution=res, fmap_base=256, fmap_max=64, mapping_layers=2,
                           architecture=arch, **kw)


def _d_cfg(res=32, arch="resnet", **kw):
    return DiscriminatorConfig(img_resolution=res, fmap_base=256, fmap_max=64, architecture=arch, **kw)


def _pair(net_cls, cfg, **fp16):
    """(float32 net, mixed-precision net with the same weights)."""
    a = net_cls(cfg).build_weights()
    b = net_cls(cfg.replace(**fp16)).build_weights()
    b.set_weights(a.get_weights())
    return a, b


def _z(n=4, seed=0):
    return tf.random.stateless_normal([n, 32], seed=[seed, 7])


def _max_rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.max(np.abs(a - b)) / np.max(np.abs(a))


# ------------------------------------------------------------------ (e) block dtypes


@pytest.mark.parametrize("res, n, fp16_res", [
    (32, 0, []), (32, 1, [32]), (32, 2, [16, 32]), (32, 3, [8, 16, 32]), (32, 9, [8, 16, 32]),
    (16, 2, [8, 16]), (1024, 4, [128, 256, 512, 1024]), (256, 1, [256]),
])
def test_fp16_blocks_follow_the_formula(res, n, fp16_res):
    # fp16_resolution = max(2^(log2(res) + 1 - n), 8): the n highest resolutions, never 4x4.
    for cfg in (GeneratorConfig(img_resolution=res, num_fp16_res=n),
                DiscriminatorConfig(img_resolution=res, num_fp16_res=n)):
        assert cfg.fp16_resolution == max(2 ** (int(math.log2(res)) + 1 - n), 8)
        got = [r for r in (2 ** k for k in range(2, int(math.log2(res)) + 1)) if cfg.use_fp16(r)]
        assert got == fp16_res


@pytest.mark.parametrize("mixed_dtype", MIXED_DTYPES)
@pytest.mark.parametrize("n", [0, 1, 2, 5])
def test_built_blocks_have_the_formula_dtypes(n, mixed_dtype):
    G = Generator(_g_cfg(res=16, num_fp16_res=n, mixed_dtype=mixed_dtype))
    D = Discriminator(_d_cfg(res=16, num_fp16_res=n, mixed_dtype=mixed_dtype))
    lo = max(2 ** (4 + 1 - n), 8)
    low = tf.as_dtype(mixed_dtype)
    for block in G.synthesis.blocks:
        assert block.activation_dtype == (low if block.resolution >= lo else tf.float32)
    for block in D.blocks:
        assert block.activation_dtype == (low if 2 ** block.res_log2 >= lo else tf.float32)
    assert G.synthesis.blocks[0].activation_dtype == tf.float32  # 4x4


def test_precision_fields_are_validated():
    with pytest.raises(ValueError, match="num_fp16_res"):
        GeneratorConfig(num_fp16_res=-1)
    with pytest.raises(ValueError, match="conv_clamp"):
        DiscriminatorConfig(conv_clamp=0.0)
    for cls in (GeneratorConfig, DiscriminatorConfig):
        with pytest.raises(ValueError, match="mixed_dtype must be one of .*'float64'"):
            cls(num_fp16_res=2, mixed_dtype="float64")


# ------------------------------------------------------------------ (a) defaults unchanged


def _old_style(cfg):
    """The config as saved before num_fp16_res/conv_clamp existed."""
    d = cfg.to_dict()
    del d["num_fp16_res"], d["conv_clamp"]
    return type(cfg).from_dict(d)


@pytest.mark.parametrize("arch", ARCHS)
def test_float32_defaults_have_no_float16_or_clamp(arch):
    """The defaults are the paper's float32 networks: num_fp16_res 0 and no clamp are the defaults (so
    configs written before these fields load unchanged), and no block computes in float16 or clamps.
    That these networks equal NVIDIA's float32 outputs is test_official_fixtures' job."""
    g_cfg, d_cfg = _g_cfg(arch=arch), _d_cfg(arch=arch)
    assert _old_style(g_cfg) == g_cfg and _old_style(d_cfg) == d_cfg
    assert (g_cfg.num_fp16_res, g_cfg.conv_clamp, d_cfg.num_fp16_res, d_cfg.conv_clamp) == (0, None, 0, None)
    G1, D1 = Generator(g_cfg).build_weights(), Discriminator(d_cfg).build_weights()
    assert all(b.activation_dtype == tf.float32 for b in G1.synthesis.blocks + D1.blocks)
    assert all(getattr(layer, "clamp", None) is None and getattr(layer, "conv_clamp", None) is None
               for net in (G1, D1) for layer in net._flatten_layers())


def test_keras_config_round_trips_the_new_fields():
    G = Generator(_g_cfg(res=16, num_fp16_res=2, conv_clamp=256.0, mixed_dtype="bfloat16"))
    G2 = Generator.from_config(G.get_config())
    assert G2.config == G.config and (G2.config.num_fp16_res, G2.config.conv_clamp) == (2, 256.0)
    assert G2.synthesis.blocks[-1].activation_dtype == tf.bfloat16
    D = Discriminator(_d_cfg(res=16, num_fp16_res=1, conv_clamp=128.0))
    D2 = Discriminator.from_config(D.get_config())
    assert D2.config == D.config and (D2.config.num_fp16_res, D2.config.conv_clamp) == (1, 128.0)
    # A Keras config written before the fields existed still loads, as float32 without clamp
    # (and float16 as the dtype of any reduced-precision blocks).
    old = G.get_config()
    old["config"] = {k: v for k, v in old["config"].items()
                     if k not in ("num_fp16_res", "conv_clamp", "mixed_dtype")}
    G3 = Generator.from_config(old)
    assert (G3.config.num_fp16_res, G3.config.conv_clamp, G3.config.mixed_dtype) == (0, None, "float16")


# ------------------------------------------------------------------ (b) forward / backward


@pytest.fixture(scope="module", params=MIXED_DTYPES)
def fp16_nets(request):
    keras.utils.set_random_seed(11)   # one network, the same in every run
    kw = dict(num_fp16_res=2, conv_clamp=256.0, mixed_dtype=request.param)
    G32, G16 = _pair(Generator, _g_cfg(arch="skip"), **kw)
    D32, D16 = _pair(Discriminator, _d_cfg(arch="resnet"), **kw)
    return G32, G16, D32, D16


def _finite(tensors):
    return all(t is None or bool(tf.reduce_all(tf.math.is_finite(t))) for t in tensors)


def test_fp16_blocks_really_compute_in_float16(fp16_nets):
    _, G16, _, D16 = fp16_nets
    low = tf.as_dtype(G16.config.mixed_dtype)
    ws = G16.mapping(_z())
    x = img = None
    dtypes = []
    for block in G16.synthesis.blocks:
        x, img = block(x, img, ws, noise_mode="const")
        dtypes.append((block.resolution, x.dtype, img.dtype))
    assert dtypes == [(4, tf.float32, tf.float32), (8, tf.float32, tf.float32),
                      (16, low, tf.float32), (32, low, tf.float32)]
    x, img = None, tf.zeros([4, 32, 32, 3])
    out = []
    for block in D16.blocks:
        x, img = block(x, img)
        out.append(x.dtype)
    assert out == [low, low, tf.float32]  # blocks 32, 16, 8


def test_fp16_forward_backward_r1_and_path_length_are_finite(fp16_nets):
    G32, G16, D32, D16 = fp16_nets
    z = _z()
    results = {}
    for name, G, D in (("fp32", G32, D32), ("fp16", G16, D16)):
        # G: main loss and the path-length pattern (gradient of sum(img * noise) w.r.t. ws
        # inside an outer tape), as the training loss computes them.
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                ws = G.mapping(z)
                inner.watch(ws)
                img = G.synthesis(ws, noise_mode="random", noise_seed=tf.constant([3, 4]))
                pl_noise = tf.random.stateless_normal(tf.shape(img), seed=[5, 6]) / 32.0
                s = tf.reduce_sum(img * pl_noise)
            g = inner.gradient(s, ws)
            lengths = tf.sqrt(tf.reduce_mean(tf.reduce_sum(tf.square(g), axis=2), axis=1))
            pl = tf.reduce_mean(lengths)
            g_loss = tf.reduce_mean(tf.nn.softplus(-D(img))) + pl
        g_grads = outer.gradient(g_loss, G.trainable_variables)
        # D: R1 (gradient of sum(D(real)) w.r.t. the reals inside an outer tape).
        real = tf.clip_by_value(tf.stop_gradient(img), -1.0, 1.0)
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                inner.watch(real)
                logits = D(real)
                total = tf.reduce_sum(logits)
            r1_grads = inner.gradient(total, real)
            r1 = tf.reduce_sum(tf.square(r1_grads))
            d_loss = tf.reduce_mean(tf.nn.softplus(logits)) + r1
        d_grads = outer.gradient(d_loss, D.trainable_variables)
        assert img.dtype == tf.float32 and logits.dtype == tf.float32 and r1_grads.dtype == tf.float32
        assert _finite([img, logits, pl, r1, g_loss, d_loss] + g_grads + d_grads)
        for grads in (g_grads, d_grads):  # float32 (the variables'), and none vanished
            assert all(g is not None and g.dtype == tf.float32 and float(tf.reduce_max(tf.abs(g))) > 0
                       for g in grads)
        results[name] = (float(pl), float(r1))
    np.testing.assert_allclose(results["fp16"], results["fp32"], rtol=PENALTY_RTOLS[G16.config.mixed_dtype])


# ------------------------------------------------------------------ (c) close to float32


@pytest.mark.parametrize("mixed_dtype", MIXED_DTYPES)
@pytest.mark.parametrize("arch", ARCHS)
def test_fp16_outputs_are_close_to_fp32(arch, mixed_dtype):
    kw = dict(num_fp16_res=2, conv_clamp=256.0, mixed_dtype=mixed_dtype)
    G32, G16 = _pair(Generator, _g_cfg(arch=arch), **kw)
    z, seed = _z(8, seed=1), tf.constant([5, 6])
    a = G32(z, noise_mode="random", noise_seed=seed)
    b = G16(z, noise_mode="random", noise_seed=seed)
    assert b.dtype == tf.float32
    assert 0 < _max_rel(a, b) <= FWD_RTOLS[mixed_dtype]  # (> 0: the blocks did round)
    D32, D16 = _pair(Discriminator, _d_cfg(arch=arch), **kw)
    real = tf.clip_by_value(a, -1.0, 1.0)
    sa, sb = D32(real), D16(real)
    assert sb.dtype == tf.float32
    assert 0 < _max_rel(sa, sb) <= FWD_RTOLS[mixed_dtype]


@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("up, ksize", [(False, 3), (True, 3), (False, 1)])
@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("mixed_dtype", MIXED_DTYPES)
def test_fp16_modulated_conv2d_matches_paper_equations(mixed_dtype, fused, up, ksize, demodulate):
    # Large styles (|s| up to ~40) exercise float16's pre-normalization. Forcing the fused form runs
    # it on a CPU too (the reduced-precision grouped-conv forward exists there, not always its gradient).
    rng = np.random.default_rng(0)
    dtype = tf.as_dtype(mixed_dtype)
    x = tf.cast(rng.standard_normal([3, 6, 6, 8]).astype(np.float32), dtype)
    weight = (rng.standard_normal([ksize, ksize, 8, 5]) / math.sqrt(8 * ksize * ksize)).astype(np.float32)
    styles = (10.0 * rng.standard_normal([3, 8])).astype(np.float32)
    got = modulated_conv2d(x, tf.constant(weight), tf.constant(styles), demodulate=demodulate, up=up, fused=fused)
    assert got.dtype == dtype
    x = tf.cast(x, tf.float64).numpy()  # the rounded inputs, exactly
    want = []
    for n in range(3):
        w1 = weight.astype(np.float64) * styles[n].astype(np.float64)[None, None, :, None]
        if demodulate:
            w1 = w1 / np.sqrt(np.sum(w1 ** 2, axis=(0, 1, 2)) + 1e-8)
        xn = x[n:n + 1]
        want.append(ref.upsample_conv_2d(xn, w1, [1, 3, 3, 1]) if up else ref.conv2d_same(xn, w1))
    want = np.concatenate(want)
    assert _max_rel(want, tf.cast(got, tf.float64).numpy()) <= FWD_RTOLS[mixed_dtype]


def test_fp16_demodulated_conv_does_not_overflow_where_plain_float16_would():
    # Styles of 1e3 with 64 input channels: the un-normalized product x * s * w summed over
    # 576 taps exceeds float16's 65504, the pre-normalized one stays O(1).
    rng = np.random.default_rng(1)
    x = rng.standard_normal([2, 4, 4, 64]).astype(np.float16) * 4
    weight = rng.standard_normal([3, 3, 64, 4]).astype(np.float32) * 8
    styles = np.full([2, 64], 1e3, np.float32)
    got = modulated_conv2d(tf.constant(x), tf.constant(weight), tf.constant(styles), fused=False).numpy()
    want = modulated_conv2d(tf.constant(x.astype(np.float32)), tf.constant(weight), tf.constant(styles),
                            fused=False).numpy()
    assert np.all(np.isfinite(got)) and _max_rel(want, got) <= FWD_RTOL
    plain = tf.nn.conv2d(tf.constant(x) * tf.constant(styles[:, None, None, :], tf.float16),
                         tf.constant(weight, tf.float16), 1, "SAME")
    assert not np.all(np.isfinite(plain.numpy()))


# ------------------------------------------------------------------ (d) clamping


C = 1e-3


def _check_clamped(y, y_free, c):
    """y == clip(y_free, -c, c) exactly, |y| <= c, and the clamp was active."""
    y, y_free = np.asarray(y, np.float64), np.asarray(y_free, np.float64)
    assert np.max(np.abs(y)) <= c
    assert np.mean(np.abs(y_free) > c) > 0.5      # most outputs were beyond the clamp
    np.testing.assert_array_equal(y, np.clip(y_free, -c, c))


@pytest.mark.parametrize("dtype", [tf.float32, tf.float16, tf.bfloat16])
def test_equalized_layers_clamp(dtype):
    c = float(dtype.as_numpy_dtype(C))  # the bound as the dtype represents it
    x = tf.cast(tf.random.stateless_normal([2, 8, 8, 6], seed=[1, 1]), dtype)
    for kw in (dict(activation="lrelu"), dict(activation="lrelu", down=True), dict(activation="linear", up=True)):
        free = EqualizedConv2d(6, 5, 3, **kw)
        clamped = EqualizedConv2d(6, 5, 3, clamp=C, **kw)
        clamped.set_weights(free.get_weights())
        y = clamped(x)
        assert y.dtype == dtype
        _check_clamped(y, free(x), c)
    free, clamped = EqualizedDense(6, 7, activation="lrelu"), EqualizedDense(6, 7, activation="lrelu", clamp=C)
    clamped.set_weights(free.get_weights())
    v = x[:, 0, 0, :]
    _check_clamped(clamped(v), free(v), c)


@pytest.mark.parametrize("dtype", [tf.float32, tf.float16, tf.bfloat16])
def test_synthesis_layer_and_torgb_clamp(dtype):
    c = float(dtype.as_numpy_dtype(C))
    x = tf.cast(tf.random.stateless_normal([2, 8, 8, 6], seed=[2, 2]), dtype)
    w = tf.random.stateless_normal([2, 16], seed=[3, 3])
    free = SynthesisLayer(6, 5, 16, resolution=8, use_noise=False)
    clamped = SynthesisLayer(6, 5, 16, resolution=8, use_noise=False, conv_clamp=C)
    clamped.set_weights(free.get_weights())
    _check_clamped(clamped(x, w), free(x, w), c)
    free, clamped = ToRGB(6, 3, 16), ToRGB(6, 3, 16, conv_clamp=C)
    clamped.set_weights(free.get_weights())
    _check_clamped(clamped(x, w), free(x, w), c)


def test_resnet_residual_path_is_bounded_by_clamp_times_its_gain():
    # NVIDIA: conv1 runs with gain sqrt(0.5) and clamp conv_clamp * sqrt(0.5); ours clamps conv1
    # at conv_clamp and scales (main + skip) by sqrt(0.5) -- the same bound on the main path.
    D = Discriminator(_d_cfg(res=16, arch="resnet", conv_clamp=C))
    block = D.blocks[0]
    img = tf.random.stateless_normal([2, 16, 16, 3], seed=[4, 4])
    x, _ = block(None, img)
    skip = block.skip(block.fromrgb(img)) * math.sqrt(0.5)
    main = x - skip
    assert np.max(np.abs(main.numpy())) <= C * math.sqrt(0.5) + 1e-6
    assert np.max(np.abs(main.numpy())) >= 0.99 * C * math.sqrt(0.5)


def test_clamped_layers_match_nvidia_selection():
    G = Generator(_g_cfg(res=16, arch="resnet", conv_clamp=256.0))
    for block in G.synthesis.blocks:
        assert block.conv1.conv_clamp == 256.0 and (block.conv0 is None or block.conv0.conv_clamp == 256.0)
        assert block.torgb is None or block.torgb.conv_clamp == 256.0
        assert block.skip is None or block.skip.clamp is None
    assert all(layer.clamp is None for layer in G.mapping._flatten_layers() if hasattr(layer, "clamp"))
    D = Discriminator(_d_cfg(res=16, arch="skip", conv_clamp=256.0))
    for block in D.blocks:
        assert (block.fromrgb.clamp, block.conv0.clamp, block.conv1.clamp) == (256.0, 256.0, 256.0)
    ep = D.epilogue
    assert ep.conv.clamp == 256.0 and ep.fromrgb.clamp is None and ep.fc.clamp is None and ep.out.clamp is None


# ------------------------------------------------------------------ snapshots and options


def test_fp16_networks_write_official_snapshots(tmp_path, caplog):
    from stylegan2_tf.official import load_network_pkl
    from stylegan2_tf.official.writer import save_network_pkl
    from stylegan2_tf.official import read_network_pickle
    # (label modes as training uses them: the NVlabs/stylegan2 format's.)
    G = Generator(_g_cfg(res=16, num_fp16_res=2, conv_clamp=256.0, label_mode="concat")).build_weights()
    D = Discriminator(_d_cfg(res=16, num_fp16_res=2, conv_clamp=256.0, label_mode="project")).build_weights()
    path = tmp_path / "snap.pkl"
    save_network_pkl(path, G, D, G)
    assert "records neither" not in caplog.text
    # Unconditional with float16 blocks and a clamp: the StyleGAN2-ADA TF1 format, which records both.
    Gs = read_network_pickle(path)[2]
    assert (Gs.components["synthesis"].build_func_name, Gs.static_kwargs["num_fp16_res"],
            Gs.static_kwargs["conv_clamp"]) == ("G_synthesis", 2, 256.0)
    nets = load_network_pkl(path)                 # float16 blocks evaluated in float32, the clamp kept
    assert (nets["G"].config.num_fp16_res, nets["G"].config.conv_clamp) == (0, 256.0)
    assert load_network_pkl(path, fp32=False)["G"].config.num_fp16_res == 2
    for ours, loaded in ((G, nets["G"]), (D, nets["D"])):
        for a, b in zip(ours.get_weights(), loaded.get_weights()):
            np.testing.assert_array_equal(a, b)
    # Conditional networks of the NVlabs/stylegan2 kind: that format, which has no precision settings.
    Gc = Generator(_g_cfg(res=16, c_dim=2, num_fp16_res=2, conv_clamp=256.0, label_mode="concat")).build_weights()
    Dc = Discriminator(_d_cfg(res=16, c_dim=2, num_fp16_res=2, conv_clamp=256.0, label_mode="project")).build_weights()
    caplog.clear()
    save_network_pkl(path, Gc, Dc, Gc)
    assert "records neither num_fp16_res nor conv_clamp" in caplog.text   # said, not silent
    assert read_network_pickle(path)[2].components["synthesis"].build_func_name == "G_synthesis_stylegan2"
    assert load_network_pkl(path)["G"].config == Gc.config.replace(num_fp16_res=0, conv_clamp=None)


def test_training_options_pass_precision_to_both_networks():
    from stylegan2_tf.training.options import RESUME_INVARIANTS, TrainingOptions
    assert "fp16_res" in RESUME_INVARIANTS and "conv_clamp" in RESUME_INVARIANTS
    g, d = TrainingOptions().network_configs(32, 3, 0)
    assert (g.num_fp16_res, g.conv_clamp, d.num_fp16_res, d.conv_clamp) == (0, None, 0, None)
    g, d = TrainingOptions(fp16_res=2).network_configs(32, 3, 0)
    assert (g.num_fp16_res, g.conv_clamp, d.num_fp16_res, d.conv_clamp) == (2, 256.0, 2, 256.0)
    g, d = TrainingOptions(fp16_res=3, conv_clamp=64).network_configs(32, 3, 0)
    assert (g.num_fp16_res, g.conv_clamp, d.num_fp16_res, d.conv_clamp) == (3, 64.0, 3, 64.0)
    g, d = TrainingOptions(conv_clamp=64).network_configs(32, 3, 0)
    assert (g.num_fp16_res, g.conv_clamp) == (0, 64.0)
    g, d = TrainingOptions(fp16_res=3, mixed_dtype="bfloat16").network_configs(32, 3, 0)
    assert (g.num_fp16_res, g.mixed_dtype, d.num_fp16_res, d.mixed_dtype) == (3, "bfloat16", 3, "bfloat16")
    assert g.conv_clamp == d.conv_clamp == 256.0
    assert "mixed_dtype" in RESUME_INVARIANTS
    # Loss scaling only for float16 blocks.
    assert [TrainingOptions(fp16_res=n, mixed_dtype=m).loss_scaling
            for n, m in ((0, "float16"), (2, "float16"), (2, "bfloat16"))] == [False, True, False]
    # Options saved before the fields existed load with the float32 defaults.
    old = {k: v for k, v in TrainingOptions().to_dict().items()
           if k not in ("fp16_res", "conv_clamp", "mixed_dtype")}
    loaded = TrainingOptions.from_dict(old)
    assert (loaded.fp16_res, loaded.conv_clamp, loaded.mixed_dtype) == (0, None, "float16")


@pytest.mark.parametrize("kw, message", [
    (dict(fp16_res=2, mixed_dtype="float64"), "--mixed-dtype float64: mixed_dtype must be one of ('float16', "
     "'bfloat16'), got 'float64'"),   # the network config's own rule, named by the flag
    (dict(mixed_dtype="bfloat16"), "--mixed-dtype bfloat16 applies to the --fp16-res blocks"),
])
def test_bad_mixed_dtype_options_are_refused(kw, message):
    from stylegan2_tf.training.options import TrainingError, TrainingOptions
    with pytest.raises(TrainingError, match=re.escape(message)):
        TrainingOptions(data_dir="d", dataset="x", **kw).validate()


@pytest.mark.parametrize("onednn, machine, flags, expected", [
    (True, "x86_64", {"avx2", "fma", "avx512f", "avx512_bf16"}, True),
    (True, "x86_64", {"avx2", "fma", "avx512f"}, True),              # oneDNN emulates bfloat16 on AVX-512
    (True, "x86_64", {"avx2", "fma", "avx_ne_convert"}, True),       # AVX2 CPUs with bfloat16 conversions
    (True, "x86_64", {"avx2", "fma"}, False),                        # TF falls back to its emulated kernels
    (False, "x86_64", {"avx2", "fma", "avx512f", "amx_bf16"}, False),  # TF_ENABLE_ONEDNN_OPTS=0
    (True, "x86_64", None, None),                                    # no /proc/cpuinfo
    (True, "aarch64", {"bf16"}, None),
    (None, "x86_64", {"avx512f"}, None),
])
def test_onednn_bfloat16_follows_tensorflows_rule(monkeypatch, onednn, machine, flags, expected):
    # TensorFlow's rule (IsBF16SupportedByOneDNNOnThisCPU): oneDNN on, and AVX512F or AVX_NE_CONVERT.
    from stylegan2_tf.ops import capabilities
    monkeypatch.setattr(capabilities, "onednn_enabled", lambda: onednn)
    monkeypatch.setattr(capabilities, "cpu_flags", lambda: None if flags is None else frozenset(flags))
    monkeypatch.setattr(capabilities.platform, "machine", lambda: machine)
    assert capabilities.onednn_bfloat16() is expected


def test_cpu_flags_reads_this_machine():
    from stylegan2_tf.ops.capabilities import cpu_flags
    import platform
    flags = cpu_flags()
    if not os.path.exists("/proc/cpuinfo"):
        assert flags is None
    elif platform.machine() == "x86_64":
        assert {"sse2", "fpu"} <= flags  # every x86-64 CPU has them
