"""Latent directions (SeFa, GANSpace) against known answers, edits, walks and videos."""

import numpy as np
import pytest
from PIL import Image

from conftest import FIXTURES, ROOT, run_python

pytestmark = pytest.mark.slow

SG2 = FIXTURES / "sg2-tiny16.pkl"


def tiny_generator():
    from stylegan2_tf.networks import Generator, GeneratorConfig
    G = Generator(GeneratorConfig(img_resolution=16, z_dim=8, w_dim=8, mapping_layers=2, fmap_base=64, fmap_max=16))
    G.build_weights()
    return G


def orthonormal(d, seed):
    q, _ = np.linalg.qr(np.random.RandomState(seed).randn(d, d))
    return q.T  # rows


def test_sefa_finds_the_directions_built_into_the_style_weights():
    """Every style channel's weight is a multiple of one of three orthonormal vectors u0, u1, u2, used
    by 50 %, 30 % and 20 % of the channels: AᵀA (rows normalised) = Σ n_k u_k u_kᵀ, so SeFa must
    return u0, u1, u2 with eigenvalues n0 > n1 > n2 and nothing else."""
    from stylegan2_tf.editing import sefa, style_affines
    G = tiny_generator()
    u = orthonormal(8, 0)
    rng = np.random.RandomState(1)
    affines = style_affines(G)
    assert sorted(affines) == list(range(G.num_ws))
    counts = np.zeros(3)
    for var in affines.values():
        channels = var.shape[1]
        which = rng.choice(3, size=channels, p=[0.5, 0.3, 0.2])
        scale = rng.uniform(0.2, 3.0, size=channels) * rng.choice([-1, 1], size=channels)
        var.assign((u[which] * scale[:, None]).T.astype(np.float32))
        counts += np.bincount(which, minlength=3)
    assert len(set(counts)) == 3  # distinct, so the eigenvectors are determined
    found = sefa(G, 4)
    order = np.argsort(counts)[::-1]
    np.testing.assert_allclose(found.values[:3], counts[order], rtol=1e-5)
    assert abs(found.values[3]) < 1e-4
    for k in range(3):
        assert abs(np.dot(found.vectors[k], u[order[k]])) > 1 - 1e-5
    np.testing.assert_allclose(np.linalg.norm(found.vectors, axis=1), 1, rtol=1e-6)
    assert found.layers == (0, G.num_ws - 1) and found.method == "sefa"


def test_sefa_layer_range_uses_those_layers_only():
    from stylegan2_tf.editing import sefa, style_affines
    G = tiny_generator()
    u = orthonormal(8, 2)
    affines = style_affines(G)
    for k, var in affines.items():  # layer 0 only uses u[0], the others only u[1]
        var.assign(np.tile(u[0 if k == 0 else 1][:, None], [1, var.shape[1]]).astype(np.float32))
    assert abs(np.dot(sefa(G, 1, (0, 0)).vectors[0], u[0])) > 1 - 1e-5
    assert abs(np.dot(sefa(G, 1, (1, G.num_ws - 1)).vectors[0], u[1])) > 1 - 1e-5


def test_pca_recovers_a_known_distribution():
    """Samples mean + Σ σ_k ε_k u_k: the principal axes are u_k, the variances σ_k²."""
    from stylegan2_tf.editing import pca_directions
    u = orthonormal(6, 3)
    sigma = np.array([5.0, 3.0, 2.0, 1.0, 0.5, 0.1])
    eps = np.random.RandomState(4).randn(200_000, 6)
    mean = np.arange(6.0)
    variances, vectors, got_mean = pca_directions(mean + (eps * sigma) @ u, 4)
    for k in range(4):
        assert abs(np.dot(vectors[k], u[k])) > 0.999
    np.testing.assert_allclose(variances, sigma[:4] ** 2, rtol=0.02)
    np.testing.assert_allclose(got_mean, mean, atol=0.03)


def test_ganspace_is_pca_of_mapped_z():
    """Directions equal the eigenvectors of the covariance of w = mapping(z), computed here directly."""
    from stylegan2_tf.editing import ganspace
    G = tiny_generator()
    found = ganspace(G, 3, samples=5000, seed=7, batch=1000)
    z = np.random.RandomState(7).randn(5000, 8).astype(np.float32)
    w = np.concatenate([G.mapping(z[i:i + 1000]).numpy()[:, 0] for i in range(0, 5000, 1000)]).astype(np.float64)
    values, vectors = np.linalg.eigh(np.cov(w, rowvar=False))
    for k in range(3):
        assert abs(np.dot(found.vectors[k], vectors[:, -1 - k])) > 1 - 1e-4
    np.testing.assert_allclose(found.values, values[::-1][:3], rtol=1e-4)
    np.testing.assert_allclose(found.scales, np.sqrt(found.values), rtol=1e-6)


