"""Image folders and zip archives -> TFRecords: pixels, order, labels, mode
rules, resizing, and every kind of bad input."""

import json
import os
import zipfile

import numpy as np
import PIL.Image
import pytest

from stylegan2_tf.data import (
    DatasetError,
    compare,
    create_from_images,
    create_from_zip,
    image_to_array,
    iter_images,
    load_image,
    read_dataset_info,
)

from _dataset_reference import records_of, official_shuffle  # noqa: E402


def save(path, arr, mode=None, **kw):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    PIL.Image.fromarray(arr, mode).save(path, **kw) if mode else PIL.Image.fromarray(arr).save(path, **kw)


def make_folder(root, n=6, res=16, seed=0, gray=False):
    """n images in nested folders; returns {relative name: HWC array} (lossless formats only)."""
    rng = np.random.RandomState(seed)
    out = {}
    for i in range(n):
        shape = (res, res) if gray else (res, res, 3)
        arr = rng.randint(0, 256, size=shape, dtype=np.uint8)
        rel = ("a/" if i % 2 else "b/c/") + "img%d.%s" % (i, "webp" if i == 4 else "png")
        kw = {"lossless": True} if rel.endswith(".webp") else {}
        save(os.path.join(root, *rel.split("/")), arr, **kw)
        out[rel] = arr if not gray else arr[:, :, None]
    return out


def top_file(d):
    info = read_dataset_info(d)
    return info.files[0]


# ---------------------------------------------------------------------------
# Round trips.


def test_folder_round_trip_shuffled_with_labels(tmp_path):
    src = str(tmp_path / "imgs")
    arrays = make_folder(src)
    with open(os.path.join(src, "notes.txt"), "w") as f:
        f.write("not an image")
    names = sorted(arrays)
    classes = {n: i % 3 for i, n in enumerate(names)}
    with open(os.path.join(src, "dataset.json"), "w") as f:
        json.dump({"labels": [[n, classes[n]] for n in names]}, f)

    out = str(tmp_path / "ds")
    assert create_from_images(out, src) == 6
    order = official_shuffle(6)
    recs = records_of(os.path.join(out, "ds-r04.tfrecords"))
    assert len(recs) == 6
    for i, rec in enumerate(recs):
        np.testing.assert_array_equal(rec, arrays[names[order[i]]].transpose(2, 0, 1))
    labels = np.load(os.path.join(out, "ds-rxx.labels"))
    assert labels.dtype == np.float32 and labels.shape == (6, 3)
    expected = np.zeros((6, 3), np.float32)
    expected[np.arange(6), [classes[names[j]] for j in order]] = 1
    np.testing.assert_array_equal(labels, expected)
    # r02: 4x box mean of the full image.
    for i, rec in enumerate(records_of(os.path.join(out, "ds-r02.tfrecords"))):
        full = arrays[names[order[i]]].astype(np.float64).transpose(2, 0, 1)
        ref = np.rint(full.reshape(3, 4, 4, 4, 4).mean(axis=(2, 4))).astype(np.uint8)
        np.testing.assert_array_equal(rec, ref)


def test_unshuffled_grayscale_and_zip_equal_folder(tmp_path):
    src = str(tmp_path / "gray")
    arrays = make_folder(src, n=4, res=8, gray=True, seed=5)
    out = str(tmp_path / "g")
    create_from_images(out, src, shuffle=False)
    got = list(iter_images(top_file(out)))
    for rec, name in zip(got, sorted(arrays)):
        assert rec.shape == (1, 8, 8)
        np.testing.assert_array_equal(rec, arrays[name].transpose(2, 0, 1))

    zpath = str(tmp_path / "gray.zip")
    with zipfile.ZipFile(zpath, "w") as z:
        for name in sorted(arrays):
            z.write(os.path.join(src, *name.split("/")), "root/" + name)
    out_zip = str(tmp_path / "gz")
    create_from_zip(out_zip, zpath, shuffle=False)
    r = compare(out, out_zip)
    assert r.identical and r.identical_images == 4

    with zipfile.ZipFile(zpath, "a") as z:  # dataset.json at the archive root
        z.writestr("dataset.json", json.dumps({"labels": [["root/" + n, [i, 0.5]] for i,
                                                          n in enumerate(sorted(arrays))]}))
    out_lab = str(tmp_path / "gzl")
    create_from_zip(out_lab, zpath, shuffle=False)
    np.testing.assert_array_equal(np.load(os.path.join(out_lab, "gzl-rxx.labels")), [[i, 0.5] for i in range(4)])


