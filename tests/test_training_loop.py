"""The training loop end to end: run directory, official snapshots, exact resume, SIGKILL,
non-finite losses, bad input, and that it actually learns."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT, run_python, subprocess_env
from stylegan2_tf.data.synthetic import create_shapes_dataset, shapes_images
from stylegan2_tf.official import load_network_pkl, read_network_pickle
from stylegan2_tf.training import TrainingError, TrainingOptions
from stylegan2_tf.training import Trainer
from stylegan2_tf.training.snapshots import kimg_label

pytestmark = pytest.mark.slow

# One accumulation round unless a test asks for more (tracing dominates these tests' time).
TINY = dict(fmap_base=128, fmap_max=64, latent_dim=32, mapping_layers=2, batch=4, batch_gpu=4, tick_kimg=0.032,
            snapshot_ticks=1)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    create_shapes_dataset(str(root / "shapes16"), num_images=128, resolution=16)
    return str(root)


def _opts(data_dir, result_dir, **kw):
    return TrainingOptions(data_dir=data_dir, result_dir=str(result_dir), **{"dataset": "shapes16", **TINY, **kw})


def _weights(trainer):
    return [(f"{net}:{i}:{v.path}", v.numpy().copy())
            for net, m in (("G", trainer.state.G), ("D", trainer.state.D), ("Gs", trainer.state.G_ema))
            for i, v in enumerate(m.variables)]


@pytest.fixture(scope="module")
def resumed_run(data_dir, tmp_path_factory):
    """Two ticks straight on, and tick 2 again from a new Trainer resumed from tick 1's checkpoint,
    in one run directory (shared by the tests that look at a finished run: tracing dominates)."""
    # batch 8 = 2 accumulation rounds of 4; 8 minibatches per tick cover both lazy-regularization phases.
    kw = dict(batch=8, tick_kimg=0.064, total_kimg=0.128)
    results = tmp_path_factory.mktemp("resume")
    straight = Trainer(_opts(data_dir, results, **kw), echo=False)
    straight.train(stop_after_ticks=1)
    resumed = Trainer(_opts(data_dir, results, **kw), resume=straight.run_dir, echo=False)
    resumed_at = (int(resumed.state.cur_nimg.numpy()), int(resumed.state.cur_tick.numpy()))
    run_dir = straight.train()
    resumed.train()
    return straight, resumed, resumed_at, run_dir


def test_resume_continues_exactly(resumed_run):
    """Training on after tick 1 == a new Trainer resumed from tick 1's checkpoint (new process
    state: networks, optimizers, RNG, counters, data position all from the checkpoint). CPU
    kernels here are deterministic, so equality is exact (bitwise)."""
    straight, resumed, resumed_at, _ = resumed_run
    assert resumed_at == (64, 1)
    wa, wb = _weights(straight), _weights(resumed)
    assert [k for k, _ in wa] == [k for k, _ in wb]
    for (k, a), (_, b) in zip(wa, wb):
        np.testing.assert_array_equal(a, b, err_msg=k)
    assert float(straight.state.loss.pl_mean.numpy()) == float(resumed.state.loss.pl_mean.numpy()) != 0.0
    for name in ("opt_G", "opt_D"):
        for a, b in zip(getattr(straight.state, name).variables, getattr(resumed.state, name).variables):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_run_directory_holds_official_snapshots_logs_and_stats(resumed_run):
    straight, _, _, run_a = resumed_run
    # Run directory contents.
    files = set(os.listdir(run_a))
    # Ticks of 64 images: every snapshot keeps its own name (kimg plus images).
    assert {"reals.png", "fakes_init.png", "fakes000000.064.png", "fakes000000.128.png",
            "network-snapshot-000000.064.pkl", "network-snapshot-000000.128.pkl", "network-final.pkl",
            "log.txt", "stats.jsonl", "training_options.json", "checkpoints"} <= files
    assert any(f.startswith("events.out.tfevents") for f in files)
    assert os.path.basename(run_a) == "00000-shapes16-config-f-1gpu"
    stats = [json.loads(line) for line in open(os.path.join(run_a, "stats.jsonl"))]
    # Tick 1, then tick 2 once from the continuing trainer and once from the resumed one (same run dir).
    assert [s["tick"] for s in stats] == [1, 2, 2] and stats[-1]["kimg"] == pytest.approx(0.128)
    assert "Loss/D/r1_penalty" in stats[0] and "Loss/G/pl_penalty" in stats[1]  # lazy intervals 16 and 4
    for key in [k for k in stats[1] if k.startswith("Loss/") or k == "pl_mean"]:
        assert stats[1][key] == stats[2][key], key
    for key in ("Loss/G/loss", "Loss/D/loss", "Loss/D/r1_penalty", "Loss/G/pl_penalty", "pl_mean", "sec_per_kimg"):
        assert np.isfinite(stats[0][key]), key
    assert stats[0]["minibatch"] == 8 and stats[1]["minibatch"] == 16
    log = open(os.path.join(run_a, "log.txt")).read()
    for text in ("tick 2     kimg 0.128", "Resumed from", "sec/kimg", "maintenance", "cpumem"):
        assert text in log, text

    # The snapshot is in NVIDIA's format and holds exactly the trained networks.
    nets = load_network_pkl(os.path.join(run_a, "network-final.pkl"))
    for key, model in (("G", straight.state.G), ("D", straight.state.D), ("G_ema", straight.state.G_ema)):
        assert len(nets[key].variables) == len(model.variables)
        for a, b in zip(nets[key].variables, model.variables):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    G_state = read_network_pickle(os.path.join(run_a, "network-final.pkl"))[0]
    assert G_state.build_func_name == "G_main"
    assert G_state.components["synthesis"].build_func_name == "G_synthesis_stylegan2"


def test_snapshot_labels_never_collide(tmp_path):
    # Ticks of >= 1 kimg: NVIDIA's whole-kimg names.
    assert kimg_label(4032, 4000) == "000004" and kimg_label(123456, 2000) == "000123"
    # Shorter ticks: the images are part of the label.
    assert [kimg_label(n, 256) for n in (256, 512, 1024, 1280)] == \
        ["000000.256", "000000.512", "000001.024", "000001.280"]
    # A short last tick landing on a whole kimg that already has a file gets the longer label.
    (tmp_path / "network-snapshot-000010.pkl").write_bytes(b"")
    assert kimg_label(10528, 2000, str(tmp_path), "network-snapshot-{}.pkl") == "000010.528"
    assert kimg_label(12032, 2000, str(tmp_path), "network-snapshot-{}.pkl") == "000012"


def test_tensorboard_scalars_written(resumed_run):
    import tensorflow as tf
    run = resumed_run[3]
    events = [os.path.join(run, f) for f in os.listdir(run) if f.startswith("events.out.tfevents")]
    tags = set()
    for path in events:
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(v.tag for v in event.summary.value)
    assert {"Loss/G/loss", "Loss/D/loss", "Loss/D/r1_penalty", "Loss/G/pl_penalty", "Progress/pl_mean",
            "Progress/sec_per_kimg", "Progress/img_per_sec", "fakes"} <= tags


def test_sigkill_mid_tick_leaves_valid_snapshot_and_resume_works(data_dir, tmp_path):
    results = tmp_path / "results"
    args = [ROOT / "run_training.py", "--data-dir", data_dir, "--dataset", "shapes16", "--result-dir", results,
            "--fmap-base", "128", "--fmap-max", "64", "--latent-dim", "32", "--mapping-layers", "2", "--batch", "4",
            "--batch-gpu", "4", "--tick-kimg", "0.032", "--snapshot-ticks", "1", "--total-kimg", "1000"]
    env = subprocess_env()
    proc = subprocess.Popen([sys.executable, *map(str, args)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    run_dir = None
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            line = proc.stdout.readline()
            if "Saved network-snapshot" in line:
                # The first snapshot exists; let it get into the next tick, then kill without warning.
                time.sleep(1.0)
                break
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    runs = sorted(os.listdir(results))
    assert runs[0].endswith("-1gpu")  # no --num-gpus: every visible GPU, here none, so one replica
    run_dir = results / runs[0]
    snapshots = sorted(f for f in os.listdir(run_dir) if f.startswith("network-snapshot"))
    assert snapshots, os.listdir(run_dir)
    # Every snapshot under its own name is whole (a kill mid-write can leave only a hidden .tmp- file,
    # which nothing reads).
    for name in snapshots:
        assert load_network_pkl(run_dir / name)["G_ema"].config.img_resolution == 16, name
    # Resume from the killed run and finish one more tick, with oneDNN's CPU kernels off.
    r = run_python([ROOT / "run_training.py", "--resume", "latest", "--result-dir", results, "--total-kimg", "0.096"],
                   env={"TF_ENABLE_ONEDNN_OPTS": "0"})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    log = open(run_dir / "log.txt").read()
    assert "Resumed from" in log and "Saved network-final.pkl" in log
    # run_training.py turns oneDNN on unless the environment says otherwise (TensorFlow's own default
    # is on only on AVX-512 CPUs), and the log says which ran.
    first = "off" if os.environ.get("TF_ENABLE_ONEDNN_OPTS", "").lower() in ("0", "false") else "on"
    assert re.findall(r"oneDNN CPU kernels (\w+)", log) == [first, "off"], log


def test_non_finite_loss_stops_with_step_and_term(data_dir, tmp_path):
    trainer = Trainer(_opts(data_dir, tmp_path, total_kimg=0.064, snapshot_ticks=1), echo=False)
    v = trainer.state.D.epilogue.out.bias
    v.assign(np.full(v.shape, np.nan, np.float32))
    with pytest.raises(TrainingError, match=r"non-finite Loss/G/loss .* at minibatch 0"):
        trainer.train()
    assert not [f for f in os.listdir(trainer.run_dir) if f.endswith(".pkl")]


def test_bad_input_is_refused_before_training(data_dir, tmp_path, resumed_run, monkeypatch):
    with pytest.raises(TrainingError, match="not found"):
        Trainer(_opts(data_dir, tmp_path, dataset="nope"), echo=False)
    with pytest.raises(TrainingError, match="unknown"):
        Trainer(_opts(data_dir, tmp_path, config="config-z"), echo=False)
    with pytest.raises(TrainingError, match="not divisible"):
        Trainer(_opts(data_dir, tmp_path, batch=10, batch_gpu=4), echo=False)
    with pytest.raises(TrainingError, match="--metrics: unknown metric 'fid10k'"):
        Trainer(_opts(data_dir, tmp_path, metrics="fid10k"), echo=False)
    for var in ("STYLEGAN2_TF_INCEPTION", "STYLEGAN2_TF_LPIPS", "STYLEGAN2_TF_VGG16"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("STYLEGAN2_TF_METRICS_CONFIG", str(tmp_path / "no-such-config.json"))
    before = set(os.listdir(tmp_path))
    with pytest.raises(TrainingError, match="--metrics fid50k: no inception file"):
        Trainer(_opts(data_dir, tmp_path, metrics="fid50k"), echo=False)
    assert set(os.listdir(tmp_path)) == before          # refused before a run directory exists
    run = resumed_run[3]
    kw = dict(batch=8, tick_kimg=0.064)
    with pytest.raises(TrainingError, match=r"different settings: config='config-f' \(now 'config-e'\)"):
        Trainer(_opts(data_dir, tmp_path, config="config-e", **kw), resume=run, echo=False)
    other = tmp_path / "other"
    create_shapes_dataset(str(other / "shapes16"), num_images=8, resolution=32)  # same name, other resolution
    with pytest.raises(TrainingError, match=r"is 32x32, the checkpoint .* is 16x16"):
        Trainer(_opts(str(other), tmp_path, **kw), resume=run, echo=False)
    # The same through the command line: one-line errors.
    r = run_python([ROOT / "run_training.py", "--data-dir", data_dir, "--dataset", "shapes16", "--config", "config-q",
                    "--result-dir", tmp_path])
    assert r.returncode != 0 and "error: --config 'config-q' is unknown" in r.stderr
    r = run_python([ROOT / "run_training.py", "--resume", "latest", "--result-dir", tmp_path / "empty"])
    assert r.returncode != 0 and "no run with a checkpoint" in r.stderr


def test_forced_fused_modconv_without_gradient_kernel_is_refused_before_anything_is_written(
        data_dir, tmp_path, monkeypatch):
    import stylegan2_tf.training.machine as machine
    monkeypatch.setattr(machine, "cpu_grouped_conv_gradient", lambda dtype: False)
    with pytest.raises(TrainingError, match=r"--fused-modconv: .*cannot differentiate grouped convolutions .* "
                                            r"float32 .*automatic: non-fused on CPUs"):
        Trainer(_opts(data_dir, tmp_path / "r", fused_modconv=True), echo=False)
    assert not (tmp_path / "r").exists()
    # Only float16 missing (oneDNN on, no AVX-512): refused only with --fp16-res.
    monkeypatch.setattr(machine, "cpu_grouped_conv_gradient", lambda dtype: dtype != "float16")
    with pytest.raises(TrainingError, match=r"in float16 \("):
        Trainer(_opts(data_dir, tmp_path / "r", fused_modconv=True, fp16_res=1), echo=False)
    assert not (tmp_path / "r").exists()


def _image_stats(x):
    """Per-channel mean and std and the fraction of bright pixels of NHWC images in [-1, 1]."""
    x = np.asarray(x)
    return np.concatenate([x.mean((0, 1, 2)), x.std((0, 1, 2)), [(x.mean(-1) > 0).mean()]])


def test_it_learns_the_shapes_dataset(tmp_path):
    """A few minutes of CPU training moves simple statistics of the fakes most of the way to the reals."""
    create_shapes_dataset(str(tmp_path / "shapes16"), num_images=256, resolution=16)
    opts = TrainingOptions(data_dir=str(tmp_path), dataset="shapes16", result_dir=str(tmp_path / "results"),
                           fmap_base=256, fmap_max=64, latent_dim=32, mapping_layers=2, batch=16, batch_gpu=16,
                           tick_kimg=2, snapshot_ticks=0, total_kimg=8, r1_gamma=1.0, style_mixing_prob=0.0)
    trainer = Trainer(opts, echo=False)
    reals = shapes_images(256, 16, 0)[0].transpose(0, 2, 3, 1).astype(np.float32) / 127.5 - 1
    z = np.random.RandomState(5).randn(256, 32).astype(np.float32)
    target = _image_stats(reals)
    before = np.abs(_image_stats(trainer.state.G_ema(z, noise_mode="const")) - target).sum()
    trainer.train()
    after = np.abs(_image_stats(trainer.state.G_ema(z, noise_mode="const")) - target).sum()
    assert after < 0.45 * before, (before, after)


def test_fp16_training_stays_finite_and_skips_overflowing_steps(data_dir, tmp_path):
    """--fp16-res: float16 blocks, conv clamp and dynamic loss scaling through the real loop."""
    import tensorflow as tf
    t = Trainer(_opts(data_dir, tmp_path, fp16_res=2, total_kimg=0.032), echo=False)
    assert t.g_cfg.num_fp16_res == 2 and t.g_cfg.conv_clamp == 256 and t.d_cfg.conv_clamp == 256
    assert sorted(t.state.loss_scales) == ["D_main", "D_r1", "G_main", "G_pl"]
    assert [b.use_fp16 for b in t.state.G.synthesis.blocks] == [False, True, True]  # 4, 8, 16
    # A scale this large overflows every gradient: the first minibatch (all four phases) must skip
    # all its updates and halve each phase's scale, leaving G and D as they were.
    huge = 2.0 ** 120
    for scaler in t.state.loss_scales.values():
        scaler.scale.assign(huge)
    before = [v.numpy().copy() for v in t.state.G.trainable_variables + t.state.D.trainable_variables]
    data = t.dataset(0)
    stats = t.train_minibatch((next(data),))
    for phase, scaler in t.state.loss_scales.items():
        assert float(stats[f"Progress/overflow_{phase}"]) == 1.0, phase
        assert float(scaler.scale.numpy()) == huge / 2, phase
    for b, v in zip(before, t.state.G.trainable_variables + t.state.D.trainable_variables):
        np.testing.assert_array_equal(v.numpy(), b, err_msg=v.path)
    # With a usable scale the run trains: finite losses, weights and a snapshot.
    for scaler in t.state.loss_scales.values():
        scaler.scale.assign(2.0 ** 15)
    t.train()
    records = [json.loads(line) for line in open(os.path.join(t.run_dir, "stats.jsonl"))]
    assert records and all(np.isfinite(r["Loss/G/loss"]) and np.isfinite(r["Loss/D/loss"]) for r in records)
    # The main losses keep their scale (at most one back-off in the tick's 8 minibatches: seen once
    # with oneDNN's kernels); the path-length term's second-order gradient through the float16
    # blocks overflows at 2^15 (measured), so its scale backs off.
    last = records[-1]
    assert last["loss_scale_G_main"] >= 2.0 ** 14 and last["loss_scale_D_main"] >= 2.0 ** 14, last
    assert last["Progress/overflow_G_main"] <= 1 / 8 and last["Progress/overflow_D_main"] <= 1 / 8, last
    assert last["loss_scale_G_pl"] < 2.0 ** 15, last
    ckpt = tf.train.load_checkpoint(t.state.checkpoints.latest_checkpoint)
    assert any("loss_scale_G_pl" in name for name in ckpt.get_variable_to_shape_map())
    moved = [np.any(v.numpy() != b) for b, v in zip(before,
                                                    t.state.G.trainable_variables + t.state.D.trainable_variables)]
    assert np.mean(moved) > 0.9
    assert all(np.all(np.isfinite(v.numpy())) for v in t.state.G.variables + t.state.D.variables)
    nets = load_network_pkl(os.path.join(t.run_dir, "network-final.pkl"))
    img = nets["G_ema"](tf.zeros([1, 32]), noise_mode="const")
    assert np.all(np.isfinite(img.numpy()))


def test_bfloat16_training_runs_without_loss_scaling_and_resumes_only_as_bfloat16(data_dir, tmp_path):
    """--fp16-res 2 --mixed-dtype bfloat16: bfloat16 blocks (float32's exponent range: no loss
    scales), a finite run with a snapshot, and a resume that must keep the dtype."""
    import tensorflow as tf
    t = Trainer(_opts(data_dir, tmp_path, fp16_res=2, mixed_dtype="bfloat16", total_kimg=0.016), echo=False)
    assert (t.g_cfg.mixed_dtype, t.d_cfg.mixed_dtype, t.g_cfg.conv_clamp) == ("bfloat16", "bfloat16", 256)
    assert t.state.loss_scales == {}
    assert [b.activation_dtype for b in t.state.G.synthesis.blocks] == [tf.float32, tf.bfloat16, tf.bfloat16]
    assert [b.activation_dtype for b in t.state.D.blocks] == [tf.bfloat16, tf.bfloat16]  # 16, 8
    before = [v.numpy().copy() for v in t.state.G.trainable_variables + t.state.D.trainable_variables]
    t.train()
    records = [json.loads(line) for line in open(os.path.join(t.run_dir, "stats.jsonl"))]
    assert records and all(np.isfinite(r["Loss/G/loss"]) and np.isfinite(r["Loss/D/loss"]) for r in records)
    assert not any(k.startswith("loss_scale") or "overflow" in k for k in records[-1])
    ckpt = tf.train.load_checkpoint(t.state.checkpoints.latest_checkpoint)
    assert not any("loss_scale" in name for name in ckpt.get_variable_to_shape_map())
    moved = [np.any(v.numpy() != b) for b, v in zip(before,
                                                    t.state.G.trainable_variables + t.state.D.trainable_variables)]
    assert np.mean(moved) > 0.9
    assert all(v.dtype == tf.float32 and np.all(np.isfinite(v.numpy()))
               for v in t.state.G.variables + t.state.D.variables)
    nets = load_network_pkl(os.path.join(t.run_dir, "network-final.pkl"))
    assert np.all(np.isfinite(nets["G_ema"](tf.zeros([1, 32]), noise_mode="const").numpy()))
    with pytest.raises(TrainingError, match=r"mixed_dtype='bfloat16' \(now 'float16'\)"):
        Trainer(_opts(data_dir, tmp_path, fp16_res=2, total_kimg=0.032), resume=t.run_dir, echo=False)


@pytest.mark.parametrize("onednn, warned", [(False, True), (True, False)])
def test_bfloat16_without_onednn_is_logged_as_slow(data_dir, tmp_path, monkeypatch, onednn, warned):
    import stylegan2_tf.training.machine as machine
    monkeypatch.setattr(machine, "onednn_bfloat16", lambda: onednn)
    def log_text(trainer):  # (the log file exists once something is logged)
        path = os.path.join(trainer.run_dir, "log.txt")
        return open(path).read() if os.path.exists(path) else ""

    t = Trainer(_opts(data_dir, tmp_path, fp16_res=2, mixed_dtype="bfloat16"), echo=False)
    assert ("emulated bfloat16 kernels run 12-15x slower than float32" in log_text(t)) == warned
    # float16 runs are not concerned.
    t = Trainer(_opts(data_dir, tmp_path / "f16", fp16_res=2), echo=False)
    assert "bfloat16" not in log_text(t)


def _uniform_from_bits(seed, shape):
    """U(0, 1] in float64 from stateless int64 draws, which XLA and TF's kernels produce alike
    (their float generators differ)."""
    import tensorflow as tf
    bits = tf.random.stateless_uniform(shape, seed, minval=None, maxval=None, dtype=tf.int64, alg="philox")
    return (tf.cast(tf.bitwise.right_shift(bits, 11) & (2 ** 53 - 1), tf.float64) + 1.0) * 2.0 ** -53


def test_xla_phases_give_the_same_training_step(data_dir, tmp_path, monkeypatch):
    """--xla all: each phase compiled with XLA (its custom ops replaced by the reference ops)
    computes the same minibatch as the default graphs, to float32 reordering. XLA draws other
    floats from the same stateless seeds, so here the phases' draws are made from integer bits
    (equal under XLA) and the synthesis noise is the stored one."""
    import math

    import tensorflow as tf
    from stylegan2_tf.training import phases

    def normal(self, shape, mean=0.0, stddev=1.0, dtype=tf.float32):
        u1, u2 = _uniform_from_bits(self._next(), shape), _uniform_from_bits(self._next(), shape)
        z = tf.sqrt(-2.0 * tf.math.log(u1)) * tf.cos(2.0 * math.pi * u2)   # Box-Muller
        return tf.cast(z * stddev + mean, dtype)

    def uniform(self, shape, minval=0, maxval=None, dtype=tf.float32):
        u = _uniform_from_bits(self._next(), shape)
        if dtype.is_integer:
            span = tf.cast(maxval - minval, tf.float64)
            return minval + tf.cast(tf.floor(u * span * (1 - 2.0 ** -52)), dtype)
        return tf.cast(u, dtype)

    monkeypatch.setattr(phases.StatelessRNG, "normal", normal)
    monkeypatch.setattr(phases.StatelessRNG, "uniform", uniform)
    out = {}
    for xla in ("none", "all"):
        t = Trainer(_opts(data_dir, tmp_path / xla, xla=xla), echo=False)
        t.state.loss.noise_mode = "const"  # before the steps are traced
        assert t.opts.xla_phases == (() if xla == "none" else ("G_main", "G_pl", "D_main", "D_r1"))
        data = t.dataset(0)
        rounds = tuple(next(data) for _ in range(t.opts.rounds))
        before = _weights(t)
        stats = t.train_minibatch(rounds, seed=tf.constant([5, 6], tf.int64))  # minibatch 0: all four phases
        out[xla] = ({k: float(v) for k, v in stats.items()}, before, _weights(t))
    (stats_a, start_a, w_a), (stats_b, start_b, w_b) = out["none"], out["all"]
    assert sorted(stats_a) == sorted(stats_b)
    for k in stats_a:
        np.testing.assert_allclose(stats_b[k], stats_a[k], rtol=1e-4, atol=1e-6, err_msg=k)
    # The step itself, not the weights (a mapping weight of ~100 hides a whole Adam step at rtol 1e-4):
    # each variable's update by both agrees within 5 % of its size (Adam's first step is about
    # lr * sign(g), which float reordering can flip where g is ~0), and the trained ones moved.
    moved = 0
    for (k, a0), (_, b0), (_, a), (_, b) in zip(start_a, start_b, w_a, w_b):
        np.testing.assert_array_equal(a0, b0, err_msg=k)  # the same start
        da, db = np.asarray(a, np.float64) - a0, np.asarray(b, np.float64) - b0
        if np.any(da):
            moved += 1
            assert np.linalg.norm(db - da) <= 0.05 * np.linalg.norm(da), k
        else:
            assert not np.any(db), k
    assert moved > 20
    with pytest.raises(TrainingError, match="unknown phase"):
        _opts(data_dir, tmp_path, xla="G_main,D_reg").validate()
    with pytest.raises(TrainingError, match="one replica"):
        _opts(data_dir, tmp_path, xla="D_main", num_gpus=2, batch=8).validate()


def test_non_finite_weights_stop_before_the_snapshot(data_dir, tmp_path, monkeypatch):
    """Weights that turn non-finite between two snapshots (the losses reported before the update
    were finite) stop training at the next save: the error names the variable, and the earlier
    snapshot stays as it was, with no new pickle written."""
    from stylegan2_tf.training import loop
    real_save = loop.save_snapshot
    calls = []

    def save_then_poison(state, run_dir, name, *args, **kw):
        calls.append(name)
        if len(calls) == 2:  # the second tick's snapshot
            v = state.G.synthesis.blocks[-1].conv1.bias
            v.assign(np.full(v.shape, np.inf, np.float32))
        return real_save(state, run_dir, name, *args, **kw)

    monkeypatch.setattr(loop, "save_snapshot", save_then_poison)
    trainer = Trainer(_opts(data_dir, tmp_path, total_kimg=0.064, snapshot_ticks=1), echo=False)
    with pytest.raises(TrainingError, match=r"non-finite weights in .*conv1/bias at minibatch \d+ .*the last "
                                            r"snapshot is untouched"):
        trainer.train()
    pkls = sorted(f for f in os.listdir(trainer.run_dir) if f.endswith(".pkl"))
    assert pkls == [calls[0]], (pkls, calls)
    first = load_network_pkl(os.path.join(trainer.run_dir, calls[0]))
    assert all(np.all(np.isfinite(v.numpy())) for v in first["G"].variables)
