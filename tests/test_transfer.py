"""Transfer learning: a new run from the networks of a pickle (--resume-pkl), Freeze-D, and what
does not fit refused before anything is written."""

import os

import numpy as np
import pytest

from conftest import ROOT, run_python
from stylegan2_tf.data.synthetic import create_shapes_dataset
from stylegan2_tf.official import load_network_pkl
from stylegan2_tf.training import Trainer, TrainingError, TrainingOptions

pytestmark = pytest.mark.slow

PT = ROOT / "tests" / "fixtures" / "pytorch_pkl"
TF1 = ROOT / "tests" / "fixtures" / "stylegan2_pkl"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    create_shapes_dataset(str(root / "shapes16"), num_images=32, resolution=16)
    create_shapes_dataset(str(root / "shapes32"), num_images=8, resolution=32)
    return str(root)


def _opts(data_dir, result_dir, **kw):
    base = dict(data_dir=data_dir, result_dir=str(result_dir), dataset="shapes16", batch=4, batch_gpu=4,
                tick_kimg=0.016, snapshot_ticks=1, total_kimg=0.032)
    return TrainingOptions(**{**base, **kw})


def _same_variables(ours, theirs):
    assert len(ours.variables) == len(theirs.variables)
    for a, b in zip(ours.variables, theirs.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=b.path)


@pytest.mark.parametrize("pkl", [PT / "ada-pt-skip16.pkl", TF1 / "sg2-tiny16.pkl"])
def test_a_run_starts_from_the_pickle(data_dir, tmp_path, pkl):
    """G, D and G_ema (weights, w_avg, noise) as in the pickle; Adam, pl_mean and the counters
    fresh; the first fakes are the pickle's G_ema's."""
    from PIL import Image
    from stylegan2_tf.training.snapshots import ImageGrid
    nets = load_network_pkl(pkl)
    t = Trainer(_opts(data_dir, tmp_path, resume_pkl=str(pkl)), echo=False)
    for key, ours in (("G", t.state.G), ("D", t.state.D), ("G_ema", t.state.G_ema)):
        _same_variables(ours, nets[key])
    assert t.g_cfg.replace(fused_modconv=None) == nets["G_ema"].config.replace(fused_modconv=None)
    assert float(t.state.pl_mean.numpy()) == 0.0 and t.state.nimg == 0
    assert all(int(opt.iterations.numpy()) == 0 for opt in t.state.optimizers.values())
    t.train(stop_after_ticks=1)
    (tmp_path / "expected").mkdir()
    grid = ImageGrid(t.opts, t.g_cfg, t.dataset_path, t.data_info, str(tmp_path / "expected"))
    want = grid.fakes(nets["G_ema"])
    got = np.asarray(Image.open(os.path.join(t.run_dir, "fakes_init.png")))
    np.testing.assert_array_equal(got.reshape(want.shape), want)
    assert "Starting from" in open(os.path.join(t.run_dir, "log.txt")).read()


def test_freeze_d_keeps_the_first_layers_in_ada_pytorchs_order(data_dir, tmp_path):
    """stylegan2-ada-pytorch counts D's layers from the image side, per block FromRGB (where the
    block has one), Conv0, Conv1, Skip: --freeze-d 5 on a 16x16 resnet D freezes b16's four and
    b8's Conv0; everything else trains."""
    pkl = PT / "ada-pt-skip16.pkl"
    t = Trainer(_opts(data_dir, tmp_path, resume_pkl=str(pkl), freeze_d=5), echo=False)
    D = t.state.D
    b16, b8 = D.blocks
    frozen = {id(v) for layer in (b16.fromrgb, b16.conv0, b16.conv1, b16.skip, b8.conv0) for v in layer.variables}
    assert len(frozen) == 9   # 4 weights, 4 biases, the skip has no bias
    assert not {id(v) for v in D.trainable_variables} & frozen
    before = [v.numpy().copy() for v in D.variables]
    t.train(stop_after_ticks=1)
    moved = [not np.array_equal(b, v.numpy()) for b, v in zip(before, D.variables)]
    for v, m in zip(D.variables, moved):
        assert m == (id(v) not in frozen and v.trainable), v.path
    assert sum(moved) == len(D.trainable_variables) > 0


