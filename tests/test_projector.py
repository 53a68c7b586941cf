"""The projector (Appendix D) and run_projector.py, on a fixture network with tiny LPIPS files."""

import math
import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from conftest import ROOT, run_python  # noqa: E402
from feature_net_weights import write_tiny_feature_files  # noqa: E402
from stylegan2_tf.attribution import AttributionError, choose_threshold  # noqa: E402
from stylegan2_tf.projector import (ProjectionError, Projector, ProjectorConfig,  # noqa: E402
                                    learning_rate_at, load_projection, noise_regularization, save_projection,
                                    w_noise_scale_at)

pytestmark = pytest.mark.slow

NETWORK = ROOT / "tests" / "fixtures" / "stylegan2_pkl" / "sg2-tiny16.pkl"
DIGITS = ROOT / "pretrained" / "stylegan2-digits32.pkl"


def test_learning_rate_schedule_equals_the_formula():
    cfg = ProjectorConfig(num_steps=1000)
    # Ramp-up: linear over the first 5 %; flat; cosine ramp-down over the last 25 %.
    assert learning_rate_at(0, cfg) == 0.0
    assert learning_rate_at(25, cfg) == pytest.approx(0.1 * 0.5)
    assert learning_rate_at(50, cfg) == pytest.approx(0.1)
    assert learning_rate_at(500, cfg) == pytest.approx(0.1)
    assert learning_rate_at(750, cfg) == pytest.approx(0.1)
    assert learning_rate_at(875, cfg) == pytest.approx(0.1 * (0.5 - 0.5 * math.cos(0.5 * math.pi)))
    assert learning_rate_at(900, cfg) == pytest.approx(0.1 * (0.5 - 0.5 * math.cos(0.4 * math.pi)))
    assert learning_rate_at(999, cfg) == pytest.approx(0.1 * (0.5 - 0.5 * math.cos(0.004 * math.pi)))


def test_w_noise_schedule_equals_the_formula():
    cfg = ProjectorConfig(num_steps=1000)
    sigma = 2.0
    assert w_noise_scale_at(0, cfg, sigma) == pytest.approx(0.05 * sigma)
    assert w_noise_scale_at(375, cfg, sigma) == pytest.approx(0.05 * sigma * 0.25)   # t = 0.375: (1 - 0.5)^2
    assert w_noise_scale_at(750, cfg, sigma) == 0.0
    assert w_noise_scale_at(900, cfg, sigma) == 0.0


def _noise_reg_numpy(maps):
    total = 0.0
    for v in maps:
        v = np.asarray(v, np.float64)
        while True:
            total += np.mean(v * np.roll(v, 1, axis=1)) ** 2 + np.mean(v * np.roll(v, 1, axis=0)) ** 2
            if v.shape[0] <= 8:
                break
            n = v.shape[0] // 2
            v = v.reshape(n, 2, n, 2).mean(axis=(1, 3))
    return total


def test_noise_regularizer_small_for_white_noise_large_for_smooth_maps():
    rng = np.random.default_rng(0)
    white = [rng.standard_normal((64, 64)).astype(np.float32), rng.standard_normal((16, 16)).astype(np.float32)]
    yy, xx = np.meshgrid(np.linspace(0, 2 * np.pi, 64), np.linspace(0, 2 * np.pi, 64), indexing="ij")
    smooth = [(np.sin(yy) + np.cos(xx)).astype(np.float32)]
    w = float(noise_regularization(white))
    s = float(noise_regularization(smooth))
    assert w == pytest.approx(_noise_reg_numpy(white), rel=1e-4)
    assert s == pytest.approx(_noise_reg_numpy(smooth), rel=1e-4)
    assert w < 0.05 and s > 1.0 and s > 100 * w   # white: only sampling noise of the estimates


