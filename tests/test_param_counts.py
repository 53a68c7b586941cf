"""Trainable parameter totals of the paper's configs E and F (official numbers)."""

import pytest

from stylegan2_tf.networks import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig, num_trainable_params


@pytest.mark.parametrize("res, fmap_base, g_params, d_params", [
    (256, 16384, 30_034_338, 28_864_129),
    (512, 16384, 30_276_583, 28_982_849),
    (1024, 16384, 30_370_060, 29_012_513),
    (1024, 8192, 24_900_764, 24_038_161),
])
def test_trainable_parameter_totals(res, fmap_base, g_params, d_params):
    G = Generator(GeneratorConfig(img_resolution=res, fmap_base=fmap_base))
    D = Discriminator(DiscriminatorConfig(img_resolution=res, fmap_base=fmap_base))
    assert num_trainable_params(G) == g_params
    assert num_trainable_params(D) == d_params
    # Noise maps and w_avg exist but are not trainable.
    non_trainable = {v.path.split("/")[-1] for v in G.non_trainable_variables}
    assert non_trainable == {"noise_const", "w_avg"}


def test_channel_rule_nf():
    cfg = GeneratorConfig(fmap_base=16384, fmap_max=512)
    assert [cfg.nf(s) for s in range(1, 11)] == [512, 512, 512, 512, 512, 256, 128, 64, 32, 16]
    assert GeneratorConfig(fmap_base=64, fmap_min=1, fmap_max=512, img_resolution=16).nf(7) == 1


def test_networks_round_trip_through_keras_config():
    G = Generator(GeneratorConfig(img_resolution=32, fmap_base=256, c_dim=3, architecture="resnet"))
    G2 = Generator.from_config(G.get_config())
    assert G2.config == G.config and num_trainable_params(G2) == num_trainable_params(G)
    D = Discriminator(DiscriminatorConfig(img_resolution=32, fmap_base=256, architecture="skip", mbstd_group_size=None))
    D2 = Discriminator.from_config(D.get_config())
    assert D2.config == D.config and num_trainable_params(D2) == num_trainable_params(D)
    m = G.mapping.__class__.from_config(G.mapping.get_config())
    assert m.config == G.config