def test_jpeg_is_read(tmp_path):
    src = tmp_path / "jpg"
    arr = np.full((8, 8, 3), 100, np.uint8)
    save(str(src / "x.JPG"), arr, quality=95)
    out = str(tmp_path / "j")
    create_from_images(out, str(src))
    (img,) = list(iter_images(top_file(out)))
    assert img.shape == (3, 8, 8) and np.abs(img.astype(int) - 100).max() <= 2


# ---------------------------------------------------------------------------
# Mode rules.


def test_mode_rules():
    rng = np.random.RandomState(1)
    rgba = rng.randint(0, 256, (4, 4, 4), dtype=np.uint8)
    np.testing.assert_array_equal(image_to_array(PIL.Image.fromarray(rgba, "RGBA")), rgba[:, :, :3])
    la = rng.randint(0, 256, (4, 4, 2), dtype=np.uint8)
    np.testing.assert_array_equal(image_to_array(PIL.Image.fromarray(la, "LA")), la[:, :, :1])
    bilevel = PIL.Image.fromarray(np.array([[0, 255], [255, 0]], np.uint8)).convert("1")
    np.testing.assert_array_equal(image_to_array(bilevel)[:, :, 0], [[0, 255], [255, 0]])

    pal = PIL.Image.new("P", (2, 2))
    pal.putpalette([10, 20, 30, 200, 100, 50] + [0] * (256 * 3 - 6))
    pal.putdata([0, 1, 1, 0])
    np.testing.assert_array_equal(
        image_to_array(pal), [[[10, 20, 30], [200, 100, 50]], [[200, 100, 50], [10, 20, 30]]]
    )

    wide = np.array([[0, 255, 256, 65535]], np.uint16)
    sixteen = PIL.Image.fromarray(wide)
    assert sixteen.mode == "I;16"
    np.testing.assert_array_equal(image_to_array(sixteen)[:, :, 0], [[0, 0, 1, 255]])
    as_i = PIL.Image.fromarray(np.array([[0, 511, 65535, 1000]], np.int32), "I")
    np.testing.assert_array_equal(image_to_array(as_i)[:, :, 0], [[0, 1, 255, 3]])
    with pytest.raises(DatasetError, match=r"big\.png: .*outside 0\.\.65535"):
        image_to_array(PIL.Image.fromarray(np.array([[70000]], np.int32), "I"), "big.png")

    cmyk = PIL.Image.new("CMYK", (1, 1), (0, 255, 255, 0))  # pure red
    np.testing.assert_array_equal(image_to_array(cmyk), [[[255, 0, 0]]])
    with pytest.raises(DatasetError, match=r"float\.tif: unsupported image mode 'F'"):
        image_to_array(PIL.Image.new("F", (2, 2)), "float.tif")


def test_sixteen_bit_png_file(tmp_path):
    p = str(tmp_path / "deep.png")
    arr = (np.arange(16, dtype=np.uint16).reshape(4, 4) * 4000 + 123).astype(np.uint16)
    img = PIL.Image.fromarray(arr)
    assert img.mode == "I;16"
    img.save(p)
    np.testing.assert_array_equal(load_image(p)[:, :, 0], arr >> 8)


# ---------------------------------------------------------------------------
# Resizing.


