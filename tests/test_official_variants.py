"""Loading official TF1 pickles of every documented network configuration.

For each format spec in `fixtures/stylegan2_pkl/specs/` a pickle is fabricated with
`official_pickle_factory` (which shares no code with the package), loaded with
`load_network_pkl`, and checked against NVIDIA's outputs for the same pickle
(`fixtures/variants/<spec>.npz`, made by NVlabs/stylegan2-ada-pytorch's converter and networks in
float64: `fixtures/variants/make_references.py`), in float32 and in float64; and for properties that
hold whatever the weights: that every pickled value landed in a variable of ours bit for bit, fused ==
non-fused modulated convolution, labels reaching D's logits, and the interleaved grouping of D's
minibatch-stddev layer.
"""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))

from conftest import output_errors, worst_training_error  # noqa: E402
from official_pickle_factory import reference_inputs, spec_summary, write_pickle_from_spec  # noqa: E402
from pytorch_conventions import pytorch_float64_arithmetic  # noqa: E402
from stylegan2_tf.official import load_network_pkl, read_network_pickle  # noqa: E402
from stylegan2_tf.official.tf1_format import discriminator_table, generator_tables  # noqa: E402
from stylegan2_tf.verify_pickle import compute_reference_outputs, mbstd_channels  # noqa: E402
from stylegan2_tf.verify_training import compute_training_reference  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "stylegan2_pkl")
NVIDIA = os.path.join(os.path.dirname(__file__), "fixtures", "variants")  # NVIDIA's float64 outputs
SPEC_DIR = os.path.join(FIXTURES, "specs")
GROWING = ["sga-tiny16", "sgb-tiny16"]        # configs A/B: their real pickles are tested in test_progressive.py
SPECS = sorted(name[:-4] for name in os.listdir(SPEC_DIR) if name.endswith(".txt") and name[:-4] not in GROWING)
CONDITIONAL = [s for s in SPECS if spec_summary(os.path.join(SPEC_DIR, s + ".txt"))["G"].static_kwargs.get(
    "label_size", 0) > 0]
REAL = ["sg2-tiny16", "ada-cond-tiny16"] + GROWING      # specs that have a real pickle next to them


def _mark_built(nets):
    """Every weight of our layers is created in __init__ (and the loader assigned all of them);
    marking the layers built spares Keras' symbolic build-by-tracing on each network's first
    call, which otherwise costs more than the computation itself on these small networks."""
    for key in ("G", "G_ema", "D"):
        for layer in nets[key]._flatten_layers(include_self=True):
            layer.built = True


@pytest.fixture(scope="module", params=SPECS)
def variant(request, tmp_path_factory):
    name = request.param
    spec = spec_summary(os.path.join(SPEC_DIR, name + ".txt"))
    path = str(tmp_path_factory.mktemp("pkl") / f"{name}.pkl")
    write_pickle_from_spec(os.path.join(SPEC_DIR, name + ".txt"), path, seed=0)
    nets = load_network_pkl(path)
    _mark_built(nets)
    Gs, D = nets["G_ema"], nets["D"]
    cfg = Gs.config
    inputs = reference_inputs(cfg.z_dim, cfg.c_dim, cfg.img_resolution, cfg.img_channels)
    outputs = compute_reference_outputs(nets, inputs)
    return dict(name=name, spec=spec, path=path, tf1=read_network_pickle(path), nets=nets, inputs=inputs,
                outputs=outputs, D=D)


def _nhwc(x):
    return np.transpose(np.asarray(x, np.float32), [0, 2, 3, 1])