def test_a_run_from_a_pickle_resumes_exactly(data_dir, tmp_path):
    """The networks of a --resume-pkl run follow the pickle, not the options: the run records
    them, and a resumption builds the same networks and continues bitwise."""
    pkl = PT / "ada-pt-cond-orig16-fp16.pkl"   # conditional (3 classes), orig G and D, conv clamp 256
    from stylegan2_tf.data.synthetic import shapes_images
    from stylegan2_tf.data.tfrecord_writer import MultiResolutionWriter
    images, labels = shapes_images(16, 16, seed=2)
    with MultiResolutionWriter(os.path.join(data_dir, "shapes16c")) as w:
        for img in images:
            w.add_image(img)
        w.set_labels(np.eye(3, dtype=np.float32)[labels])
    kw = dict(dataset="shapes16c", resume_pkl=str(pkl), batch=2, batch_gpu=2, tick_kimg=0.008, total_kimg=0.016,
              freeze_d=1)
    straight = Trainer(_opts(data_dir, tmp_path, **kw), echo=False)
    straight.train(stop_after_ticks=1)
    resumed = Trainer(_opts(data_dir, tmp_path, **kw), resume=straight.run_dir, echo=False)
    assert resumed.g_cfg == straight.g_cfg and resumed.d_cfg == straight.d_cfg
    assert (resumed.g_cfg.label_mode, resumed.g_cfg.architecture, resumed.g_cfg.conv_clamp) == ("embed", "orig", 256)
    straight.train()
    resumed.train()
    for a, b in zip(straight.state.G.variables + straight.state.D.variables,
                    resumed.state.G.variables + resumed.state.D.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


@pytest.mark.parametrize("pkl, kw, message", [
    (PT / "ada-pt-skip16.pkl", dict(dataset="shapes32"),
     r"the networks do not fit the dataset .*shapes32: resolution 16 \(dataset 32\)"),
    (PT / "ada-pt-cond-orig16-fp16.pkl", dict(), r"label size 3 \(dataset 0\)"),
    (PT / "ada-pt-skip16.pkl", dict(fmap_base=64), r"sizes come from the pickle; leave out --fmap-base"),
    (PT / "sg3-t-refused.pkl", dict(), r"--resume-pkl: .*StyleGAN3 alias-free network"),
    (TF1 / "sga-tiny16.pkl", dict(), r"a G stylegan1 / D basic network does not train with --config config-f"),
    (TF1 / "sga-tiny16.pkl", dict(config="config-b", lod_kimg=0.004, lod_transition_kimg=0.004, resume_kimg=0.008),
     r"does not train with --config config-b"),
    (TF1 / "sga-tiny16.pkl", dict(config="config-a", lod_kimg=0.004, lod_transition_kimg=0.004),
     r"the network is at lod 0, the schedule at --resume-kimg 0 at lod 1; give the kimg"),
    (TF1 / "sg2-tiny16.pkl", dict(config="config-d", lod_kimg=0.004, lod_transition_kimg=0.004),
     r"a G skip / D resnet network does not train with --config config-d"),
])
def test_what_does_not_fit_is_refused_before_anything_is_written(data_dir, tmp_path, pkl, kw, message):
    with pytest.raises(TrainingError, match=message) as e:
        Trainer(_opts(data_dir, tmp_path / "results", resume_pkl=str(pkl), **kw), echo=False)
    assert "\n" not in str(e.value)
    assert not os.path.exists(tmp_path / "results") or not os.listdir(tmp_path / "results")


def test_cli_fine_tunes_from_a_pytorch_pickle(data_dir, tmp_path):
    r = run_python(["run_training.py", "--data-dir", data_dir, "--dataset", "shapes16", "--result-dir", tmp_path,
                    "--resume-pkl", PT / "ada-pt-skip16.pkl", "--freeze-d", "2", "--batch", "4", "--batch-gpu", "4",
                    "--total-kimg", "0.008", "--tick-kimg", "0.008"], timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    nets = load_network_pkl(run_dir / "network-final.pkl")   # written in our TF1 format, loads back
    assert nets["G_ema"].config.img_resolution == 16
    r = run_python(["run_training.py", "--data-dir", data_dir, "--dataset", "shapes32", "--result-dir",
                    tmp_path / "r2", "--resume-pkl", PT / "ada-pt-skip16.pkl"])
    assert r.returncode == 1 and r.stderr.strip().splitlines()[-1].startswith("error: --resume-pkl")


def test_class_rows_closed_form():
    from stylegan2_tf.training.snapshots import class_rows
    labels = np.eye(3)[[0, 1, 0, 2, 1]]
    assert class_rows(labels, 2, 4) == [0, 2, 1, 4, 3, 3, 0, 2]


def test_the_snapshot_grid_of_a_conditional_run_has_one_class_per_row(data_dir, tmp_path):
    from stylegan2_tf.data import iter_images, read_dataset_info
    from stylegan2_tf.data.synthetic import create_shapes_dataset
    from stylegan2_tf.training.snapshots import ImageGrid
    path = os.path.join(data_dir, "shapes16l")
    create_shapes_dataset(path, num_images=24, resolution=16, seed=5, with_labels=True)   # disc 0, square 1
    info = read_dataset_info(path)
    opts = _opts(data_dir, tmp_path, dataset="shapes16l", grid_size=4)
    g_cfg, _ = opts.network_configs(16, 3, 2)
    grid = ImageGrid(opts, g_cfg, path, info, str(tmp_path))
    classes = grid.c.argmax(axis=1).reshape(4, 4)
    np.testing.assert_array_equal(classes, [[0] * 4, [1] * 4, [0] * 4, [1] * 4])
    # reals.png shows, row by row, the dataset's images of that class in file order.
    labels = info.load_labels().argmax(axis=1)
    images = np.stack(list(iter_images(info.files[0]))).transpose(0, 2, 3, 1)
    from PIL import Image
    reals = np.asarray(Image.open(tmp_path / "reals.png")).reshape(4, 16, 4, 16, 3).transpose(0, 2, 1, 3, 4)
    for row in range(4):
        want = images[labels == row % 2][:4]
        np.testing.assert_array_equal(reals[row], want)


def test_freeze_d_needs_a_fixed_size_d():
    with pytest.raises(TrainingError, match="Freeze-D applies to configs E and F"):
        TrainingOptions(dataset="x", config="config-a", freeze_d=2, batch=4, batch_gpu=4).validate()
    with pytest.raises(TrainingError, match="--freeze-d must be >= 0"):
        TrainingOptions(dataset="x", freeze_d=-1).validate()


@pytest.mark.parametrize("pkl, config", [(TF1 / "sga-tiny16.pkl", "config-a"), (TF1 / "sgb-tiny16.pkl", "config-d")])
def test_a_growing_run_starts_from_a_growing_pickle_at_resume_kimg(data_dir, tmp_path, pkl, config):
    """Configs A-D: the counters and the schedule start at --resume-kimg, where the schedule's lod
    is the pickle's (NVIDIA's TF1 resume_kimg); the networks are the pickle's."""
    nets = load_network_pkl(pkl)
    kw = dict(config=config, lod_kimg=0.004, lod_transition_kimg=0.004, resume_kimg=0.008, total_kimg=0.016,
              tick_kimg=0.008, resume_pkl=str(pkl), resolution_dicts=False)   # batch 4 at every resolution
    t = Trainer(_opts(data_dir, tmp_path, **kw), echo=False)
    assert t.state.nimg == 8 and t.state.stage.lod == 0.0 == float(t.state.G.lod.numpy())
    for key, ours in (("G", t.state.G), ("D", t.state.D), ("G_ema", t.state.G_ema)):
        _same_variables(ours, nets[key])
    t.train()
    # From kimg 0.008 on: 4 minibatches of 4 (the loop looks at the end every minibatch_repeats = 4).
    assert t.state.nimg == 8 + 4 * 4 and os.path.isfile(os.path.join(t.run_dir, "network-final.pkl"))
    with pytest.raises(TrainingError, match="--resume-kimg goes with --resume-pkl"):
        _opts(data_dir, tmp_path, resume_kimg=1).validate()


def test_a_conditional_pickle_keeps_its_label_style(tmp_path):
    """A conditional network of the NVlabs/stylegan2 kind (concat/project) trains in that style:
    --label-style ada, or float16 blocks its snapshot format cannot record, are refused."""
    from stylegan2_tf.networks import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig
    from stylegan2_tf.official.writer import save_network_pkl
    root = tmp_path / "data"
    create_shapes_dataset(str(root / "labelled16"), num_images=8, resolution=16, with_labels=True)
    size = dict(img_resolution=16, c_dim=2, fmap_base=64, fmap_max=32)
    G = Generator(GeneratorConfig(z_dim=8, w_dim=8, mapping_layers=1, mapping_fmaps=8, label_mode="concat",
                                  **size)).build_weights()
    D = Discriminator(DiscriminatorConfig(label_mode="project", **size)).build_weights()
    pkl = tmp_path / "cond.pkl"
    save_network_pkl(pkl, G, D, G)
    base = dict(data_dir=str(root), dataset="labelled16", result_dir=str(tmp_path / "results"), resume_pkl=str(pkl),
                batch=4, batch_gpu=4)
    t = Trainer(TrainingOptions(**base, total_kimg=0.004), echo=False)
    assert (t.g_cfg.label_mode, t.d_cfg.label_mode) == ("concat", "project")
    for kw, message in ((dict(label_style="ada"), r"take labels in the stylegan2 style \(G concat, D project\), "
                                                  r"not --label-style ada"),
                        (dict(fp16_res=1), r"NVlabs/stylegan2 kind train in float32 without a clamp")):
        with pytest.raises(TrainingError, match=message):
            Trainer(TrainingOptions(**{**base, "result_dir": str(tmp_path / "r2")}, **kw), echo=False)
        assert not os.path.exists(tmp_path / "r2")
