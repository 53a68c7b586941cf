"""Our networks vs NVIDIA's reference outputs for the two official-format fixture pickles."""

import numpy as np
import pytest

from conftest import FIXTURE_NAMES, FIXTURES, output_errors, run_python
from pytorch_conventions import pytorch_float64_arithmetic, round_modulation_biases_like_legacy
from stylegan2_tf.verify_pickle import MAIN_KEYS


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_verify_pickle_command_passes_reference_comparison(name, tmp_path):
    cand = tmp_path / f"{name}.cand.npz"
    r = run_python(["-m", "stylegan2_tf.verify_pickle", "--pkl", FIXTURES / f"{name}.pkl",
                    "--inputs", FIXTURES / f"{name}.npz", "--out", cand])
    assert r.returncode == 0, r.stderr[-2000:]
    assert set(np.load(cand).files) == set(MAIN_KEYS)
    r = run_python([FIXTURES / "compare_outputs.py", "--ref", FIXTURES / f"{name}.npz", "--cand", cand,
                    "--require-all"])
    assert r.returncode == 0, r.stdout[-3000:]
    assert "0 failed" in r.stdout


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_intermediate_layers_match_reference(name, fixture_nets):
    """Per-layer outputs of Gs mapping and synthesis against the stored intermediates."""
    ref = np.load(FIXTURES / f"{name}.npz")
    Gs = fixture_nets[name]["G_ema"]
    z = ref["z"].astype(np.float32)
    c = ref["c"] if Gs.c_dim else None
    x = z
    m = Gs.mapping
    from stylegan2_tf.layers import normalize_2nd_moment
    import tensorflow as tf
    if m.embed is not None:
        emb = m.embed(c).numpy()
        np.testing.assert_allclose(emb, ref["inter/Gs/G_mapping/LabelEmbed"], atol=1e-4)
        x = tf.concat([normalize_2nd_moment(x), normalize_2nd_moment(emb)], axis=1)
    else:
        x = normalize_2nd_moment(x)
    for i, dense in enumerate(m.dense):
        x = dense(x)
        np.testing.assert_allclose(x.numpy(), ref[f"inter/Gs/G_mapping/Dense{i}"], atol=1e-4)
    ws = Gs.mapping(z, c)
    feats, img = None, None
    for block in Gs.synthesis.blocks:
        feats, img = block(feats, img, ws, noise_mode="const")
        r = block.resolution
        np.testing.assert_allclose(np.transpose(feats, [0, 3, 1, 2]), ref[f"inter/Gs/G_synthesis/{r}x{r}/x"],
                                   atol=1e-4)
        if img is not None:
            np.testing.assert_allclose(np.transpose(img, [0, 3, 1, 2]), ref[f"inter/Gs/G_synthesis/{r}x{r}/img"],
                                       atol=1e-4)


def test_fused_and_nonfused_modconv_agree_on_fixture(fixture_nets):
    Gs = fixture_nets["sg2-tiny16"]["G_ema"]
    ref = np.load(FIXTURES / "sg2-tiny16.npz")
    ws = Gs.mapping(ref["z"].astype(np.float32))
    a = Gs.synthesis(ws, noise_mode="const", fused_modconv=True).numpy()
    b = Gs.synthesis(ws, noise_mode="const", fused_modconv=False).numpy()
    np.testing.assert_allclose(a, b, atol=2e-5)
    np.testing.assert_allclose(np.transpose(b, [0, 3, 1, 2]), ref["Gs/img_const"], atol=1e-4)


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_float64_matches_nvidia_float64(name, float64):
    """Built in float64, every forward output (mapping, truncation, synthesis with stored and without
    noise, G and Gs, D logits and the minibatch-stddev channel) is NVIDIA's float64 value within
    2e-7 of its scale (measured <= 7.3e-8; float32 runs differ by ~1e-6). What is left is four
    known ~1e-8 differences of convention (tests/pytorch_conventions.py): with PyTorch's arithmetic
    and legacy.py's float32 rounding of the modulation biases applied, the outputs agree within
    1e-12 (measured <= 1.9e-15), float64 rounding."""
    from stylegan2_tf.official import load_network_pkl
    from stylegan2_tf.verify_pickle import compute_reference_outputs
    ref = np.load(FIXTURES / f"{name}.npz")
    nets = load_network_pkl(FIXTURES / f"{name}.pkl")
    assert nets["G_ema"].mapping.dense[0].weight.dtype == "float64"
    inputs = {k: ref[k] for k in ("z", "c", "c8", "rand_img", "rand_img8")}
    errors = output_errors(compute_reference_outputs(nets, inputs), ref)
    assert len(errors) == 11 and max(errors.values()) < 2e-7, errors
    for key in ("G", "G_ema"):
        round_modulation_biases_like_legacy(nets[key])
    with pytorch_float64_arithmetic():
        errors = output_errors(compute_reference_outputs(nets, inputs), ref)
    assert len(errors) == 11 and max(errors.values()) < 1e-12, errors