def test_outputs_have_reference_shapes_and_are_finite(variant):
    Gs = variant["nets"]["G_ema"]
    kw = variant["spec"]["Gs"].static_kwargs
    res, ch = kw["resolution"], kw["num_channels"]
    w_dim = kw.get("dlatent_size", 512)
    num_ws = variant["spec"]["Gs"].components["mapping"].static_kwargs["dlatent_broadcast"]
    assert Gs.num_ws == num_ws == 2 * int(np.log2(res)) - 2
    expected = {
        "Gs/w": (4, num_ws, w_dim), "Gs/w_psi0.7": (4, num_ws, w_dim), "G/w": (4, num_ws, w_dim),
        "Gs/img_const": (4, ch, res, res), "Gs/img_const_psi0.7": (4, ch, res, res),
        "Gs/img_none": (4, ch, res, res), "G/img_const": (4, ch, res, res), "Gs/img_uint8": (4, res, res, ch),
        "D/logits_Gs_img": (4, 1), "D/logits_rand": (4, 1), "D/logits_rand8": (8, 1),
        "D/mbstd_rand8": (8, 1, 4, 4),
    }
    out = variant["outputs"]
    assert set(out) == set(expected)
    for key, shape in expected.items():
        assert out[key].shape == shape, key
        assert np.all(np.isfinite(out[key])), key
    # Each output depends on what it should: stored noise, truncation, and G vs Gs differ.
    assert not np.allclose(out["Gs/img_const"], out["Gs/img_none"])
    assert not np.allclose(out["Gs/w"], out["Gs/w_psi0.7"])
    assert not np.allclose(out["Gs/w"], out["G/w"])
    # psi = 0.7 is a lerp towards dlatent_avg on every layer.
    avg = np.asarray(dict(variant["tf1"][2].state["variables"])["dlatent_avg"])
    np.testing.assert_allclose(out["Gs/w_psi0.7"], avg + 0.7 * (out["Gs/w"] - avg), rtol=1e-5, atol=1e-4)


def _check_rows(rows, tf1_vars, where, ignore=()):
    names = [name for name, *_ in rows]
    assert sorted(names) == sorted(n for n in tf1_vars if n not in ignore), where
    for name, var, _, to_tf1 in rows:
        value = np.asarray(tf1_vars[name])
        back = np.asarray(to_tf1(var.numpy()))
        assert back.shape == value.shape, f"{where}/{name}"
        assert back.dtype == np.float32, f"{where}/{name}"
        np.testing.assert_array_equal(back, value, err_msg=f"{where}/{name}")


def _nvidia(name):
    path = os.path.join(NVIDIA, f"{name}.npz")
    return np.load(path) if os.path.exists(path) else None


WITH_NVIDIA = [s for s in SPECS if s not in REAL]  # the real pickles' own .npz files are tested elsewhere


@pytest.mark.parametrize("variant", WITH_NVIDIA, indirect=True)
def test_float32_matches_nvidia(variant):
    """Every output within 2e-5 of its scale of NVIDIA's (float32 rounding: measured <= 6.4e-6)."""
    ref = _nvidia(variant["name"])
    for k in ("z", "c", "c8", "rand_img", "rand_img8"):
        np.testing.assert_array_equal(variant["inputs"][k], ref[k], err_msg=k)  # the same inputs
    errors = output_errors(variant["outputs"], ref)
    assert len(errors) == 11 and max(errors.values()) < 2e-5, errors


def _float64_variant(name, tmp_path, load=("G", "D", "G_ema")):
    path = str(tmp_path / f"{name}.pkl")
    write_pickle_from_spec(os.path.join(SPEC_DIR, name + ".txt"), path, seed=0)
    nets = load_network_pkl(path, load=load)
    assert nets["G"].mapping.dense[0].weight.dtype == "float64"
    return nets, _nvidia(name)


@pytest.mark.parametrize("name", WITH_NVIDIA)
def test_float64_matches_nvidia(name, tmp_path, float64):
    """Built in float64: within 1e-7 of NVIDIA's float64 values (measured <= 4.4e-8; float32 is ~100x
    further), and within 1e-12 (measured <= 1.8e-14) with PyTorch's arithmetic
    (tests/pytorch_conventions.py: the three ~1e-8 differences of convention that make up the rest)."""
    nets, ref = _float64_variant(name, tmp_path)
    inputs = {k: ref[k] for k in ("z", "c", "c8", "rand_img", "rand_img8")}
    errors = output_errors(compute_reference_outputs(nets, inputs), ref)
    assert len(errors) == 11 and max(errors.values()) < 1e-7, errors
    with pytorch_float64_arithmetic():
        errors = output_errors(compute_reference_outputs(nets, inputs), ref)
    assert len(errors) == 11 and max(errors.values()) < 1e-12, errors


