"""Independent references for the dataset tests: the record schema, a plain reader, the shuffle."""

import numpy as np
import tensorflow as tf

# NVIDIA's record layout, written here independently of stylegan2_tf.data.
SCHEMA = {"shape": tf.io.FixedLenFeature([3], tf.int64), "data": tf.io.FixedLenFeature([], tf.string)}


def example_bytes(image_chw):
    """One record in NVIDIA's layout: the CHW shape and the raw uint8 bytes."""
    image_chw = np.asarray(image_chw, np.uint8)
    feature = {"shape": tf.train.Feature(int64_list=tf.train.Int64List(value=image_chw.shape)),
               "data": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image_chw.tobytes()]))}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def records_of(path):
    """All images of one .tfrecords file as uint8 [N, C, H, W]."""
    out = []
    for rec in tf.data.TFRecordDataset(path):
        f = tf.io.parse_single_example(rec, SCHEMA)
        out.append(np.frombuffer(f["data"].numpy(), np.uint8).reshape(f["shape"].numpy()))
    return np.stack(out)


def official_shuffle(n):
    """The order NVIDIA's dataset_tool writes shuffled images in."""
    order = np.arange(n)
    np.random.RandomState(123).shuffle(order)
    return order