# Arguments our writer names where the file left NVIDIA's defaults implicit, with those defaults (TF1
# networks; stylegan2-ada-pytorch's legacy.py reads the same names with the same defaults, except
# mbstd_group_size, which legacy.py takes as "the whole batch" when absent while TF1 uses 4).
G_DEFAULTS = {"architecture": "skip", "mapping_lrmul": 0.01, "w_avg_beta": 0.995}
D_DEFAULTS = {"architecture": "resnet", "mbstd_group_size": 4, "mbstd_num_features": 1, "mapping_layers": 0,
              "mapping_lrmul": 0.1}


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_written_snapshot_is_nvidias_pickle_field_by_field(name, fixture_nets, tmp_path):
    """Configs E/F (NVlabs/stylegan2) and StyleGAN2-ADA (conditional): our snapshot writer reproduces
    the official pickle's networks -- names, build functions, static kwargs, components, every
    variable in NVIDIA's order, bit for bit -- and the file reloads to the same outputs."""
    from stylegan2_tf.official import load_network_pkl, read_network_pickle
    from stylegan2_tf.official.writer import save_network_pkl
    nets = fixture_nets[name]
    path = tmp_path / "snapshot.pkl"
    save_network_pkl(path, nets["G"], nets["D"], nets["G_ema"])
    theirs, ours = read_network_pickle(FIXTURES / f"{name}.pkl"), read_network_pickle(path)
    compared = []

    def same(a, b, where):
        assert (b.name, b.build_func_name) == (a.name, a.build_func_name), where
        assert list(b.variables) == list(a.variables), where
        for key, value in a.variables.items():
            np.testing.assert_array_equal(np.asarray(b.variables[key]), np.asarray(value), err_msg=f"{where}/{key}")
            assert np.asarray(b.variables[key]).dtype == np.asarray(value).dtype, f"{where}/{key}"
            compared.append(key)
        # Ours may spell out defaults the file left implicit; only with NVIDIA's default values.
        assert {k: v for k, v in b.static_kwargs.items() if k in a.static_kwargs} == a.static_kwargs, where
        extra = {k: v for k, v in b.static_kwargs.items() if k not in a.static_kwargs}
        defaults = dict(D_DEFAULTS, mapping_fmaps=a.variables["4x4/Conv/weight"].shape[-1]) if where == "D" \
            else G_DEFAULTS  # D's label mapping is as wide as its 4x4 features by default
        assert all(defaults[k] == v for k, v in extra.items()), (where, extra)
        assert sorted(b.components) == sorted(a.components), where
        for key in a.components:
            same(a.components[key], b.components[key], f"{where}/{key}")

    for a, b, where in zip(theirs, ours, ("G", "D", "Gs")):
        same(a, b, where)
    assert len(compared) > 60
    again = load_network_pkl(path)
    ref = np.load(FIXTURES / f"{name}.npz")
    c = ref["c"] if again["G_ema"].config.c_dim else None
    np.testing.assert_array_equal(again["G_ema"](ref["z"].astype(np.float32), c=c, noise_mode="const").numpy(),
                                  nets["G_ema"](ref["z"].astype(np.float32), c=c, noise_mode="const").numpy())


def test_snapshot_write_is_atomic_under_a_fault(fixture_nets, tmp_path, monkeypatch):
    """A write that fails half-way (disk full) leaves the previous snapshot under the name untouched
    and no temporary file behind; the error reaches the caller."""
    import os

    from stylegan2_tf.official import load_network_pkl
    from stylegan2_tf.official import writer
    nets = fixture_nets["sg2-tiny16"]
    path = tmp_path / "network-snapshot-000001.pkl"
    writer.save_network_pkl(path, nets["G"], nets["D"], nets["G_ema"])
    before = path.read_bytes()
    real_fdopen = os.fdopen

    class HalfWritten:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(data[:len(data) // 2])
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer.os, "fdopen", lambda fd, mode: HalfWritten(real_fdopen(fd, mode)))
    with pytest.raises(OSError, match="No space left"):
        writer.save_network_pkl(path, nets["G_ema"], nets["D"], nets["G"])  # other contents
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == [path.name]
    monkeypatch.undo()
    assert load_network_pkl(path)["G_ema"].config.img_resolution == 16