@pytest.mark.parametrize("name", WITH_NVIDIA)
def test_float64_training_step_matches_nvidia(name, tmp_path, float64):
    """The four loss phases on the pickle's G and D in float64 with PyTorch's arithmetic: every loss
    term and, per phase, each trainable variable's gradient norm, sum and |.|-sum (keyed by TF1 name)
    equal NVIDIA's float64 values (fp64/train/* in the variant's reference, made by
    make_references.py) within 1e-11 relative (grad_sum relative to grad_abs; measured <= 1.8e-13)."""
    nets, ref = _float64_variant(name, tmp_path, load=("G", "D"))
    with pytorch_float64_arithmetic():
        out = compute_training_reference(nets["G"], nets["D"], {k: ref[k] for k in
                                                                ("train/z", "train/c", "train/real", "train/pl_noise")})
    worst, compared = worst_training_error(out, ref)
    assert compared == sum(k.startswith("fp64/train/") for k in ref.files) > 400
    assert worst[0] < 1e-11, worst


def test_every_pickled_value_lands_in_our_variables(variant):
    G_state, D_state, Gs_state = variant["tf1"]
    for key, state in (("G", G_state), ("G_ema", Gs_state)):
        main, synth, mapping = generator_tables(variant["nets"][key])
        _check_rows(main, state.variables, key, ignore=("lod",))
        _check_rows(synth, state.components["synthesis"].variables, f"{key}/G_synthesis")
        _check_rows(mapping, state.components["mapping"].variables, f"{key}/G_mapping")
    _check_rows(discriminator_table(variant["D"]), D_state.variables, "D")


def test_fused_and_separate_modulated_conv_agree(variant):
    Gs = variant["nets"]["G_ema"]
    ws = variant["outputs"]["Gs/w"]
    fused = Gs.synthesis(ws, noise_mode="const", fused_modconv=True).numpy()
    separate = Gs.synthesis(ws, noise_mode="const", fused_modconv=False).numpy()
    assert np.max(np.abs(fused - separate)) <= 1e-4
    np.testing.assert_allclose(fused, np.transpose(variant["outputs"]["Gs/img_const"], [0, 2, 3, 1]),
                               atol=1e-4, rtol=0)


@pytest.mark.parametrize("variant", CONDITIONAL, indirect=True)
def test_labels_change_discriminator_logits(variant):
    D = variant["D"]
    img = _nhwc(variant["inputs"]["rand_img"])
    c = variant["inputs"]["c"]
    logits = D(img, c=c).numpy()
    shifted = D(img, c=np.roll(c, 1, axis=1)).numpy()
    assert np.all(np.abs(logits - shifted) > 1e-6)
    np.testing.assert_allclose(logits, variant["outputs"]["D/logits_rand"], rtol=0, atol=0)
    # The generator's mapping sees the label too.
    Gs = variant["nets"]["G_ema"]
    z = variant["inputs"]["z"].astype(np.float32)
    assert not np.allclose(Gs.mapping(z, c).numpy(), Gs.mapping(z, np.roll(c, 1, axis=1)).numpy())


