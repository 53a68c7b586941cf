"""The multi-resolution TFRecord format: writer, box-downsampled levels, labels,
reading NVIDIA-layout files, and damaged files.

References are written independently here: a TFRecord framing reader with its
own CRC32C, the record schema for tf.io.parse_single_example, numpy block means.
"""

import os
import struct

import numpy as np
import pytest
import tensorflow as tf

from stylegan2_tf.data import (
    DatasetError,
    MultiResolutionWriter,
    count_records,
    iter_images,
    make_dataset,
    read_dataset_info,
    verify_dataset,
)
from stylegan2_tf.data import dataset_info as dataset_info_module

from _dataset_reference import example_bytes  # noqa: E402

# ---------------------------------------------------------------------------
# Independent references.

SCHEMA = {
    "shape": tf.io.FixedLenFeature([3], tf.int64),
    "data": tf.io.FixedLenFeature([], tf.string),
}


def crc32c_bitwise(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 * (crc & 1))
    return crc ^ 0xFFFFFFFF


def masked(crc):
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_framed_records(path):
    """TFRecord framing: u64 length, u32 masked crc(length), payload, u32 masked crc(payload)."""
    out = []
    with open(path, "rb") as f:
        raw = f.read()
    pos = 0
    while pos < len(raw):
        (length,) = struct.unpack_from("<Q", raw, pos)
        (len_crc,) = struct.unpack_from("<I", raw, pos + 8)
        assert len_crc == masked(crc32c_bitwise(raw[pos : pos + 8]))
        payload = raw[pos + 12 : pos + 12 + length]
        (data_crc,) = struct.unpack_from("<I", raw, pos + 12 + length)
        assert data_crc == masked(crc32c_bitwise(payload))
        out.append(payload)
        pos += 12 + length + 4
    assert pos == len(raw)
    return out


def parse_with_schema(record):
    feats = tf.io.parse_single_example(record, SCHEMA)
    shape = feats["shape"].numpy()
    data = np.frombuffer(feats["data"].numpy(), np.uint8)
    return data.reshape(shape)


