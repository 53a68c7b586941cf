"""Training configs A-D: the growing schedule, the reals at each lod, the Adam resets, the
regularization of each config, exact resume mid-fade, official snapshots, bad input."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from conftest import run_python
from stylegan2_tf.data.synthetic import create_shapes_dataset
from stylegan2_tf.official import load_network_pkl, read_network_pickle
from stylegan2_tf.ops import box_downsample_2d, nearest_upsample_2d
from stylegan2_tf.training import TrainingError, TrainingOptions
from stylegan2_tf.training import Trainer
from stylegan2_tf.ops import fade_reals
from stylegan2_tf.training.schedule import growth_stage, lod_at, resets_optimizer

pytestmark = pytest.mark.slow

TINY = dict(fmap_base=128, fmap_max=32, latent_dim=16, mapping_layers=2, batch=4, batch_gpu=4, tick_kimg=0.016,
            snapshot_ticks=1, resolution_dicts=False)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    create_shapes_dataset(str(root / "shapes16"), num_images=64, resolution=16)
    return str(root)


def _opts(data_dir, result_dir, **kw):
    return TrainingOptions(data_dir=data_dir, result_dir=str(result_dir), **{"dataset": "shapes16", **TINY, **kw})


def test_schedule_follows_the_official_formula():
    """1024x1024 from 8x8, 600 + 600 kimg: hand-computed points of NVIDIA's training_schedule."""
    opts = TrainingOptions(config="config-b")
    points = [  # kimg, lod, resolution, minibatch, per-GPU minibatch, learning rate
        (0, 7.0, 8, 256, 32, 0.001), (599, 7.0, 8, 256, 32, 0.001), (900, 6.5, 16, 128, 16, 0.001),
        (1200, 6.0, 16, 128, 16, 0.001), (1500, 6.0, 16, 128, 16, 0.001), (2100, 5.5, 32, 64, 8, 0.001),
        (5 * 1200 + 300, 2.0, 256, 32, 4, 0.002), (6 * 1200 + 900, 0.5, 1024, 32, 4, 0.003),
        (7 * 1200 + 900, 0.0, 1024, 32, 4, 0.003), (25000, 0.0, 1024, 32, 4, 0.003)]
    for kimg, lod, res, batch, batch_gpu, lr in points:
        p = growth_stage(opts, kimg * 1000, 1024)
        assert (p.lod, p.resolution, p.batch, p.batch_gpu, p.lr) == (lod, res, batch, batch_gpu, lr), kimg
    assert growth_stage(opts, 0, 1024).tick_kimg == 28 and growth_stage(opts, 25000 * 1000, 1024).tick_kimg == 4
    # 5400 kimg: 300 kimg into the 1024 fade (lod 1 -> 0) with the default 600 / 600.
    assert lod_at(5 * 1200 + 900, 256, 8, 600, 600) == 0.0
    assert lod_at(1200 + 750, 64, 8, 600, 600) == pytest.approx(1.75)
    # Without the dictionaries (an explicit --batch), batch and learning rate hold.
    fixed = TrainingOptions(config="config-a", batch=8, batch_gpu=4, lr=0.002, resolution_dicts=False)
    assert {(p.batch, p.batch_gpu, p.lr) for p in (growth_stage(fixed, k * 1000, 64) for k in (0, 900, 5000))} == {
        (8, 4, 0.002)}
    # Configs E/F: no lod, full resolution.
    f = growth_stage(TrainingOptions(config="config-f"), 1000, 256)
    assert (f.lod, f.resolution, f.batch, f.tick_kimg) == (None, 256, 32, 8)


def test_adam_resets_when_new_layers_appear_and_when_the_fade_ends():
    lods = [7.0, 7.0, 6.75, 6.5, 6.0, 6.0, 5.5]
    resets = [resets_optimizer(prev, lod) for prev, lod in zip([-1.0] + lods, lods)]
    assert resets == [True, False, True, False, True, False, True]
    assert not resets_optimizer(3.0, None)


def test_reals_are_faded_like_the_official_process_reals():
    """At lod k + t: the 2^-k image lerped towards its 2x2-averaged version by t, both nearest
    up-sampled back to full size (written out with numpy)."""
    x = np.random.RandomState(0).uniform(-1, 1, [2, 16, 16, 3]).astype(np.float32)

    def box(a, f):
        n = a.shape[1] // f
        return a.reshape(2, n, f, n, f, 3).mean(axis=(2, 4))

    def up(a, f):
        return a.repeat(f, axis=1).repeat(f, axis=2)

    for lod in (0.0, 0.25, 1.0, 1.5, 2.0):
        k = int(np.floor(lod))
        low = box(x, 2 ** k)
        want = up(low + (up(box(low, 2), 2) - low) * (lod - k), 2 ** k)
        got = fade_reals(tf.constant(x), tf.constant(lod, tf.float32), k).numpy()
        np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(fade_reals(tf.constant(x), tf.constant(0.0), 0).numpy(), x)
    coarse = nearest_upsample_2d(box_downsample_2d(x, 4), 4).numpy()
    np.testing.assert_allclose(fade_reals(tf.constant(x), tf.constant(2.0), 2).numpy(), coarse, atol=1e-6)


