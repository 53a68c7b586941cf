"""tf.data input pipeline over multi-resolution TFRecord datasets.

``make_dataset`` reads the file(s) of one resolution and yields batches of
``(images, labels)``:

* images: float32 NHWC in [-1, 1], ``pixel * (2 / 255) - 1``;
* labels: float32 ``[N, label_size]`` (``label_size`` is 0 without a labels file).

Order of operations: records (tagged with their index in the dataset) ->
optional ``max_images`` cut -> shard (multi-worker) -> shuffle (serialized
records) -> repeat -> per record, in parallel: parse, CHW -> HWC and the
optional left-right flip, all on uint8 -> batch -> per batch: uint8 -> float32
in [-1, 1] and label lookup -> prefetch.  Labels are looked up by record
index, so they stay attached to their images through shuffling and sharding.
(Working per record on uint8 and converting to float once per batch is
several times faster on a CPU host than parsing and flipping whole float
batches; see benchmarks/data.py.)

Distribution: under ``tf.distribute`` call it from
``strategy.distribute_datasets_from_function`` with the ``InputContext`` and a
per-replica batch size::

    strategy.distribute_datasets_from_function(
        lambda ctx: make_dataset(path, batch_size=ctx.get_per_replica_batch_size(global_batch),
                                 input_context=ctx))

With several input pipelines (multi-worker) each pipeline reads a disjoint
part: whole files when there are at least as many files as pipelines,
otherwise every ``num_input_pipelines``-th record.

Determinism: with ``deterministic=True`` and a ``seed`` the sequence of
batches (shuffle order and mirror decisions) is the same on every run.  With
``deterministic=False`` tf.data may hand out batches out of order for speed;
a given ``seed`` still fixes the shuffle and which images get mirrored.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf

from stylegan2_tf.data.dataset_info import DatasetInfo, read_dataset_info
from stylegan2_tf.data.tfrecord_format import FEATURE_DATA, FEATURE_SHAPE

# Default shuffle buffer, in megabytes of decoded images (capped by the dataset size).
DEFAULT_SHUFFLE_MB = 1024
# Read buffer per TFRecord file.
READ_BUFFER_BYTES = 8 << 20

_SCALE = np.float32(2.0 / 255.0)


# The record layout: the CHW shape and the raw uint8 pixels.
_FEATURES = {
    FEATURE_SHAPE: tf.io.FixedLenFeature([3], tf.int64),
    FEATURE_DATA: tf.io.FixedLenFeature([], tf.string),
}


def parse_record(record: tf.Tensor, shape) -> tf.Tensor:
    """One serialized Example -> uint8 CHW (``shape`` is the static CHW shape)."""
    features = tf.io.parse_single_example(record, _FEATURES)
    data = tf.io.decode_raw(features[FEATURE_DATA], tf.uint8)
    return tf.reshape(data, [int(s) for s in shape])


def parse_records(records: tf.Tensor, shape) -> tf.Tensor:
    """Batch of serialized Examples -> uint8 NCHW (``shape`` is the static CHW shape)."""
    features = tf.io.parse_example(records, _FEATURES)
    data = tf.io.decode_raw(features[FEATURE_DATA], tf.uint8)
    return tf.reshape(data, [-1] + [int(s) for s in shape])


def to_network_range(images_nhwc_uint8: tf.Tensor) -> tf.Tensor:
    """uint8 (any layout) -> float32 in [-1, 1]: ``x * (2 / 255) - 1``."""
    return tf.cast(images_nhwc_uint8, tf.float32) * _SCALE - 1.0


def mirror_images(images_nhwc: tf.Tensor, uniform: tf.Tensor) -> tf.Tensor:
    """Flip image ``i`` of a NHWC batch left-right where ``uniform[i] >= 0.5``.

    For augmenting on the accelerator instead (``make_dataset`` flips per
    record on the host when ``mirror_augment=True``).
    """
    flip = tf.reshape(uniform >= 0.5, [-1, 1, 1, 1])
    return tf.where(flip, tf.reverse(images_nhwc, axis=[2]), images_nhwc)


def default_shuffle_buffer(info: DatasetInfo, num_images: Optional[int] = None,
                           shuffle_mb: int = DEFAULT_SHUFFLE_MB) -> int:
    bytes_per_image = int(np.prod(info.shape))
    n = info.num_images if num_images is None else num_images
    return int(max(1, min(n, (shuffle_mb << 20) // bytes_per_image)))


def make_dataset(
    tfrecord_dir: str,
    resolution: Optional[int] = None,
    batch_size: int = 32,
    mirror_augment: bool = False,
    shuffle_buffer: Optional[int] = None,
    repeat: bool = True,
    seed: Optional[int] = None,
    deterministic: bool = False,
    input_context: Optional[tf.distribute.InputContext] = None,
    with_labels: bool = True,
    drop_remainder: Optional[bool] = None,
    max_images: Optional[int] = None,
    info: Optional[DatasetInfo] = None,
    start_position: int = 0,
) -> tf.data.Dataset:
    """Batches of ``(images, labels)`` (or just images when ``with_labels=False``).

    Args:
      tfrecord_dir: dataset directory (NVIDIA layout; only the file(s) of the
        resolution read need to exist).
      resolution: which stored resolution to read (default: the largest).
      batch_size: images per batch (per replica under tf.distribute).
      mirror_augment: flip each image left-right with probability 1/2.
      shuffle_buffer: records in the shuffle buffer; None picks as many as fit
        in ``DEFAULT_SHUFFLE_MB`` (at most the dataset size); 0 disables shuffling.
      repeat: repeat indefinitely.
      seed: seed of the shuffle and of the mirror decisions.
      deterministic: fixed output order (requires ``seed`` when shuffling or mirroring).
      input_context: ``tf.distribute.InputContext`` for sharding across input pipelines.
      with_labels: yield ``(images, labels)``; else images only.
      drop_remainder: drop a last partial batch (default: ``repeat``).
      max_images: use only the first ``max_images`` records.
      info: a ``DatasetInfo`` already read for this directory and resolution.
      start_position: records this input pipeline has already delivered (resume).
        With ``repeat``, shuffling and a ``seed``, every epoch has its own seeded
        order, so the stream continues exactly where it stopped while reading at
        most one epoch's records to get there.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    if info is None:
        info = read_dataset_info(tfrecord_dir, resolution)
    shuffle_on = shuffle_buffer is None or shuffle_buffer > 0
    if deterministic and seed is None and (shuffle_on or mirror_augment):
        raise ValueError("deterministic=True needs a seed when shuffling or mirroring")
    if drop_remainder is None:
        drop_remainder = bool(repeat)

    num_pipelines, pipeline_id = 1, 0
    if input_context is not None:
        num_pipelines = int(input_context.num_input_pipelines)
        pipeline_id = int(input_context.input_pipeline_id)

    # Files with the global index of their first record, cut to max_images.
    limit = info.num_images if max_images is None else max(0, min(int(max_images), info.num_images))
    parts = []  # (path, first index, records to take)
    offset = 0
    for path, count in zip(info.files, info.file_counts):
        take = max(0, min(count, limit - offset))
        if take > 0:
            parts.append((path, offset, take))
        offset += count
    if not parts:
        raise ValueError("no images to read (max_images=%r)" % (max_images,))

    shard_by_file = num_pipelines > 1 and len(parts) >= num_pipelines
    if shard_by_file:
        parts = parts[pipeline_id::num_pipelines]
    local_count = sum(p[2] for p in parts)

    def read_part(path, first, take):
        ds = tf.data.TFRecordDataset(path, compression_type="", buffer_size=READ_BUFFER_BYTES)
        if take is not None:
            ds = ds.take(take)
        return ds.enumerate(start=first)

    if len(parts) == 1:
        ds = read_part(*parts[0])
    else:
        files_ds = tf.data.Dataset.from_tensor_slices(
            (
                tf.constant([p[0] for p in parts]),
                tf.constant([p[1] for p in parts], tf.int64),
                tf.constant([p[2] for p in parts], tf.int64),
            )
        )
        ds = files_ds.interleave(
            read_part,
            cycle_length=min(len(parts), 8),
            block_length=1,
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=deterministic or seed is not None,  # a seed must fix what the shuffle sees
        )

    if num_pipelines > 1 and not shard_by_file:
        ds = ds.shard(num_pipelines, pipeline_id)
        local_count = (local_count - pipeline_id + num_pipelines - 1) // num_pipelines

    start_position = int(start_position)
    if start_position < 0:
        raise ValueError("start_position must be >= 0")
    if shuffle_on:
        buffer = int(shuffle_buffer if shuffle_buffer is not None else default_shuffle_buffer(info, local_count))
    if shuffle_on and repeat and seed is not None:
        # Epoch e is shuffled with its own seed: any position is reachable from its epoch start.
        start_epoch, offset = divmod(start_position, max(local_count, 1))
        records = ds
        epoch_seed = tf.constant(int(seed), tf.int64)
        ds = tf.data.Dataset.range(start_epoch, np.iinfo(np.int64).max).flat_map(
            lambda epoch: records.shuffle(buffer, seed=epoch_seed * 1_000_003 + epoch, reshuffle_each_iteration=False))
        ds = ds.skip(offset)
    else:
        if shuffle_on:
            ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
        if repeat:
            ds = ds.repeat()
        if start_position:
            ds = ds.skip(start_position)

    shape = info.shape
    seeded_mirror = mirror_augment and seed is not None
    mirror_seed = tf.constant(int(seed), tf.int64) if seeded_mirror else None

    def decode(index, record, counter=None):
        image = tf.transpose(parse_record(record, shape), [1, 2, 0])  # HWC uint8
        if mirror_augment:
            if seeded_mirror:
                # One stream per (element position, input pipeline): a different draw every epoch.
                stream = counter * num_pipelines + pipeline_id
                u = tf.random.stateless_uniform([], seed=tf.stack([mirror_seed, stream]))
            else:
                u = tf.random.uniform([])
            image = tf.cond(u >= 0.5, lambda: tf.reverse(image, axis=[1]), lambda: image)
        return index, image

    if seeded_mirror:
        ds = ds.enumerate(start=start_position).map(
            lambda counter, item: decode(item[0], item[1], counter),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=deterministic,
        )
    else:
        ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)

    labels_const = None
    if with_labels and info.label_size > 0:
        labels_const = tf.constant(info.load_labels())
    label_size = info.label_size

    def convert(indices, images):
        images = to_network_range(images)
        if not with_labels:
            return images
        if labels_const is not None:
            labels = tf.gather(labels_const, indices)
        else:
            labels = tf.zeros([tf.shape(indices)[0], label_size], tf.float32)
            labels.set_shape([indices.shape[0], label_size])
        return images, labels

    ds = ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    ds = ds.prefetch(tf.data.AUTOTUNE)

    options = tf.data.Options()
    options.deterministic = bool(deterministic)
    if input_context is not None:
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return ds.with_options(options)
