"""Number-for-number check of the training math against NVIDIA's reference.

    python -m stylegan2_tf.verify_training --pkl NET.pkl --inputs TRAIN_REF.npz --out CAND.npz

Loads the pickle's G (not Gs) and D and runs the four loss phases of the training loop
(`stylegan2_tf.training.losses.StyleGAN2Loss`, the very code `run_training.py` uses) on
the inputs stored in TRAIN_REF.npz (`train/z`, `train/c`, `train/real`, `train/pl_noise`):
stored ('const') noise, no style mixing, gain 1 (no lazy-regularization factor), R1
gamma 10. Writes every loss term and, per phase, the L2 norm, sum and |.|-sum of the
gradient of each trainable variable, keyed by its TF1 name. Compare with the fixtures'
`compare_training.py --ref TRAIN_REF.npz --cand CAND.npz --require-all`.

The networks are evaluated in float64 by default (`--dtype float32` for the training
precision). Reason: a gradient is discontinuous at the lrelu kink (slope 1 vs 0.2), and
in float32 a pre-activation within ~1e-7 of zero lands on either side depending on the
summation order of the convolution kernels (oneDNN vs Eigen vs PyTorch). One such element
shifts a noise-strength gradient by ~1e-3 relative -- a float32 coin flip, not a
difference in the math. float64 resolves those elements as the exact math does.
"""

import sys

import numpy as np
from absl import app, flags


def _nhwc(x):
    return np.transpose(np.asarray(x, np.float32), [0, 2, 3, 1])


def compute_training_reference(G, D, inputs, r1_gamma=10.0):
    import tensorflow as tf
    dtype = G.mapping.w_avg.dtype

    from .official import tf1_variable_names
    from .training.losses import StyleGAN2Loss
    loss = StyleGAN2Loss(G, D, r1_gamma=r1_gamma, noise_mode="const", style_mixing_prob=0.0, update_w_avg=False)
    z = tf.constant(inputs["train/z"], dtype)
    c = tf.constant(inputs["train/c"], dtype) if G.c_dim else None
    real = tf.constant(_nhwc(inputs["train/real"]), dtype)
    pl_noise = tf.constant(_nhwc(inputs["train/pl_noise"]), dtype)
    n_pl = pl_noise.shape[0]
    g_vars = tf1_variable_names(G=G)
    d_vars = tf1_variable_names(D=D)
    stat_dtype = np.float64 if dtype == "float64" else np.float32
    out = {}

    def grad_stats(phase, tape, objective, named_vars):
        names = list(named_vars)
        # Unconnected variables (e.g. ToRGB biases in the path-length term) get zero gradients.
        grads = tape.gradient(objective, [named_vars[n] for n in names])
        for name, g in zip(names, grads):
            g = np.zeros(named_vars[name].shape) if g is None else g.numpy().astype(np.float64)
            # Kept in the networks' precision: float32 storage would round float64 results by 6e-8.
            out[f"train/{phase}/grad_norm/{name}"] = stat_dtype(np.sqrt(np.sum(g * g)))
            out[f"train/{phase}/grad_sum/{name}"] = stat_dtype(np.sum(g))
            out[f"train/{phase}/grad_abs/{name}"] = stat_dtype(np.sum(np.abs(g)))

    with tf.GradientTape() as tape:
        g_loss = loss.g_main(z, c)
        objective = tf.reduce_mean(g_loss)
    out["train/G_main/loss"] = g_loss.numpy()
    grad_stats("G_main", tape, objective, g_vars)

    with tf.GradientTape() as tape:
        # g_pl's objective has the gradient of mean(penalty) with the decayed mean's own gradient.
        objective, penalty, lengths, pl_mean = loss.g_pl(z[:n_pl], None if c is None else c[:n_pl],
                                                         pl_noise=pl_noise)
        objective = objective * loss.pl_weight
    out["train/G_pl/lengths"] = lengths.numpy()
    out["train/G_pl/pl_mean"] = stat_dtype(pl_mean.numpy())
    out["train/G_pl/penalty"] = penalty.numpy()
    grad_stats("G_pl", tape, objective, g_vars)

    with tf.GradientTape() as tape:
        loss_gen, loss_real = loss.d_main(z, c, real)
        objective = tf.reduce_mean(loss_gen) + tf.reduce_mean(loss_real)
    out["train/D_main/loss_gen"] = loss_gen.numpy()
    out["train/D_main/loss_real"] = loss_real.numpy()
    grad_stats("D_main", tape, objective, d_vars)

    with tf.GradientTape() as tape:
        r1 = loss.d_r1(real, c)
        objective = tf.reduce_mean(r1 * (loss.r1_gamma / 2))
    out["train/D_r1/penalty"] = r1.numpy()
    grad_stats("D_r1", tape, objective, d_vars)
    return out



def _define_flags():
    """Command-line flags (defined only when run as a command, so the module imports cleanly)."""
    flags.DEFINE_string("pkl", None, "Official TF1 network pickle (G, D, Gs).")
    flags.DEFINE_string("inputs", None, "Training reference .npz holding train/z, train/c, train/real, train/pl_noise.")
    flags.DEFINE_string("out", None, "Where to write the candidate .npz.")
    flags.DEFINE_float("gamma", 10.0, "R1 gamma of the reference.")
    flags.DEFINE_enum("dtype", "float64", ["float64", "float32"], "Precision of the evaluation (see module doc).")


FLAGS = flags.FLAGS


def main(argv):
    del argv
    import keras
    keras.config.set_floatx(FLAGS.dtype)  # before the networks are built
    keras.config.set_dtype_policy(FLAGS.dtype)
    from .errors import UserError
    from .official import load_network_pkl
    for name in ("pkl", "inputs", "out"):
        if not getattr(FLAGS, name):
            sys.exit(f"error: --{name} is required")
    try:
        nets = load_network_pkl(FLAGS.pkl, load=("G", "D"))
    except UserError as e:
        sys.exit(f"error: {e}")
    try:
        ref = np.load(FLAGS.inputs)
        inputs = {k: ref[k] for k in ("train/z", "train/c", "train/real", "train/pl_noise")}
    except Exception as e:  # noqa: BLE001
        sys.exit(f"error: {FLAGS.inputs}: cannot read training inputs ({e})")
    out = compute_training_reference(nets["G"], nets["D"], inputs, r1_gamma=FLAGS.gamma)
    np.savez(FLAGS.out, **out)
    print(f"wrote {len(out)} arrays to {FLAGS.out}")


if __name__ == "__main__":
    _define_flags()
    app.run(main)