def test_apply_direction_moves_only_the_layers():
    from stylegan2_tf.editing import Directions, apply_direction
    v = orthonormal(8, 5)[:2].astype(np.float32)
    d = Directions(v, np.array([2.0, 1.0]), np.array([1.0, 0.5], np.float32), (1, 2), "ganspace", {}, "x")
    ws = np.random.RandomState(6).randn(2, 4, 8).astype(np.float32)
    out = apply_direction(ws, d, 1, 3.0)
    np.testing.assert_array_equal(out[:, [0, 3]], ws[:, [0, 3]])
    np.testing.assert_allclose(out[:, 1:3] - ws[:, 1:3], np.broadcast_to(1.5 * v[1], (2, 2, 8)), atol=1e-6)
    out = apply_direction(ws, d, 0, -1.0, layers=(0, 0))
    np.testing.assert_allclose(out[:, 0] - ws[:, 0], np.broadcast_to(-v[0], (2, 8)), atol=1e-6)
    np.testing.assert_array_equal(out[:, 1:], ws[:, 1:])


def test_slerp_walk():
    from stylegan2_tf.editing.walks import linear_walk, slerp_walk
    a, b = np.array([3.0, 0, 0]), np.array([0, 5.0, 0])
    walk = slerp_walk(np.stack([a, b]), 4)
    assert walk.shape == (8, 3)
    np.testing.assert_allclose(walk[0], a, atol=1e-6)
    np.testing.assert_allclose(walk[2], [4 * np.cos(np.pi / 4), 4 * np.sin(np.pi / 4), 0], atol=1e-5)  # 45°, |z| 4
    np.testing.assert_allclose(walk[4], b, atol=1e-6)
    np.testing.assert_allclose(walk[6], [4 * np.cos(np.pi / 4), 4 * np.sin(np.pi / 4), 0], atol=1e-5)  # back
    np.testing.assert_allclose(linear_walk(np.stack([a, b]), 2), [a, (a + b) / 2, b, (a + b) / 2], atol=1e-6)


# --------------------------------------------------------------------------- command line

def _gen(*args):
    return run_python([ROOT / "run_generator.py", *map(str, args)])


def _synth(G, ws):
    from stylegan2_tf.generate import to_uint8
    return to_uint8(G.synthesis(np.asarray(ws, np.float32), noise_mode="const")).numpy()


def test_directions_and_edit_grid(tmp_path, fixture_nets):
    from stylegan2_tf.editing import load_directions, network_digest
    from stylegan2_tf.generate import seed_to_z
    G = fixture_nets["sg2-tiny16"]["G_ema"]
    r = _gen("directions", "--network", SG2, "--method", "sefa", "--num", "4", "--layers", "1-4", "--outdir",
             tmp_path / "d")
    assert r.returncode == 0, r.stderr[-2000:]
    d = load_directions(tmp_path / "d" / "directions.npz", G)
    assert d.vectors.shape == (4, G.config.w_dim) and d.layers == (1, 4) and d.network == network_digest(G)
    r = _gen("edit", "--network", SG2, "--seeds", "2,5", "--directions", tmp_path / "d" / "directions.npz",
             "--index", "1", "--strengths", "-4,0,4", "--truncation-psi", "0.8", "--outdir", tmp_path / "e")
    assert r.returncode == 0, r.stderr[-2000:]
    grid = np.asarray(Image.open(tmp_path / "e" / "grid.png"))
    assert grid.shape == (2 * 16, 3 * 16, 3)
    w5 = G.mapping(seed_to_z(5, 32), truncation_psi=0.8).numpy()
    w5[:, 1:5] += -4 * d.vectors[1]
    want = _synth(G, w5)[0]
    cell = grid[16:32, 0:16]
    assert np.abs(cell.astype(int) - want.astype(int)).max() <= 1
    assert np.abs(grid[16:32, 16:32].astype(int) - cell.astype(int)).max() > 10  # the edit shows