def test_minibatch_stddev_groups_are_interleaved(variant):
    D = variant["D"]
    assert D.config.mbstd_group_size == 4 and D.config.mbstd_num_features == 1
    img8 = _nhwc(variant["inputs"]["rand_img8"])
    c8 = variant["inputs"]["c8"] if D.config.c_dim else None
    base = D(img8, c=c8).numpy()
    np.testing.assert_array_equal(base, variant["outputs"]["D/logits_rand8"])
    # N = 8, group size 4 -> groups {0, 2, 4, 6} and {1, 3, 5, 7}.
    within = np.array([2, 7, 4, 1, 0, 5, 6, 3])          # permutes inside each group only
    across = np.array([1, 0, 2, 3, 4, 5, 6, 7])          # moves a sample into the other group
    for perm, same in ((within, True), (across, False)):
        cp = c8[perm] if c8 is not None else None
        logits = D(img8[perm], c=cp).numpy()
        mbstd = mbstd_channels(D, img8[perm], cp).numpy()
        ref_mbstd = np.transpose(variant["outputs"]["D/mbstd_rand8"], [0, 2, 3, 1])[perm]
        if same:
            np.testing.assert_allclose(logits, base[perm], rtol=0, atol=1e-5)
            np.testing.assert_allclose(mbstd, ref_mbstd, rtol=0, atol=1e-6)
        else:
            assert np.max(np.abs(logits - base[perm])) > 1e-4
            assert np.max(np.abs(mbstd - ref_mbstd)) > 1e-4
    # The appended channel is constant over pixels and shared by the members of a group.
    ch = variant["outputs"]["D/mbstd_rand8"][:, 0]
    assert np.ptp(ch.reshape(8, -1), axis=1).max() == 0
    assert np.allclose(ch[0::2], ch[0]) and np.allclose(ch[1::2], ch[1])
    assert not np.allclose(ch[0], ch[1])       # near-copies (even samples) have a smaller stddev
    assert ch[0, 0, 0] < ch[1, 0, 0]


def _structure(net):
    s = net.state
    return (s["version"], s["name"], s["build_func_name"], s["static_kwargs"], list(s["components"]),
            [(k, np.shape(v), type(v).__name__, np.asarray(v).dtype.str) for k, v in s["variables"]],
            [_structure(c) for c in s["components"].values()], sorted(s))


@pytest.mark.parametrize("name", REAL)
def test_factory_matches_real_pickle_structure(name, tmp_path):
    path = str(tmp_path / f"{name}.pkl")
    write_pickle_from_spec(os.path.join(SPEC_DIR, name + ".txt"), path)
    fabricated = read_network_pickle(path)
    real = read_network_pickle(os.path.join(FIXTURES, name + ".pkl"))
    for ours, theirs in zip(fabricated, real):
        assert _structure(ours) == _structure(theirs)
    # Deterministic: same arguments, same bytes; another seed, other values.
    again = str(tmp_path / "again.pkl")
    write_pickle_from_spec(os.path.join(SPEC_DIR, name + ".txt"), again)
    with open(path, "rb") as a, open(again, "rb") as b:
        assert a.read() == b.read()
    other = str(tmp_path / "other.pkl")
    write_pickle_from_spec(os.path.join(SPEC_DIR, name + ".txt"), other, seed=1)
    w0 = dict(fabricated[1].state["variables"])["4x4/Conv/weight"]
    w1 = dict(read_network_pickle(other)[1].state["variables"])["4x4/Conv/weight"]
    assert w0.shape == w1.shape and not np.array_equal(w0, w1)


def test_state_version_5_loads_like_version_4(tmp_path):
    spec = os.path.join(SPEC_DIR, "ada-cond-tiny16.txt")
    v4 = write_pickle_from_spec(spec, str(tmp_path / "v4.pkl"))
    v5 = write_pickle_from_spec(spec, str(tmp_path / "v5.pkl"), version=5)
    assert read_network_pickle(v5)[0].state["version"] == 5
    assert "input_shapes" in read_network_pickle(v5)[0].state
    a, b = load_network_pkl(v4, load=("G_ema",)), load_network_pkl(v5, load=("G_ema",))
    for va, vb in zip(a["G_ema"].weights, b["G_ema"].weights):
        np.testing.assert_array_equal(va.numpy(), vb.numpy())
