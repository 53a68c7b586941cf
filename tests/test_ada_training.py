"""ADA in training: the heuristic that adjusts p (stylegan2-ada-pytorch's training loop, as a closed
form), a tiny run whose p follows it from the run's own statistics, exact resumption in the middle
of an adjustment interval, and the refusals."""

import numpy as np
import pytest
import tensorflow as tf

from stylegan2_tf.data.synthetic import create_shapes_dataset
from stylegan2_tf.training import Trainer, TrainingError, TrainingOptions
from stylegan2_tf.training.augmentation import ADA_INTERVAL, SIGNS_COUNT, SIGNS_SUM, Augmentation

pytestmark = pytest.mark.slow

TINY = dict(fmap_base=64, fmap_max=32, latent_dim=16, mapping_layers=2, batch=4, batch_gpu=2, snapshot_ticks=1)


def _reference_p(sums, counts, target, batch, ada_kimg, p=0.0):
    """stylegan2-ada-pytorch's rule: every ADA_INTERVAL minibatches, r_t = mean sign over them,
    p = max(p + sign(r_t - target) * batch * interval / (ada_kimg * 1000), 0), in float32."""
    p = np.float32(p)
    for end in range(ADA_INTERVAL, len(sums) + 1, ADA_INTERVAL):
        r_t = sum(sums[end - ADA_INTERVAL:end]) / sum(counts[end - ADA_INTERVAL:end])
        p = max(p + np.float32(np.sign(r_t - target) * batch * ADA_INTERVAL / (ada_kimg * 1000)), np.float32(0))
    return p


def test_the_heuristic_in_closed_form():
    """p rises while r_t > target, by batch * 4 / (ada_kimg * 1000) per 4 minibatches, passes 1 (no
    upper clamp, as theirs), falls when r_t < target and stops at 0."""
    aug = Augmentation(TrainingOptions(aug="ada", ada_target=0.6, ada_kimg=0.1))
    step = 32 * ADA_INTERVAL / 100
    history = []
    sums = [8.0] * 12 + [-4.0] * 20          # r_t = 1 for 3 adjustments, then -0.5
    for s in sums:
        out = aug.after_minibatch({SIGNS_SUM: tf.constant(s), SIGNS_COUNT: tf.constant(8.0), "Loss/G/loss": 1.0},
                                  batch=32)
        assert SIGNS_SUM not in out and out["Loss/signs/real"] == s / 8 and out["Loss/G/loss"] == 1.0
        history.append(float(aug.p.numpy()))
    expect = [np.float32(step) * k for k in (1, 2, 3)]
    assert history[3::4][:3] == pytest.approx(expect) and history[11] > 1       # past 1
    assert history[15] == pytest.approx(expect[1]) and history[-1] == 0.0        # falls, stops at 0
    assert history[-1] == _reference_p(sums, [8.0] * len(sums), 0.6, 32, 0.1)
    assert history[0:3] == [0.0] * 3                                             # only every 4th


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    create_shapes_dataset(str(root / "shapes16"), num_images=32, resolution=16)
    return str(root)


def _opts(data_dir, results, **kw):
    return TrainingOptions(data_dir=data_dir, dataset="shapes16", result_dir=str(results), **{**TINY, **kw})


