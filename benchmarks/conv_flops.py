"""Convolution FLOPs of StyleGAN2's networks and of the training step's main phases (config E/F
architectures: G 'skip', D 'resnet').

Counted per image (multiply-adds x 2): every convolution, 1x1 ones and the up/down-sampling
ones at their real cost (a 2x up-convolution as a stride-2 transposed conv over the input, a
down-convolution as a stride-2 conv); the FIR filters, dense layers and element-wise work are
left out. In forward-pass units per image:
  G main  G forward, D forward, D input gradient, G input + filter gradients   3 G + 2 D
  D main  G forward (fakes); D forward, input and filter gradients, for fakes and reals   G + 6 D
(a gradient pass costs one forward each for the input and the filter gradient). Path length
and R1 (second-order) are not counted.
"""


def forward_conv_flops(res, fmap_base):
    """(G, D) convolution FLOPs of one image's forward pass, config E/F architectures."""
    from stylegan2_tf.networks import DiscriminatorConfig, GeneratorConfig
    g_cfg = GeneratorConfig(img_resolution=res, fmap_base=fmap_base)
    d_cfg = DiscriminatorConfig(img_resolution=res, fmap_base=fmap_base)
    top = g_cfg.resolution_log2
    g = 16 * 9 * g_cfg.nf(1) ** 2 + 16 * g_cfg.nf(1) * 3                     # 4x4 conv, ToRGB
    for r in range(3, top + 1):
        cin, cout, side = g_cfg.nf(r - 2), g_cfg.nf(r - 1), 2 ** r
        g += (side // 2) ** 2 * 9 * cin * cout                                 # conv0, 2x up (transposed)
        g += side ** 2 * (9 * cout * cout + cout * 3)                          # conv1, ToRGB
    d = (2 ** top) ** 2 * 3 * d_cfg.nf(top - 1)                                # FromRGB
    for r in range(top, 2, -1):
        c, cout, side = d_cfg.nf(r - 1), d_cfg.nf(r - 2), 2 ** r
        d += side ** 2 * 9 * c * c                                             # conv0
        d += (side // 2) ** 2 * (9 * c * cout + c * cout)                      # conv1 and skip, 2x down
    d += 16 * 9 * (d_cfg.nf(1) + 1) * d_cfg.nf(1)                              # epilogue conv (+ mbstd)
    return 2 * g, 2 * d


def phase_conv_flops(res, fmap_base, minibatch):
    """{'G_main': FLOPs, 'D_main': FLOPs} of one minibatch of `minibatch` images."""
    g, d = forward_conv_flops(res, fmap_base)
    return {"G_main": minibatch * (3 * g + 2 * d), "D_main": minibatch * (g + 6 * d)}