@pytest.mark.parametrize("config, phases, lazy, arch", [
    ("config-a", {"G_main", "D_main"}, False, ("stylegan1", "basic")),
    ("config-b", {"G_main", "D_main"}, False, ("revised", "stylegan")),
    ("config-c", {"G_main", "D_main", "D_r1"}, True, ("revised", "stylegan")),
    ("config-d", {"G_main", "G_pl", "D_main", "D_r1"}, True, ("revised", "stylegan")),
    ("config-e", {"G_main", "G_pl", "D_main", "D_r1"}, True, ("skip", "resnet")),
])
def test_each_config_has_its_networks_and_regularization(config, phases, lazy, arch, data_dir, tmp_path):
    t = Trainer(_opts(data_dir, tmp_path, config=config), echo=False)
    assert (t.g_cfg.architecture, t.d_cfg.architecture) == arch
    assert set(t.steps(t.state.stage)) == phases
    assert t.opts.gamma == (100.0 if config == "config-e" else 10.0)
    # Lazy regularization scales G's and D's Adam (lr * k/(k+1), beta2^(k/(k+1))), also for config C's G,
    # which has no regularizer of its own (as the official loop does).
    c = 4 / 5 if lazy else 1.0
    assert t.state.opt_G.learning_rate.numpy() == pytest.approx(0.002 * c)
    assert t.state.opt_G.beta_2 == pytest.approx(0.99 ** c)


def test_non_lazy_r1_is_part_of_every_d_step(data_dir, tmp_path):
    """Configs A/B: one D update per minibatch whose loss carries the R1 term."""
    t = Trainer(_opts(data_dir, tmp_path, config="config-b"), echo=False)
    data = t.dataset(0, 4)
    for i in range(2):
        stats = t.train_minibatch((next(data),))
        assert stats["Loss/D/r1_penalty"].numpy() > 0
        t.state.minibatch.assign_add(1)
    assert int(t.state.opt_D.iterations.numpy()) == 2 and int(t.state.opt_G.iterations.numpy()) == 2


def test_style_mixing_uses_the_layers_of_the_current_lod():
    from stylegan2_tf.networks import Generator, GeneratorConfig
    from stylegan2_tf.training.phases import StatelessRNG
    from stylegan2_tf.training.losses import mix_styles
    G = Generator(GeneratorConfig(z_dim=8, w_dim=8, mapping_fmaps=8, mapping_layers=1, img_resolution=16,
                                  fmap_base=32, fmap_max=8, architecture="revised"))
    ws = G.mapping(np.random.RandomState(0).randn(2, 8).astype(np.float32))
    for lod, active in ((0.0, 6), (1.5, 4), (2.0, 2)):
        G.set_lod(lod)
        firsts = set()
        for seed in range(40):
            mixed = mix_styles(G, ws, None, StatelessRNG(tf.constant([seed, 1], tf.int64)), prob=1.0).numpy()
            first = int(np.argmax(np.any(mixed != ws.numpy(), axis=(0, 2))))
            firsts.add(first)
        assert firsts == set(range(1, active)), lod


@pytest.fixture(scope="module")
def growing_run(data_dir, tmp_path_factory):
    """Config B growing 8x8 -> 16x16 with ticks of 16 images: lod 1 (16 images), a 64-image fade,
    then lod 0; one run straight on, and a second Trainer resumed mid-fade (after tick 3, trained up
    to lod 0.75, resuming at lod 0.5: no Adam reset between them)."""
    kw = dict(config="config-b", lod_kimg=0.016, lod_transition_kimg=0.064, total_kimg=0.096)
    results = tmp_path_factory.mktemp("growing")
    straight = Trainer(_opts(data_dir, results, **kw), echo=False)
    straight.train(stop_after_ticks=3)
    resumed = Trainer(_opts(data_dir, results, **kw), resume=straight.run_dir, echo=False)
    at = (int(resumed.state.cur_nimg.numpy()), float(resumed.state.prev_lod.numpy()),
          float(resumed.state.G.lod.numpy()))
    straight.train()
    resumed.train()
    return straight, resumed, at


