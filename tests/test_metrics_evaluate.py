"""Metric evaluation end to end: tiny generator, tiny dataset, tiny feature networks in the real file formats."""

import json
import os
import pathlib
import types

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from feature_net_weights import write_tiny_feature_files  # noqa: E402
from stylegan2_tf.metrics import statistics  # noqa: E402
from stylegan2_tf.metrics.definitions import METRICS, MetricDef, MetricError, parse_metric_list  # noqa: E402
from stylegan2_tf.metrics.evaluate import Evaluator, MetricOptions, compute_metric, resolve_feature_files  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def feature_files(tmp_path_factory):
    return write_tiny_feature_files(tmp_path_factory.mktemp("features"))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from stylegan2_tf.data.synthetic import create_shapes_dataset
    path = tmp_path_factory.mktemp("data") / "shapes16"
    create_shapes_dataset(str(path), num_images=40, resolution=16, seed=0)
    return str(path)


@pytest.fixture(scope="module")
def generator():
    from stylegan2_tf.networks import Generator, GeneratorConfig
    tf.keras.utils.set_random_seed(0)
    return Generator(GeneratorConfig(img_resolution=16, img_channels=3, z_dim=16, w_dim=16, mapping_layers=2,
                                     fmap_base=64, fmap_max=16)).build_weights()


def _opts(generator, dataset, feature_files, **kw):
    return MetricOptions(G=generator, tfrecord_dir=dataset, feature_files=feature_files, batch_size=4, **kw)


def test_metric_names_and_settings_are_the_official_ones():
    assert set(METRICS) == {"fid50k", "fid50k_full", "kid50k", "kid50k_full", "is50k", "ppl_zfull", "ppl_wfull",
                            "ppl_zend", "ppl_wend", "ppl2_wend", "pr50k3", "pr50k3_full"}
    assert METRICS["fid50k"].max_reals == 50000 and METRICS["fid50k_full"].max_reals is None
    assert METRICS["kid50k_full"].max_reals == 1000000 and METRICS["pr50k3_full"].max_reals == 200000
    assert METRICS["ppl_wend"].options == {"space": "w", "sampling": "end", "crop": True, "epsilon": 1e-4}
    assert METRICS["ppl2_wend"].options["crop"] is False
    assert METRICS["is50k"].options["num_splits"] == 10 and METRICS["pr50k3"].options["nhood_size"] == 3
    assert [m.name for m in parse_metric_list("fid50k, ppl_wend,fid50k")] == ["fid50k", "ppl_wend"]
    assert parse_metric_list("none") == []
    with pytest.raises(MetricError, match="unknown metric 'fid10k'"):
        parse_metric_list("fid10k")


