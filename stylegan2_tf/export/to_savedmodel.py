"""SavedModel: the generator for TF Serving, TensorFlow's C++/Java APIs and further converters.

The export folder is the SavedModel (saved_model.pb, variables/), with one signature,
`serving_default`, of the interface in `signatures.py`. The variables stay variables."""

import tensorflow as tf

from ..ops.implementation import use_implementation
from .logs import quiet_tensorflow


def write_savedmodel(module, folder):
    # Saving traces every function of the tracked Keras layers too: all with the reference ops, so
    # that loading never needs the custom op library.
    with use_implementation("ref"), quiet_tensorflow():
        tf.saved_model.save(module, folder, signatures={"serving_default": module.concrete_function()})
    return folder