def test_resize_box_and_center_crop(tmp_path):
    src = tmp_path / "r"
    rng = np.random.RandomState(2)
    wide = rng.randint(0, 256, (16, 24, 3), dtype=np.uint8)  # H=16, W=24
    save(str(src / "wide.png"), wide)
    out = str(tmp_path / "rd")
    create_from_images(out, str(src), resize=8, resize_filter="box")
    (img,) = list(iter_images(top_file(out)))
    crop = wide[:, 4:20].astype(np.float64)  # central 16x16
    ref = crop.reshape(8, 2, 8, 2, 3).mean(axis=(1, 3)).transpose(2, 0, 1)
    assert img.shape == (3, 8, 8)
    assert np.abs(img.astype(np.float64) - ref).max() <= 1.0

    with pytest.raises(DatasetError, match=r"wide\.png: .*not square.*center cropping is off"):
        create_from_images(str(tmp_path / "nc"), str(src), resize=8, center_crop=False)
    assert not (tmp_path / "nc").exists()


def test_resize_lanczos_keeps_constant_and_upsizes(tmp_path):
    src = tmp_path / "l"
    save(str(src / "a.png"), np.full((12, 12, 3), 77, np.uint8))
    save(str(src / "b.png"), np.full((40, 30, 3), 200, np.uint8))
    out = str(tmp_path / "ld")
    create_from_images(out, str(src), resize=16, shuffle=False)
    a, b = list(iter_images(top_file(out)))
    assert a.shape == b.shape == (3, 16, 16)
    assert (a == 77).all() and (b == 200).all()


# ---------------------------------------------------------------------------
# Bad input: each gives a DatasetError naming the file, and writes nothing.


def assert_nothing_written(tmp_path, name):
    assert not (tmp_path / name).exists()
    assert not [p for p in os.listdir(tmp_path) if ".partial-" in p]


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images")
    with pytest.raises(DatasetError, match="empty: no input images found"):
        create_from_images(str(tmp_path / "out"), str(tmp_path / "empty"))
    assert_nothing_written(tmp_path, "out")


@pytest.mark.parametrize("kind", ["garbage", "truncated"])
def test_corrupt_image(tmp_path, kind):
    src = tmp_path / "src"
    make_folder(str(src), n=3, res=8)
    bad = src / "b" / "c" / "bad.png"
    if kind == "garbage":
        bad.write_bytes(b"this is not a png at all")
    else:
        save(str(bad), np.zeros((8, 8, 3), np.uint8))
        bad.write_bytes(bad.read_bytes()[:40])
    with pytest.raises(DatasetError) as e:
        create_from_images(str(tmp_path / "out"), str(src))
    assert str(bad) in str(e.value) and "cannot read image" in str(e.value)
    assert_nothing_written(tmp_path, "out")


