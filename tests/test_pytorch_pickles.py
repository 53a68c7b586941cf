"""stylegan2-ada-pytorch network pickles, read without PyTorch and without running anything.

tests/fixtures/pytorch_pkl/ holds pickles that NVIDIA's own PyTorch code built and pickled
(make_fixtures.py; their embedded module source is a placeholder) and the outputs that code
computed from them in float32: mapping, synthesis with the stored noise, G with psi 1 and 0.7,
D logits, and generate.py's uint8 images."""

import os
import pickle

import numpy as np
import pytest

from conftest import ROOT, run_python
from stylegan2_tf.official import NetworkPickleError, UnsafePickleError, load_network_pkl

FIXTURES = ROOT / "tests" / "fixtures" / "pytorch_pkl"
NAMES = ("ada-pt-skip16", "ada-pt-cond-orig16-fp16", "ada-pt-resnet32-gray", "ada-pt-cond-skip8-rgba",
         "ada-pt-skip4", "sg3-cfg-stylegan2-cond16")


def _nhwc(x):
    return np.transpose(x, [0, 2, 3, 1])


def _close(ours, ref, what, rel=2e-6):
    """Equal within float32 rounding: relative to the largest magnitude of the reference."""
    np.testing.assert_allclose(ours, ref, rtol=0, atol=rel * max(1.0, float(np.max(np.abs(ref)))), err_msg=what)


@pytest.fixture(scope="module", params=NAMES)
def loaded(request):
    name = request.param
    return name, load_network_pkl(FIXTURES / f"{name}.pkl"), np.load(FIXTURES / f"{name}.npz")


def test_outputs_equal_stylegan2_ada_pytorch(loaded):
    name, nets, ref = loaded
    G, D = nets["G_ema"], nets["D"]
    c = ref["c"] if G.config.c_dim else None
    assert nets["format"] == "stylegan2-ada-pytorch" and nets["family"] == "stylegan2-ada"
    _close(G.mapping(ref["z"], c).numpy(), ref["ws"], "mapping, psi 1")
    _close(G.mapping(ref["z"], c, truncation_psi=0.7).numpy(), ref["ws_psi07"], "mapping, psi 0.7")
    _close(G.synthesize(ref["ws"], noise_mode="const").numpy(), _nhwc(ref["img_synthesis"]), "synthesis")
    _close(G(ref["z"], c=c, noise_mode="const").numpy(), _nhwc(ref["img"]), "G, psi 1")
    _close(G(ref["z"], c=c, truncation_psi=0.7, noise_mode="const").numpy(), _nhwc(ref["img_psi07"]), "G, psi 0.7")
    _close(D(_nhwc(ref["real"]), c=c).numpy(), ref["d_real"], "D on reals")
    _close(D(_nhwc(ref["img"]), c=c).numpy(), ref["d_fake"], "D on fakes")