def test_choose_threshold_known_answers():
    # Separable: the midpoint between the largest generated and the smallest real distance.
    t = choose_threshold([0.01, 0.03, 0.02], [0.11, 0.09, 0.2])
    assert t == dict(threshold=pytest.approx(0.06), generated_accepted=1.0, real_rejected=1.0, balanced_accuracy=1.0)
    # Overlap: generated 0.1 0.2 0.3 0.5, real 0.45 0.6 0.7 0.8. Splits at 0.375 and 0.55 both reach
    # (3/4 + 1) / 2 = (1 + 3/4) / 2 = 0.875 (0.475 gives 3/4); the wider gap (0.15 vs 0.1) decides.
    t = choose_threshold([0.1, 0.2, 0.3, 0.5], [0.45, 0.6, 0.7, 0.8])
    assert t["balanced_accuracy"] == pytest.approx(0.875) and t["threshold"] == pytest.approx(0.375)
    assert (t["generated_accepted"], t["real_rejected"]) == (0.75, 1.0)
    # The other way round: 0.8 sits in a gap of 0.2, 0.35 in one of 0.1.
    t = choose_threshold([0.1, 0.2, 0.3, 0.7], [0.4, 0.9, 1.0, 1.1])
    assert t["threshold"] == pytest.approx(0.8) and t["balanced_accuracy"] == pytest.approx(0.875)
    # Unequal counts weigh each class equally: 1 generated vs 3 real.
    t = choose_threshold([0.5], [0.1, 0.9, 1.0])
    assert t["threshold"] == pytest.approx(0.7) and t["balanced_accuracy"] == pytest.approx(1 - 1 / 6)
    # Identical distributions cannot be told apart.
    assert choose_threshold([0.2, 0.2], [0.2])["balanced_accuracy"] == 0.5
    with pytest.raises(AttributionError, match="needs distances of generated and of real images"):
        choose_threshold([], [0.1])
    with pytest.raises(AttributionError, match="not finite"):
        choose_threshold([0.1, float("nan")], [0.2])


def test_projector_refuses_a_network_too_small_for_lpips():
    from stylegan2_tf.networks import Generator, GeneratorConfig
    G = Generator(GeneratorConfig(img_resolution=8, z_dim=16, w_dim=16, mapping_layers=2, fmap_base=64,
                                  fmap_max=16))
    with pytest.raises(ProjectionError, match="8x8 images are too small for LPIPS"):
        Projector(G, lpips=None)


@pytest.fixture(scope="module")
def lpips_files(tmp_path_factory):
    return write_tiny_feature_files(tmp_path_factory.mktemp("lpips"))["lpips"]


@pytest.fixture(scope="module")
def setup(lpips_files):
    """The bundled digits network (trained: its noise strengths are what training made them;
    the random-weight fixtures' large ones make the noise maps, not w, the hard part)."""
    from stylegan2_tf.loading import load_generator
    from stylegan2_tf.metrics import load_lpips
    G = load_generator(DIGITS)
    lpips = load_lpips(lpips_files)
    return G, Projector(G, lpips.network, ProjectorConfig(num_steps=100, w_avg_samples=2000))


def test_projection_recovers_generated_image_and_regenerates_exactly(setup, tmp_path):
    G, projector = setup
    z = np.random.RandomState(7).randn(1, G.config.z_dim).astype(np.float32)
    target = G(z, noise_mode="const").numpy()[0]
    generated = projector.project(target)
    rng = np.random.default_rng(1)
    random_target = np.clip(rng.normal(0, 0.6, target.shape), -1, 1).astype(np.float32)
    random = projector.project(random_target)
    l2_gen = float(np.mean((generated["image"] - target) ** 2))
    l2_rand = float(np.mean((random["image"] - random_target) ** 2))
    assert generated["distance"] * 20 < random["distance"] and l2_gen * 20 < l2_rand   # measured ~100x, ~250x
    # projected_w.npz brings back w and the noise maps: the same image, exactly.
    path = tmp_path / "projected_w.npz"
    save_projection(path, G, generated, projector.cfg)
    for var in projector.noise_vars:                          # scramble, then restore from the file
        var.assign(np.zeros(var.shape, np.float32))
    ws = load_projection(path, G)
    regenerated = G.synthesis(tf.constant(ws), noise_mode="const")[0].numpy()
    np.testing.assert_array_equal(regenerated, generated["image"])
    assert generated["ws"].shape == (G.num_ws, G.config.w_dim)
    assert np.all(generated["ws"] == generated["ws"][0])      # unextended W: one w on every layer


