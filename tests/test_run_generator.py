"""run_generator.py end to end, checked against NVIDIA's reference images of the fixtures."""

import numpy as np
import pytest
from PIL import Image

from conftest import FIXTURES, ROOT, run_python

SG2 = FIXTURES / "sg2-tiny16.pkl"
ADA = FIXTURES / "ada-cond-tiny16.pkl"


def _gen(*args):
    return run_python([ROOT / "run_generator.py", *args])


def _close_uint8(a, b):
    diff = np.abs(a.astype(int) - b.astype(int))
    return diff.max() <= 1 and (diff > 0).mean() <= 0.01


def test_generate_images_match_reference_uint8(tmp_path):
    # Fixture z are RandomState(seed).randn for seeds 0-3, psi 1, stored noise.
    r = _gen("generate-images", "--network", SG2, "--seeds", "0-3", "--truncation-psi", "1",
             "--noise-mode", "const", "--outdir", tmp_path, "--batch-size", "3")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Generating: 4/4" in r.stdout
    ref = np.load(FIXTURES / "sg2-tiny16.npz")["Gs/img_uint8"]
    for seed in range(4):
        img = np.asarray(Image.open(tmp_path / f"seed{seed:04d}.png"))
        assert img.shape == (16, 16, 3)
        assert _close_uint8(img, ref[seed]), seed