def test_interpolate_mp4_is_linear_in_w(tmp_path, fixture_nets):
    """MP4 frames: the walk's images (16x16 shown at 256x256) within H.264 tolerance; frame 2 of 4 is
    the middle of the line from w(seed 0) to w(seed 1)."""
    from stylegan2_tf.generate import seed_to_z
    from stylegan2_tf.video import read_mp4
    G = fixture_nets["sg2-tiny16"]["G_ema"]
    r = _gen("interpolate", "--network", SG2, "--seeds", "0,1", "--frames", "4", "--fps", "30", "--video", "mp4",
             "--truncation-psi", "1", "--outdir", tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    frames, fps = read_mp4(str(tmp_path / "interpolate-w-0-1.mp4"))
    assert frames.shape == (8, 256, 256, 3) and fps == 30
    w0, w1 = (G.mapping(seed_to_z(s, 32)).numpy() for s in (0, 1))
    for index, w in [(0, w0), (2, (w0 + w1) / 2), (4, w1), (6, (w0 + w1) / 2)]:
        shown = frames[index].reshape(16, 16, 16, 16, 3).mean(axis=(1, 3))  # each pixel is a 16x16 block
        diff = np.abs(shown - _synth(G, w)[0])
        assert diff.mean() < 2 and diff.max() < 12, (index, diff.mean(), diff.max())
    other = frames[1].reshape(16, 16, 16, 16, 3).mean(axis=(1, 3))
    assert np.abs(other - _synth(G, (w0 + w1) / 2)[0]).mean() > 2  # the comparison can tell frames apart


def test_edit_video_and_z_walk(tmp_path):
    from stylegan2_tf.video import read_mp4
    r = _gen("directions", "--network", SG2, "--method", "ganspace", "--num", "2", "--samples", "2000",
             "--outdir", tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    r = _gen("edit", "--network", SG2, "--seeds", "0-2", "--directions", tmp_path / "directions.npz", "--strengths",
             "-2,2", "--frames", "5", "--video", "mp4", "--outdir", tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    frames, _ = read_mp4(str(tmp_path / "edit-ganspace-0.mp4"))
    assert frames.shape == (8, 256, 3 * 256, 3)  # 5 there, 3 back; three seeds side by side
    r = _gen("interpolate", "--network", SG2, "--seeds", "0,1,2", "--frames", "2", "--space", "z", "--outdir",
             tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert Image.open(tmp_path / "interpolate-z-0-1-2.gif").n_frames == 6


@pytest.mark.parametrize("args, message", [
    (["directions", "--method", "ica"], "--method 'ica': expected sefa or ganspace"),
    (["directions", "--layers", "0-9"], r"--layers 0-9: this network has w layers 0-5"),
    (["directions", "--num", "99"], "--num 99: between 1 and 48 directions exist"),
    (["edit", "--seeds", "0"], "edit needs --directions"),
    (["edit", "--seeds", "0", "--directions", "/no/such.npz"], "/no/such.npz: no such file"),
    (["edit", "--seeds", "0", "--directions", str(ROOT / "setup.cfg")], "not a directions.npz"),
    (["interpolate", "--seeds", "0,1", "--video", "avi"], "--video 'avi': expected one of gif, mp4"),
    (["interpolate", "--seeds", "0,1", "--space", "x"], "--space 'x': expected w or z"),
])
def test_bad_input(tmp_path, args, message):
    import re
    r = _gen(*args, "--network", SG2, "--outdir", tmp_path)
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert r.returncode == 1 and len(errors) == 1, r.stderr[-2000:]
    assert re.search(message, errors[0]), errors[0]


def test_edit_refuses_bad_index_and_strengths(tmp_path, fixture_nets):
    from stylegan2_tf.editing import EditingError, sefa
    G = fixture_nets["sg2-tiny16"]["G_ema"]
    sefa(G, 2).save(tmp_path / "directions.npz")
    for extra, message in [(["--index", "5"], "--index 5: the file has directions 0-1"),
                           (["--strengths", "a,b"], "--strengths 'a,b': expected numbers like -3,0,3"),
                           (["--layers", "4-2"], "--layers 4-2: this network has w layers 0-5")]:
        r = _gen("edit", "--network", SG2, "--seeds", "0", "--directions", tmp_path / "directions.npz", *extra,
                 "--outdir", tmp_path / "o")
        assert r.returncode == 1 and r.stderr.strip().splitlines()[-1] == f"error: {message}", r.stderr[-1000:]
    assert issubclass(EditingError, ValueError)


def test_edit_a_projection(tmp_path, fixture_nets):
    """--projected-w: the row is the projection's w (with its noise maps) moved along the direction."""
    from stylegan2_tf.editing import load_directions
    from stylegan2_tf.generate import seed_to_z, to_uint8
    from stylegan2_tf.loading import load_generator
    from stylegan2_tf.projector import ProjectorConfig, noise_variables, save_projection
    G = load_generator(SG2)  # its own copy: the noise maps are replaced below
    rng = np.random.RandomState(9)
    noise = [rng.randn(*v.shape).astype(np.float32) for v in noise_variables(G)]
    ws = G.mapping(seed_to_z(6, 32), truncation_psi=0.5).numpy()[0]
    save_projection(tmp_path / "projected_w.npz", G, {"ws": ws, "noise": noise, "distance": 0.1}, ProjectorConfig())
    r = _gen("directions", "--network", SG2, "--num", "3", "--outdir", tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    r = _gen("edit", "--network", SG2, "--projected-w", tmp_path / "projected_w.npz", "--directions",
             tmp_path / "directions.npz", "--index", "2", "--strengths", "0,5", "--outdir", tmp_path / "e")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "rows projected" in r.stdout
    grid = np.asarray(Image.open(tmp_path / "e" / "grid.png"))
    d = load_directions(tmp_path / "directions.npz")
    for v, value in zip(noise_variables(G), noise):
        v.assign(value)
    moved = ws[np.newaxis].copy()
    moved[:, d.layers[0]:d.layers[1] + 1] += 5 * d.vectors[2]
    for col, w in enumerate([ws[np.newaxis], moved]):
        want = to_uint8(G.synthesis(w, noise_mode="const")).numpy()[0]
        assert np.abs(grid[:, col * 16:(col + 1) * 16].astype(int) - want.astype(int)).max() <= 1, col