def test_mixed_sizes_without_resize(tmp_path):
    src = tmp_path / "src"
    save(str(src / "a.png"), np.zeros((8, 8, 3), np.uint8))
    save(str(src / "b.png"), np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(DatasetError, match=r"b\.png: image has shape \(3, 16, 16\).*\(3, 8, 8\)"):
        create_from_images(str(tmp_path / "out"), str(src), shuffle=False)
    assert_nothing_written(tmp_path, "out")
    create_from_images(str(tmp_path / "out"), str(src), resize=8)  # fine with --resize
    assert read_dataset_info(str(tmp_path / "out")).num_images == 2


def test_non_power_of_two_and_non_square(tmp_path):
    src = tmp_path / "npot"
    save(str(src / "x.png"), np.zeros((12, 12), np.uint8))
    with pytest.raises(DatasetError, match=r"x\.png: image side 12 is not a power of two"):
        create_from_images(str(tmp_path / "out"), str(src))
    src2 = tmp_path / "rect"
    save(str(src2 / "y.png"), np.zeros((8, 16), np.uint8))
    with pytest.raises(DatasetError, match=r"y\.png: image is 16x8 .*must be square"):
        create_from_images(str(tmp_path / "out"), str(src2))
    assert_nothing_written(tmp_path, "out")


def test_mixed_channels(tmp_path):
    src = tmp_path / "mix"
    save(str(src / "a.png"), np.zeros((8, 8, 3), np.uint8))
    save(str(src / "b.png"), np.zeros((8, 8), np.uint8))
    with pytest.raises(DatasetError, match=r"b\.png: image has 1 channel\(s\).*a\.png has 3"):
        create_from_images(str(tmp_path / "out"), str(src), shuffle=False)
    assert_nothing_written(tmp_path, "out")


def test_labels_count_differs(tmp_path):
    src = tmp_path / "lab"
    arrays = make_folder(str(src), n=3, res=8)
    names = sorted(arrays)
    with open(src / "dataset.json", "w") as f:
        json.dump({"labels": [[n, 0] for n in names[:2]]}, f)
    with pytest.raises(DatasetError, match=r"dataset\.json: has 2 labels but 3 images were found"):
        create_from_images(str(tmp_path / "out"), str(src))
    with open(src / "dataset.json", "w") as f:
        json.dump({"labels": [[n, 0] for n in names[:2]] + [["other.png", 1]]}, f)
    with pytest.raises(DatasetError, match="no label for image"):
        create_from_images(str(tmp_path / "out"), str(src))
    assert_nothing_written(tmp_path, "out")


def test_bad_zip(tmp_path):
    z = tmp_path / "not.zip"
    z.write_bytes(b"PK but not really")
    with pytest.raises(DatasetError, match=r"not\.zip: cannot open zip archive"):
        create_from_zip(str(tmp_path / "out"), str(z))


def test_corrupt_image_in_zip_is_named(tmp_path):
    zpath = str(tmp_path / "imgs.zip")
    ok = tmp_path / "ok.png"
    save(str(ok), np.zeros((8, 8, 3), np.uint8))
    with zipfile.ZipFile(zpath, "w") as z:
        z.write(str(ok), "d/ok.png")
        z.writestr("d/zz.png", b"\x89PNG broken")
    with pytest.raises(DatasetError, match=r"imgs\.zip:d/zz\.png: cannot read image"):
        create_from_zip(str(tmp_path / "out"), zpath)
    assert_nothing_written(tmp_path, "out")


def test_labels_from_class_folders(tmp_path):
    """One class per top-level sub-folder: the image of each record carries its folder's one-hot
    label (sorted folder names), and classes.json names the columns."""
    src = tmp_path / "src"
    rng = np.random.RandomState(3)
    folders = {"dog": 3, "cat": 2, "zebra": 1}
    by_pixels = {}
    for folder, n in folders.items():
        for i in range(n):
            arr = rng.randint(0, 256, size=(8, 8, 3), dtype=np.uint8)
            save(str(src / folder / ("sub" if i else "") / ("img%d.png" % i)), arr)
            by_pixels[arr.tobytes()] = folder
    out = str(tmp_path / "ds")
    assert create_from_images(out, str(src), shuffle=True, labels_from_folders=True) == 6
    info = read_dataset_info(out)
    assert info.class_names == ("cat", "dog", "zebra") and info.label_size == 3
    labels = info.load_labels()
    for image, label in zip(iter_images(info.files[0]), labels):
        folder = by_pixels[image.transpose(1, 2, 0).tobytes()]
        np.testing.assert_array_equal(label, np.eye(3)[["cat", "dog", "zebra"].index(folder)])
    assert json.load(open(os.path.join(out, "classes.json"))) == {"classes": ["cat", "dog", "zebra"]}


def test_labels_from_folders_refuses_loose_images_and_two_sources(tmp_path):
    src = tmp_path / "src"
    save(str(src / "cat" / "a.png"), np.zeros((8, 8, 3), np.uint8))
    save(str(src / "b.png"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DatasetError, match=r"image 'b\.png' is not in a class sub-folder \(1 such images\)"):
        create_from_images(str(tmp_path / "x"), str(src), labels_from_folders=True)
    os.remove(src / "b.png")
    (src / "dataset.json").write_text(json.dumps({"labels": [["cat/a.png", 0]]}))
    with pytest.raises(DatasetError, match="labels from a dataset.json and from folders: choose one"):
        create_from_images(str(tmp_path / "y"), str(src), labels_from_folders=True)
    assert not os.path.exists(tmp_path / "x") and not os.path.exists(tmp_path / "y")