def test_generate_conditional_class(tmp_path):
    # Fixture labels are class seed % 3: seed 1 -> class 1.
    r = _gen("generate-images", "--network", ADA, "--seeds", "1", "--class", "1", "--truncation-psi", "1",
             "--outdir", tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    ref = np.load(FIXTURES / "ada-cond-tiny16.npz")["Gs/img_uint8"][1]
    assert _close_uint8(np.asarray(Image.open(tmp_path / "seed0001.png")), ref)


def test_style_mixing_grid_and_interpolation(tmp_path, fixture_nets):
    r = _gen("style-mixing-example", "--network", SG2, "--row-seeds", "1,2", "--col-seeds", "3,4,5",
             "--col-styles", "0-2", "--truncation-psi", "0.7", "--outdir", tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    grid = np.asarray(Image.open(tmp_path / "grid.png"))
    assert grid.shape == (3 * 16, 4 * 16, 3)
    assert not grid[:16, :16].any()  # top-left cell is blank
    # Cell (row seed 2, col seed 4): w of seed 2 with layers 0-2 from seed 4, rebuilt here.
    from stylegan2_tf.generate import seed_to_z, to_uint8
    G = fixture_nets["sg2-tiny16"]["G_ema"]
    w2 = G.mapping(seed_to_z(2, 32), truncation_psi=0.7).numpy()
    w4 = G.mapping(seed_to_z(4, 32), truncation_psi=0.7).numpy()
    w = w2.copy()
    w[:, 0:3] = w4[:, 0:3]
    expect = to_uint8(G.synthesis(w, noise_mode="const")).numpy()[0]
    assert _close_uint8(grid[2 * 16:3 * 16, 2 * 16:3 * 16], expect)
    col = np.asarray(Image.open(tmp_path / "seed0004.png"))
    np.testing.assert_array_equal(grid[:16, 2 * 16:3 * 16], col)

    r = _gen("interpolate", "--network", SG2, "--seeds", "0,1,2", "--frames", "3", "--outdir", tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    gif = Image.open(tmp_path / "interpolate-w-0-1-2.gif")
    assert gif.n_frames == 9 and gif.size == (16, 16)


@pytest.mark.parametrize("args, message", [
    (["generate-images", "--seeds", "0-x"], "--seeds: cannot parse '0-x'"),
    (["generate-images", "--seeds", "5-2"], "descending"),
    (["generate-images", "--seeds", "1", "--truncation-psi", "7"], "out of range"),
    (["generate-images", "--seeds", "1", "--class", "0"], "network is unconditional"),
    (["generate-images", "--seeds", "1", "--network", str(ADA)], "pass --class IDX"),
    (["generate-images", "--seeds", "1", "--network", str(ADA), "--class", "3"], r"out of range \[0, 2\]"),
    (["generate-images", "--seeds", "1", "--network", "/no/such/net.pkl"], "no such file"),
    (["generate-images", "--seeds", "1", "--network", str(ROOT / "setup.cfg")], "not a readable pickle"),
    (["make-coffee", "--seeds", "1"], "expected one command"),
    (["style-mixing-example", "--row-seeds", "1", "--col-seeds", "2", "--col-styles", "0-9"], "w layers 0-5"),
])
def test_bad_input_exits_with_one_line(args, message):
    if "--network" not in args:
        args = args + ["--network", str(SG2)]
    r = _gen(*args)
    assert r.returncode != 0
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, r.stderr[-2000:]
    import re
    assert re.search(message, errors[0]), errors[0]


def _uint8_nhwc(img_nchw):
    return np.clip(np.transpose(img_nchw, [0, 2, 3, 1]) * 127.5 + 128, 0, 255).astype(np.uint8)


def test_noise_mode_none_and_explicit_psi_match_nvidia(tmp_path):
    """--noise-mode none is NVIDIA's img_none; --truncation-psi 0.7 is their img_const_psi0.7."""
    ref = np.load(FIXTURES / "sg2-tiny16.npz")
    for args, key in ((["--noise-mode", "none", "--truncation-psi", "1"], "Gs/img_none"),
                      (["--truncation-psi", "0.7"], "Gs/img_const_psi0.7")):
        out = tmp_path / key.replace("/", "_")
        r = _gen("generate-images", "--network", SG2, "--seeds", "0-3", "--outdir", out, *args)
        assert r.returncode == 0, r.stderr[-2000:]
        want = _uint8_nhwc(ref[key])
        for seed in range(4):
            assert _close_uint8(np.asarray(Image.open(out / f"seed{seed:04d}.png")), want[seed]), (key, seed)


def test_default_psi_and_cutoff(tmp_path, fixture_nets):
    """No --truncation-psi: 0.5 on every layer (configs B-F). --truncation-cutoff 2 truncates w layers 0-1
    only: built here from NVIDIA's stored w and w_psi0.7."""
    ref = np.load(FIXTURES / "sg2-tiny16.npz")
    G = fixture_nets["sg2-tiny16"]["G_ema"]
    assert G.config.default_truncation == (0.5, None)
    w, w7 = ref["Gs/w"], ref["Gs/w_psi0.7"]
    w_avg = (w7 - 0.7 * w) / 0.3  # w_psi = w_avg + psi (w - w_avg)
    cases = {"default": ([], w_avg + 0.5 * (w - w_avg)),
             "cutoff": (["--truncation-psi", "0.7", "--truncation-cutoff", "2"],
                        np.concatenate([w7[:, :2], w[:, 2:]], axis=1))}
    from stylegan2_tf.generate import to_uint8
    for name, (args, ws) in cases.items():
        r = _gen("generate-images", "--network", SG2, "--seeds", "0-3", "--outdir", tmp_path / name, *args)
        assert r.returncode == 0, r.stderr[-2000:]
        want = to_uint8(G.synthesis(ws.astype(np.float32), noise_mode="const")).numpy()
        for seed in range(4):
            got = np.asarray(Image.open(tmp_path / name / f"seed{seed:04d}.png"))
            assert _close_uint8(got, want[seed]), (name, seed)
    a = np.asarray(Image.open(tmp_path / "default" / "seed0000.png")).astype(int)
    b = np.asarray(Image.open(tmp_path / "cutoff" / "seed0000.png")).astype(int)
    assert np.abs(a - b).max() > 10


def test_generation_never_compiles_the_kernels(tmp_path):
    """A first generate-images on a fresh machine: no kernel build (they give generation no speed-up,
    benchmarks/README.md), no warning about it, the same images."""
    cache = tmp_path / "ops-cache"
    cache.mkdir()
    r = run_python([ROOT / "run_generator.py", "generate-images", "--network", SG2, "--seeds", "0-3",
                    "--truncation-psi", "1", "--outdir", tmp_path / "out"], env={"STYLEGAN2_TF_OPS_CACHE": cache})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "compiling the kernels" not in r.stderr and "custom ops" not in r.stderr, r.stderr[-2000:]
    assert list(cache.iterdir()) == []
    ref = np.load(FIXTURES / "sg2-tiny16.npz")["Gs/img_uint8"]
    for seed in range(4):
        assert _close_uint8(np.asarray(Image.open(tmp_path / "out" / f"seed{seed:04d}.png")), ref[seed])


@pytest.mark.parametrize("setting", [None, "0"])
def test_onednn_kernels_on_unless_the_environment_says_off(tmp_path, monkeypatch, setting):
    # TensorFlow turns oneDNN on by default only on AVX-512-class CPUs; the programs turn it on
    # everywhere before TensorFlow loads (faster float32 convolutions on AVX2), and an explicit
    # TF_ENABLE_ONEDNN_OPTS=0 still wins. TensorFlow itself says "oneDNN custom operations are on"
    # at import when they are, whatever the log level.
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    env = {} if setting is None else {"TF_ENABLE_ONEDNN_OPTS": setting}
    r = run_python([ROOT / "run_generator.py", "generate-images", "--network", SG2, "--seeds", "0",
                    "--outdir", tmp_path], env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert ("oneDNN custom operations are on" in r.stderr) == (setting is None), r.stderr[-2000:]
