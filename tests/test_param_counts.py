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
