"""Mapping network f: z (+ label) -> w, with the running average of w for truncation."""

import keras
import tensorflow as tf

from ..layers import EqualizedDense, normalize_2nd_moment
from .config import ConfigSerializable, GeneratorConfig


class MappingNetwork(ConfigSerializable, keras.layers.Layer):
    """z [N, z_dim], c [N, c_dim] -> w broadcast to [N, num_ws, w_dim].

    `w_avg` (NVIDIA's `dlatent_avg`) tracks the mean of w during training with
    decay `w_avg_beta`; truncation lerps towards it: w' = w_avg + psi * (w - w_avg),
    on the first `truncation_cutoff` layers only when a cutoff is given.
    """

    config_class = GeneratorConfig

    def __init__(self, config: GeneratorConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        cfg = config
        self.num_ws = cfg.num_ws
        self.embed = None
        self.label_concat = None
        features = cfg.z_dim
        if cfg.c_dim > 0:
            if cfg.label_mode == "embed":
                embed_dim = cfg.label_fmaps if cfg.label_fmaps is not None else cfg.z_dim
                self.embed = EqualizedDense(cfg.c_dim, embed_dim, name="embed")
                features += embed_dim
            else:  # 'concat': a plain N(0,1) projection without lr equalization or bias
                self.label_concat = self.add_weight(name="label_concat", shape=(cfg.c_dim, cfg.z_dim),
                                                    initializer=keras.initializers.RandomNormal(0.0, 1.0))
                features += cfg.z_dim
        self.dense = []
        for idx in range(cfg.mapping_layers):
            out = cfg.w_dim if idx == cfg.mapping_layers - 1 else cfg.mapping_fmaps
            self.dense.append(EqualizedDense(features, out, activation=cfg.mapping_activation,
                                             lrmul=cfg.mapping_lrmul, gain_in_weight=cfg.stylegan1,
                                             name=f"dense{idx}"))
            features = out
        # Every replica computes the same (all-reduced) update, so the first replica's value is kept.
        self.w_avg = self.add_weight(name="w_avg", shape=(cfg.w_dim,), initializer="zeros", trainable=False,
                                     aggregation="only_first_replica")
        # Every weight exists now: no symbolic build pass on the first call.
        self.built = True

    def call(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None, update_w_avg=False):
        cfg = self.config
        x = tf.cast(z, self.compute_dtype)
        if cfg.c_dim > 0:
            if c is None:
                raise ValueError(f"this network is conditional (c_dim={cfg.c_dim}): pass a class label c")
            c = tf.cast(c, x.dtype)
            if self.embed is not None:
                if cfg.normalize_latents:
                    x = normalize_2nd_moment(x)
                x = tf.concat([x, normalize_2nd_moment(self.embed(c))], axis=1)
            else:
                x = tf.concat([x, tf.matmul(c, self.label_concat)], axis=1)
                if cfg.normalize_latents:
                    x = normalize_2nd_moment(x)
        elif cfg.normalize_latents:
            x = normalize_2nd_moment(x)
        for layer in self.dense:
            x = layer(x)

        if update_w_avg:
            self.update_w_avg(x)

        x = tf.tile(x[:, tf.newaxis, :], [1, self.num_ws, 1])
        if not (isinstance(truncation_psi, (int, float)) and truncation_psi == 1 and truncation_cutoff is None):
            x = truncate(x, self.w_avg, truncation_psi, truncation_cutoff)
        return x

    def update_w_avg(self, w):
        """w_avg <- lerp(mean of w over the global batch, w_avg, beta); w: [N, w_dim] (replica batch)."""
        batch_avg = tf.reduce_mean(tf.cast(w, self.w_avg.dtype), axis=0)
        ctx = tf.distribute.get_replica_context()
        if ctx is not None and ctx.num_replicas_in_sync > 1:
            batch_avg = ctx.all_reduce(tf.distribute.ReduceOp.MEAN, batch_avg)
        self.w_avg.assign(batch_avg + (self.w_avg - batch_avg) * self.config.w_avg_beta)



# psi's precision: TF1's truncation multiplies by a float32 array of psi per layer, so float64
# networks see 0.7 as 0.699999988 too.
TRUNCATION_PSI_DTYPE = tf.float32


def truncate(ws, w_avg, psi, cutoff=None):
    """w_avg + psi * (ws - w_avg) on layers [0, cutoff) (all layers if cutoff is None)."""
    # (tf.constant for Python numbers: tf.cast would pass them through float32 whatever the dtype.)
    dtype = TRUNCATION_PSI_DTYPE
    psi = tf.cast(tf.constant(psi, dtype) if isinstance(psi, (int, float)) else tf.cast(psi, dtype), ws.dtype)
    w_avg = tf.cast(w_avg, ws.dtype)
    truncated = w_avg + (ws - w_avg) * psi
    if cutoff is None:
        return truncated
    layer = tf.range(ws.shape[1])[tf.newaxis, :, tf.newaxis]
    return tf.where(layer < cutoff, truncated, ws)
