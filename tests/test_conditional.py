"""Conditional training end to end: a folder with one sub-folder per class -> dataset_tool ->
run_training.py -> a conditional snapshot -> run_generator.py --class; multi-hot labels through
the same path."""

import json
import os

import numpy as np
from PIL import Image

from conftest import run_python
from stylegan2_tf.data.synthetic import shapes_images


def test_labelled_folder_to_conditional_snapshot_and_generation(tmp_path):
    images, labels = shapes_images(24, 16, seed=4)
    for i, (img, label) in enumerate(zip(images, labels)):
        folder = tmp_path / "photos" / ("disc", "square")[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.transpose(1, 2, 0)).save(folder / f"{i:03d}.png")
    r = run_python(["datasets/dataset_tool.py", "create_from_images", tmp_path / "data" / "shapes",
                    tmp_path / "photos", "--labels-from-folders", "1"])
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((tmp_path / "data" / "shapes" / "classes.json").read_text()) == {"classes": ["disc", "square"]}
    r = run_python(["run_training.py", "--data-dir", tmp_path / "data", "--dataset", "shapes", "--result-dir",
                    tmp_path / "results", "--fmap-base", "64", "--fmap-max", "32", "--latent-dim", "16",
                    "--mapping-layers", "2", "--batch", "4", "--batch-gpu", "4", "--total-kimg", "0.008",
                    "--tick-kimg", "0.008"], timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    (run_dir,) = list((tmp_path / "results").iterdir())
    final = run_dir / "network-final.pkl"
    from stylegan2_tf.official import load_network_pkl
    nets = load_network_pkl(final)
    assert nets["G_ema"].config.c_dim == 2 and nets["D"].config.c_dim == 2
    out = {}
    for cls in (0, 1):
        r = run_python(["run_generator.py", "generate-images", "--network", final, "--seeds", "3", "--class", cls,
                        "--truncation-psi", "1", "--outdir", tmp_path / f"gen{cls}"])
        assert r.returncode == 0, r.stderr[-2000:]
        out[cls] = np.asarray(Image.open(tmp_path / f"gen{cls}" / "seed0003.png")).astype(int)
    # The class enters the image: the same seed differs between the classes, and equals G_ema's own
    # image for that label (z = RandomState(seed).randn, psi 1, constant noise).
    assert np.abs(out[0] - out[1]).max() > 0
    from stylegan2_tf.generate import seed_to_z, to_uint8
    for cls in (0, 1):
        img = to_uint8(nets["G_ema"](seed_to_z(3, 16), c=np.eye(2, dtype=np.float32)[[cls]], truncation_psi=1.0,
                                     noise_mode="const")).numpy()[0]
        assert np.abs(img.astype(int) - out[cls]).max() <= 1


def test_multi_hot_labels_train_through_the_same_path(tmp_path):
    from stylegan2_tf.data import create_from_images
    from stylegan2_tf.training import Trainer, TrainingOptions
    images, _ = shapes_images(8, 16, seed=6)
    rows = np.random.RandomState(1).randint(0, 2, size=(8, 3)).astype(float).tolist()   # a vector per image
    (tmp_path / "photos").mkdir()
    for i, img in enumerate(images):
        Image.fromarray(img.transpose(1, 2, 0)).save(tmp_path / "photos" / f"{i}.png")
    (tmp_path / "photos" / "dataset.json").write_text(json.dumps({"labels": [[f"{i}.png", r] for i, r in
                                                                              enumerate(rows)]}))
    create_from_images(str(tmp_path / "data" / "multi"), str(tmp_path / "photos"), shuffle=False)
    t = Trainer(TrainingOptions(data_dir=str(tmp_path / "data"), dataset="multi", result_dir=str(tmp_path / "r"),
                                fmap_base=64, fmap_max=32, latent_dim=16, mapping_layers=2, batch=4, batch_gpu=4,
                                total_kimg=0.004, tick_kimg=0.004), echo=False)
    assert t.g_cfg.c_dim == 3 and t.data_info.load_labels().tolist() == rows
    t.train()
    assert os.path.isfile(os.path.join(t.run_dir, "network-final.pkl"))
