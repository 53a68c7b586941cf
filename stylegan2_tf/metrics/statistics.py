"""The metrics' statistics on feature vectors: FID, KID, IS, k-NN precision/recall.

Plain numpy/scipy on arrays of features; the feature networks and the sampling
live elsewhere. Each function follows the definition of the official code its
metric is named after (NVlabs/stylegan2 `metrics/` for fid50k, is50k, pr50k3;
NVlabs/stylegan2-ada-pytorch `metrics/` for the `_full` variants and KID).
"""

import warnings

import numpy as np
import scipy.linalg


def feature_mean_cov(features, ddof):
    """Mean and covariance of `features` [N, D] in float64.

    ddof=1 divides by N-1 (numpy's `np.cov`, what NVlabs/stylegan2 uses for fid50k);
    ddof=0 divides by N (what stylegan2-ada-pytorch's FeatureStats computes for
    fid50k_full). The choice moves FID by O(D/N) relative -- about 4e-5 at 50k
    samples -- so each metric keeps the normalisation of the code it reproduces.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] <= ddof:
        raise ValueError(f"need a [N, D] feature array with N > {ddof}, got shape {x.shape}")
    mu = x.mean(axis=0)
    centred = x - mu
    sigma = centred.T @ centred / (x.shape[0] - ddof)
    return mu, sigma


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """FID = |mu1 - mu2|^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2)), in float64.

    The matrix square root is scipy's `sqrtm` of the product, real part, as both
    official implementations do.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(f"statistics do not match: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs "
                         f"{sigma2.shape}")
    m = np.square(mu1 - mu2).sum()
    with warnings.catch_warnings():
        # Singular products (fewer samples than features) are expected in short runs; the
        # official code silences scipy the same way (disp=False).
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        s = scipy.linalg.sqrtm(np.dot(sigma1, sigma2))
    return float(np.real(m + np.trace(sigma1 + sigma2 - 2.0 * s)))


def kernel_inception_distance(real_features, fake_features, num_subsets=100, max_subset_size=1000, seed=None):
    """KID: the unbiased MMD^2 estimate with the polynomial kernel k(x, y) = (x.y / d + 1)^3,
    averaged over `num_subsets` random subsets of m = min(N_real, N_fake, max_subset_size)
    rows from each side (drawn without replacement)."""
    real = np.asarray(real_features, dtype=np.float64)
    fake = np.asarray(fake_features, dtype=np.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature arrays must be [N, D] with the same D, got {real.shape} and {fake.shape}")
    rng = np.random.default_rng(seed)
    d = real.shape[1]
    m = min(real.shape[0], fake.shape[0], max_subset_size)
    if m < 2:
        raise ValueError("KID needs at least 2 samples on each side")
    total = 0.0
    for _ in range(num_subsets):
        x = fake[rng.choice(fake.shape[0], m, replace=False)]
        y = real[rng.choice(real.shape[0], m, replace=False)]
        a = (x @ x.T / d + 1) ** 3 + (y @ y.T / d + 1) ** 3
        b = (x @ y.T / d + 1) ** 3
        total += (a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m
    return float(total / num_subsets / m)


def softmax(logits):
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def inception_score(probs, num_splits=10):
    """IS = exp(E_x KL(p(y|x) || p(y))) per split; returns (mean, std) over the splits.

    `probs` are the class probabilities [N, C]; for the paper's number they are the
    softmax of the Inception logits computed without the output bias.
    """
    p = np.asarray(probs, dtype=np.float64)
    n = p.shape[0]
    if n < num_splits:
        raise ValueError(f"IS with {num_splits} splits needs at least {num_splits} samples, got {n}")
    scores = []
    for i in range(num_splits):
        part = p[i * n // num_splits:(i + 1) * n // num_splits]
        py = part.mean(axis=0, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = np.where(part > 0, part * (np.log(part) - np.log(py)), 0.0)
        scores.append(np.exp(kl.sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))


def _squared_distances(u, v):
    # |u|^2 - 2 u.v + |v|^2, clamped at 0, in float32 like the official GPU code.
    nu = np.square(u).sum(axis=1, dtype=np.float32)[:, None]
    nv = np.square(v).sum(axis=1, dtype=np.float32)[None, :]
    return np.maximum(nu - 2.0 * (u @ v.T) + nv, 0.0)


def knn_radii(features, k, row_batch_size=10000, col_batch_size=10000):
    """Squared distance from each feature vector to its k-th nearest neighbour in the
    same set (the vector itself, at distance 0, is neighbour 0)."""
    x = np.asarray(features, dtype=np.float32)
    n = x.shape[0]
    if n <= k:
        raise ValueError(f"k-NN radii with k={k} need more than {k} samples, got {n}")
    radii = np.empty([n], dtype=np.float32)
    for r0 in range(0, n, row_batch_size):
        rows = x[r0:r0 + row_batch_size]
        dist = np.concatenate([_squared_distances(rows, x[c0:c0 + col_batch_size])
                               for c0 in range(0, n, col_batch_size)], axis=1)
        radii[r0:r0 + rows.shape[0]] = np.partition(dist, k, axis=1)[:, k]
    return radii


def inside_manifold(probes, manifold, radii, row_batch_size=10000, col_batch_size=10000):
    """For each probe: does it lie within some manifold sample's k-NN ball?"""
    p = np.asarray(probes, dtype=np.float32)
    m = np.asarray(manifold, dtype=np.float32)
    out = np.zeros([p.shape[0]], dtype=bool)
    for r0 in range(0, p.shape[0], row_batch_size):
        rows = p[r0:r0 + row_batch_size]
        hit = np.zeros([rows.shape[0]], dtype=bool)
        for c0 in range(0, m.shape[0], col_batch_size):
            dist = _squared_distances(rows, m[c0:c0 + col_batch_size])
            hit |= (dist <= radii[None, c0:c0 + col_batch_size]).any(axis=1)
        out[r0:r0 + rows.shape[0]] = hit
    return out


def precision_recall(real_features, fake_features, k=3, row_batch_size=10000, col_batch_size=10000):
    """Improved precision and recall (Kynkaanniemi et al. 2019): precision = share of fakes
    inside the real k-NN manifold, recall = share of reals inside the fake one."""
    real = np.asarray(real_features, dtype=np.float32)
    fake = np.asarray(fake_features, dtype=np.float32)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature arrays must be [N, D] with the same D, got {real.shape} and {fake.shape}")
    batches = dict(row_batch_size=row_batch_size, col_batch_size=col_batch_size)
    real_radii = knn_radii(real, k, **batches)
    fake_radii = knn_radii(fake, k, **batches)
    precision = inside_manifold(fake, real, real_radii, **batches).mean()
    recall = inside_manifold(real, fake, fake_radii, **batches).mean()
    return float(precision), float(recall)


def filtered_path_length(distances):
    """PPL's outlier rejection: keep samples within [P1, P99] (lower/higher-rounded
    percentiles, as NVlabs/stylegan2) and average them."""
    d = np.asarray(distances, dtype=np.float64)
    lo = np.percentile(d, 1, method="lower")
    hi = np.percentile(d, 99, method="higher")
    return float(d[(lo <= d) & (d <= hi)].mean())