def test_configs_follow_the_pickle(loaded):
    name, nets, ref = loaded
    G, D = nets["G_ema"], nets["D"]
    import json
    meta = json.loads(str(ref["meta"]))
    g, s = meta["G"], meta["G"].get("synthesis_kwargs", {})
    if meta["code"] == "stylegan3":   # the synthesis arguments are the Generator's; other defaults
        s = dict(dict(num_fp16_res=4, conv_clamp=256), **{k: v for k, v in g.items() if k in ("channel_base",
                                                                                            "channel_max")})
    cfg = G.config
    assert (cfg.z_dim, cfg.c_dim, cfg.w_dim, cfg.img_resolution, cfg.img_channels) == \
        (g["z_dim"], g["c_dim"], g["w_dim"], g["img_resolution"], g["img_channels"])
    assert cfg.mapping_layers == g["mapping_kwargs"]["num_layers"]
    assert cfg.architecture == s.get("architecture", "skip") and D.config.architecture == \
        meta["D"].get("architecture", "resnet")
    assert cfg.conv_clamp == s.get("conv_clamp") and cfg.num_fp16_res == 0   # float32 unless asked otherwise
    # Every resolution's channels as stylegan2-ada-pytorch counts them: min(channel_base // res, channel_max).
    for block in G.synthesis.blocks:
        res = block.resolution
        assert block.conv1.conv.weight.shape[-1] == min(s["channel_base"] // res, s["channel_max"]), res


def test_G_and_D_load_too_and_extras_are_reported(loaded):
    name, nets, _ = loaded
    # make_fixtures.py made G_ema's parameters 0.9 x G's (the buffers, noise and w_avg, are shared).
    # The styles' biases are held without NVIDIA's +1 (the TF1 convention), PyTorch's include it.
    for a, b in zip(nets["G"].trainable_variables, nets["G_ema"].trainable_variables):
        one = 1.0 if a.path.endswith("affine/bias") else 0.0
        np.testing.assert_allclose(b.numpy() + one, 0.9 * (a.numpy() + one), rtol=1e-6, atol=1e-6, err_msg=a.path)
    extras = nets["extras"]
    assert extras["training_set_kwargs"]["resolution"] == nets["G_ema"].config.img_resolution
    assert extras["augment_pipe"] == ("AugmentPipe" if nets["G_ema"].config.c_dim else None)
    # The fixtures embed a placeholder, not a source NVIDIA released: reported as unknown.
    assert set(extras["module_source"]) == {"G", "D", "G_ema"}
    assert all(v.startswith("unknown (sha256 ") for v in extras["module_source"].values())


def test_a_released_module_source_is_named(monkeypatch, caplog):
    import hashlib
    from stylegan2_tf.official import pytorch_format
    placeholder = b"# placeholder: the module source that NVlabs/stylegan2-ada-pytorch embeds here is not " \
                  b"included in these fixtures\n"
    monkeypatch.setitem(pytorch_format.KNOWN_SOURCES, hashlib.sha256(placeholder).hexdigest(), "the placeholder")
    nets = load_network_pkl(FIXTURES / "ada-pt-skip16.pkl")
    assert nets["extras"]["module_source"]["G_ema"] == "the placeholder"
    assert "not one NVIDIA released" not in caplog.text


def test_stylegan3_alias_free_networks_are_refused():
    with pytest.raises(NetworkPickleError, match=r"sg3-t-refused\.pkl: G: module class\(es\) .*SynthesisInput.*"
                                                 r"StyleGAN3 alias-free network: not supported"):
        load_network_pkl(FIXTURES / "sg3-t-refused.pkl")


def test_fp16_blocks_when_asked():
    ref = np.load(FIXTURES / "ada-pt-cond-orig16-fp16.npz")
    G = load_network_pkl(FIXTURES / "ada-pt-cond-orig16-fp16.pkl", load=("G_ema",), fp32=False)["G_ema"]
    assert G.config.num_fp16_res == 2 and G.config.conv_clamp == 256
    img = G(ref["z"], c=ref["c"], noise_mode="const").numpy()
    assert img.dtype == np.float32
    scale = np.max(np.abs(ref["img"]))
    err = np.max(np.abs(img - _nhwc(ref["img"]))) / scale
    assert 0 < err < 2e-2, err    # float16 rounding: visible, small


def test_the_fixtures_hold_no_nvidia_source():
    for name in NAMES + ("sg3-t-refused",):
        data = (FIXTURES / f"{name}.pkl").read_bytes()
        assert b"def forward" not in data and b"placeholder" in data


@pytest.mark.parametrize("name, old, new, message", [
    ("ada-pt-cond-orig16-fp16", b"SynthesisLayer", b"SynthesisInput",
     r"SynthesisInput are not those of stylegan2-ada-pytorch's .*StyleGAN3"),
    ("ada-pt-cond-orig16-fp16", b"channel_max", b"channel_mix",
     r"G\.synthesis_kwargs: constructor argument\(s\) channel_mix not understood"),
    ("ada-pt-cond-orig16-fp16", b"noise_const", b"noise_xonst",
     r"G: tensor\(s\) .*synthesis\.b16\.conv0\.noise_xonst.* not understood"),
    ("ada-pt-cond-skip8-rgba", b"lr_multiplier", b"lr_multiplie_",
     r"G\.mapping_kwargs: constructor argument\(s\) lr_multiplie_"),
    ("ada-pt-skip16", b"Discriminator", b"Discriminatos", r"D: expected a Discriminator module"),
])
def test_what_is_not_understood_is_refused(tmp_path, name, old, new, message):
    data = (FIXTURES / f"{name}.pkl").read_bytes()
    assert old in data and len(old) == len(new)
    path = tmp_path / "tampered.pkl"
    path.write_bytes(data.replace(old, new))
    with pytest.raises(NetworkPickleError, match=message) as e:
        load_network_pkl(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_truncated_and_malicious_pickles_run_nothing(tmp_path):
    data = (FIXTURES / "ada-pt-skip16.pkl").read_bytes()
    (tmp_path / "cut.pkl").write_bytes(data[:len(data) // 2])
    with pytest.raises(NetworkPickleError, match=r"cut\.pkl: not a readable pickle"):
        load_network_pkl(tmp_path / "cut.pkl")
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"G": Payload(), "D": None, "G_ema": Payload()}))
    with pytest.raises(UnsafePickleError, match=r"refusing to load global '(posix|os)\.system'"):
        load_network_pkl(tmp_path / "evil.pkl")
    assert not marker.exists()


def test_run_generator_writes_generate_py_images(tmp_path):
    """generate-images from a PyTorch pickle: generate.py's images for the same seeds (z from
    np.random.RandomState(seed).randn, class 0, noise 'const') within one grey level. ψ: ours
    defaults to the official TF value 0.5, generate.py's to 1, so ψ 1 is given here."""
    for name in ("ada-pt-skip16", "ada-pt-cond-skip8-rgba"):
        ref = np.load(FIXTURES / f"{name}.npz")
        out = tmp_path / name
        extra = ["--class", "0"] if "cond" in name else []
        r = run_python(["run_generator.py", "generate-images", "--network", FIXTURES / f"{name}.pkl", "--seeds", "0-1",
                        "--truncation-psi", "1", "--outdir", out, *extra])
        assert r.returncode == 0, r.stderr[-2000:]
        from PIL import Image
        for seed in (0, 1):
            ours = np.asarray(Image.open(out / f"seed{seed:04d}.png"))
            want = ref[f"png_seed{seed}"]
            ours = ours.reshape(want.shape)
            diff = np.abs(ours.astype(int) - want.astype(int))
            assert diff.max() <= 1, (name, seed, diff.max())
            assert np.std(want) > 5   # the images are not flat: the comparison means something


def test_snapshots_of_ada_networks_are_written_in_the_ada_tf1_format(tmp_path):
    """A conditional stylegan2-ada network (label embedding, D's label mapping) is written as
    NVlabs/stylegan2-ada's TF1 pickle, the format stylegan2-ada-pytorch's legacy.py converts, and
    reads back identically."""
    from stylegan2_tf.official import read_network_pickle
    from stylegan2_tf.official.writer import save_network_pkl
    nets = load_network_pkl(FIXTURES / "ada-pt-cond-orig16-fp16.pkl", fp32=False)
    path = tmp_path / "snap.pkl"
    save_network_pkl(path, nets["G"], nets["D"], nets["G_ema"])
    G, D, Gs = read_network_pickle(path)
    assert (G.build_func_name, G.components["synthesis"].build_func_name, D.build_func_name) == \
        ("G_main", "G_synthesis", "D_main")
    kw = Gs.static_kwargs
    assert (kw["label_size"], kw["num_fp16_res"], kw["conv_clamp"], kw["architecture"], kw["fmap_base"]) == \
        (3, 2, 256.0, "orig", 256)    # channel_base 512 = 2 x fmap_base
    assert "LabelEmbed/weight" in Gs.components["mapping"].variables and "Mapping0/weight" in D.variables
    again = load_network_pkl(path, fp32=False)
    for key in ("G", "D", "G_ema"):
        assert again[key].config == nets[key].config
        for a, b in zip(again[key].variables, nets[key].variables):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=b.path)


