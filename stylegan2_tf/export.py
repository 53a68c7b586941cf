"""SavedModel export of a generator for serving (TF Serving, TFLite converter, C++).

The exported module has one signature, `serving_default`:
  inputs   z [N, z_dim] float32, psi [] float32 (truncation), and for conditional
           networks class_idx [N] int32
  output   images [N, H, W, C] uint8
Noise is fixed at export time ('const' by default: deterministic images).
"""

import os
import shutil
import tempfile

import tensorflow as tf

from .generate import to_uint8
from .layers import check_noise_mode
from .ops.implementation import use_implementation


class GeneratorServing(tf.Module):
    def __init__(self, G, noise_mode="const"):
        super().__init__(name="stylegan2_generator")
        check_noise_mode(noise_mode)
        self.G = G
        self.noise_mode = noise_mode
        self.variables_ = list(G.variables)  # tracked for the SavedModel
        z_spec = tf.TensorSpec([None, G.config.z_dim], tf.float32, name="z")
        psi_spec = tf.TensorSpec([], tf.float32, name="psi")
        if G.config.c_dim > 0:
            c_spec = tf.TensorSpec([None], tf.int32, name="class_idx")
            self.serve = tf.function(self._serve_conditional, input_signature=[z_spec, psi_spec, c_spec])
        else:
            self.serve = tf.function(self._serve, input_signature=[z_spec, psi_spec])

    def _images(self, z, psi, c=None):
        ws = self.G.mapping(z, c, truncation_psi=psi)
        img = self.G.synthesize(ws, noise_mode=self.noise_mode, fused_modconv=False)
        return {"images": to_uint8(img)}

    def _serve(self, z, psi):
        return self._images(z, psi)

    def _serve_conditional(self, z, psi, class_idx):
        return self._images(z, psi, tf.one_hot(class_idx, self.G.config.c_dim, dtype=tf.float32))


def export_saved_model(G, outdir, noise_mode="const"):
    """Write a SavedModel to `outdir` atomically (temp dir + rename)."""
    outdir = os.path.abspath(outdir)
    if os.path.exists(outdir) and os.listdir(outdir):
        raise FileExistsError(f"{outdir}: exists and is not empty")
    parent = os.path.dirname(outdir)
    os.makedirs(parent, exist_ok=True)
    module = GeneratorServing(G, noise_mode)
    tmp = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        # Traced with the reference ops: the SavedModel never needs the custom op library.
        with use_implementation("ref"):
            tf.saved_model.save(module, tmp, signatures={"serving_default": module.serve})
        if os.path.exists(outdir):
            os.rmdir(outdir)
        os.replace(tmp, outdir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return outdir
