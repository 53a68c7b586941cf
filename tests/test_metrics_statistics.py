"""The metrics' statistics and image preparation against closed forms and direct numpy references."""

import itertools
import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from stylegan2_tf.metrics import statistics  # noqa: E402


# --------------------------------------------------------------------------- FID

def test_feature_mean_cov_normalisations():
    x = np.random.default_rng(0).standard_normal((50, 4))
    mu, s1 = statistics.feature_mean_cov(x, ddof=1)
    _, s0 = statistics.feature_mean_cov(x, ddof=0)
    np.testing.assert_allclose(mu, x.mean(0))
    np.testing.assert_allclose(s1, np.cov(x, rowvar=False), rtol=1e-12)
    np.testing.assert_allclose(s0, np.cov(x, rowvar=False, bias=True), rtol=1e-12)


def test_fid_of_identical_statistics_is_zero():
    x = np.random.default_rng(1).standard_normal((400, 16))
    mu, sigma = statistics.feature_mean_cov(x, 1)
    assert abs(statistics.frechet_distance(mu, sigma, mu, sigma)) < 1e-8


def test_fid_of_gaussians_matches_the_closed_form():
    rng = np.random.default_rng(2)
    d = 6
    # Commuting covariances: Tr(S1 + S2 - 2 (S1 S2)^1/2) = sum (sqrt(l1) - sqrt(l2))^2 over shared eigenvectors.
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    l1, l2 = rng.uniform(0.5, 2, d), rng.uniform(0.5, 2, d)
    s1, s2 = q @ np.diag(l1) @ q.T, q @ np.diag(l2) @ q.T
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(l1) - np.sqrt(l2)) ** 2)
    assert statistics.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)
    # Non-commuting: the 2x2 case against the explicit square root of S1 S2.
    a = np.array([[2.0, 0.3], [0.3, 1.0]])
    b = np.array([[1.0, -0.4], [-0.4, 0.5]])
    p = a @ b                                   # sqrt of a 2x2 matrix with positive eigenvalues:
    t, det = np.trace(p), np.linalg.det(p)      # (P + sqrt(det) I) / sqrt(tr + 2 sqrt(det))
    root = (p + np.sqrt(det) * np.eye(2)) / np.sqrt(t + 2 * np.sqrt(det))
    expected = np.trace(a + b - 2 * root)
    assert statistics.frechet_distance(np.zeros(2), a, np.zeros(2), b) == pytest.approx(expected, rel=1e-9)


def test_fid_rejects_mismatched_statistics():
    with pytest.raises(ValueError, match="statistics do not match"):
        statistics.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


# --------------------------------------------------------------------------- KID