def test_fid_equals_statistics_of_independently_computed_features(generator, dataset, feature_files, tmp_path,
                                                                   monkeypatch):
    """fid50k_full (shortened) == FID of the reals' features (read back from the TFRecords
    here) against features of the same fakes, computed directly."""
    from stylegan2_tf.data import iter_images, read_dataset_info
    from stylegan2_tf.metrics import load_inception
    from stylegan2_tf.metrics.image_prep import quantize_to_uint8
    opts = _opts(generator, dataset, feature_files, num_images=16, cache_dir=str(tmp_path / "cache"))
    result = compute_metric("fid50k_full", opts)
    assert result["protocol"] == "shortened" and result["num_fakes"] == 16 and result["num_reals"] == 16
    inception = load_inception(feature_files["inception"])
    info = read_dataset_info(dataset)
    reals = np.stack([img.transpose(1, 2, 0) for f in info.files for img in iter_images(f)])[:16]
    mu_r, sig_r = statistics.feature_mean_cov(inception.features(reals), ddof=0)
    fakes = []
    for i in range(4):   # the documented sampling: z from default_rng([seed, 1, micro-batch index])
        rng = np.random.default_rng([0, 1, i])
        z = rng.standard_normal([4, 16]).astype(np.float32)
        noise_seed = tf.constant(rng.integers(0, 2 ** 31 - 1, 2), tf.int32)
        fakes.append(quantize_to_uint8(generator(z, truncation_psi=1.0, noise_mode="random",
                                                 noise_seed=noise_seed)).numpy())
    fake_features, real_features = inception.features(np.concatenate(fakes)), inception.features(reals)
    mu_f, sig_f = statistics.feature_mean_cov(fake_features, ddof=0)
    expected = statistics.frechet_distance(mu_f, sig_f, mu_r, sig_r)
    assert result["results"]["fid50k_full"] == pytest.approx(expected, rel=1e-4)
    # Second run: the real statistics come from the cache file, same number.
    cached = list((tmp_path / "cache").iterdir())
    assert len(cached) == 1 and "shapes16-16-16-nomirror-inception" in cached[0].name
    again = compute_metric("fid50k_full", opts)
    assert again["results"] == result["results"]
    # fid50k (NVlabs/stylegan2) divides the covariances by N-1: the same features, another number.
    mu_f1, sig_f1 = statistics.feature_mean_cov(fake_features, ddof=1)
    mu_r1, sig_r1 = statistics.feature_mean_cov(real_features, ddof=1)
    sg2 = compute_metric("fid50k", opts)["results"]["fid50k"]
    assert sg2 == pytest.approx(statistics.frechet_distance(mu_f1, sig_f1, mu_r1, sig_r1), rel=1e-4)
    assert abs(sg2 - expected) > 1e-3 * expected  # and not fid50k_full's cached statistics
    # KID with stylegan2-ada-pytorch's settings: 100 subsets of at most 1000 rows, subsets drawn with
    # the run's seed (with 16 images every subset is all of them, so the call itself is checked too).
    calls = []
    real_kid = statistics.kernel_inception_distance

    def recording_kid(*args, **kw):
        calls.append((args[2:], kw))
        return real_kid(*args, **kw)
    monkeypatch.setattr(statistics, "kernel_inception_distance", recording_kid)
    kid = compute_metric("kid50k", opts)["results"]["kid50k"]
    assert calls == [((100, 1000), {"seed": opts.seed})]
    assert kid == pytest.approx(real_kid(real_features, fake_features, num_subsets=100, max_subset_size=1000,
                                         seed=opts.seed), rel=1e-4)


def test_mirror_augment_appends_flipped_reals(generator, dataset, feature_files, tmp_path):
    ctx = Evaluator(_opts(generator, dataset, feature_files, mirror_augment=True))
    from stylegan2_tf.metrics.evaluate import _real_images
    batches = np.concatenate([b.numpy() for b in _real_images(ctx, None, 16)])
    assert len(batches) == 80
    np.testing.assert_array_equal(batches[40:], batches[:40, :, ::-1])


@pytest.mark.parametrize("name", ["kid50k_full", "is50k", "pr50k3_full"])
def test_other_inception_and_vgg_metrics_run(generator, dataset, feature_files, name):
    result = compute_metric(name, _opts(generator, dataset, feature_files, num_images=12))
    values = result["results"]
    assert all(np.isfinite(v) for v in values.values())
    if name == "is50k":
        assert 1.0 <= values["is50k"] <= 1008 and "is50k_std" in values
    if name == "pr50k3_full":
        assert set(values) == {"pr50k3_full_precision", "pr50k3_full_recall"}
        assert all(0.0 <= v <= 1.0 for v in values.values())


class _LinearGenerator:
    """mapping(z) = z on every layer; synthesize(w) = reshape(w A): a known Jacobian."""

    def __init__(self, A, res=8, channels=3):
        self.A = tf.constant(A, tf.float32)
        self.res, self.channels = res, channels
        self.config = types.SimpleNamespace(z_dim=A.shape[0], c_dim=0, num_fp16_res=0, img_resolution=res)

    def mapping(self, z, c=None):
        return tf.tile(z[:, tf.newaxis, :], [1, 2, 1])

    def synthesize(self, ws, noise_mode="random", noise_seed=None):
        return tf.reshape(tf.matmul(ws[:, 0], self.A), [-1, self.res, self.res, self.channels])