def test_a_tiny_run_follows_the_heuristic_and_resumes_mid_interval(data_dir, tmp_path, monkeypatch):
    """A D that tells reals apart (r_t above a low target) raises p; p equals the rule applied to the
    run's own per-minibatch sums; a run stopped after 3 minibatches (inside an interval) and resumed
    ends bitwise where the uninterrupted one does."""
    recorded = []
    original = Augmentation.after_minibatch

    def recording(self, stats, batch):
        recorded.append((float(stats[SIGNS_SUM].numpy()), float(stats[SIGNS_COUNT].numpy())))
        return original(self, stats, batch)
    monkeypatch.setattr(Augmentation, "after_minibatch", recording)
    # Ticks of 3 minibatches (12 images): the first checkpoint falls inside the first interval.
    kw = dict(aug="ada", ada_target=0.05, ada_kimg=0.05, minibatch_repeats=1, tick_kimg=0.012, total_kimg=0.036)
    straight = Trainer(_opts(data_dir, tmp_path / "a", **kw), echo=False)
    straight.train()
    sums, counts = zip(*recorded)
    assert len(sums) == 9 and counts[0] == 8 and counts[1] == 4     # D_r1 runs in minibatch 0 too
    p = float(straight.state.augmentation.p.numpy())
    assert p > 0 and sum(sums[:8]) / sum(counts[:8]) > 0.05
    assert p == _reference_p(sums, counts, 0.05, 4, 0.05)
    assert int(straight.state.augmentation.minibatches.numpy()) == 1   # the 9th minibatch waits
    # Each snapshot's log line names p then; stats.jsonl and the tick line carry p and r_t.
    import json
    import os
    log = open(os.path.join(straight.run_dir, "log.txt")).read()
    assert f"Saved network-snapshot-000000.036.pkl (augment p {p:.4f})" in log and " r_t " in log
    ticks = [json.loads(line) for line in open(os.path.join(straight.run_dir, "stats.jsonl"))]
    assert ticks[-1]["Progress/augment"] == pytest.approx(p) and -1 <= ticks[-1]["Loss/signs/real"] <= 1

    first = Trainer(_opts(data_dir, tmp_path / "b", **kw), echo=False)
    first.train(stop_after_ticks=1)
    resumed = Trainer(_opts(data_dir, tmp_path / "b", **kw), resume=first.run_dir, echo=False)
    aug = resumed.state.augmentation
    assert int(aug.minibatches.numpy()) == 3 and float(aug.count.numpy()) == sum(counts[:3])
    resumed.train()
    for a, b in zip(straight.state.augmentation.checkpoint_items().values(), aug.checkpoint_items().values()):
        assert a.numpy() == b.numpy(), a.name
    for a, b in zip(straight.state.D.variables + straight.state.G.variables,
                    resumed.state.D.variables + resumed.state.G.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    with pytest.raises(TrainingError, match=r"aug|augpipe"):
        Trainer(_opts(data_dir, tmp_path / "b", **{**kw, "augpipe": "bg"}), resume=first.run_dir, echo=False)


def test_fixed_p_augments_and_noaug_leaves_d_s_input_alone(data_dir, tmp_path):
    t = Trainer(_opts(data_dir, tmp_path, aug="fixed", augment_p=0.5), echo=False)
    assert float(t.state.augmentation.p.numpy()) == 0.5 and t.state.loss.augment is not None
    assert Trainer(_opts(data_dir, tmp_path / "n"), echo=False).state.loss.augment is None


@pytest.mark.parametrize("kw, message", [
    (dict(aug="fixed"), r"--aug fixed needs --p in \[0, 1\], got None"),
    (dict(aug="fixed", augment_p=1.5), r"--aug fixed needs --p in \[0, 1\], got 1.5"),
    (dict(aug="ada", augment_p=0.2), r"--p goes with --aug fixed"),
    (dict(augment_p=0.2), r"--p goes with --aug fixed"),
    (dict(aug="ada", ada_target=1.0), r"--target must be in \(0, 1\), got 1.0"),
    (dict(aug="ada", ada_target=0.0), r"--target must be in \(0, 1\), got 0.0"),
    (dict(aug="ada", ada_kimg=0), r"--ada-kimg must be > 0"),
    (dict(aug="ada", config="config-d"), r"--aug ada with --config config-d: augmentation trains configs E and F"),
    (dict(aug="ada", xla="all"), r"--aug ada with --xla all: the geometric augmentations"),
])
def test_bad_augmentation_settings_are_refused(kw, message):
    with pytest.raises(TrainingError, match=message):
        TrainingOptions(**kw).validate()
