"""Conditional training end to end: a folder with one sub-folder per class -> dataset_tool ->
run_training.py -> a conditional snapshot -> run_generator.py --class; multi-hot labels through
the same path."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from conftest import run_python
from stylegan2_tf.data.synthetic import shapes_images

pytestmark = pytest.mark.slow


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
    # The default label style (config F: NVlabs/stylegan2-ada's label embedding and D's projection
    # onto an embedded label), written in the StyleGAN2-ADA TF1 format that legacy.py converts.
    assert (nets["G_ema"].config.label_mode, nets["D"].config.label_mode) == ("embed", "cmap")
    from stylegan2_tf.official import read_network_pickle
    G_tf1, D_tf1, _ = read_network_pickle(final)
    assert (G_tf1.build_func_name, D_tf1.build_func_name, G_tf1.static_kwargs["label_size"]) == \
        ("G_main", "D_main", 2)
    assert "LabelEmbed/weight" in G_tf1.components["mapping"].variables
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
    # A metric of the conditional snapshot: its fakes take the dataset's labels.
    from feature_net_weights import write_tiny_feature_files
    (tmp_path / "features").mkdir()
    files = write_tiny_feature_files(tmp_path / "features")
    r = run_python(["run_metrics.py", "--network", final, "--data-dir", tmp_path / "data", "--dataset", "shapes",
                    "--result-dir", tmp_path / "metrics", "--cache-dir", tmp_path / "cache", "--inception",
                    files["inception"], "--metrics", "fid50k_full", "--num-images", "8"], timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    record = json.loads((tmp_path / "metrics" / "metric-fid50k_full.jsonl").read_text().splitlines()[-1])
    assert np.isfinite(record["results"]["fid50k_full"]) and record["results"]["fid50k_full"] > 0


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


def test_label_styles_and_their_rules(tmp_path):
    """--label-style: each style's label modes; configs A-D project; a run recorded before the option
    existed resumes in the style it trained in (NVlabs/stylegan2's); conflicts are refused."""
    import pytest
    from stylegan2_tf.training import TrainingError, TrainingOptions
    for style, modes in ((None, ("embed", "cmap")), ("ada", ("embed", "cmap")), ("stylegan2", ("concat", "project"))):
        g, d = TrainingOptions(label_style=style).validate().network_configs(16, 3, 2)
        assert (g.label_mode, d.label_mode) == modes
    g, d = TrainingOptions(config="config-c").network_configs(16, 3, 2)
    assert (g.label_mode, d.label_mode) == ("concat", "project")
    recorded = TrainingOptions().to_dict()
    assert TrainingOptions.from_dict(recorded).labels == "ada"
    del recorded["label_style"]
    assert TrainingOptions.from_dict(recorded).labels == "stylegan2"
    with pytest.raises(TrainingError, match=r"^--label-style ada with --config config-b: the growing discriminator "
                                            r"of configs A-D conditions by projection only"):
        TrainingOptions(config="config-b", label_style="ada").validate()
    with pytest.raises(TrainingError, match=r"^--fp16-res and --conv-clamp go with --label-style ada"):
        TrainingOptions(label_style="stylegan2", fp16_res=2).validate()
