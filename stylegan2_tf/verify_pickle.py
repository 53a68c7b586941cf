"""Compute the reference quantities of an official network pickle, for comparison.

    python -m stylegan2_tf.verify_pickle --pkl NET.pkl --inputs REF.npz --out CAND.npz

Loads G, D and Gs from NET.pkl (safely), feeds the inputs stored in REF.npz (`z`, `c`,
`rand_img`, `rand_img8`, `c8`; NCHW images) and writes, under the same keys and in
NCHW layout, every main output: mapping (psi 1 and 0.7), synthesis with stored /
no noise, the non-EMA G, and D logits incl. the minibatch-stddev channel. For networks
that grow progressively (configs A-D) the images and logits are computed at every lod
of REF.npz's metadata (`meta['lods']`, keys `.../lod<L>`; default: the integer lods),
with the lod-0 values also under the plain keys. Compare with the fixtures'
`compare_outputs.py --ref REF.npz --cand CAND.npz --require-all`.
"""

import json

import sys

import numpy as np
from absl import app, flags

MAIN_KEYS = ("Gs/w", "Gs/w_psi0.7", "Gs/img_const", "Gs/img_const_psi0.7", "Gs/img_none", "Gs/img_uint8",
             "G/w", "G/img_const", "D/logits_Gs_img", "D/logits_rand", "D/logits_rand8", "D/mbstd_rand8")


def _nchw(x):
    return np.transpose(np.asarray(x), [0, 3, 1, 2])


def _nhwc(x):
    x = np.asarray(x)
    return np.transpose(x if x.dtype == np.float64 else x.astype(np.float32), [0, 2, 3, 1])


def mbstd_channels(D, img, c=None):
    """The channels D's minibatch-stddev layer appends, [N, 4, 4, F]."""
    import tensorflow as tf
    from .layers import minibatch_stddev
    cfg = D.config
    x, img = D.epilogue_input(tf.convert_to_tensor(img))
    if D.epilogue.fromrgb is not None:
        x = x + D.epilogue.fromrgb(img)
    f = cfg.mbstd_num_features
    return minibatch_stddev(x, cfg.mbstd_group_size, f)[..., -f:]


def _lod_outputs(G, D, Gs, inputs, z, c):
    """The lod-dependent outputs at the networks' current lod."""
    out = {}
    for key, net in (("Gs", Gs), ("G", G)):
        out[f"{key}/img_const"] = _nchw(net(z, c=c, noise_mode="const"))
    dc = c if D.config.c_dim > 0 else None
    out["D/logits_Gs_img"] = D(_nhwc(out["Gs/img_const"]), c=dc).numpy()
    out["D/logits_rand"] = D(_nhwc(inputs["rand_img"]), c=dc).numpy()
    c8 = np.asarray(inputs["c8"], np.float32) if D.config.c_dim > 0 else None
    out["D/logits_rand8"] = D(_nhwc(inputs["rand_img8"]), c=c8).numpy()
    if D.config.mbstd_num_features > 0:
        out["D/mbstd_rand8"] = _nchw(mbstd_channels(D, _nhwc(inputs["rand_img8"]), c8))
    return out


def compute_reference_outputs(nets, inputs, lods=None):
    """nets: {'G', 'D', 'G_ema'}; inputs: mapping with z, c, rand_img, rand_img8, c8.
    lods: {key suffix: lod} for growing networks (default: the integer lods, 'lod<L>.0')."""
    G, D, Gs = nets["G"], nets["D"], nets["G_ema"]
    z = np.asarray(inputs["z"], np.float32)
    n = z.shape[0]
    c = np.asarray(inputs["c"], np.float32) if "c" in inputs else np.zeros([n, 0], np.float32)
    c = c if G.c_dim > 0 else None
    out = {}
    for key, net in (("Gs", Gs), ("G", G)):
        out[f"{key}/w"] = net.mapping(z, c).numpy()
    w7 = Gs.mapping(z, c, truncation_psi=0.7)
    out["Gs/w_psi0.7"] = w7.numpy()

    saved, lod_items = None, ()
    if G.config.progressive:
        if lods is None:
            lods = {f"lod{v:.1f}": float(v) for v in range(G.config.max_lod + 1)}
        saved, lod_items = (float(G.lod.numpy()), float(D.lod.numpy()), float(Gs.lod.numpy())), lods.items()
    try:
        for suffix, lod in lod_items:
            for net in (G, D, Gs):
                net.set_lod(lod)
            for name, value in _lod_outputs(G, D, Gs, inputs, z, c).items():
                out[f"{name}/{suffix}"] = value
        if saved:
            for net in (G, D, Gs):
                net.set_lod(0.0)
        out.update(_lod_outputs(G, D, Gs, inputs, z, c))
        out["Gs/img_const_psi0.7"] = _nchw(Gs.synthesize(w7, noise_mode="const"))
        out["Gs/img_none"] = _nchw(Gs.synthesize(out["Gs/w"], noise_mode="none"))
    finally:
        if saved:
            for net, value in zip((G, D, Gs), saved):
                net.set_lod(value)
    img = out["Gs/img_const"]
    out["Gs/img_uint8"] = np.clip(np.transpose(img, [0, 2, 3, 1]) * 127.5 + 128, 0, 255).astype(np.uint8)
    return out


def reference_lods(npz):
    """{key suffix: lod} from a reference .npz's metadata, or None."""
    if "meta" not in npz.files:
        return None
    try:
        meta = json.loads(str(npz["meta"]))
    except ValueError:
        return None
    if "lods" not in meta:
        return None
    keys = meta.get("lod_keys") or [f"lod{v}" for v in meta["lods"]]
    return {key: float(v) for key, v in zip(keys, meta["lods"])}


def _define_flags():
    """Command-line flags (defined only when run as a command, so the module imports cleanly)."""
    flags.DEFINE_string("pkl", None, "Official TF1 network pickle (G, D, Gs).")
    flags.DEFINE_string("inputs", None, "Reference .npz holding z, c, rand_img, rand_img8, c8.")
    flags.DEFINE_string("out", None, "Where to write the candidate .npz.")


FLAGS = flags.FLAGS


def main(argv):
    del argv
    from .errors import UserError
    from .official import load_network_pkl
    for name in ("pkl", "inputs", "out"):
        if not getattr(FLAGS, name):
            sys.exit(f"error: --{name} is required")
    try:
        nets = load_network_pkl(FLAGS.pkl)
    except UserError as e:
        sys.exit(f"error: {e}")
    try:
        ref = np.load(FLAGS.inputs)
        inputs = {k: ref[k] for k in ("z", "c", "rand_img", "rand_img8", "c8") if k in ref.files}
        lods = reference_lods(ref)
    except Exception as e:  # noqa: BLE001 -- any unreadable file gets one line
        sys.exit(f"error: {FLAGS.inputs}: cannot read inputs ({e})")
    missing = {"z", "rand_img", "rand_img8"} - set(inputs)
    if missing:
        sys.exit(f"error: {FLAGS.inputs}: missing input arrays {sorted(missing)}")
    out = compute_reference_outputs(nets, inputs, lods)
    np.savez(FLAGS.out, **out)
    print(f"wrote {len(out)} arrays to {FLAGS.out}")


if __name__ == "__main__":
    _define_flags()
    app.run(main)
