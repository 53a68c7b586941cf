"""What every export serves: one part of the generator as a function of named tensors.

  generator   z [N, z_dim] float32, psi [] float32 (, class_idx [N] int32)  ->  images [N, H, W, C] uint8
  mapping     z [N, z_dim] float32, psi [] float32 (, class_idx [N] int32)  ->  w [N, num_ws, w_dim] float32
  synthesis   w [N, num_ws, w_dim] float32                                   ->  images [N, H, W, C] uint8

psi truncates the first `truncation_cutoff` w layers (default: the network's official cutoff) towards the stored w_avg;
class_idx picks the class of a conditional network (a one-hot label inside). Noise is fixed at export
time ('const': the stored noise maps, so the images are deterministic), and so is a progressive
network's level of detail. Every format is traced from
this module with the reference ops and the non-fused modulated convolution, so no export needs the
custom op library or grouped convolutions.
"""

import tensorflow as tf

from ..generate import to_uint8
from ..layers import NOISE_MODES
from ..networks.lod import level_of
from ..ops.implementation import use_implementation
from .errors import ExportError

PARTS = ("generator", "mapping", "synthesis")


class ServingModule(tf.Module):
    """One part of G with the exported interface: `serve` is a tf.function with a fixed signature."""

    def __init__(self, G, part="generator", truncation_cutoff=None, noise_mode="const"):
        super().__init__(name="stylegan2_" + part)
        if part not in PARTS:
            raise ExportError(f"--part {part!r}: expected one of {', '.join(PARTS)}")
        if noise_mode not in NOISE_MODES:
            raise ExportError(f"--noise-mode {noise_mode!r}: expected one of {', '.join(NOISE_MODES)}")
        if truncation_cutoff is not None and not 0 <= truncation_cutoff <= G.num_ws:
            raise ExportError(f"--truncation-cutoff {truncation_cutoff}: this network has {G.num_ws} w layers")
        if truncation_cutoff is None:  # the network's official cutoff: all layers, or 8 for config A
            truncation_cutoff = G.config.default_truncation[1]
        self.G, self.part, self.noise_mode = G, part, noise_mode
        self.truncation_cutoff = truncation_cutoff
        # Progressive networks (configs A-D) at their current level of detail, as a static branch:
        # the converters cannot lower the switch over levels.
        self.level = None if G.lod is None else level_of(G.lod.numpy(), G.synthesis.num_levels)
        self.variables_ = list(G.variables)  # tracked, so that a SavedModel holds them
        cfg = G.config
        z = tf.TensorSpec([None, cfg.z_dim], tf.float32, name="z")
        psi = tf.TensorSpec([], tf.float32, name="psi")
        w = tf.TensorSpec([None, G.num_ws, cfg.w_dim], tf.float32, name="w")
        if part == "synthesis":
            self.inputs = [w]
        else:
            self.inputs = [z, psi] + ([tf.TensorSpec([None], tf.int32, name="class_idx")] if cfg.c_dim else [])
        self.output_name = "w" if part == "mapping" else "images"
        out_shape = [None, G.num_ws, cfg.w_dim] if part == "mapping" else \
            [None, cfg.img_resolution, cfg.img_resolution, cfg.img_channels]
        self.output = tf.TensorSpec(out_shape, tf.float32 if part == "mapping" else tf.uint8, name=self.output_name)
        self.serve = tf.function(self._serve, input_signature=self.inputs)

    def _serve(self, *args):
        x = dict(zip((s.name for s in self.inputs), args))
        if self.part == "synthesis":
            ws = x["w"]
        else:
            c = None
            if self.G.config.c_dim:
                c = tf.one_hot(x["class_idx"], self.G.config.c_dim, dtype=tf.float32)
            ws = self.G.mapping(x["z"], c, truncation_psi=x["psi"], truncation_cutoff=self.truncation_cutoff)
            if self.part == "mapping":
                return {"w": tf.cast(ws, tf.float32)}
        img = self.G.synthesize(ws, level=self.level, noise_mode=self.noise_mode, fused_modconv=False)
        return {"images": to_uint8(tf.cast(img, tf.float32))}

    def concrete_function(self):
        """`serve` traced with the reference ops (no custom op library in any export)."""
        with use_implementation("ref"):
            return self.serve.get_concrete_function()

    def frozen_function(self):
        """`serve` with its variables folded into constants, positional inputs in `self.inputs` order,
        and one output, `{output_name: tensor}`: the form the TFLite converter and TF.js need."""
        from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
        frozen = convert_variables_to_constants_v2(self.concrete_function())
        names = [s.name for s in self.inputs]

        def call(*args):
            return {self.output_name: frozen(**dict(zip(names, args)))[0]}
        return tf.function(call, input_signature=self.inputs).get_concrete_function(), frozen

    def description(self):
        """The interface, written beside every export as signature.json."""
        def spec(s):
            return {"name": s.name, "shape": [-1 if d is None else d for d in s.shape], "dtype": s.dtype.name}
        cfg = self.G.config
        psi, cutoff = cfg.default_truncation
        return {
            "part": self.part, "inputs": [spec(s) for s in self.inputs], "outputs": [spec(self.output)],
            "z_dim": cfg.z_dim, "w_dim": cfg.w_dim, "num_ws": self.G.num_ws, "c_dim": cfg.c_dim,
            "resolution": cfg.img_resolution, "channels": cfg.img_channels,
            "truncation_cutoff": self.truncation_cutoff, "default_psi": psi, "noise_mode": self.noise_mode,
            "z_convention": "z of seed s is numpy.random.RandomState(s).randn(1, z_dim) as float32",
        }
