"""The FID Inception-v3 (the 2015-12-05 TensorFlow graph), as a Keras network.

This is not `keras.applications.InceptionV3`: the network every published FID, KID
and IS uses is Google's `classify_image_graph_def.pb` of 2015-12-05. It differs from
later Inception-v3s in its weights, 1008 classes, average pools that do not count
padding, and a max pool in the last block's pool branch. Its preprocessing is part
of the graph: cast to float, bilinear resize to 299x299 without half-pixel centres,
(x - 128) / 128.

`features(images_uint8)` returns the 2048 `pool_3` features (FID, KID);
`logits(images_uint8)` the 1008 logits computed without the output bias (IS, as
improved-GAN and NVIDIA's code). Weights come from the `.pb` itself or from
pytorch-fid's `pt_inception-2015-12-05-*.pth`, which holds the same numbers.

Layer names follow the graph (`mixed_4/tower_1/conv_2`); `torch_name` gives the
pytorch-fid (torchvision) name of the same convolution.
"""

import keras
import numpy as np
import tensorflow as tf

from stylegan2_tf.metrics.image_prep import resize_bilinear_legacy
from ..errors import UserError

INPUT_SIZE = 299
NUM_CLASSES = 1008
BN_EPSILON = 1e-3


class FeatureNetworkError(UserError):
    """A feature-network file is missing, unsafe, or does not hold the expected network."""


class ConvBN(keras.layers.Layer):
    """Convolution without bias, frozen batch normalisation, ReLU (one graph 'conv' scope)."""

    def __init__(self, in_channels, filters, kernel_size, strides=1, padding="SAME",
                 graph_name="", torch_name="", epsilon=BN_EPSILON, **kwargs):
        super().__init__(**kwargs)
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        self.graph_name, self.torch_name = graph_name, torch_name
        self.strides, self.padding, self.epsilon = int(strides), padding, float(epsilon)
        self.kernel = self.add_weight(shape=(kh, kw, in_channels, filters), initializer="zeros",
                                      trainable=False, name="kernel")
        self.gamma = self.add_weight(shape=(filters,), initializer="ones", trainable=False, name="gamma")
        self.beta = self.add_weight(shape=(filters,), initializer="zeros", trainable=False, name="beta")
        self.moving_mean = self.add_weight(shape=(filters,), initializer="zeros", trainable=False, name="moving_mean")
        self.moving_variance = self.add_weight(shape=(filters,), initializer="ones", trainable=False,
                                               name="moving_variance")
        self.built = True

    def call(self, x):
        x = tf.nn.conv2d(x, self.kernel, strides=self.strides, padding=self.padding)
        scale = tf.math.rsqrt(self.moving_variance + self.epsilon) * self.gamma
        return tf.nn.relu((x - self.moving_mean) * scale + self.beta)


def _avg_pool_3x3(x):
    return tf.nn.avg_pool2d(x, 3, 1, "SAME")  # TF's SAME average does not count the padding


def _max_pool_3x3(x, strides=1, padding="SAME"):
    return tf.nn.max_pool2d(x, 3, strides, padding)


class _Mixed(keras.layers.Layer):
    """An Inception block: parallel towers of ConvBN, concatenated on channels."""

    def __init__(self, name, in_channels, **kwargs):
        super().__init__(name=name, **kwargs)
        self.in_channels = in_channels
        self.convs = {}

    def conv(self, graph_suffix, torch_suffix, cin, filters, kernel, strides=1, padding="SAME"):
        layer = ConvBN(cin, filters, kernel, strides, padding, graph_name=f"{self.name}/{graph_suffix}",
                       torch_name=f"{self._torch_block}.{torch_suffix}", name=graph_suffix.replace("/", "_"))
        self.convs[graph_suffix] = layer
        return layer


