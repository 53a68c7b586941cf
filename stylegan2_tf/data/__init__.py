"""Datasets: NVIDIA's multi-resolution TFRecord format, conversion tools, tf.data pipeline.

Importing this package does not import TensorFlow; ``make_dataset`` (and the
other pipeline names) import it on first use.
"""

from stylegan2_tf.data.errors import DatasetError
from stylegan2_tf.data.tfrecord_format import (
    box_downsample,
    dataset_name,
    decode_image,
    encode_image,
    labels_path,
    load_labels,
    multi_resolution,
    one_hot,
    shuffled_order,
    tfrecord_path,
)
from stylegan2_tf.data.tfrecord_reader import count_records, iter_images, iter_records, verify_tfrecord_file
from stylegan2_tf.data.tfrecord_writer import MultiResolutionWriter
from stylegan2_tf.data.image_io import ImageSource, image_to_array, load_image, parse_labels_json, prepare_image
from stylegan2_tf.data.dataset_info import DatasetInfo, read_dataset_info
from stylegan2_tf.data.converters import (
    create_celeba,
    create_cifar10,
    create_cifar100,
    create_digits,
    create_from_images,
    create_from_zip,
    create_lsun,
    create_lsun_wide,
    create_mnist,
)
from stylegan2_tf.data.tools import CompareResult, compare, describe, display, extract, verify_dataset

_PIPELINE_NAMES = ("make_dataset", "parse_record", "parse_records", "to_network_range", "mirror_images")


def __getattr__(name):
    if name in _PIPELINE_NAMES:
        from stylegan2_tf.data import pipeline

        return getattr(pipeline, name)
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


__all__ = [
    "DatasetError",
    "DatasetInfo",
    "read_dataset_info",
    "make_dataset",
    "parse_record",
    "parse_records",
    "to_network_range",
    "mirror_images",
    "MultiResolutionWriter",
    "box_downsample",
    "multi_resolution",
    "encode_image",
    "decode_image",
    "count_records",
    "iter_records",
    "iter_images",
    "verify_tfrecord_file",
    "verify_dataset",
    "load_labels",
    "one_hot",
    "shuffled_order",
    "dataset_name",
    "tfrecord_path",
    "labels_path",
    "ImageSource",
    "load_image",
    "image_to_array",
    "prepare_image",
    "parse_labels_json",
    "create_from_images",
    "create_from_zip",
    "create_cifar10",
    "create_cifar100",
    "create_mnist",
    "create_digits",
    "create_lsun",
    "create_lsun_wide",
    "create_celeba",
    "display",
    "extract",
    "compare",
    "describe",
    "CompareResult",
]
