"""tf.data pipeline: values and range, labels attached through shuffling,
determinism, mirror augment, repeat, sharding by record and by file, and
per-replica batches under tf.distribute (in a subprocess with 2 CPU devices)."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from stylegan2_tf.data import make_dataset

from _dataset_reference import example_bytes  # noqa: E402
from conftest import subprocess_env  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_file(path, images_nchw):
    with tf.io.TFRecordWriter(path) as w:
        for img in images_nchw:
            w.write(example_bytes(img))


def indexed_images(n, c=3, res=8, seed=0):
    """Random images whose first pixel holds the image index (asymmetric left/right)."""
    imgs = np.random.RandomState(seed).randint(0, 256, (n, c, res, res), dtype=np.uint8)
    imgs[:, 0, 0, 0] = np.arange(n)
    imgs[:, 0, 0, -1] = 255 - np.arange(n)  # so that a flipped image is told apart by these two
    return imgs


def make_set(tmp_path, n=10, c=3, res=8, name="set", files=1, labels=True):
    d = tmp_path / name
    d.mkdir()
    imgs = indexed_images(n, c, res)
    bounds = np.linspace(0, n, files + 1).astype(int)
    for k in range(files):
        suffix = "" if files == 1 else "-part%d" % k
        write_file(str(d / ("%s-r%02d%s.tfrecords" % (name, int(np.log2(res)), suffix))),
                   imgs[bounds[k] : bounds[k + 1]])
    lab = None
    if labels:
        lab = np.stack([np.arange(n), -2.0 * np.arange(n)], axis=1).astype(np.float32)
        with open(str(d / (name + "-rxx.labels")), "wb") as f:  # np.save(path) would append ".npy"
            np.save(f, lab)
    return str(d), imgs, lab


def to_net(imgs_nchw):
    return imgs_nchw.transpose(0, 2, 3, 1).astype(np.float32) * np.float32(2.0 / 255.0) - 1.0


def collect(ds, batches=None):
    xs, ls = [], []
    for i, (x, y) in enumerate(ds):
        if batches is not None and i >= batches:
            break
        xs.append(x.numpy())
        ls.append(y.numpy())
    return np.concatenate(xs), np.concatenate(ls)


def index_of(x_nhwc):
    """Recover the stored index from the first pixel (either side, if mirrored)."""
    left = np.rint((x_nhwc[:, 0, 0, 0] + 1.0) * 127.5).astype(int)
    return left


def test_values_range_and_labels_in_order(tmp_path):
    d, imgs, lab = make_set(tmp_path)
    ds = make_dataset(d, batch_size=4, shuffle_buffer=0, repeat=False, deterministic=True)
    shapes = [tuple(x.shape) for x, _ in ds]
    assert shapes == [(4, 8, 8, 3), (4, 8, 8, 3), (2, 8, 8, 3)]
    x, y = collect(ds)
    assert x.dtype == np.float32 and x.min() >= -1.0 and x.max() <= 1.0
    np.testing.assert_allclose(x, to_net(imgs), atol=1e-6, rtol=0)
    assert x[imgs.transpose(0, 2, 3, 1) == 0].max() == -1.0 and x[imgs.transpose(0, 2, 3, 1) == 255].min() == 1.0
    np.testing.assert_array_equal(y, lab)


def test_grayscale_and_no_labels(tmp_path):
    d, imgs, _ = make_set(tmp_path, n=5, c=1, res=4, labels=False)
    # Without deterministic=True the parallel decode may reorder records, even within one batch.
    x, y = collect(make_dataset(d, batch_size=5, shuffle_buffer=0, repeat=False, deterministic=True))
    assert x.shape == (5, 4, 4, 1) and y.shape == (5, 0)
    np.testing.assert_allclose(x, to_net(imgs), atol=1e-6)
    only = next(iter(make_dataset(d, batch_size=2, shuffle_buffer=0, with_labels=False)))
    assert isinstance(only, tf.Tensor) and only.shape == (2, 4, 4, 1)


def test_shuffle_keeps_labels_attached_and_is_deterministic_with_seed(tmp_path):
    d, imgs, lab = make_set(tmp_path, n=32)
    kw = dict(batch_size=8, shuffle_buffer=32, repeat=False, seed=7, deterministic=True)
    x1, l1 = collect(make_dataset(d, **kw))
    x2, l2 = collect(make_dataset(d, **kw))
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(l1, l2)
    order = l1[:, 0].astype(int)
    assert sorted(order) == list(range(32)) and order.tolist() != list(range(32))
    np.testing.assert_array_equal(index_of(x1), order)  # label travels with its image
    np.testing.assert_allclose(x1, to_net(imgs[order]), atol=1e-6)
    _, l3 = collect(make_dataset(d, **dict(kw, seed=8)))
    assert l3[:, 0].tolist() != order.tolist()
    with pytest.raises(ValueError, match="needs a seed"):
        make_dataset(d, deterministic=True)


def test_repeat_drops_remainder(tmp_path):
    d, _, _ = make_set(tmp_path, n=4)
    ds = make_dataset(d, batch_size=3, shuffle_buffer=0, deterministic=True)
    x, y = collect(ds, batches=4)
    assert ds.element_spec[0].shape == (3, 8, 8, 3)
    np.testing.assert_array_equal(y[:, 0], np.tile(np.arange(4), 3))


def test_mirror_augment(tmp_path):
    d, imgs, lab = make_set(tmp_path, n=32)
    kw = dict(batch_size=8, shuffle_buffer=0, repeat=False, mirror_augment=True, seed=3, deterministic=True)
    x, y = collect(make_dataset(d, **kw))
    ref = to_net(imgs)
    flipped = np.zeros(32, bool)
    for i in range(32):
        if np.allclose(x[i], ref[i], atol=1e-6):
            continue
        np.testing.assert_allclose(x[i], ref[i][:, ::-1, :], atol=1e-6)  # width axis of HWC
        flipped[i] = True
    assert 4 <= flipped.sum() <= 28  # both outcomes occur (p of failing ~ 1e-5)
    np.testing.assert_array_equal(y, lab)
    x2, _ = collect(make_dataset(d, **kw))
    np.testing.assert_array_equal(x, x2)
    # Unseeded: still each image is the original or its mirror.
    # Unordered too: each image is matched to its record through its label.
    x3, l3 = collect(make_dataset(d, batch_size=32, shuffle_buffer=0, repeat=False, mirror_augment=True))
    assert sorted(l3[:, 0].astype(int).tolist()) == list(range(32))
    for i, k in enumerate(l3[:, 0].astype(int)):
        assert np.allclose(x3[i], ref[k], atol=1e-6) or np.allclose(x3[i], ref[k][:, ::-1], atol=1e-6)


def test_max_images(tmp_path):
    d, _, _ = make_set(tmp_path, n=10, files=2)
    _, y = collect(make_dataset(d, batch_size=4, shuffle_buffer=0, repeat=False, max_images=7, deterministic=True))
    assert sorted(y[:, 0].astype(int).tolist()) == list(range(7))


def test_shard_by_record(tmp_path):
    d, imgs, _ = make_set(tmp_path, n=10)
    got = []
    for k in range(2):
        ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=k, num_replicas_in_sync=2)
        x, y = collect(make_dataset(d, batch_size=5, shuffle_buffer=0, repeat=False, input_context=ctx,
                                    deterministic=True))
        np.testing.assert_array_equal(index_of(x), y[:, 0].astype(int))
        got.append(y[:, 0].astype(int).tolist())
    assert got == [[0, 2, 4, 6, 8], [1, 3, 5, 7, 9]]


def test_shard_by_file(tmp_path):
    d, imgs, _ = make_set(tmp_path, n=10, files=2)
    got = []
    for k in range(2):
        ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=k, num_replicas_in_sync=2)
        x, y = collect(make_dataset(d, batch_size=5, repeat=False, seed=1, input_context=ctx))
        np.testing.assert_array_equal(index_of(x), y[:, 0].astype(int))
        got.append(sorted(y[:, 0].astype(int).tolist()))
    assert got == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    # Both files without sharding: everything once, labels aligned across the file boundary.
    x, y = collect(make_dataset(d, batch_size=3, shuffle_buffer=0, repeat=False, deterministic=True))
    assert sorted(y[:, 0].astype(int).tolist()) == list(range(10))
    np.testing.assert_allclose(x, to_net(imgs[y[:, 0].astype(int)]), atol=1e-6)


def test_per_replica_batches_under_mirrored_strategy(tmp_path):
    d, _, _ = make_set(tmp_path, n=16)
    script = textwrap.dedent(
        """
        import json, sys
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from stylegan2_tf.data import make_dataset
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        global_batch = 8
        dist = strategy.distribute_datasets_from_function(
            lambda ctx: make_dataset(sys.argv[1], batch_size=ctx.get_per_replica_batch_size(global_batch),
                                     shuffle_buffer=0, deterministic=True, input_context=ctx))
        images, labels = next(iter(dist))
        xs = strategy.experimental_local_results(images)
        ls = strategy.experimental_local_results(labels)
        print(json.dumps({"replicas": strategy.num_replicas_in_sync,
                          "shapes": [list(x.shape) for x in xs],
                          "ids": [y.numpy()[:, 0].astype(int).tolist() for y in ls]}))
        """
    )
    env = subprocess_env(PYTHONPATH=REPO_ROOT, CUDA_VISIBLE_DEVICES="")
    res = subprocess.run([sys.executable, "-c", script, d], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["replicas"] == 2
    assert out["shapes"] == [[4, 8, 8, 3], [4, 8, 8, 3]]
    # Replicas take successive batches of the one input pipeline, in order (resume relies on it).
    assert out["ids"] == [[0, 1, 2, 3], [4, 5, 6, 7]]
