"""The bundled network (pretrained/): the file README.md describes, in the official format."""

import hashlib

import numpy as np

from conftest import ROOT
from stylegan2_tf.official import load_network_pkl, read_network_pickle

PKL = ROOT / "pretrained" / "stylegan2-digits32.pkl"


def test_bundled_network_is_the_recorded_official_pickle():
    recorded = (ROOT / "pretrained" / "stylegan2-digits32.sha256").read_text().split()
    assert recorded[1] == PKL.name and hashlib.sha256(PKL.read_bytes()).hexdigest() == recorded[0]
    G, D, Gs = read_network_pickle(PKL)
    assert (G.build_func_name, D.build_func_name, Gs.build_func_name) == ("G_main", "D_stylegan2", "G_main")
    assert Gs.components["synthesis"].build_func_name == "G_synthesis_stylegan2"
    nets = load_network_pkl(PKL)
    cfg = nets["G_ema"].config
    assert (cfg.img_resolution, cfg.img_channels, cfg.c_dim, cfg.z_dim, cfg.mapping_layers) == (32, 1, 0, 128, 4)
    assert [cfg.nf(stage) for stage in range(1, 5)] == [128, 128, 64, 32]


def test_bundled_network_draws_digit_like_images():
    Gs = load_network_pkl(PKL)["G_ema"]
    z = np.random.RandomState(0).randn(64, Gs.config.z_dim).astype(np.float32)
    img = Gs(z, noise_mode="const").numpy()[..., 0]
    # Like the scans: a black ground (the corners) with bright strokes in the middle.
    corners = np.concatenate([img[:, :4, :4], img[:, :4, -4:], img[:, -4:, :4], img[:, -4:, -4:]], axis=1)
    assert np.median(corners) < -0.9
    assert np.mean(img[:, 8:24, 8:24] > 0.5) > 0.15
    # Different seeds give different images (no collapse onto one output).
    assert np.mean(np.std(img, axis=0)) > 0.2