def test_ppl_of_a_linear_generator_equals_the_analytic_value():
    """With squared L2 as the distance and G(w) = w A, A = s Q (orthonormal rows):
    ppl_w(end) = s^2 |w1 - w0|^2, E = 2 s^2 k;  ppl_z(full, slerp) = s^2 theta^2 with theta
    the angle between z0 and z1, E[theta^2] ~= (pi/2)^2 (1 + 1/k) for k-dim Gaussians."""
    k, s = 512, 0.3
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((8 * 8 * 12, k)))
    G = _LinearGenerator(s * q.T, channels=12)
    l2 = types.SimpleNamespace(network=lambda a, b: tf.reduce_sum(tf.square(a - b), axis=[1, 2, 3]))
    opts = MetricOptions(G=G, batch_size=50, num_images=2000)
    ctx = Evaluator(opts)
    ctx._networks["lpips"] = l2
    w_end = compute_metric(METRICS["ppl2_wend"], opts, evaluator=ctx)["results"]["ppl2_wend"]
    assert w_end == pytest.approx(2 * s ** 2 * k, rel=0.01)
    z_full = MetricDef("ppl_zfull_nocrop", "ppl", 50000, 0, "lpips", "test",
                       (("space", "z"), ("sampling", "full"), ("crop", False), ("epsilon", 1e-4)))
    value = compute_metric(z_full, opts, evaluator=ctx)["results"]["ppl_zfull_nocrop"]
    assert value == pytest.approx(s ** 2 * (np.pi / 2) ** 2 * (1 + 1 / k), rel=0.01)


def test_ppl_runs_on_a_real_generator_with_lpips(generator, feature_files):
    # 16x16 images: ppl2_wend (no crop); LPIPS needs at least 16 px.
    result = compute_metric("ppl2_wend", MetricOptions(G=generator, feature_files=feature_files, batch_size=4,
                                                       num_images=8))
    assert np.isfinite(result["results"]["ppl2_wend"]) and result["results"]["ppl2_wend"] >= 0