def test_growing_run_resumes_exactly_mid_fade(growing_run):
    straight, resumed, at = growing_run
    assert at == (48, 0.5, 0.5)
    for a, b in zip(straight.state.G.variables + straight.state.D.variables + straight.state.G_ema.variables,
                    resumed.state.G.variables + resumed.state.D.variables + resumed.state.G_ema.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    for name in ("opt_G", "opt_D"):
        for a, b in zip(getattr(straight.state, name).variables, getattr(resumed.state, name).variables):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_growing_run_follows_the_schedule_and_writes_official_snapshots(growing_run):
    straight, _, _ = growing_run
    run_dir = straight.run_dir
    stats = [json.loads(line) for line in open(os.path.join(run_dir, "stats.jsonl"))]
    # The first tick ends at 16 images (lod 1, 8x8); the lod printed is that of the tick's last block.
    assert [(s["kimg"], s["lod"], s["resolution"]) for s in stats[:6]] == [
        (0.016, 1.0, 8), (0.032, 1.0, 8), (0.048, 0.75, 16), (0.064, 0.5, 16), (0.08, 0.25, 16), (0.096, 0.0, 16)]
    # The last reset: lod 0.25 -> 0 (the fade ends) at 80 images; 4 minibatches since.
    assert int(straight.state.opt_G.iterations.numpy()) == 4
    snap = os.path.join(run_dir, "network-snapshot-000000.048.pkl")
    G, D, Gs = read_network_pickle(snap)
    assert (G.build_func_name, G.components["synthesis"].build_func_name, D.build_func_name) == (
        "G_main", "G_synthesis_stylegan_revised", "D_stylegan")
    assert float(G.variables["lod"]) == float(D.variables["lod"]) == 0.75
    nets = load_network_pkl(snap)
    assert float(nets["G_ema"].lod.numpy()) == 0.75
    log = open(os.path.join(run_dir, "log.txt")).read()
    assert "growing from 8x8 (lod 1" in log and "lod 0.75" in log


def test_resuming_with_another_config_or_growth_is_refused(growing_run, data_dir):
    straight, _, _ = growing_run
    results = os.path.dirname(straight.run_dir)
    for change, text in ((dict(config="config-c"), "config='config-b' (now 'config-c')"),
                         (dict(config="config-b", lod_kimg=0.032), "lod_kimg=0.016 (now 0.032)")):
        kw = dict(config="config-b", lod_kimg=0.016, lod_transition_kimg=0.064, total_kimg=0.096)
        kw.update(change)
        with pytest.raises(TrainingError, match=r"the run was made with different settings: .*" + text.replace(
                "(", r"\(").replace(")", r"\)")) as e:
            Trainer(_opts(data_dir, results, **kw), resume=straight.run_dir, echo=False)
        assert "\n" not in str(e.value)


@pytest.mark.parametrize("kw, message", [
    (dict(config="config-a", lod_kimg=-1), "--lod-kimg -1 and --lod-transition-kimg 600 must be >= 0"),
    (dict(config="config-b", lod_kimg=0, lod_transition_kimg=0), "must be >= 0 with a positive sum"),
    (dict(config="config-c", fp16_res=2), "trains in float32"),
    (dict(config="config-d", resolution_dicts=True, num_gpus=3),
     "the official minibatch 256 at 8 is not divisible by 32 x 3 replicas"),
])
def test_bad_growth_options_are_one_line_errors(kw, message):
    opts = TrainingOptions(dataset="x", **{**dict(batch=12, batch_gpu=4), **kw})
    with pytest.raises(TrainingError, match=message.replace("(", r"\(").replace(")", r"\)")) as e:
        opts.validate()
    assert "\n" not in str(e.value)


def test_cli_trains_config_a_and_generates_from_its_snapshot(data_dir, tmp_path):
    r = run_python(["run_training.py", "--data-dir", data_dir, "--dataset", "shapes16", "--result-dir", tmp_path,
                    "--config", "config-a", "--fmap-base", "128", "--fmap-max", "32", "--latent-dim", "16",
                    "--mapping-layers", "2", "--batch", "4", "--batch-gpu", "4", "--lod-kimg", "0.008",
                    "--lod-transition-kimg", "0.008", "--total-kimg", "0.032", "--tick-kimg", "0.016"], timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    run_dir = os.path.join(tmp_path, os.listdir(tmp_path)[0])
    opts = json.load(open(os.path.join(run_dir, "training_options.json")))["options"]
    assert (opts["lod_kimg"], opts["lod_transition_kimg"], opts["resolution_dicts"]) == (0.008, 0.008, False)
    final = os.path.join(run_dir, "network-final.pkl")
    assert read_network_pickle(final)[0].build_func_name == "G_style"
    out = tmp_path / "gen"
    r = run_python(["run_generator.py", "generate-images", "--network", final, "--seeds", "0-1", "--outdir", out])
    assert r.returncode == 0, r.stderr[-3000:]
    assert sorted(os.listdir(out)) == ["seed0000.png", "seed0001.png"]
    r = run_python(["run_training.py", "--data-dir", data_dir, "--dataset", "shapes16", "--result-dir", tmp_path,
                    "--config", "config-b", "--lod-kimg", "-1"])
    assert r.returncode != 0 and "--lod-kimg -1 and --lod-transition-kimg 600 must be >= 0" in r.stderr
