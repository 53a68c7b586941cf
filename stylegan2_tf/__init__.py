"""StyleGAN2 in TensorFlow 2 / Keras 3.

Subpackages:
  ops       -- resampling (upfirdn_2d) and fused bias + activation, pure TensorFlow, NHWC
  networks  -- equalized-lr layers, modulated convolution, mapping / synthesis / discriminator
  official  -- safe reading (and writing) of NVIDIA's TF1 network pickles
  data      -- TFRecord format and tf.data input pipeline
"""

__version__ = "0.1.0"