def test_a_d_that_legacy_py_cannot_convert_is_warned_about(tmp_path, caplog):
    from stylegan2_tf.networks import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig
    from stylegan2_tf.official.writer import save_network_pkl
    g = GeneratorConfig(img_resolution=8, z_dim=8, w_dim=8, mapping_layers=1, mapping_fmaps=8, fmap_base=64,
                        fmap_max=64)
    for fmap_base, warned in ((128, False), (64, True)):   # Dense0: nf(0) = min(fmap_base, 64); 4x4: nf(1)
        D = Discriminator(DiscriminatorConfig(img_resolution=8, fmap_base=fmap_base, fmap_max=64)).build_weights()
        G = Generator(g).build_weights()
        caplog.clear()
        save_network_pkl(tmp_path / "s.pkl", G, D, G)
        assert ("legacy.py cannot convert" in caplog.text) == warned


def test_4x4_networks_write_back_and_a_blockless_d_must_be_skip(tmp_path):
    """A 4x4 network has one synthesis block and a D that is its epilogue alone: it writes and reads
    back unchanged; a 4x4 D without 'skip' would have no features and is refused."""
    from stylegan2_tf.networks import DiscriminatorConfig
    from stylegan2_tf.official.writer import save_network_pkl
    nets = load_network_pkl(FIXTURES / "ada-pt-skip4.pkl")
    assert [b.resolution for b in nets["G_ema"].synthesis.blocks] == [4] and nets["D"].blocks == []
    save_network_pkl(tmp_path / "s.pkl", nets["G"], nets["D"], nets["G_ema"])
    again = load_network_pkl(tmp_path / "s.pkl")
    for key in ("G", "D", "G_ema"):
        assert again[key].config == nets[key].config
        for a, b in zip(again[key].variables, nets[key].variables):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=b.path)
    for arch in ("orig", "resnet"):
        with pytest.raises(ValueError, match=f"a 4x4 discriminator has no blocks: only architecture 'skip' gives "
                                             f"it features, got '{arch}'"):
            DiscriminatorConfig(img_resolution=4, architecture=arch)