def _kid_direct(x, y):
    """Unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3, by explicit sums over pairs."""
    d, m = x.shape[1], x.shape[0]
    k = lambda a, b: (a @ b / d + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_equals_the_unbiased_mmd_estimate():
    rng = np.random.default_rng(3)
    real = rng.standard_normal((12, 5))
    fake = rng.standard_normal((12, 5)) + 0.5
    # One subset of all rows: the estimate does not depend on the row order drawn.
    kid = statistics.kernel_inception_distance(real, fake, num_subsets=1, max_subset_size=12, seed=0)
    assert kid == pytest.approx(_kid_direct(fake, real), rel=1e-10)


def test_kid_of_point_masses_is_the_kernel_distance():
    a, b = np.full((30, 4), 0.5), np.full((30, 4), -0.25)
    k = lambda u, v: (u @ v / 4 + 1) ** 3  # noqa: E731
    expected = k(a[0], a[0]) + k(b[0], b[0]) - 2 * k(a[0], b[0])
    assert statistics.kernel_inception_distance(a, b, num_subsets=5, max_subset_size=10,
                                                seed=1) == pytest.approx(expected)


def test_kid_is_near_zero_for_one_distribution():
    rng = np.random.default_rng(4)
    kid = statistics.kernel_inception_distance(rng.standard_normal((2000, 8)), rng.standard_normal((2000, 8)),
                                               num_subsets=20, max_subset_size=1000, seed=0)
    assert abs(kid) < 2e-3


# --------------------------------------------------------------------------- IS

def test_inception_score_of_confident_balanced_classifier_is_k():
    k = 7
    probs = np.eye(k)[np.tile(np.arange(k), 10)]        # each split holds every class equally
    mean, std = statistics.inception_score(probs, num_splits=10)
    assert mean == pytest.approx(k) and std == pytest.approx(0.0, abs=1e-12)


def test_inception_score_of_uniform_classifier_is_one():
    mean, std = statistics.inception_score(np.full((50, 1008), 1 / 1008), num_splits=10)
    assert mean == pytest.approx(1.0) and std == pytest.approx(0.0, abs=1e-12)


def test_softmax_is_stable():
    p = statistics.softmax(np.array([[1000.0, 1000.0, -1000.0]]))
    np.testing.assert_allclose(p, [[0.5, 0.5, 0.0]])


# --------------------------------------------------------------------------- precision / recall

def _pr_direct(real, fake, k):
    def radii(x):
        d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
        return np.sort(d, axis=1)[:, k]                 # neighbour 0 is the point itself

    def inside(probes, manifold, r):
        d = ((probes[:, None, :] - manifold[None, :, :]) ** 2).sum(-1)
        return (d <= r[None, :]).any(axis=1)

    return inside(fake, real, radii(real)).mean(), inside(real, fake, radii(fake)).mean()


def test_precision_recall_known_answers():
    rng = np.random.default_rng(5)
    real = rng.standard_normal((60, 3)).astype(np.float32)
    assert statistics.precision_recall(real, real.copy(), k=3) == (1.0, 1.0)
    far = real + 100.0
    assert statistics.precision_recall(real, far, k=3) == (0.0, 0.0)
    # Half the fakes are copies of reals (inside), half are far away (outside): precision 1/2.
    half = np.concatenate([real[:30], far[:30]])
    precision, _ = statistics.precision_recall(real, half, k=3)
    assert precision == 0.5


def test_precision_recall_matches_direct_computation_and_batching():
    rng = np.random.default_rng(6)
    real = rng.standard_normal((90, 5)).astype(np.float32)
    fake = (rng.standard_normal((70, 5)) * 1.3 + 0.4).astype(np.float32)
    expected = _pr_direct(real.astype(np.float64), fake.astype(np.float64), 3)
    assert statistics.precision_recall(real, fake, k=3) == pytest.approx(expected)
    assert statistics.precision_recall(real, fake, k=3, row_batch_size=16, col_batch_size=7) == pytest.approx(expected)


# --------------------------------------------------------------------------- PPL filtering

def test_path_length_outlier_rejection():
    d = np.arange(1, 201, dtype=np.float64)            # P1 (lower) = 2, P99 (higher) = 199
    assert statistics.filtered_path_length(d) == pytest.approx(np.arange(2, 200).mean())
    d[0] = 1e9                                         # an outlier does not move the result much
    assert statistics.filtered_path_length(d) == pytest.approx(np.arange(2, 200).mean() + (200 - 2) / 198)


# --------------------------------------------------------------------------- image preparation

def test_quantize_to_uint8_truncates_like_the_official_code():
    from stylegan2_tf.metrics.image_prep import quantize_to_uint8
    x = np.array([-1.5, -1.0, -0.999, -0.0039216, 0.0, 0.0039, 0.5, 0.99607, 1.0, 2.0], np.float32)
    expected = np.array([0, 0, 0, 127, 128, 128, 191, 254, 255, 255], np.uint8)
    np.testing.assert_array_equal(quantize_to_uint8(x).numpy(), expected)
    y = np.random.default_rng(7).uniform(-1.2, 1.2, 1000).astype(np.float32)
    np.testing.assert_array_equal(quantize_to_uint8(y).numpy(), np.clip(y * 127.5 + 128, 0, 255).astype(np.uint8))


def _legacy_bilinear(img, out_h, out_w):
    """TF1 ResizeBilinear, align_corners=False, no half-pixel centres: src = dst * in / out."""
    in_h, in_w = img.shape[:2]
    out = np.zeros((out_h, out_w) + img.shape[2:], np.float64)
    for i in range(out_h):
        y = i * in_h / out_h
        y0 = int(np.floor(y))
        y1, fy = min(y0 + 1, in_h - 1), y - y0
        for j in range(out_w):
            x = j * in_w / out_w
            x0 = int(np.floor(x))
            x1, fx = min(x0 + 1, in_w - 1), x - x0
            top = img[y0, x0] * (1 - fx) + img[y0, x1] * fx
            bottom = img[y1, x0] * (1 - fx) + img[y1, x1] * fx
            out[i, j] = top * (1 - fy) + bottom * fy
    return out


@pytest.mark.parametrize("size_in,size_out", [(8, 19), (32, 29), (13, 13)])
def test_resize_bilinear_legacy_matches_tf1_rule(size_in, size_out):
    import tensorflow as tf
    from stylegan2_tf.metrics.image_prep import resize_bilinear_legacy
    img = np.random.default_rng(8).integers(0, 256, (2, size_in, size_in, 3)).astype(np.uint8)
    got = resize_bilinear_legacy(img, (size_out, size_out)).numpy()
    expected = np.stack([_legacy_bilinear(im.astype(np.float64), size_out, size_out) for im in img])
    np.testing.assert_allclose(got, expected, atol=1e-3)   # TF computes the scale in float32
    if size_in != size_out:   # tf.image.resize (half-pixel centres) is a different rule
        assert np.abs(tf.image.resize(img, (size_out, size_out)).numpy() - expected).max() > 1.0


def test_ppl_crop_and_box_downsample():
    from stylegan2_tf.metrics.image_prep import box_downsample_to, ppl_crop
    x = np.random.default_rng(9).standard_normal((2, 64, 64, 3)).astype(np.float32)
    crop = ppl_crop(x)
    np.testing.assert_array_equal(crop, x[:, 24:56, 16:48])     # c = 8: rows 3c..7c, cols 2c..6c
    down = box_downsample_to(x, 16).numpy()
    np.testing.assert_allclose(down, x.reshape(2, 16, 4, 16, 4, 3).mean(axis=(2, 4)), rtol=1e-5, atol=1e-6)
    assert box_downsample_to(x, 256) is x
