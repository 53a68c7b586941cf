"""VGG16 (torchvision layout) for LPIPS (conv taps) and precision/recall (fc2 features).

The 13 convolutions are named after torchvision's `features.<index>` so that
`vgg16-397923af.pth` maps one to one; `width_divisor` > 1 divides the channel and
fc widths for tests with tiny networks.
"""

import keras
import numpy as np
import tensorflow as tf

from stylegan2_tf.metrics.image_prep import resize_bilinear_legacy

# (torchvision features index, output channels); 'M' = 2x2 max pool.
VGG16_LAYOUT = [(0, 64), (2, 64), "M", (5, 128), (7, 128), "M", (10, 256), (12, 256), (14, 256), "M",
                (17, 512), (19, 512), (21, 512), "M", (24, 512), (26, 512), (28, 512), "M"]
# LPIPS taps the ReLU after these convolutions: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3.
LPIPS_TAPS = (2, 7, 14, 21, 28)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Conv3x3(keras.layers.Layer):
    """3x3 'same' convolution with bias and ReLU."""

    def __init__(self, in_channels, filters, torch_index, **kwargs):
        super().__init__(**kwargs)
        self.torch_index = int(torch_index)
        self.kernel = self.add_weight(shape=(3, 3, in_channels, filters), initializer="zeros",
                                      trainable=False, name="kernel")
        self.bias = self.add_weight(shape=(filters,), initializer="zeros", trainable=False, name="bias")
        self.built = True

    def call(self, x):
        return tf.nn.relu(tf.nn.conv2d(x, self.kernel, 1, "SAME") + self.bias)


class VGG16Convs(keras.layers.Layer):
    """The convolutional part; `call` returns the activations after each listed conv."""

    def __init__(self, width_divisor=1, **kwargs):
        super().__init__(**kwargs)
        d = self.width_divisor = int(width_divisor)
        convs, cin = [], 3
        for item in VGG16_LAYOUT:
            if item == "M":
                continue
            index, filters = item
            convs.append(Conv3x3(cin, filters // d, index, name=f"features_{index}"))
            cin = filters // d
        self.convs = convs
        self.out_channels = cin
        self.built = True

    def call(self, x, taps=()):
        outputs, convs = [], iter(self.convs)
        for item in VGG16_LAYOUT:
            if item == "M":
                x = tf.nn.max_pool2d(x, 2, 2, "VALID")
                continue
            x = next(convs)(x)
            if item[0] in taps:
                outputs.append(x)
                if len(outputs) == len(taps):
                    return outputs          # the pool after the last tap is not needed
        return x


class VGG16FC2(keras.Model):
    """VGG16 up to fc2 + ReLU: 224x224 ImageNet-normalised input -> [N, 4096] features."""

    def __init__(self, width_divisor=1, fc_width=4096, **kwargs):
        super().__init__(**kwargs)
        self.convs = VGG16Convs(width_divisor, name="features")
        flat = self.convs.out_channels * 7 * 7
        self.fc_width = int(fc_width)
        self.fc1_w = self.add_weight(shape=(flat, self.fc_width), initializer="zeros", trainable=False, name="fc1_w")
        self.fc1_b = self.add_weight(shape=(self.fc_width,), initializer="zeros", trainable=False, name="fc1_b")
        self.fc2_w = self.add_weight(shape=(self.fc_width, self.fc_width), initializer="zeros", trainable=False,
                                     name="fc2_w")
        self.fc2_b = self.add_weight(shape=(self.fc_width,), initializer="zeros", trainable=False, name="fc2_b")
        self.built = True

    def call(self, x):
        x = self.convs(x)                                   # [N, 7, 7, C]
        # torchvision flattens NCHW: channel-major order.
        x = tf.reshape(tf.transpose(x, [0, 3, 1, 2]), [tf.shape(x)[0], -1])
        x = tf.nn.relu(tf.matmul(x, self.fc1_w) + self.fc1_b)
        return tf.nn.relu(tf.matmul(x, self.fc2_w) + self.fc2_b)


def preprocess_for_vgg16(images_uint8):
    """uint8 NHWC -> 224x224, [0, 1], ImageNet mean/std (torchvision's convention)."""
    x = tf.convert_to_tensor(images_uint8)
    if x.dtype != tf.uint8:
        raise TypeError(f"VGG16 expects uint8 images, got {x.dtype.name}")
    x = resize_bilinear_legacy(tf.cast(x, tf.float32), (224, 224)) / 255.0
    return (x - tf.constant(IMAGENET_MEAN)) / tf.constant(IMAGENET_STD)


class VGG16Features:
    """The object `load_vgg16` returns: `.features(images_uint8) -> [N, 4096]`."""

    def __init__(self, network, source, batch_size=64):
        self.network, self.source, self.batch_size = network, source, int(batch_size)
        self._fn = tf.function(lambda x: network(preprocess_for_vgg16(x)), reduce_retracing=True)

    @property
    def num_features(self):
        return self.network.fc_width

    def features(self, images_uint8):
        if images_uint8.shape[-1] == 1:
            images_uint8 = tf.tile(images_uint8, [1, 1, 1, 3])
        n = int(images_uint8.shape[0])
        outs = [self._fn(images_uint8[i:i + self.batch_size]).numpy() for i in range(0, n, self.batch_size)]
        return np.concatenate(outs, axis=0) if outs else np.zeros([0, self.num_features], np.float32)
