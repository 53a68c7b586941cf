"""StyleGAN2 losses: non-saturating logistic G loss with path-length regularization,
logistic D loss with R1 regularization (paper Sec. 2.2, 3.2, 4; Appendix B).

  G main   softplus(-D(G(z)))
  G pl     y ~ N(0, I) / sqrt(H W),  g = d<G(w), y>/dw,  a = sqrt(mean_layers sum_wdim g^2),
           pl_mean <- lerp(pl_mean, mean(a), 0.01),  penalty = (a - pl_mean)^2,  weight 2
  D main   softplus(D(G(z))) + softplus(-D(x))
  D R1     ||dD(x)/dx||^2,  weight gamma / 2
With augmentation (ADA), D sees augment(x) wherever it runs (fakes in G main and D main, reals in
D main and R1; R1's gradient is taken with respect to the reals before augmentation), drawing
from the phase's random stream.

The methods return per-sample terms (unweighted); `training.phases` weights, lazily
scales and sums them over the minibatch. `verify_training` runs these same methods. The
path-length gradient is taken through `path_length_surrogate` (the same gradient as the
mean penalty, given the minibatch's mean length), so that accumulated sub-batches add up.
"""

import tensorflow as tf


class StyleGAN2Loss:
    def __init__(self, G, D, r1_gamma=10.0, pl_weight=2.0, pl_decay=0.01, pl_batch_shrink=2,
                 style_mixing_prob=0.9, noise_mode="random", update_w_avg=True):
        self.G = G
        self.D = D
        self.r1_gamma = float(r1_gamma)
        self.pl_weight = float(pl_weight)
        self.pl_decay = float(pl_decay)
        self.pl_batch_shrink = int(pl_batch_shrink)
        self.style_mixing_prob = float(style_mixing_prob)
        self.noise_mode = noise_mode
        self.update_w_avg = bool(update_w_avg)
        # augment(img, rng) -> what D sees (training.augmentation.Augmentation); None: img itself.
        self.augment = None
        # Static levels of detail (G, D) of growing networks, set by the training loop while it traces
        # a step for one level (None: read from the networks' lod variables).
        self.levels = (None, None)
        # Running mean of path lengths; identical on all replicas (updated from all-reduced means).
        self.pl_mean = tf.Variable(0.0, trainable=False, name="pl_mean", dtype=G.mapping.w_avg.dtype,
                                   aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

    # -- generator forward with the training-time extras ---------------------------------------
    def mapping(self, z, c, rng=None, w_sink=None):
        """w [N, num_ws, w_dim] with the w_avg update and style mixing (when rng is given).
        w_sink: a list that receives w instead of updating w_avg, for a caller that updates
        w_avg once from a whole accumulated minibatch."""
        G = self.G
        ws = G.mapping(z, c)
        if self.update_w_avg:
            if w_sink is not None:
                w_sink.append(tf.stop_gradient(ws[:, 0]))
            else:
                G.mapping.update_w_avg(ws[:, 0])
        if rng is not None and self.style_mixing_prob > 0:
            ws = mix_styles(G, ws, c, rng, self.style_mixing_prob)
        return ws

    def synthesize(self, ws, rng=None):
        seed = None if rng is None else rng.make_seeds(1)[:, 0]
        return self.G.synthesize(ws, noise_mode=self.noise_mode, noise_seed=seed, level=self.levels[0])

    def run_D(self, img, c, rng=None):
        if self.augment is not None and rng is not None:
            img = self.augment(img, rng)
        return self.D(img, c=c, level=self.levels[1])

    def run_G(self, z, c, rng=None, w_sink=None):
        ws = self.mapping(z, c, rng, w_sink)
        return self.synthesize(ws, rng), ws

    # -- the four phases ------------------------------------------------------------------------
    def g_main(self, z, c, rng=None, w_sink=None):
        img, _ = self.run_G(z, c, rng, w_sink)
        return tf.nn.softplus(-self.run_D(img, c, rng))[:, 0]

    def path_lengths(self, z, c, rng=None, pl_noise=None, w_sink=None):
        """a = sqrt(mean_layers sum_wdim (d<G(w), y>/dw)^2) per sample, differentiable in G's
        weights. pl_noise: y / sqrt(HW) of the image's shape; drawn from rng when None."""
        with tf.GradientTape() as tape:
            ws = self.mapping(z, c, rng, w_sink)
            tape.watch(ws)
            img = self.synthesize(ws, rng)
            if pl_noise is None:
                res = float(img.shape[1] * img.shape[2])
                pl_noise = rng.normal(tf.shape(img)) / res ** 0.5
            inner = tf.reduce_sum(img * tf.cast(pl_noise, img.dtype))
        grads = tape.gradient(inner, ws)
        return tf.sqrt(tf.reduce_mean(tf.reduce_sum(tf.square(grads), axis=2), axis=1))

    def pl_mean_after(self, batch_mean):
        """The running mean after a minibatch whose mean path length is `batch_mean`."""
        batch_mean = tf.cast(batch_mean, self.pl_mean.dtype)
        return self.pl_mean + (batch_mean - self.pl_mean) * self.pl_decay

    def g_pl(self, z, c, rng=None, pl_noise=None, w_sink=None, batch_mean=None, count=None):
        """Path-length regularization of one (sub-)batch -> (objective, penalty [N], lengths [N],
        new pl_mean). The one implementation, for the training phase and the reference alike.

        count: lengths in the whole minibatch (default: this batch's over every replica).
        batch_mean: the minibatch's mean length when it was measured beforehand (sub-batches of
        an accumulated minibatch); None: this batch's own, summed over the replicas.
        Like the official code, the penalty uses the updated mean pl_mean, which depends on every
        length; `objective`'s gradient is that of sum(penalty) / count with that dependence
        (path_length_surrogate), so sub-batches' gradients add up to the whole minibatch's.
        pl_mean itself is left to the caller to assign, once per minibatch."""
        lengths = self.path_lengths(z, c, rng, pl_noise, w_sink)
        ctx = tf.distribute.get_replica_context()
        replicas = ctx.num_replicas_in_sync if ctx is not None else 1
        if count is None:
            count = float(lengths.shape[0] * replicas)
        if batch_mean is None:
            total = tf.reduce_sum(tf.stop_gradient(lengths))
            if replicas > 1:
                total = ctx.all_reduce(tf.distribute.ReduceOp.SUM, total)
            batch_mean = total / count
        pl_mean = self.pl_mean_after(batch_mean)
        objective = path_length_surrogate(lengths, batch_mean, pl_mean, self.pl_decay, count)
        penalty = tf.square(lengths - tf.cast(pl_mean, lengths.dtype))
        return objective, penalty, lengths, pl_mean

    def d_main(self, z, c, real, real_c=None, rng=None, w_sink=None, real_logits_sink=None):
        """-> (softplus(D(fake)), softplus(-D(real))), per sample. real_logits_sink: a list that
        receives D's logits on the reals."""
        img, _ = self.run_G(z, c, rng, w_sink)
        fake_logits = self.run_D(tf.stop_gradient(img), c, rng)
        real_logits = self.run_D(real, real_c if real_c is not None else c, rng)
        if real_logits_sink is not None:
            real_logits_sink.append(tf.stop_gradient(real_logits))
        return tf.nn.softplus(fake_logits)[:, 0], tf.nn.softplus(-real_logits)[:, 0]

    def d_r1(self, real, c, rng=None, real_logits_sink=None):
        """-> ||dD(real)/dreal||^2 per sample."""
        real = tf.cast(real, self.D.compute_dtype)  # the gradient in D's precision, not the input's
        with tf.GradientTape() as tape:
            tape.watch(real)
            logits = self.run_D(real, c, rng)
            total = tf.reduce_sum(logits)
        grads = tape.gradient(total, real)
        if real_logits_sink is not None:
            real_logits_sink.append(tf.stop_gradient(logits))
        return tf.reduce_sum(tf.square(grads), axis=[1, 2, 3])


def path_length_surrogate(lengths, batch_mean, pl_mean, decay, count):
    """sum_j k_j a_j, the k_j held constant: its gradient equals that of the mean penalty
    P = sum_i (a_i - pl_mean)^2 / count over all `count` lengths of the minibatch, where
    pl_mean = old + (batch_mean - old) decay also depends on every a_i. With
    dP/da_j = 2/count ((a_j - pl_mean) - decay (batch_mean - pl_mean)), a sub-batch's share
    of the gradient needs only the minibatch's mean length (no tape across sub-batches).
    lengths: this sub-batch's a_j; batch_mean, pl_mean: the minibatch's values (constants)."""
    batch_mean = tf.cast(tf.stop_gradient(batch_mean), lengths.dtype)
    pl_mean = tf.cast(tf.stop_gradient(pl_mean), lengths.dtype)
    k = (2.0 / count) * ((lengths - pl_mean) - decay * (batch_mean - pl_mean))
    return tf.reduce_sum(tf.stop_gradient(k) * lengths)


def mix_styles(G, ws, c, rng, prob):
    """With probability `prob`, layers [cutoff, L) of w come from a second latent;
    cutoff ~ U{1, ..., L - 1}, one draw per batch (as in the official code). L = num_ws, or for
    growing networks the layers in use at G's lod, num_ws - 2 floor(lod)."""
    num_ws = ws.shape[1]
    z2 = rng.normal([tf.shape(ws)[0], G.config.z_dim])
    ws2 = G.mapping(z2, c)
    active = tf.constant(num_ws, tf.int32)
    if G.lod is not None:
        active = active - 2 * tf.cast(tf.floor(G.lod), tf.int32)
    cutoff = tf.where(rng.uniform([]) < prob, rng.uniform([], minval=1, maxval=active, dtype=tf.int32), active)
    layer = tf.range(num_ws)[tf.newaxis, :, tf.newaxis]
    return tf.where(layer < cutoff, ws, ws2)