def test_projection_bad_inputs(setup, tmp_path):
    G, projector = setup
    with pytest.raises(ProjectionError, match=r"target has shape \(8, 8, 3\), the network makes \(32, 32, 1\)"):
        next(projector.steps(np.zeros((8, 8, 3), np.float32)))
    (tmp_path / "junk.npz").write_bytes(b"not an npz")
    with pytest.raises(ProjectionError, match=r"junk\.npz: not a projected_w\.npz"):
        load_projection(tmp_path / "junk.npz", G)
    other = dict(ws=np.zeros((6, 48), np.float32), noise=[np.zeros((4, 4), np.float32)], distance=0.0)

    class Other:
        config = type("C", (), dict(img_resolution=16, img_channels=3, w_dim=48))
        num_ws = 6
    save_projection(tmp_path / "other.npz", Other, other, ProjectorConfig())
    with pytest.raises(ProjectionError, match=r"other\.npz: projected for another network"):
        load_projection(tmp_path / "other.npz", G)


def _cli(*args, timeout=600):
    return run_python([ROOT / "run_projector.py", "--network", NETWORK, *args], timeout=timeout)


def test_run_projector_writes_outputs_and_attributes(lpips_files, tmp_path):
    from PIL import Image
    out = tmp_path / "out"
    r = _cli("project-generated-images", "--seeds", "1", "--lpips", lpips_files, "--num-steps", "20",
             "--num-snapshots", "2", "--outdir", out)
    assert r.returncode == 0, r.stderr[-3000:]
    files = sorted(os.listdir(out / "seed0001"))
    assert files == ["proj.gif", "proj.png", "projected_w.npz", "step0010.png", "step0020.png", "target.png"]
    assert "Projection summary: 20 steps, paper's method" in r.stdout and "ETA" in r.stdout
    # run_generator.py turns projected_w.npz back into the projected image.
    r = run_python([ROOT / "run_generator.py", "generate-images", "--network", NETWORK, "--projected-w",
                    out / "seed0001" / "projected_w.npz", "--outdir", tmp_path / "regen"])
    assert r.returncode == 0, r.stderr[-2000:]
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "regen" / "projected.png")),
                                  np.asarray(Image.open(out / "seed0001" / "proj.png")))
    # attribute: any image files; a verdict per image and the histogram.
    images = tmp_path / "images"
    images.mkdir()
    Image.open(out / "seed0001" / "target.png").save(images / "generated.png")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(images / "noise.jpg")
    r = _cli("attribute", "--images", images, "--threshold", "0.01", "--lpips", lpips_files, "--num-steps", "20",
             "--num-snapshots", "1", "--outdir", tmp_path / "attr", "--w-plus")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "W+ (one w per layer; NOT the paper's method)" in r.stdout
    lines = (tmp_path / "attr" / "attribution.txt").read_text().splitlines()
    assert len(lines) == 2 and lines[0].startswith("generated") and lines[1].startswith("noise")
    assert lines[1].endswith("not made by this network")
    assert Image.open(tmp_path / "attr" / "distances.png").size == (640, 360)


