"""The training state: the networks, the loss's running means, the optimizers, the loss
scales, the counters and the random generator, as one object with one checkpoint.

A checkpoint holds exactly these objects under fixed names (G, D, Gs, opt_G, opt_D, pl_mean,
rng, cur_nimg, cur_tick, minibatch, prev_lod, loss_scale_<phase>; with augmentation augment_p,
ada_signs, ada_count, ada_minibatches), so that a run resumes
bitwise where it stopped; renaming a key breaks the resumption of earlier runs.
"""

import shutil
import tempfile

import keras
import tensorflow as tf

from ..networks import Discriminator, Generator
from ..networks.lod import level_of
from .augmentation import Augmentation
from .loss_scaling import DynamicLossScale
from .losses import StyleGAN2Loss
from .optimizer import FusedAdam, lazy_adam_params, reset_optimizer_state
from .phases import PHASES
from .schedule import ema_beta, resets_optimizer
from .transfer import copy_networks, freeze_d


class TrainingState:
    """opts: validated TrainingOptions; g_cfg, d_cfg: the network configs; strategy: the
    tf.distribute strategy whose scope holds the variables; checkpoint_dir: where checkpoints
    go (the run directory's checkpoints/)."""

    def __init__(self, opts, g_cfg, d_cfg, strategy, checkpoint_dir, start_from=None):
        """start_from: {'G', 'D', 'G_ema'} networks whose variables the new ones take (--resume-pkl)."""
        self.opts, self.g_cfg, self.d_cfg = opts, g_cfg, d_cfg
        keras.utils.set_random_seed(opts.seed)  # weight initialization
        with strategy.scope():
            self.G = Generator(g_cfg, name="G")
            self.D = Discriminator(d_cfg, name="D")
            self.G_ema = Generator(g_cfg, name="G_ema")
            for dst, src in zip(self.G_ema.variables, self.G.variables):
                dst.assign(src)
            if start_from is not None:
                copy_networks(self, start_from, opts.resume_pkl)
            freeze_d(self.D, opts.freeze_d)   # before D's optimizer is built on its trainable variables
            self.loss = StyleGAN2Loss(self.G, self.D, r1_gamma=opts.gamma, pl_weight=opts.pl_weight,
                                      pl_decay=opts.pl_decay, pl_batch_shrink=opts.pl_batch_shrink,
                                      style_mixing_prob=opts.style_mixing_prob)
            self.augmentation = Augmentation(opts)
            self.loss.augment = self.augmentation if self.augmentation.pipe is not None else None
            self.opt_G = self._optimizer("G")
            self.opt_D = self._optimizer("D")
            self.opt_G.build(self.G.trainable_variables)
            self.opt_D.build(self.D.trainable_variables)
            # float16 blocks: dynamic loss scaling, one scale per phase (the regularizers' second-order
            # gradients need smaller scales than the main losses); an overflowing step is skipped.
            self.loss_scales = {}
            if opts.loss_scaling:
                self.loss_scales = {p.name: DynamicLossScale(name=f"loss_scale_{p.name}") for p in PHASES}
            self.rng = tf.random.Generator.from_seed(opts.seed)
            # A run from a pickle starts its counters at --resume-kimg (NVIDIA's resume_kimg).
            start_nimg = int(opts.resume_kimg * 1000) if start_from is not None else 0
            self.cur_nimg = tf.Variable(start_nimg, dtype=tf.int64, trainable=False, name="cur_nimg")
            self.cur_tick = tf.Variable(0, dtype=tf.int64, trainable=False, name="cur_tick")
            self.minibatch = tf.Variable(0, dtype=tf.int64, trainable=False, name="minibatch")
            # The lod of the last minibatch (-1: none yet), for the Adam resets of growing runs.
            self.prev_lod = tf.Variable(-1.0, dtype=tf.float64, trainable=False, name="prev_lod")
            self.ema_beta = tf.Variable(ema_beta(opts.batch, opts.ema_kimg), dtype=tf.float64, trainable=False,
                                        name="ema_beta")
        # Networks are checkpointed as explicit variable lists: tf.train.Checkpoint does not descend into
        # the layer lists Keras 3 keeps (blocks, mapping layers), so tracking the models would miss them.
        self.checkpoint = tf.train.Checkpoint(
            G=list(self.G.variables), D=list(self.D.variables), Gs=list(self.G_ema.variables), opt_G=self.opt_G,
            opt_D=self.opt_D, pl_mean=self.loss.pl_mean, rng=self.rng, cur_nimg=self.cur_nimg,
            cur_tick=self.cur_tick, minibatch=self.minibatch, prev_lod=self.prev_lod,
            **{f"loss_scale_{k}": v for k, v in self.loss_scales.items()}, **self.augmentation.checkpoint_items())
        self.checkpoints = tf.train.CheckpointManager(self.checkpoint, checkpoint_dir, max_to_keep=2)
        self.update_ema = tf.function(self._update_ema)
        self.stage = None

    @property
    def pl_mean(self):
        return self.loss.pl_mean

    @property
    def optimizers(self):
        return {"G": self.opt_G, "D": self.opt_D}

    @property
    def nimg(self):
        return int(self.cur_nimg.numpy())

    def _interval(self, net):
        """Lazy-regularization interval of G or D; None when regularizing every minibatch."""
        if not self.opts.lazy_regularization:
            return None
        return self.opts.g_reg_interval if net == "G" else self.opts.d_reg_interval

    def _optimizer(self, net):
        lr, beta1, beta2 = lazy_adam_params(self.opts.lr, self.opts.beta1, self.opts.beta2, self._interval(net))
        return FusedAdam(learning_rate=lr, beta_1=beta1, beta_2=beta2, epsilon=self.opts.epsilon)

    def _update_ema(self):
        # Trainable variables: exponential moving average; the rest (noise maps, w_avg, lod): copied.
        beta = self.ema_beta
        for dst, src in zip(self.G_ema.variables, self.G.variables):
            if src.trainable:
                dst.assign(src + (dst - src) * tf.cast(beta, dst.dtype))
            else:
                dst.assign(src)

    def levels(self, lod):
        """Static (G, D, reals) levels of detail for lod (None for networks that do not grow)."""
        if lod is None:
            return (None, None, None)
        return (level_of(lod, self.G.synthesis.num_levels), level_of(lod, self.D.body.num_levels),
                level_of(lod, self.d_cfg.max_lod + 1))

    def apply_stage(self, stage):
        """Set the schedule's GrowthStage: lod of G, D and G_ema (with the Adam resets), learning
        rates and G's EMA decay."""
        opts = self.opts
        if stage.lod is not None:
            if resets_optimizer(float(self.prev_lod.numpy()), stage.lod):
                reset_optimizer_state(self.opt_G)
                reset_optimizer_state(self.opt_D)
            self.prev_lod.assign(stage.lod)
            for net in (self.G, self.D, self.G_ema):
                net.set_lod(stage.lod)
        for net, opt in self.optimizers.items():
            opt.learning_rate.assign(lazy_adam_params(stage.lr, opts.beta1, opts.beta2, self._interval(net))[0])
        self.ema_beta.assign(ema_beta(stage.batch, opts.ema_kimg))
        self.stage = stage

    def restore(self, path=None):
        """Restore the checkpoint at `path` (default: the newest); -> its path."""
        path = path or self.checkpoints.latest_checkpoint
        self.checkpoint.restore(path).assert_existing_objects_matched()
        return path

    def save_checkpoint(self, is_chief=True):
        """Checkpoint at the current image count. Multi-worker: every worker saves (saving may take
        part in collectives); the others into a temporary directory that they delete."""
        if is_chief:
            self.checkpoints.save(checkpoint_number=self.nimg)
            return
        scratch = tempfile.mkdtemp(prefix="stylegan2-worker-ckpt-")
        try:
            tf.train.CheckpointManager(self.checkpoint, scratch, max_to_keep=1).save(checkpoint_number=self.nimg)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