def test_results_equal_over_two_replicas(dataset, feature_files, tmp_path):
    """Each replica computes its share of the micro-batches; the samples, hence the
    metric, do not depend on the number of replicas (run in a process with 2 logical CPUs)."""
    from conftest import run_python
    args = [__file__, dataset, json.dumps(feature_files)]
    r = run_python(args, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    one, two = json.loads(r.stdout.strip().splitlines()[-1])
    assert two["kid50k_full"] == pytest.approx(one["kid50k_full"], rel=1e-4, abs=1e-7)
    assert two["ppl2_wend"] == pytest.approx(one["ppl2_wend"], rel=1e-3)


def test_bad_requests_are_one_line_errors(generator, dataset, feature_files, tmp_path):
    with pytest.raises(MetricError, match="unknown metric 'fid1k'"):
        compute_metric("fid1k", _opts(generator, dataset, feature_files))
    with pytest.raises(MetricError, match=r"shapes16: 40 images but 50000 reals are needed; use the metric's _full"):
        compute_metric("fid50k", _opts(generator, dataset, feature_files))
    with pytest.raises(MetricError, match=r"no inception file: pass --inception or set STYLEGAN2_TF_INCEPTION"):
        compute_metric("fid50k_full", _opts(generator, dataset, {}, num_images=4))
    from stylegan2_tf.data.synthetic import create_shapes_dataset
    other = tmp_path / "shapes8"
    create_shapes_dataset(str(other), num_images=8, resolution=8)
    with pytest.raises(MetricError, match=r"shapes8: dataset resolution 8 does not match the network's 16x16"):
        compute_metric("fid50k_full", _opts(generator, str(other), feature_files, num_images=4))
    with pytest.raises(MetricError, match="needs reals: pass --data-dir and --dataset"):
        compute_metric("fid50k_full", _opts(generator, None, feature_files, num_images=4))


def test_feature_files_from_environment_and_config(tmp_path, monkeypatch):
    config = tmp_path / "metrics.json"
    config.write_text(json.dumps({"inception": "/c/inc.pb", "lpips": ["/c/vgg16.pth", "/c/vgg.pth"]}))
    monkeypatch.setenv("STYLEGAN2_TF_METRICS_CONFIG", str(config))
    monkeypatch.setenv("STYLEGAN2_TF_VGG16", "/env/vgg16.pth")
    monkeypatch.delenv("STYLEGAN2_TF_INCEPTION", raising=False)
    monkeypatch.delenv("STYLEGAN2_TF_LPIPS", raising=False)
    files = resolve_feature_files(inception="/flag/inc.pth")
    assert files == {"inception": "/flag/inc.pth", "lpips": "/c/vgg16.pth,/c/vgg.pth", "vgg16": "/env/vgg16.pth"}
    config.write_text("{not json")
    with pytest.raises(MetricError, match=r"metrics\.json: not a readable JSON metrics config"):
        resolve_feature_files()



def test_ppl_generator_is_float32_copy_of_a_mixed_precision_one():
    from stylegan2_tf.metrics.path_length import float32_generator
    from stylegan2_tf.networks import Generator, GeneratorConfig
    tf.keras.utils.set_random_seed(1)
    G16 = Generator(GeneratorConfig(img_resolution=16, z_dim=16, w_dim=16, mapping_layers=2, fmap_base=64,
                                    fmap_max=16, num_fp16_res=2, conv_clamp=256)).build_weights()
    G32 = float32_generator(G16)
    assert G32 is not G16 and G32.config.num_fp16_res == 0
    for a, b in zip(G32.weights, G16.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    z = tf.constant(np.random.default_rng(0).standard_normal((2, 16)), tf.float32)
    img16 = G16(z, noise_mode="const").numpy()
    img32 = G32(z, noise_mode="const").numpy()
    assert np.abs(img16 - img32).max() < 0.05                   # float16 rounding only
    G16.weights[0].assign(G16.weights[0] + 1.0)                 # a refreshed copy follows G's weights
    again = float32_generator(G16, G32)
    assert again is G32
    np.testing.assert_array_equal(G32.weights[0].numpy(), G16.weights[0].numpy())
    plain = Generator(GeneratorConfig(img_resolution=16, z_dim=16, w_dim=16, mapping_layers=2, fmap_base=64,
                                      fmap_max=16))
    assert float32_generator(plain) is plain

if __name__ == "__main__":   # the two-replica process of test_results_equal_over_two_replicas
    import sys
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from stylegan2_tf.networks import Generator, GeneratorConfig
    from stylegan2_tf.training import make_strategy
    data_dir, files = sys.argv[1], json.loads(sys.argv[2])
    results = []
    for replicas in (1, 2):
        strategy = make_strategy(replicas)
        with strategy.scope():
            tf.keras.utils.set_random_seed(0)
            G = Generator(GeneratorConfig(img_resolution=16, img_channels=3, z_dim=16, w_dim=16, mapping_layers=2,
                                          fmap_base=64, fmap_max=16)).build_weights()
        opts = MetricOptions(G=G, tfrecord_dir=data_dir, feature_files=files, batch_size=4, num_images=12,
                             strategy=strategy if replicas > 1 else None)
        out = {}
        for name in ("kid50k_full", "ppl2_wend"):
            out.update(compute_metric(name, opts)["results"])
        results.append(out)
    print(json.dumps(results))


def test_conditional_fakes_take_the_dataset_labels(tmp_path):
    """NVIDIA's metrics give a conditional network's fakes the labels of random dataset images
    (uniform with replacement), so the classes come in the dataset's proportions (here 3:1:0,
    not the 1:1:1 of uniform classes), and a label size that differs from c_dim stops the run."""
    from PIL import Image
    from stylegan2_tf.data import create_from_images
    from stylegan2_tf.data.synthetic import shapes_images
    from stylegan2_tf.networks import Generator, GeneratorConfig
    images, _ = shapes_images(8, 16, seed=2)
    rows = [[1, 0, 0]] * 6 + [[0, 1, 0]] * 2
    (tmp_path / "photos").mkdir()
    for i, img in enumerate(images):
        Image.fromarray(img.transpose(1, 2, 0)).save(tmp_path / "photos" / f"{i}.png")
    (tmp_path / "photos" / "dataset.json").write_text(json.dumps({"labels": [[f"{i}.png", r]
                                                                             for i, r in enumerate(rows)]}))
    create_from_images(str(tmp_path / "cond"), str(tmp_path / "photos"), shuffle=False)
    G = Generator(GeneratorConfig(img_resolution=16, c_dim=3, z_dim=8, w_dim=8, mapping_layers=1,
                                  fmap_base=64, fmap_max=16)).build_weights()
    evaluator = Evaluator(MetricOptions(G=G, tfrecord_dir=str(tmp_path / "cond")))
    c = evaluator.random_labels(np.random.default_rng(0), 4000)
    assert c.shape == (4000, 3) and c.dtype == np.float32
    assert set(map(tuple, c.tolist())) == {(1, 0, 0), (0, 1, 0)}
    share = c[:, 0].mean()     # binomial: 0.75 +- 0.007 (one sigma)
    assert abs(share - 0.75) < 0.03, share
    G2 = Generator(G.config.replace(c_dim=2)).build_weights()
    with pytest.raises(MetricError, match=r"cond: dataset labels have 3 entries, the network's c_dim is 2"):
        Evaluator(MetricOptions(G=G2, tfrecord_dir=str(tmp_path / "cond"))).random_labels(np.random.default_rng(0), 4)