def test_run_projector_real_images_calibrate_and_attribute(lpips_files, tmp_path):
    import ast
    import json
    from PIL import Image
    from feature_net_weights import seeded_images
    from stylegan2_tf.data import create_from_images
    src = tmp_path / "src"
    src.mkdir()
    reals = seeded_images(3, 3, 16)
    for i, img in enumerate(reals):
        Image.fromarray(img).save(src / f"{i}.png")
    create_from_images(str(tmp_path / "data" / "toy"), str(src), shuffle=False)
    common = ["--lpips", lpips_files, "--num-steps", "10", "--num-snapshots", "1"]
    data = ["--data-dir", tmp_path / "data", "--dataset", "toy"]
    r = _cli("project-real-images", *data, "--num-images", "2", "--outdir", tmp_path / "real", *common)
    assert r.returncode == 0, r.stderr[-3000:]
    assert sorted(os.listdir(tmp_path / "real")) == ["image0000", "image0001"]
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "real" / "image0001" / "target.png")), reals[1])
    real_distances = []
    for name in ("image0000", "image0001"):
        with np.load(tmp_path / "real" / name / "projected_w.npz") as f:
            real_distances.append(ast.literal_eval(str(f["meta"]))["distance"])
    # calibrate: the network's own images and the real ones, and the threshold between them.
    r = _cli("calibrate", "--seeds", "0-1", *data, "--num-images", "2", "--outdir", tmp_path / "cal", *common)
    assert r.returncode == 0, r.stderr[-3000:]
    cal = json.loads((tmp_path / "cal" / "calibration.json").read_text())
    assert sorted(cal["generated"]) == ["seed0000", "seed0001"] and sorted(cal["real"]) == ["image0000", "image0001"]
    np.testing.assert_allclose([cal["real"]["image0000"], cal["real"]["image0001"]], real_distances, rtol=1e-4)
    expected = choose_threshold(list(cal["generated"].values()), list(cal["real"].values()))
    assert cal["threshold"] == expected["threshold"] and cal["measured_with"]["projection"]["num_steps"] == 10
    assert os.path.isfile(tmp_path / "cal" / "generated" / "seed0001" / "projected_w.npz")
    assert Image.open(tmp_path / "cal" / "distances.png").size == (640, 360)
    # attribute takes the calibrated threshold ...
    images = tmp_path / "images"
    images.mkdir()
    Image.open(tmp_path / "cal" / "generated" / "seed0000" / "target.png").save(images / "a.png")
    Image.fromarray(reals[2]).save(images / "b.png")
    r = _cli("attribute", "--images", images, "--calibration", tmp_path / "cal" / "calibration.json",
             "--outdir", tmp_path / "attr", *common)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"verdict (threshold {cal['threshold']:g})" in r.stdout
    for line in (tmp_path / "attr" / "attribution.txt").read_text().splitlines():
        name, dist, verdict = line.split(None, 2)
        assert verdict == ("made by this network" if float(dist) <= cal["threshold"] else "not made by this network")
    # ... and refuses one measured otherwise, before projecting anything.
    r = _cli("attribute", "--images", images, "--calibration", tmp_path / "cal" / "calibration.json",
             "--outdir", tmp_path / "attr2", *common[:-4], "--num-steps", "11", "--num-snapshots", "1")
    assert r.returncode != 0 and "calibrated with other projection settings (num_steps differ)" in r.stderr
    r = run_python([ROOT / "run_projector.py", "attribute", "--network", DIGITS, "--images", images,
                    "--calibration", tmp_path / "cal" / "calibration.json", "--outdir", tmp_path / "attr3", *common])
    assert r.returncode != 0 and "calibration.json: calibrated for another network file" in r.stderr
    assert not os.path.exists(tmp_path / "attr2") and not os.path.exists(tmp_path / "attr3")


@pytest.mark.parametrize("args,message", [
    (["project", "--target", "{tmp}/missing.png"], "missing.png: no such file"),
    (["project", "--target", "{tmp}/text.png"], "text.png: not a readable image"),
    (["project", "--target", "{tmp}/tiny.png"], "tiny.png: 4x4 is far smaller than the network's 16x16"),
    (["project", "--target", "{tmp}/tiny.png", "--lpips", "{tmp}/nope.pth"], "nope.pth: no such file"),
    (["attribute", "--images", "{tmp}"], "attribute needs --calibration FILE (from run_projector.py calibrate)"),
    (["attribute", "--images", "{tmp}", "--calibration", "{tmp}/text.png"], "text.png: not a calibration.json"),
    (["calibrate", "--dataset", "x"], "calibrate needs --seeds (the network's own images)"),
])
def test_run_projector_bad_input_is_one_line(lpips_files, tmp_path, args, message):
    from PIL import Image
    (tmp_path / "text.png").write_text("hello")
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "tiny.png")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if "--lpips" not in args:
        args += ["--lpips", lpips_files]
    r = _cli(*args, "--num-steps", "2", "--outdir", tmp_path / "out")
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last, r.stderr[-2000:]
