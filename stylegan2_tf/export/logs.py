"""TensorFlow's savers and converters log a page of INFO/WARNING notes per export; exports keep quiet."""

import contextlib

from absl import logging as absl_logging


@contextlib.contextmanager
def quiet_tensorflow():
    """Only errors from TensorFlow's Python logging (absl) inside the block."""
    verbosity = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.ERROR)
    try:
        yield
    finally:
        absl_logging.set_verbosity(verbosity)