def block_mean_rint(img_chw, factor):
    c, h, w = img_chw.shape
    x = img_chw.astype(np.float64).reshape(c, h // factor, factor, w // factor, factor)
    return np.rint(x.mean(axis=(2, 4))).astype(np.uint8)


def write_nvidia_style(tfrecord_dir, images_nchw, log2_levels, labels=None):
    """NVIDIA's layout written with TF's own writer and hand-built Examples."""
    os.makedirs(tfrecord_dir)
    name = os.path.basename(tfrecord_dir)
    top = int(np.log2(images_nchw.shape[2]))
    for log2 in log2_levels:
        factor = 2 ** (top - log2)
        path = os.path.join(tfrecord_dir, "%s-r%02d.tfrecords" % (name, log2))
        with tf.io.TFRecordWriter(path, tf.io.TFRecordOptions(compression_type="")) as w:
            for img in images_nchw:
                q = block_mean_rint(img, factor) if factor > 1 else img
                w.write(example_bytes(q))
    if labels is not None:
        with open(os.path.join(tfrecord_dir, name + "-rxx.labels"), "wb") as f:
            np.save(f, labels.astype(np.float32))


def rand_images(n, c, res, seed=0):
    return np.random.RandomState(seed).randint(0, 256, size=(n, c, res, res), dtype=np.uint8)


# ---------------------------------------------------------------------------
# Writer.


@pytest.mark.parametrize("channels", [1, 3])
def test_writer_levels_schema_and_box_average(tmp_path, channels):
    imgs = rand_images(5, channels, 32, seed=channels)
    out = str(tmp_path / "mini")
    with MultiResolutionWriter(out) as w:
        for img in imgs:
            w.add_image(img)
    assert sorted(os.listdir(out)) == ["mini-r%02d.tfrecords" % k for k in (2, 3, 4, 5)]
    for log2 in (5, 4, 3, 2):
        records = read_framed_records(os.path.join(out, "mini-r%02d.tfrecords" % log2))
        assert len(records) == 5
        factor = 2 ** (5 - log2)
        for img, rec in zip(imgs, records):
            got = parse_with_schema(rec)
            assert got.shape == (channels, 2**log2, 2**log2)
            np.testing.assert_array_equal(got, block_mean_rint(img, factor))


def test_downsampling_rounds_half_to_even(tmp_path):
    # 2x2 blocks with means 0.5, 1.5, 2.5, 254.5 -> rint: 0, 2, 2, 254.
    img = np.zeros((1, 8, 8), np.uint8)
    for k, (a, b) in enumerate([(0, 1), (1, 2), (2, 3), (254, 255)]):
        img[0, 0:2, 2 * k] = a
        img[0, 0:2, 2 * k + 1] = b
    out = str(tmp_path / "half")
    with MultiResolutionWriter(out) as w:
        w.add_image(img)
    (rec,) = read_framed_records(os.path.join(out, "half-r02.tfrecords"))
    got = parse_with_schema(rec)
    np.testing.assert_array_equal(got[0, 0], [0, 2, 2, 254])
    np.testing.assert_array_equal(got[0, 0], block_mean_rint(img, 2)[0, 0])


def test_labels_file_round_trip(tmp_path):
    imgs = rand_images(4, 3, 8)
    labels = np.eye(3, dtype=np.float32)[[2, 0, 1, 2]]
    out = str(tmp_path / "lab")
    with MultiResolutionWriter(out) as w:
        for img in imgs:
            w.add_image(img)
        w.set_labels(labels)
    raw = np.load(os.path.join(out, "lab-rxx.labels"))
    assert raw.dtype == np.float32 and raw.shape == (4, 3)
    np.testing.assert_array_equal(raw, labels)
    info = read_dataset_info(out)
    assert (info.resolution, info.channels, info.num_images, info.label_size) == (8, 3, 4, 3)


def test_writer_failure_leaves_nothing(tmp_path):
    out = tmp_path / "broken"
    with pytest.raises(RuntimeError):
        with MultiResolutionWriter(str(out)) as w:
            w.add_image(rand_images(1, 3, 8)[0])
            raise RuntimeError("interrupted")
    assert not out.exists()
    assert os.listdir(tmp_path) == []


def test_writer_label_count_mismatch(tmp_path):
    out = tmp_path / "mismatch"
    with pytest.raises(DatasetError, match="3 label rows for 2 images"):
        with MultiResolutionWriter(str(out)) as w:
            for img in rand_images(2, 3, 8):
                w.add_image(img)
            w.set_labels(np.zeros((3, 2), np.float32))
    assert os.listdir(tmp_path) == []


def test_writer_rejects_bad_shapes(tmp_path):
    with MultiResolutionWriter(str(tmp_path / "a")) as w:
        with pytest.raises(DatasetError, match="power of two"):
            w.add_image(np.zeros((3, 12, 12), np.uint8), "twelve.png")
        with pytest.raises(DatasetError, match="channels"):
            w.add_image(np.zeros((4, 8, 8), np.uint8), "four.png")
        w.add_image(np.zeros((3, 8, 8), np.uint8))
        with pytest.raises(DatasetError, match="other.png.*same size"):
            w.add_image(np.zeros((3, 16, 16), np.uint8), "other.png")
    with pytest.raises(DatasetError, match="not empty"):
        MultiResolutionWriter(str(tmp_path / "a"))


# ---------------------------------------------------------------------------
# Reading NVIDIA-layout files written independently.


def test_reads_nvidia_layout_all_levels(tmp_path):
    imgs = rand_images(6, 3, 32, seed=7)
    d = str(tmp_path / "ffhq")
    write_nvidia_style(d, imgs, [2, 3, 4, 5])
    info = read_dataset_info(d)
    assert (info.resolution, info.channels, info.num_images, info.label_size) == (32, 3, 6, 0)
    assert info.resolutions == (32, 16, 8, 4)
    assert info.files == (os.path.join(d, "ffhq-r05.tfrecords"),)
    got = np.stack(list(iter_images(info.files[0])))
    np.testing.assert_array_equal(got, imgs)
    # Lower level through the pipeline.
    ds = make_dataset(d, resolution=8, batch_size=6, shuffle_buffer=0, repeat=False, deterministic=True)
    images, labels = next(iter(ds))
    ref = np.stack([block_mean_rint(i, 4) for i in imgs]).transpose(0, 2, 3, 1).astype(np.float32)
    np.testing.assert_allclose(images.numpy(), ref * (2.0 / 255.0) - 1.0, atol=1e-6)
    assert labels.shape == (6, 0)
    assert [p[0] for p in verify_dataset(d)] == [os.path.join(d, "ffhq-r%02d.tfrecords" % k) for k in (2, 3, 4, 5)]


def test_reads_directory_with_only_top_file(tmp_path):
    imgs = rand_images(3, 3, 16, seed=3)
    labels = np.random.RandomState(0).rand(3, 5).astype(np.float32)
    d = str(tmp_path / "top")
    write_nvidia_style(d, imgs, [4], labels)
    info = read_dataset_info(d)
    assert (info.resolution, info.num_images, info.label_size) == (16, 3, 5)
    images, lab = next(iter(make_dataset(d, batch_size=3, shuffle_buffer=0, repeat=False, deterministic=True)))
    np.testing.assert_allclose(images.numpy(), imgs.transpose(0, 2, 3, 1) * (2.0 / 255.0) - 1.0, atol=1e-6)
    np.testing.assert_array_equal(lab.numpy(), labels)
    with pytest.raises(DatasetError, match="no file with resolution 8"):
        read_dataset_info(d, resolution=8)


def test_labels_count_differs_from_images(tmp_path):
    d = str(tmp_path / "bad_labels")
    write_nvidia_style(d, rand_images(4, 3, 8), [3, 2], labels=np.eye(5, dtype=np.float32))
    with pytest.raises(DatasetError, match=r"bad_labels-rxx\.labels: labels file has 5 rows but the dataset has 4"):
        read_dataset_info(d)


# ---------------------------------------------------------------------------
# Damaged files.


def _make_single(tmp_path, n=5):
    d = str(tmp_path / "dmg")
    write_nvidia_style(d, rand_images(n, 3, 8, seed=11), [3])
    return d, os.path.join(d, "dmg-r03.tfrecords")


def test_truncated_file_names_file_and_record(tmp_path):
    d, path = _make_single(tmp_path)
    raw = open(path, "rb").read()
    rec_len = len(raw) // 5
    with open(path, "wb") as f:
        f.write(raw[: 3 * rec_len + 40])  # records 0..2 complete, record 3 cut
    with pytest.raises(DatasetError) as e:
        count_records(path)
    assert path in str(e.value) and "record 3" in str(e.value) and "truncated" in str(e.value)
    with pytest.raises(DatasetError) as e:
        list(iter_images(path))
    assert path in str(e.value) and "record 3" in str(e.value)
    with pytest.raises(DatasetError, match="record 3"):
        read_dataset_info(d)


def test_corrupt_payload_names_file_and_record(tmp_path):
    d, path = _make_single(tmp_path)
    raw = bytearray(open(path, "rb").read())
    rec_len = len(raw) // 5
    raw[2 * rec_len + 12 + 30] ^= 0xFF  # a byte inside record 2's payload
    with open(path, "wb") as f:
        f.write(bytes(raw))
    assert count_records(path) == 5  # header-only scan cannot see it...
    with pytest.raises(DatasetError) as e:  # ...the full read does
        list(iter_images(path))
    assert path in str(e.value) and "record 2" in str(e.value)
    with pytest.raises(DatasetError, match="record 2"):
        verify_dataset(d)


def test_corrupt_length_header(tmp_path):
    d, path = _make_single(tmp_path)
    raw = bytearray(open(path, "rb").read())
    rec_len = len(raw) // 5
    raw[rec_len + 1] ^= 0x01  # length field of record 1
    with open(path, "wb") as f:
        f.write(bytes(raw))
    with pytest.raises(DatasetError, match=r"dmg-r03\.tfrecords: record 1: corrupt"):
        count_records(path)


def test_record_with_wrong_schema(tmp_path):
    d = tmp_path / "schema"
    d.mkdir()
    path = str(d / "schema-r03.tfrecords")
    with tf.io.TFRecordWriter(path) as w:
        ex = tf.train.Example(
            features=tf.train.Features(feature={"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"x"]))})
        )
        w.write(ex.SerializeToString())
    with pytest.raises(DatasetError, match=r"schema-r03\.tfrecords: record 0: .*'shape'"):
        read_dataset_info(str(d))


def test_empty_and_missing(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        read_dataset_info(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no \\*.tfrecords"):
        read_dataset_info(str(tmp_path / "empty"))


def test_count_is_cached_and_invalidated(tmp_path):
    d = str(tmp_path / "cache")
    write_nvidia_style(d, rand_images(3, 1, 8), [3])
    assert read_dataset_info(d).num_images == 3
    path = os.path.join(d, "cache-r03.tfrecords")
    key = dataset_info_module._file_key(path)
    assert dataset_info_module._count_cache[key] == 3
    os.remove(path)
    write_nvidia_style(str(tmp_path / "cache2"), rand_images(7, 1, 8), [3])
    os.replace(os.path.join(str(tmp_path / "cache2"), "cache2-r03.tfrecords"), path)
    assert read_dataset_info(d).num_images == 7


def test_verify_catches_levels_with_different_counts(tmp_path):
    d = str(tmp_path / "uneven")
    write_nvidia_style(d, rand_images(4, 3, 8), [3])
    write_nvidia_style(str(tmp_path / "other"), rand_images(3, 3, 8), [2])
    os.replace(str(tmp_path / "other" / "other-r02.tfrecords"), os.path.join(d, "uneven-r02.tfrecords"))
    assert read_dataset_info(d).num_images == 4  # reading the top level alone is fine
    with pytest.raises(DatasetError, match=r"uneven: resolutions hold different numbers of records \(8x8: 4, 4x4: 3\)"):
        verify_dataset(d)
