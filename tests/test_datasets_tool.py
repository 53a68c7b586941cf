"""datasets/dataset_tool.py: subcommands, exit codes, messages, and the
extract -> create -> compare round trip."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest

from conftest import subprocess_env

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(REPO_ROOT, "datasets", "dataset_tool.py")

_spec = importlib.util.spec_from_file_location("dataset_tool_under_test", TOOL)
tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tool)

from _dataset_reference import records_of  # noqa: E402


def make_images(folder, n=5, res=8, seed=0, labels=True):
    rng = np.random.RandomState(seed)
    os.makedirs(folder)
    names = []
    for i in range(n):
        name = "im%02d.png" % i
        PIL.Image.fromarray(rng.randint(0, 256, (res, res, 3), dtype=np.uint8)).save(os.path.join(folder, name))
        names.append(name)
    if labels:
        with open(os.path.join(folder, "dataset.json"), "w") as f:
            json.dump({"labels": [[nm, i % 4] for i, nm in enumerate(names)]}, f)
    return names


def test_official_subcommands_present():
    names = set(tool.build_parser()._subparsers._group_actions[0].choices)
    assert {
        "create_from_images", "create_from_zip", "create_cifar10", "create_cifar100", "create_mnist",
        "create_lsun", "create_lsun_wide", "create_celeba", "display", "extract", "compare", "info",
    } <= names


def test_script_runs_from_repo_root(tmp_path):
    src = str(tmp_path / "imgs")
    make_images(src, res=16)
    out = str(tmp_path / "ds")
    env = subprocess_env()
    env.pop("PYTHONPATH", None)  # the script must find the package by itself
    res = subprocess.run(
        [sys.executable, "datasets/dataset_tool.py", "create_from_images", out, src, "--shuffle", "0",
         "--resize", "8", "--resize-filter", "box"],
        cwd=REPO_ROOT, capture_output=True, text=True, env=env, timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "Created %s with 5 images" % out in res.stdout
    assert sorted(os.listdir(out)) == ["ds-r02.tfrecords", "ds-r03.tfrecords", "ds-rxx.labels"]


def test_extract_create_compare_round_trip(tmp_path, capsys):
    src = str(tmp_path / "imgs")
    make_images(src)
    a = str(tmp_path / "a")
    assert tool.main(["create_from_images", a, src]) == 0
    ext = str(tmp_path / "extracted")
    assert tool.main(["extract", a, ext]) == 0
    assert sorted(os.listdir(ext)) == ["dataset.json"] + ["img%08d.png" % i for i in range(5)]
    recs = records_of(os.path.join(a, "a-r03.tfrecords"))
    for i in range(5):
        png = np.asarray(PIL.Image.open(os.path.join(ext, "img%08d.png" % i)))
        np.testing.assert_array_equal(png, recs[i].transpose(1, 2, 0))
    labels = np.load(os.path.join(a, "a-rxx.labels"))
    with open(os.path.join(ext, "dataset.json")) as f:
        doc = json.load(f)
    assert [v for _, v in doc["labels"]] == labels.argmax(axis=1).tolist()

    b = str(tmp_path / "b")
    assert tool.main(["create_from_images", b, ext, "--shuffle", "0"]) == 0
    capsys.readouterr()
    assert tool.main(["compare", a, b]) == 0
    out = capsys.readouterr().out
    assert "Identical images: 5 / 5" in out and "Identical labels: 5 / 5" in out

    c = str(tmp_path / "c")  # same images, other order
    assert tool.main(["create_from_images", c, ext, "--shuffle", "1"]) == 0
    capsys.readouterr()
    assert tool.main(["compare", a, c]) == 2
    out = capsys.readouterr().out
    assert "is different" in out and "Identical images: 5 / 5" not in out


def test_compare_ignore_labels(tmp_path, capsys):
    src = str(tmp_path / "imgs")
    make_images(src)
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    tool.main(["create_from_images", a, src])
    os.remove(os.path.join(src, "dataset.json"))
    tool.main(["create_from_images", b, src])
    assert tool.main(["compare", a, b, "--ignore_labels", "1"]) == 0
    assert tool.main(["compare", a, b]) == 2


def test_display_writes_grid(tmp_path, capsys):
    src = str(tmp_path / "imgs")
    make_images(src)
    d = str(tmp_path / "d")
    tool.main(["create_from_images", d, src])
    png = str(tmp_path / "grid.png")
    capsys.readouterr()
    assert tool.main(["display", d, "--output", png]) == 0
    assert "Labels (argmax)" in capsys.readouterr().out
    grid = np.asarray(PIL.Image.open(png))
    assert grid.shape == (16, 24, 3)  # 5 images -> 3 columns x 2 rows of 8x8
    recs = records_of(os.path.join(d, "d-r03.tfrecords"))
    for i in range(5):
        r, c = divmod(i, 3)
        np.testing.assert_array_equal(grid[r * 8 : r * 8 + 8, c * 8 : c * 8 + 8], recs[i].transpose(1, 2, 0))
    assert (grid[8:, 16:] == 0).all()


def test_info_and_verify(tmp_path, capsys):
    src = str(tmp_path / "imgs")
    make_images(src, res=16)
    d = str(tmp_path / "d")
    tool.main(["create_from_images", d, src])
    capsys.readouterr()
    assert tool.main(["info", d, "--verify", "1"]) == 0
    out = capsys.readouterr().out
    for line in ("Resolution:  16", "Channels:    3", "Images:      5", "Label size:  4", "Resolutions: 16, 8, 4"):
        assert line in out
    assert out.count("Verified:") == 3

    path = os.path.join(d, "d-r03.tfrecords")  # damage a lower level: only --verify reads it
    raw = bytearray(open(path, "rb").read())
    raw[len(raw) // 5 * 4 + 20] ^= 0x55
    open(path, "wb").write(bytes(raw))
    assert tool.main(["info", d]) == 0
    capsys.readouterr()
    assert tool.main(["info", d, "--verify", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: %s: record 4" % path)


def test_errors_exit_1_and_write_nothing(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = str(tmp_path / "out")
    assert tool.main(["create_from_images", out, str(empty)]) == 1
    assert "Error: %s: no input images found" % empty in capsys.readouterr().err
    assert not os.path.exists(out)

    src = str(tmp_path / "imgs")
    make_images(src)
    assert tool.main(["create_from_images", out, src]) == 0
    assert tool.main(["create_from_images", out, src]) == 1
    assert "not empty (refusing to overwrite)" in capsys.readouterr().err
    os.remove(os.path.join(src, "dataset.json"))
    assert tool.main(["create_from_images", out, src, "--overwrite", "1"]) == 0
    assert sorted(os.listdir(out)) == ["out-r02.tfrecords", "out-r03.tfrecords"]  # old labels gone
    assert [p for p in os.listdir(tmp_path) if p.startswith(".")] == []

    assert tool.main(["create_from_images", str(tmp_path / "o2"), src, "--resize", "12"]) == 1
    assert "power of two" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tool.main(["create_from_images", str(tmp_path / "o3"), src, "--resize-filter", "bicubic"])


def test_labels_from_folders_on_the_command_line(tmp_path, capsys):
    import PIL.Image
    src = tmp_path / "imgs"
    for folder in ("ships", "cars"):
        (src / folder).mkdir(parents=True)
        PIL.Image.new("RGB", (8, 8), (10, 20, 30)).save(src / folder / "x.png")
    d = str(tmp_path / "d")
    assert tool.main(["create_from_images", d, str(src), "--labels-from-folders", "1"]) == 0
    capsys.readouterr()
    assert tool.main(["info", d]) == 0
    out = capsys.readouterr().out
    assert "Label size:  2" in out and "Classes:     0 cars, 1 ships" in out
    PIL.Image.new("RGB", (8, 8)).save(src / "loose.png")
    assert tool.main(["create_from_images", str(tmp_path / "e"), str(src), "--labels-from-folders", "1"]) == 1
    assert "Error: %s: image 'loose.png' is not in a class sub-folder" % src in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "e")
