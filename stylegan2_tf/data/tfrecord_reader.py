"""Reading the files of a multi-resolution TFRecord dataset (the format of ``tfrecord_format``),
with every problem reported as a ``DatasetError`` naming the file and the record: the framing
walked without reading payloads (``count_records``), and records, images and whole files read
with their checksums checked."""

from __future__ import annotations

import os
import struct
from typing import Iterator, Optional, Sequence

import numpy as np

from stylegan2_tf.data.errors import DatasetError
from stylegan2_tf.data.tfrecord_format import decode_image

_HEADER_BYTES = 12  # uint64 length + uint32 masked CRC32C of the length
_FOOTER_BYTES = 4  # uint32 masked CRC32C of the payload

_CRC32C_TABLE = None


def _crc32c(data: bytes) -> int:
    global _CRC32C_TABLE
    if _CRC32C_TABLE is None:
        table = []
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
            table.append(c)
        _CRC32C_TABLE = table
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC32C_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """The masked CRC32C used in TFRecord framing."""
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def count_records(path: str) -> int:
    """Count records by walking the TFRecord framing (headers only, no payload read).

    Detects truncated files and corrupt length headers; raises DatasetError
    naming the file and the index of the first bad record.  Payload checksums
    are checked by :func:`verify_tfrecord_file`.
    """
    try:
        size = os.path.getsize(path)
        f = open(path, "rb")
    except OSError as exc:
        raise DatasetError(path, "cannot open TFRecord file (%s)" % exc.strerror) from None
    count = 0
    offset = 0
    with f:
        while offset < size:
            header = f.read(_HEADER_BYTES)
            if len(header) < _HEADER_BYTES:
                raise DatasetError(path, "record %d: truncated TFRecord file (incomplete header at byte %d)" % (count,
                                                                                                                offset))
            (length,) = struct.unpack("<Q", header[:8])
            (crc,) = struct.unpack("<I", header[8:])
            if masked_crc32c(header[:8]) != crc:
                raise DatasetError(path, "record %d: corrupt TFRecord file (bad length checksum at byte %d)" % (count,
                                                                                                                offset))
            end = offset + _HEADER_BYTES + length + _FOOTER_BYTES
            if end > size:
                raise DatasetError(
                    path, "record %d: truncated TFRecord file (record needs %d bytes, file ends at %d)" % (count, end,
                                                                                                           size)
                )
            f.seek(end)
            offset = end
            count += 1
    return count


def iter_records(path: str, start_index: int = 0) -> Iterator[bytes]:
    """Yield the serialized records of one file, checking all checksums.

    TensorFlow's DataLossError (truncation, checksum mismatch) is re-raised as
    DatasetError naming the file and the index of the record that failed.
    """
    import tensorflow as tf

    if not os.path.isfile(path):
        raise DatasetError(path, "TFRecord file not found")
    index = 0
    ds = tf.data.TFRecordDataset(path, compression_type="", buffer_size=8 << 20)
    it = iter(ds)
    while True:
        try:
            record = next(it)
        except StopIteration:
            return
        except tf.errors.DataLossError as exc:
            raise DatasetError(
                path, "record %d: truncated or corrupt TFRecord data (%s)" % (index + start_index,
                                                                              exc.message.split("}}")[-1].strip())
            ) from None
        except tf.errors.OpError as exc:
            raise DatasetError(path, "record %d: cannot read TFRecord file (%s)" % (index + start_index,
                                                                                    exc.message)) from None
        yield record.numpy()
        index += 1


def iter_images(path: str) -> Iterator[np.ndarray]:
    """Yield the uint8 CHW images of one file (checksums and schema checked)."""
    for index, record in enumerate(iter_records(path)):
        yield decode_image(record, path, index)


def verify_tfrecord_file(path: str, expected_shape: Optional[Sequence[int]] = None) -> int:
    """Read every record of a file, checking checksums, schema and shape; returns the count."""
    count = 0
    expected = tuple(expected_shape) if expected_shape is not None else None
    for index, image in enumerate(iter_images(path)):
        if expected is None:
            expected = image.shape
        elif image.shape != expected:
            raise DatasetError(path, "record %d: shape %s differs from %s" % (index, image.shape, expected))
        count += 1
    return count


def read_first_image(path: str) -> np.ndarray:
    """The first image of a file (for inspecting its shape)."""
    for image in iter_images(path):
        return image
    raise DatasetError(path, "TFRecord file holds no records")
