"""Built-in converters on small synthetic inputs made here: CIFAR-10/100
pickle tarballs, MNIST idx files, LSUN LMDB (when `lmdb` is installed), CelebA."""

import gzip
import io
import os
import pickle
import struct
import tarfile

import numpy as np
import PIL.Image
import pytest

from stylegan2_tf.data import (
    DatasetError,
    compare,
    create_celeba,
    create_cifar10,
    create_cifar100,
    create_lsun,
    create_digits,
    create_lsun_wide,
    create_mnist,
    read_dataset_info,
)
from stylegan2_tf.data.tfrecord_writer import MultiResolutionWriter

from _dataset_reference import records_of, official_shuffle  # noqa: E402


def one_hot_ref(classes, n):
    out = np.zeros((len(classes), n), np.float32)
    out[np.arange(len(classes)), classes] = 1
    return out


def top(d):
    return read_dataset_info(d).files[0]


def labels_of(d):
    name = os.path.basename(d)
    return np.load(os.path.join(d, name + "-rxx.labels"))


# ---------------------------------------------------------------------------
# CIFAR.


def _pickle_bytes(obj):
    return pickle.dumps(obj, protocol=2)


def _tar(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_cifar10_tarball_and_folder(tmp_path):
    rng = np.random.RandomState(0)
    data = [rng.randint(0, 256, (2, 3072), dtype=np.uint8) for _ in range(5)]
    labels = [[int(v) for v in rng.randint(0, 10, 2)] for _ in range(5)]
    members = {}
    for b in range(5):
        batch = {"batch_label": "training batch %d of 5" % (b + 1), "labels": labels[b], "data": data[b],
                 "filenames": ["f%d_%d.png" % (b, i) for i in range(2)]}
        members["cifar-10-batches-py/data_batch_%d" % (b + 1)] = _pickle_bytes(batch)
    members["cifar-10-batches-py/test_batch"] = _pickle_bytes({"labels": [0], "data": data[0][:1]})
    tarball = str(tmp_path / "cifar-10-python.tar.gz")
    _tar(tarball, members)

    out = str(tmp_path / "cifar10")
    assert create_cifar10(out, tarball) == 10
    images = np.concatenate(data).reshape(10, 3, 32, 32)
    classes = np.concatenate(labels)
    order = official_shuffle(10)
    np.testing.assert_array_equal(records_of(top(out)), images[order])
    np.testing.assert_array_equal(labels_of(out), one_hot_ref(classes[order], 10))
    info = read_dataset_info(out)
    assert (info.resolution, info.channels, info.label_size) == (32, 3, 10)

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name, blob in members.items():
        (folder / os.path.basename(name)).write_bytes(blob)
    out2 = str(tmp_path / "cifar10b")
    create_cifar10(out2, str(folder))
    assert compare(out, out2).identical


def test_cifar100(tmp_path):
    rng = np.random.RandomState(1)
    data = rng.randint(0, 256, (3, 3072), dtype=np.uint8)
    fine = [5, 99, 42]
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    (folder / "train").write_bytes(_pickle_bytes({"data": data, "fine_labels": fine, "coarse_labels": [0, 1, 2]}))
    out = str(tmp_path / "c100")
    create_cifar100(out, str(folder))
    order = official_shuffle(3)
    np.testing.assert_array_equal(records_of(top(out)), data.reshape(3, 3, 32, 32)[order])
    np.testing.assert_array_equal(labels_of(out), one_hot_ref(np.array(fine)[order], 100))


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo should-not-run",))


def test_cifar_bad_inputs(tmp_path):
    folder = tmp_path / "evil"
    folder.mkdir()
    (folder / "train").write_bytes(pickle.dumps({"data": _Evil()}, protocol=2))
    with pytest.raises(DatasetError, match=r"train: cannot read pickle batch .*refusing to load"):
        create_cifar100(str(tmp_path / "out"), str(folder))

    tarball = str(tmp_path / "partial.tar.gz")
    _tar(tarball, {"cifar-10-batches-py/data_batch_1": _pickle_bytes({"data": np.zeros((1, 3072), np.uint8),
                                                                      "labels": [0]})})
    with pytest.raises(DatasetError, match=r"partial\.tar\.gz: tarball has no member named 'data_batch_2'"):
        create_cifar10(str(tmp_path / "out"), tarball)

    (folder / "train").write_bytes(_pickle_bytes({"data": np.zeros((2, 3072), np.uint8), "fine_labels": [1]}))
    with pytest.raises(DatasetError, match="1 labels for 2 images"):
        create_cifar100(str(tmp_path / "out"), str(folder))
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------
# MNIST.


def _idx(path, arr, count_override=None):
    dims = list(arr.shape)
    if count_override is not None:
        dims[0] = count_override
    header = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(">%dI" % arr.ndim, *dims)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def test_mnist(tmp_path):
    rng = np.random.RandomState(2)
    digits = rng.randint(0, 256, (5, 28, 28), dtype=np.uint8)
    classes = np.array([3, 1, 4, 1, 5], np.uint8)
    d = tmp_path / "mnist"
    d.mkdir()
    _idx(str(d / "train-images-idx3-ubyte.gz"), digits)
    _idx(str(d / "train-labels-idx1-ubyte.gz"), classes)
    out = str(tmp_path / "mn")
    assert create_mnist(out, str(d)) == 5
    order = official_shuffle(5)
    padded = np.zeros((5, 1, 32, 32), np.uint8)
    padded[:, 0, 2:30, 2:30] = digits
    np.testing.assert_array_equal(records_of(top(out)), padded[order])
    np.testing.assert_array_equal(labels_of(out), one_hot_ref(classes[order], 10))
    assert sorted(os.listdir(out)) == ["mn-r%02d.tfrecords" % k for k in (2, 3, 4, 5)] + ["mn-rxx.labels"]


def test_mnist_bad_inputs(tmp_path):
    d = tmp_path / "mnist"
    d.mkdir()
    _idx(str(d / "train-images-idx3-ubyte.gz"), np.zeros((5, 28, 28), np.uint8))
    _idx(str(d / "train-labels-idx1-ubyte.gz"), np.zeros(4, np.uint8))
    with pytest.raises(DatasetError, match=r"train-labels-idx1-ubyte\.gz: 4 labels for 5 images"):
        create_mnist(str(tmp_path / "out"), str(d))
    _idx(str(d / "train-images-idx3-ubyte.gz"), np.zeros((5, 28, 28), np.uint8), count_override=6)
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte\.gz: idx header announces"):
        create_mnist(str(tmp_path / "out"), str(d))
    (d / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte\.gz: cannot read idx file"):
        create_mnist(str(tmp_path / "out"), str(d))
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------
# scikit-learn's digits.


def _keys_cubic(t, a=-0.5):
    t = np.abs(t)
    return np.where(t < 1, (a + 2) * t ** 3 - (a + 3) * t ** 2 + 1,
                    np.where(t < 2, a * t ** 3 - 5 * a * t ** 2 + 8 * a * t - 4 * a, 0.0))


def _bicubic_upscale_matrix(n_in, n_out):
    """Rows: output pixels; Keys cubic (a = -0.5) at pixel centres, taps outside the image
    dropped and the rest renormalized (how Pillow treats the borders)."""
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        centre = (i + 0.5) * n_in / n_out
        lo, hi = max(int(centre - 2 + 0.5), 0), min(int(centre + 2 + 0.5), n_in)
        taps = np.arange(lo, hi)
        w = _keys_cubic(taps - centre + 0.5)
        m[i, lo:hi] = w / w.sum()
    return m


def test_digits_are_sklearns_scans_upscaled(tmp_path):
    datasets = pytest.importorskip("sklearn.datasets")
    scans = datasets.load_digits().images.astype(np.float64)
    classes = datasets.load_digits().target
    assert scans.shape == (1797, 8, 8)
    out = str(tmp_path / "digits32")
    assert create_digits(out, 32) == 1797
    m = _bicubic_upscale_matrix(8, 32)
    want = np.clip(np.round(np.einsum("yi,nij,xj->nyx", m, scans * 255 / 16, m)), 0, 255)
    order = official_shuffle(1797)
    got = records_of(top(out))
    assert got.shape == (1797, 1, 32, 32)
    diff = np.abs(got[:, 0].astype(np.int64) - want[order])
    assert diff.max() <= 1 and (diff == 0).mean() > 0.99  # float32 resampling: rounding ties only
    np.testing.assert_array_equal(labels_of(out), one_hot_ref(classes[order], 10))
    info = read_dataset_info(out)
    assert (info.resolution, info.channels, info.label_size) == (32, 1, 10)
    # No labels: an unconditional dataset; other resolutions.
    assert create_digits(str(tmp_path / "d16"), 16, labels=False) == 1797
    assert read_dataset_info(str(tmp_path / "d16")).label_size == 0
    m16 = _bicubic_upscale_matrix(8, 16)
    want16 = np.clip(np.round(np.einsum("yi,nij,xj->nyx", m16, scans * 255 / 16, m16)), 0, 255)
    assert np.abs(records_of(top(str(tmp_path / "d16")))[:, 0] - want16[order]).max() <= 1
    # The first 200 scans only (the small-data experiment): those scans and their classes.
    assert create_digits(str(tmp_path / "d200"), 16, max_images=200) == 200
    order200 = official_shuffle(200)
    assert np.abs(records_of(top(str(tmp_path / "d200")))[:, 0] - want16[:200][order200]).max() <= 1
    np.testing.assert_array_equal(labels_of(str(tmp_path / "d200")), one_hot_ref(classes[:200][order200], 10))


def test_digits_bad_input(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="power of two"):
        create_digits(str(tmp_path / "x"), 24)
    with pytest.raises(DatasetError, match="below the scans' 8 x 8"):
        create_digits(str(tmp_path / "x"), 4)
    with pytest.raises(DatasetError, match="max_images must be >= 1, got 0"):
        create_digits(str(tmp_path / "x"), 32, max_images=0)
    monkeypatch.setitem(__import__("sys").modules, "sklearn.datasets", None)  # not installed
    with pytest.raises(DatasetError, match=r"sklearn.datasets.load_digits: scikit-learn is not installed"):
        create_digits(str(tmp_path / "x"), 32)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("tty", [False, True])
def test_progress_is_a_line_per_step_unless_on_a_terminal(tmp_path, capsys, monkeypatch, tty):
    monkeypatch.setattr("sys.stdout.isatty", lambda: tty)
    with MultiResolutionWriter(str(tmp_path / "p"), progress_interval=2) as writer:
        for _ in range(5):
            writer.add_image(np.zeros((1, 4, 4), np.uint8))
    out = capsys.readouterr().out
    if tty:
        assert out.startswith("2 images\r4 images\r")
    else:
        assert out.splitlines()[:2] == ["2 images", "4 images"] and "\r" not in out


# ---------------------------------------------------------------------------
# LSUN (LMDB).


def _png_bytes(arr):
    buf = io.BytesIO()
    PIL.Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _lmdb(path, entries):
    lmdb = pytest.importorskip("lmdb")
    env = lmdb.open(path, map_size=16 << 20)
    with env.begin(write=True) as txn:
        for key, value in entries:
            txn.put(key, value)
    env.close()


def test_lsun(tmp_path, capsys):
    pytest.importorskip("lmdb")
    rng = np.random.RandomState(3)
    imgs = [rng.randint(0, 256, (24, 40, 3), dtype=np.uint8), rng.randint(0, 256, (20, 12, 3), dtype=np.uint8),
            rng.randint(0, 256, (16, 16), dtype=np.uint8)]
    db = str(tmp_path / "car_lmdb")
    _lmdb(db, [(b"a0", _png_bytes(imgs[0])), (b"a1", b"broken jpeg"), (b"a2", _png_bytes(imgs[1])),
               (b"a3", _png_bytes(imgs[2]))])
    out = str(tmp_path / "lsun")
    assert create_lsun(out, db, resolution=8) == 3
    assert "a1" in capsys.readouterr().err  # the broken entry is reported and skipped

    def ref(a):
        if a.ndim == 2:
            a = np.repeat(a[:, :, None], 3, axis=2)
        h, w = a.shape[:2]
        s = min(h, w)
        a = a[(h - s) // 2 : (h + s) // 2, (w - s) // 2 : (w + s) // 2]
        return np.asarray(PIL.Image.fromarray(a).resize((8, 8), PIL.Image.LANCZOS)).transpose(2, 0, 1)

    np.testing.assert_array_equal(records_of(top(out)), np.stack([ref(a) for a in imgs]))  # database order
    out_max = str(tmp_path / "lsun2")
    assert create_lsun(out_max, db, resolution=8, max_images=2) == 2


def test_lsun_wide(tmp_path):
    pytest.importorskip("lmdb")
    rng = np.random.RandomState(4)
    keep = rng.randint(0, 256, (30, 40, 3), dtype=np.uint8)  # kept: ch = round(16*30/40) = 12 rows
    narrow = rng.randint(0, 256, (30, 10, 3), dtype=np.uint8)  # skipped: narrower than 16
    flat = rng.randint(0, 256, (8, 40, 3), dtype=np.uint8)  # skipped: ch = 3 < 12
    db = str(tmp_path / "wide_lmdb")
    _lmdb(db, [(b"k0", _png_bytes(narrow)), (b"k1", _png_bytes(keep)), (b"k2", _png_bytes(flat))])
    out = str(tmp_path / "wide")
    assert create_lsun_wide(out, db, width=16, height=12) == 1
    (rec,) = records_of(top(out))
    rows = keep[9:21]
    body = np.asarray(PIL.Image.fromarray(rows).resize((16, 12), PIL.Image.LANCZOS))
    canvas = np.zeros((16, 16, 3), np.uint8)
    canvas[2:14] = body
    np.testing.assert_array_equal(rec, canvas.transpose(2, 0, 1))


def test_lsun_missing_database(tmp_path):
    pytest.importorskip("lmdb")
    with pytest.raises(DatasetError, match="cannot open LMDB"):
        create_lsun(str(tmp_path / "out"), str(tmp_path / "nope"), resolution=8)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------
# CelebA.


def test_celeba(tmp_path, capsys):
    rng = np.random.RandomState(5)
    folder = tmp_path / "celeba" / "img_align_celeba_png"
    folder.mkdir(parents=True)
    faces = [rng.randint(0, 256, (218, 178, 3), dtype=np.uint8) for _ in range(3)]
    for i, f in enumerate(faces):
        PIL.Image.fromarray(f).save(str(folder / ("%06d.png" % (i + 1))))
    out = str(tmp_path / "cel")
    assert create_celeba(out, str(tmp_path / "celeba")) == 3
    assert "202599" in capsys.readouterr().err
    order = official_shuffle(3)
    ref = np.stack([faces[j][121 - 64 : 121 + 64, 89 - 64 : 89 + 64].transpose(2, 0, 1) for j in order])
    np.testing.assert_array_equal(records_of(top(out)), ref)
    assert read_dataset_info(out).resolutions == (128, 64, 32, 16, 8, 4)

    PIL.Image.fromarray(faces[0][:100]).save(str(folder / "000004.png"))
    with pytest.raises(DatasetError, match=r"000004\.png: expected a 178x218 RGB image"):
        create_celeba(str(tmp_path / "cel2"), str(tmp_path / "celeba"))
    assert not (tmp_path / "cel2").exists()
