"""The ADA augmentation pipeline against stylegan2-ada-pytorch's AugmentPipe, draw for draw.

tests/fixtures/augment/ holds, per case, images, the strength p, the constructor arguments, every
random draw NVIDIA's code made (kind, shape, values, in order) and its output (and for some cases
the gradient of a weighted sum of the output with respect to the images); make_fixtures.py wrote
them with stylegan2-ada-pytorch d72cc7d. Given the same draws, ours equals theirs within float32
rounding."""

import json

import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT
from stylegan2_tf.augment import PRESETS, TRANSFORMS, AugmentConfig, AugmentPipe, RecordedSource, StatelessSource
from stylegan2_tf.augment import preset as augment_preset

FIXTURES = ROOT / "tests" / "fixtures" / "augment"
CASES = sorted(p.stem for p in FIXTURES.glob("*.npz"))


def _nhwc(a):
    return np.transpose(a, [0, 2, 3, 1])


def _load(name):
    f = np.load(FIXTURES / f"{name}.npz")
    draws = [(kind, f[f"draw_{i}"]) for i, kind in enumerate(f["draw_kinds"])]
    return f, AugmentConfig.from_dict(json.loads(str(f["kwargs"]))), draws


def test_every_preset_and_transform_has_a_case():
    assert {f"preset-{name}" for name in PRESETS} | {f"transform-{name}" for name in TRANSFORMS} <= set(CASES)
    assert set(PRESETS) == {"blit", "geom", "color", "filter", "noise", "cutout", "bg", "bgc", "bgcf", "bgcfn",
                            "bgcfnc"}


@pytest.mark.parametrize("name", [c for c in CASES if not c.startswith("p0-")])
def test_equals_stylegan2_ada_pytorch_draw_for_draw(name):
    f, config, draws = _load(name)
    source = RecordedSource(draws)
    x = tf.constant(_nhwc(f["images"]))
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = AugmentPipe(config)(x, f["p"], source)
        loss = tf.reduce_sum(out * _nhwc(f["grad_weights"])) if "grad" in f else None
    source.check_all_used()                      # the same draws, no more, no fewer
    ref = _nhwc(f["out"])
    scale = float(np.abs(ref).max())
    np.testing.assert_allclose(out.numpy(), ref, rtol=0, atol=1e-5 * scale)
    assert np.abs(ref - _nhwc(f["images"])).max() > 1e-2 * scale     # the case augments something
    if loss is not None:
        grad, want = tape.gradient(loss, x).numpy(), _nhwc(f["grad"])
        np.testing.assert_allclose(grad, want, rtol=0, atol=1e-5 * np.abs(want).max())


def test_p_zero_is_the_identity_bit_for_bit():
    """Theirs runs every transform as an identity at p = 0 (equal to the input within rounding); ours
    skips them and returns the input unchanged, drawing nothing."""
    f, config, draws = _load("p0-bgcfnc")
    images = _nhwc(f["images"])
    np.testing.assert_allclose(_nhwc(f["out"]), images, rtol=0, atol=1e-5)
    source = RecordedSource([])
    out = AugmentPipe(config)(images, 0.0, source)
    np.testing.assert_array_equal(out.numpy(), images)
    fn = tf.function(lambda x, p: AugmentPipe(config)(x, p, StatelessSource([1, 2])))
    np.testing.assert_array_equal(fn(images, tf.constant(0.0)).numpy(), images)
    assert np.abs(fn(images, tf.constant(1.0)).numpy() - images).max() > 0.1


def test_draws_are_asked_for_in_kind_and_shape():
    f, config, draws = _load("preset-blit")
    kind, value = draws[0]
    with pytest.raises(ValueError, match=r"draw 0: uniform\[3\] asked for, normal\[3\] recorded"):
        AugmentPipe(config)(_nhwc(f["images"]), 1.0, RecordedSource([("randn", value)] + draws[1:]))
    with pytest.raises(ValueError, match=r"draw 1: uniform\[3\] asked for, but only 1 were recorded"):
        AugmentPipe(config)(_nhwc(f["images"]), 1.0, RecordedSource(draws[:1]))


def test_stateless_draws_repeat_and_float16_images_come_back_float16():
    images = np.random.RandomState(0).uniform(-1, 1, [2, 24, 24, 3]).astype(np.float32)
    pipe = AugmentPipe(augment_preset("bgcfnc"))
    a = pipe(images, 0.7, StatelessSource([5, 6])).numpy()
    b = pipe(images, 0.7, StatelessSource([5, 6])).numpy()
    c = pipe(images, 0.7, StatelessSource([5, 7])).numpy()
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 0.1
    half = pipe(tf.constant(images, tf.float16), 0.7, StatelessSource([5, 6]))
    assert half.dtype == tf.float16
    np.testing.assert_allclose(half.numpy().astype(np.float32), a, atol=2e-2 * np.abs(a).max())


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match=r"unknown augmentation preset 'bgcx'; choose from blit, geom"):
        augment_preset("bgcx")
    with pytest.raises(ValueError, match=r"unknown augmentation parameter\(s\) xflop"):
        AugmentConfig.from_dict({"xflop": 1})
    with pytest.raises(ValueError, match=r"augmentation scale_std must be finite and >= 0, got -1"):
        AugmentConfig(scale_std=-1)
    with pytest.raises(ValueError, match=r"imgfilter_bands needs 4 values, got 3"):
        AugmentConfig(imgfilter_bands=(1, 1, 1))
    rgba = np.zeros([1, 24, 24, 4], np.float32)
    with pytest.raises(ValueError, match=r"colour augmentations \(brightness\) need 1 or 3 channels, got 4"):
        AugmentPipe(AugmentConfig(brightness=1))(rgba, 1.0, StatelessSource([0, 0]))
    small = np.zeros([1, 16, 16, 3], np.float32)
    with pytest.raises(ValueError, match=r"imgfilter needs images larger than 21x21"):
        AugmentPipe(AugmentConfig(imgfilter=1))(small, 1.0, StatelessSource([0, 0]))