class InceptionA(_Mixed):
    """35x35 block (`mixed`, `mixed_1`, `mixed_2`; torchvision Mixed_5b-d)."""

    def __init__(self, name, torch_block, cin, pool_features, d, **kwargs):
        super().__init__(name, cin, **kwargs)
        self._torch_block = torch_block
        self.b1 = self.conv("conv", "branch1x1", cin, 64 // d, 1)
        self.b5 = [self.conv("tower/conv", "branch5x5_1", cin, 48 // d, 1),
                   self.conv("tower/conv_1", "branch5x5_2", 48 // d, 64 // d, 5)]
        self.b3 = [self.conv("tower_1/conv", "branch3x3dbl_1", cin, 64 // d, 1),
                   self.conv("tower_1/conv_1", "branch3x3dbl_2", 64 // d, 96 // d, 3),
                   self.conv("tower_1/conv_2", "branch3x3dbl_3", 96 // d, 96 // d, 3)]
        self.bp = self.conv("tower_2/conv", "branch_pool", cin, pool_features // d, 1)
        self.out_channels = (64 + 64 + 96) // d + pool_features // d
        self.built = True

    def call(self, x):
        return tf.concat([self.b1(x), _chain(self.b5, x), _chain(self.b3, x), self.bp(_avg_pool_3x3(x))], axis=-1)


class InceptionB(_Mixed):
    """35 -> 17 reduction (`mixed_3`; torchvision Mixed_6a)."""

    def __init__(self, name, torch_block, cin, d, **kwargs):
        super().__init__(name, cin, **kwargs)
        self._torch_block = torch_block
        self.b3 = self.conv("conv", "branch3x3", cin, 384 // d, 3, 2, "VALID")
        self.b3d = [self.conv("tower/conv", "branch3x3dbl_1", cin, 64 // d, 1),
                    self.conv("tower/conv_1", "branch3x3dbl_2", 64 // d, 96 // d, 3),
                    self.conv("tower/conv_2", "branch3x3dbl_3", 96 // d, 96 // d, 3, 2, "VALID")]
        self.out_channels = 384 // d + 96 // d + cin
        self.built = True

    def call(self, x):
        return tf.concat([self.b3(x), _chain(self.b3d, x), _max_pool_3x3(x, 2, "VALID")], axis=-1)


class InceptionC(_Mixed):
    """17x17 block with factorised 7x7 convolutions (`mixed_4`..`mixed_7`; Mixed_6b-e)."""

    def __init__(self, name, torch_block, cin, c7, d, **kwargs):
        super().__init__(name, cin, **kwargs)
        self._torch_block = torch_block
        c7 //= d
        self.b1 = self.conv("conv", "branch1x1", cin, 192 // d, 1)
        self.b7 = [self.conv("tower/conv", "branch7x7_1", cin, c7, 1),
                   self.conv("tower/conv_1", "branch7x7_2", c7, c7, (1, 7)),
                   self.conv("tower/conv_2", "branch7x7_3", c7, 192 // d, (7, 1))]
        self.b7d = [self.conv("tower_1/conv", "branch7x7dbl_1", cin, c7, 1),
                    self.conv("tower_1/conv_1", "branch7x7dbl_2", c7, c7, (7, 1)),
                    self.conv("tower_1/conv_2", "branch7x7dbl_3", c7, c7, (1, 7)),
                    self.conv("tower_1/conv_3", "branch7x7dbl_4", c7, c7, (7, 1)),
                    self.conv("tower_1/conv_4", "branch7x7dbl_5", c7, 192 // d, (1, 7))]
        self.bp = self.conv("tower_2/conv", "branch_pool", cin, 192 // d, 1)
        self.out_channels = 4 * (192 // d)
        self.built = True

    def call(self, x):
        return tf.concat([self.b1(x), _chain(self.b7, x), _chain(self.b7d, x), self.bp(_avg_pool_3x3(x))], axis=-1)


class InceptionD(_Mixed):
    """17 -> 8 reduction (`mixed_8`; torchvision Mixed_7a)."""

    def __init__(self, name, torch_block, cin, d, **kwargs):
        super().__init__(name, cin, **kwargs)
        self._torch_block = torch_block
        self.b3 = [self.conv("tower/conv", "branch3x3_1", cin, 192 // d, 1),
                   self.conv("tower/conv_1", "branch3x3_2", 192 // d, 320 // d, 3, 2, "VALID")]
        self.b7 = [self.conv("tower_1/conv", "branch7x7x3_1", cin, 192 // d, 1),
                   self.conv("tower_1/conv_1", "branch7x7x3_2", 192 // d, 192 // d, (1, 7)),
                   self.conv("tower_1/conv_2", "branch7x7x3_3", 192 // d, 192 // d, (7, 1)),
                   self.conv("tower_1/conv_3", "branch7x7x3_4", 192 // d, 192 // d, 3, 2, "VALID")]
        self.out_channels = 320 // d + 192 // d + cin
        self.built = True

    def call(self, x):
        return tf.concat([_chain(self.b3, x), _chain(self.b7, x), _max_pool_3x3(x, 2, "VALID")], axis=-1)


class InceptionE(_Mixed):
    """8x8 block with split 1x3/3x1 heads (`mixed_9`, `mixed_10`; Mixed_7b-c).

    The 2015 graph's last block (`mixed_10`) max-pools in its pool tower where the
    paper's network average-pools; `pool="max"` reproduces it.
    """

    def __init__(self, name, torch_block, cin, pool, d, **kwargs):
        super().__init__(name, cin, **kwargs)
        self._torch_block = torch_block
        self.pool = pool
        self.b1 = self.conv("conv", "branch1x1", cin, 320 // d, 1)
        self.b3 = self.conv("tower/conv", "branch3x3_1", cin, 384 // d, 1)
        self.b3a = self.conv("tower/mixed/conv", "branch3x3_2a", 384 // d, 384 // d, (1, 3))
        self.b3b = self.conv("tower/mixed/conv_1", "branch3x3_2b", 384 // d, 384 // d, (3, 1))
        self.bd = [self.conv("tower_1/conv", "branch3x3dbl_1", cin, 448 // d, 1),
                   self.conv("tower_1/conv_1", "branch3x3dbl_2", 448 // d, 384 // d, 3)]
        self.bda = self.conv("tower_1/mixed/conv", "branch3x3dbl_3a", 384 // d, 384 // d, (1, 3))
        self.bdb = self.conv("tower_1/mixed/conv_1", "branch3x3dbl_3b", 384 // d, 384 // d, (3, 1))
        self.bp = self.conv("tower_2/conv", "branch_pool", cin, 192 // d, 1)
        self.out_channels = 320 // d + 4 * (384 // d) + 192 // d
        self.built = True

    def call(self, x):
        t = self.b3(x)
        u = _chain(self.bd, x)
        pooled = _max_pool_3x3(x) if self.pool == "max" else _avg_pool_3x3(x)
        return tf.concat([self.b1(x), self.b3a(t), self.b3b(t), self.bda(u), self.bdb(u), self.bp(pooled)], axis=-1)


def _chain(layers, x):
    for layer in layers:
        x = layer(x)
    return x


class InceptionV3FID(keras.Model):
    """The 2015-12-05 Inception graph from the normalised 299x299 input to pool_3 and logits.

    `width_divisor` > 1 divides every channel count (for tests with tiny networks);
    1 is the real network.
    """

    def __init__(self, width_divisor=1, num_classes=NUM_CLASSES, **kwargs):
        super().__init__(**kwargs)
        d = self.width_divisor = int(width_divisor)
        self.num_classes = int(num_classes)
        self.stem = [ConvBN(3, 32 // d, 3, 2, "VALID", "conv", "Conv2d_1a_3x3", name="conv"),
                     ConvBN(32 // d, 32 // d, 3, 1, "VALID", "conv_1", "Conv2d_2a_3x3", name="conv_1"),
                     ConvBN(32 // d, 64 // d, 3, 1, "SAME", "conv_2", "Conv2d_2b_3x3", name="conv_2")]
        self.stem2 = [ConvBN(64 // d, 80 // d, 1, 1, "VALID", "conv_3", "Conv2d_3b_1x1", name="conv_3"),
                      ConvBN(80 // d, 192 // d, 3, 1, "VALID", "conv_4", "Conv2d_4a_3x3", name="conv_4")]
        blocks = []
        c = 192 // d
        for spec in [("A", "mixed", "Mixed_5b", 32), ("A", "mixed_1", "Mixed_5c", 64), ("A", "mixed_2", "Mixed_5d", 64),
                     ("B", "mixed_3", "Mixed_6a"),
                     ("C", "mixed_4", "Mixed_6b", 128), ("C", "mixed_5", "Mixed_6c", 160),
                     ("C", "mixed_6", "Mixed_6d", 160), ("C", "mixed_7", "Mixed_6e", 192),
                     ("D", "mixed_8", "Mixed_7a"),
                     ("E", "mixed_9", "Mixed_7b", "avg"), ("E", "mixed_10", "Mixed_7c", "max")]:
            kind, name, torch_block = spec[:3]
            if kind == "A":
                block = InceptionA(name, torch_block, c, spec[3], d)
            elif kind == "B":
                block = InceptionB(name, torch_block, c, d)
            elif kind == "C":
                block = InceptionC(name, torch_block, c, spec[3], d)
            elif kind == "D":
                block = InceptionD(name, torch_block, c, d)
            else:
                block = InceptionE(name, torch_block, c, spec[3], d)
            blocks.append(block)
            c = block.out_channels
        self.blocks = blocks
        self.num_features = c
        self.softmax_weights = self.add_weight(shape=(c, self.num_classes), initializer="zeros",
                                               trainable=False, name="softmax_weights")
        self.softmax_biases = self.add_weight(shape=(self.num_classes,), initializer="zeros",
                                              trainable=False, name="softmax_biases")
        self.built = True

    def conv_layers(self):
        """Every ConvBN, in graph order."""
        layers = list(self.stem) + list(self.stem2)
        for block in self.blocks:
            layers += list(block.convs.values())
        return layers

    def call(self, x):
        """Normalised [N, 299, 299, 3] float -> pool_3 features [N, C]."""
        x = _chain(self.stem, x)
        x = _max_pool_3x3(x, 2, "VALID")                  # pool
        x = _chain(self.stem2, x)
        x = _max_pool_3x3(x, 2, "VALID")                  # pool_1
        x = _chain(self.blocks, x)
        x = tf.nn.avg_pool2d(x, 8, 1, "VALID")           # pool_3 (8x8 -> 1x1)
        return tf.reshape(x, [-1, self.num_features])


def preprocess_for_inception(images_uint8):
    """uint8 NHWC RGB of any size -> the graph's normalised 299x299 input."""
    x = tf.convert_to_tensor(images_uint8)
    if x.dtype != tf.uint8:
        raise TypeError(f"Inception expects uint8 images, got {x.dtype.name}")
    x = resize_bilinear_legacy(tf.cast(x, tf.float32), (INPUT_SIZE, INPUT_SIZE))
    return (x - 128.0) * 0.0078125                         # the graph's Sub and Mul


class InceptionFeatures:
    """The object `load_inception` returns: `.features()` and `.logits()` on uint8 images."""

    def __init__(self, network, source, batch_size=64):
        self.network = network
        self.source = source
        self.batch_size = int(batch_size)
        self._features_fn = tf.function(lambda x: network(preprocess_for_inception(x)), reduce_retracing=True)

    @property
    def num_features(self):
        return self.network.num_features

    def _batched(self, images, fn):
        images = np.asarray(images) if not tf.is_tensor(images) else images
        if images.shape[-1] == 1:                            # grayscale datasets, as NVIDIA's code
            images = tf.tile(images, [1, 1, 1, 3])
        n = int(images.shape[0])
        outs = [fn(images[i:i + self.batch_size]).numpy() for i in range(0, n, self.batch_size)]
        return np.concatenate(outs, axis=0) if outs else np.zeros([0, self.num_features], np.float32)

    def features(self, images_uint8):
        """[N, H, W, 3] uint8 -> [N, 2048] pool_3 features (float32)."""
        return self._batched(images_uint8, self._features_fn)

    def logits(self, images_uint8):
        """[N, H, W, 3] uint8 -> [N, 1008] logits without the output bias (for IS)."""
        return self.features(images_uint8) @ self.network.softmax_weights.numpy()

    def logits_with_bias(self, images_uint8):
        return self.logits(images_uint8) + self.network.softmax_biases.numpy()
