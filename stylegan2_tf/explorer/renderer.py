"""RenderRequest -> images: the generator's traced mapping and synthesis, with probes that return
the output of a chosen layer (feature maps) and of every ToRGB.

Probes wrap the `call` of the layers named in `layers()`: while a trace asks for a layer, its output
is kept and returned beside the image. tf.function keeps one trace per (noise mode, layer, ToRGB)
asked for, so moving a slider reuses a trace."""

import threading
import time

import numpy as np
import tensorflow as tf

from ..editing import apply_direction
from ..generate import seed_to_z, to_uint8
from ..layers import SynthesisLayer, ToRGB
from ..layers.stylegan1 import AdaINLayer
from ..projector import noise_variables
from .errors import ExplorerError

PROBED = (SynthesisLayer, AdaINLayer)


def _probe_points(G):
    """[(name, layer, kind)]: feature layers in order, then the ToRGB layers (kind 'torgb')."""
    features, torgbs = [], []
    for block in getattr(G.synthesis, "blocks", []):
        for layer in (getattr(block, "conv0", None), getattr(block, "conv1", None)):
            if isinstance(layer, PROBED):
                features.append((f"{block.name}/{layer.name}", layer, "features"))
        if isinstance(getattr(block, "torgb", None), ToRGB):
            torgbs.append((f"{block.name}/torgb", block.torgb, "torgb"))
    return features + torgbs


class Renderer:
    def __init__(self, G, directions=None):
        self.G, self.directions = G, directions
        self.points = _probe_points(G)
        self.active = None  # the probe outputs of the trace being built
        self.wanted = ()
        for name, layer, _ in self.points:
            self._install(name, layer)
        self.lock = threading.Lock()  # one render at a time (the noise strengths are scaled in place)
        self.noise_strengths = [layer.noise_strength for _, layer, kind in self.points
                                if kind == "features" and getattr(layer, "use_noise", False)]
        self.projection = None  # (ws [1, num_ws, w_dim], noise maps) of the last projection
        self._map = tf.function(self._map_impl)
        self._synth = tf.function(self._synth_impl)

    def _install(self, name, layer):
        original = layer.call

        def call(*args, **kwargs):
            out = original(*args, **kwargs)
            if self.active is not None and name in self.wanted:
                self.active[name] = out
            return out
        layer.call = call

    # ----------------------------------------------------------------- facts for the page

    def layers(self):
        return [name for name, _, kind in self.points if kind == "features"]

    def torgb_layers(self):
        return [name for name, _, kind in self.points if kind == "torgb"]

    # ----------------------------------------------------------------- traced parts

    def _map_impl(self, z, c, psi, cutoff):
        return self.G.mapping(z, c, truncation_psi=psi, truncation_cutoff=cutoff)

    def _synth_impl(self, ws, noise_seed, noise_mode, wanted):
        self.active, self.wanted = {}, wanted
        try:
            img = self.G.synthesize(ws, noise_mode=noise_mode, noise_seed=noise_seed if noise_mode == "random"
                                    else None)
            probes = {name: tf.cast(self.active[name], tf.float32) for name in wanted}
        finally:
            self.active, self.wanted = None, ()
        return tf.cast(img, tf.float32), probes

    # ----------------------------------------------------------------- w

    def w_of(self, seed, req):
        c = None
        if self.G.config.c_dim:
            c = tf.one_hot([req.class_idx], self.G.config.c_dim, dtype=tf.float32)
        return self._map(tf.constant(seed_to_z(seed, self.G.config.z_dim)), c, tf.constant(req.psi, tf.float32),
                         req.cutoff).numpy()

    def ws(self, req):
        """The request's w [1, num_ws, w_dim]: seed (or projection), mixing, directions, pad."""
        if req.source == "projection":
            if self.projection is None:
                raise ExplorerError("source: no projection has finished yet")
            ws = self.projection[0].copy()
        else:
            ws = self.w_of(req.seed, req)
        if req.mix_seed is not None:
            first, last = req.mix_layers
            ws[:, first:last + 1] = self.w_of(req.mix_seed, req)[:, first:last + 1]
        moves = list(req.directions)
        if req.pad is not None:
            moves += [(req.pad[0], req.pad[2]), (req.pad[1], req.pad[3])]
        for index, strength in moves:
            if strength:
                ws = apply_direction(ws, self.directions, index, strength)
        return ws.astype(np.float32)

    # ----------------------------------------------------------------- render

    def render(self, req):
        """-> dict: image uint8 [H, W, C], ws, features float [h, w, ch] or None, torgb {name: uint8}, ms."""
        with self.lock:
            start = time.perf_counter()
            ws = self.ws(req)
            wanted = tuple(([req.layer] if req.layer else []) + (self.torgb_layers() if req.torgb else []))
            saved = [v.numpy() for v in self.noise_strengths] if req.noise_strength != 1 else None
            projected = None
            try:
                if saved is not None:
                    for v, value in zip(self.noise_strengths, saved):
                        v.assign(value * req.noise_strength)
                if req.source == "projection":
                    projected = [v.numpy() for v in noise_variables(self.G)]
                    for v, value in zip(noise_variables(self.G), self.projection[1]):
                        v.assign(value)
                seed = tf.constant([req.seed % 2 ** 31, req.seed // 2 ** 31], tf.int32)
                img, probes = self._synth(tf.constant(ws), seed, req.noise_mode, wanted)
            finally:
                if saved is not None:
                    for v, value in zip(self.noise_strengths, saved):
                        v.assign(value)
                if projected is not None:
                    for v, value in zip(noise_variables(self.G), projected):
                        v.assign(value)
            out = {"image": to_uint8(img).numpy()[0], "ws": ws,
                   "features": probes[req.layer].numpy()[0] if req.layer else None,
                   "torgb": {name: to_uint8(probes[name]).numpy()[0] for name in wanted if name != req.layer}}
            out["ms"] = (time.perf_counter() - start) * 1000
            return out
