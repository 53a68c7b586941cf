"""Directions in W that change one aspect of the image, found without labels.

SeFa (Shen & Zhou, "Closed-Form Factorization of Latent Semantics in GANs", CVPR 2021): a style is
s = A w + b, so moving w by n moves the styles by A n. The directions that move the styles most are
the top eigenvectors of AᵀA, A being the affine weights of the chosen layers stacked (rows = style
channels, each normalised to unit length as in the paper's code). One w layer, one affine: the
layer's modulated convolution, and for the last w layer the final ToRGB.

GANSpace (Härkönen et al., "GANSpace: Discovering Interpretable GAN Controls", NeurIPS 2020): the
principal components of w = mapping(z) over sampled z; the standard deviation along each is its
natural step (`scales`).

A `Directions` file (directions.npz) holds unit vectors in W, the w layers they apply to, their
eigenvalues or variances, the method and its settings, and the digest of the network's weights.
"""

import dataclasses
import hashlib
import json

import numpy as np

from ..errors import UserError


class EditingError(UserError):
    """Bad input for directions and edits (method, layers, files, a network they do not fit)."""


@dataclasses.dataclass
class Directions:
    vectors: np.ndarray  # [num, w_dim] float32, unit length
    values: np.ndarray  # [num] eigenvalues (sefa) or variances (ganspace), descending
    scales: np.ndarray  # [num] the natural step of each direction: 1 (sefa), the std along it (ganspace)
    layers: tuple  # (first, last) w layers the directions apply to, inclusive
    method: str
    settings: dict
    network: str  # network_digest() of the network they were found in

    def save(self, path):
        np.savez(path, vectors=self.vectors.astype(np.float32), values=self.values.astype(np.float64),
                 scales=self.scales.astype(np.float32), layers=np.array(self.layers, np.int64),
                 method=self.method, settings=json.dumps(self.settings, sort_keys=True), network=self.network)


def load_directions(path, G=None):
    """directions.npz -> Directions; with G, checked to fit it (w_dim, layers)."""
    try:
        with np.load(path) as f:
            d = Directions(f["vectors"], f["values"], f["scales"], tuple(int(v) for v in f["layers"]),
                           str(f["method"]), json.loads(str(f["settings"])), str(f["network"]))
    except FileNotFoundError:
        raise EditingError(f"{path}: no such file") from None
    except Exception as e:
        raise EditingError(f"{path}: not a directions.npz of this project ({type(e).__name__}: {e})") from None
    if G is not None:
        if d.vectors.shape[1] != G.config.w_dim:
            raise EditingError(f"{path}: directions in a {d.vectors.shape[1]}-dimensional W; this network's "
                               f"w_dim is {G.config.w_dim}")
        if d.layers[1] >= G.num_ws:
            raise EditingError(f"{path}: directions for w layers {d.layers[0]}-{d.layers[1]}; this network has "
                               f"0-{G.num_ws - 1}")
    return d


def network_digest(G):
    """sha256 of G's weights (names, shapes and values): the same network, whatever file it came from."""
    h = hashlib.sha256()
    for v in sorted(G.weights, key=lambda v: v.path):
        value = np.asarray(v.numpy(), np.float32)
        h.update(f"{v.path}:{value.shape};".encode())
        h.update(value.tobytes())
    return h.hexdigest()


def check_layers(layers, G):
    first, last = layers
    if not 0 <= first <= last < G.num_ws:
        raise EditingError(f"--layers {first}-{last}: this network has w layers 0-{G.num_ws - 1}")
    return int(first), int(last)


# --------------------------------------------------------------------------- SeFa

def style_affines(G):
    """{w layer: affine weight variable [w_dim, channels]} of a StyleGAN2 synthesis network: the
    modulated convolution that reads each w layer, and the final ToRGB for the last one."""
    from ..networks.synthesis import SynthesisNetwork
    if not isinstance(G.synthesis, SynthesisNetwork):
        raise EditingError("sefa: needs a StyleGAN2 synthesis network (configs E-F, StyleGAN2-ADA); this one is "
                           f"{type(G.synthesis).__name__} (configs A-D: use --method ganspace)")
    out = {}
    for block in G.synthesis.blocks:
        r = block.res_log2
        if r == 2:
            out[0] = block.conv1.conv.affine.weight
        else:
            out[2 * r - 5] = block.conv0.conv.affine.weight
            out[2 * r - 4] = block.conv1.conv.affine.weight
    out[G.num_ws - 1] = G.synthesis.blocks[-1].torgb.conv.affine.weight
    return dict(sorted(out.items()))


def sefa_factorize(weights):
    """weights: affine kernels [w_dim, channels] -> (eigenvalues descending, unit eigenvectors [num, w_dim])
    of AᵀA, A = the kernels' columns stacked as rows, each normalised to length 1."""
    a = np.concatenate(weights, axis=1).T  # [channels, w_dim]
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    values, vectors = np.linalg.eigh(a.T @ a)
    order = np.argsort(values)[::-1]
    return values[order], vectors[:, order].T


def sefa(G, num, layers=None):
    affines = style_affines(G)
    layers = check_layers(layers or (0, G.num_ws - 1), G)
    values, vectors = sefa_factorize([np.asarray(affines[k].numpy(), np.float64)
                                      for k in range(layers[0], layers[1] + 1)])
    num = check_num(num, len(values))
    return Directions(vectors[:num].astype(np.float32), values[:num], np.ones(num, np.float32), layers, "sefa",
                      {"layers": list(layers), "row_normalised": True}, network_digest(G))


# --------------------------------------------------------------------------- GANSpace

def pca_directions(samples, num):
    """samples [n, d] -> (variances descending, unit principal axes [num, d], mean [d])."""
    samples = np.asarray(samples, np.float64)
    mean = samples.mean(axis=0)
    _, s, vt = np.linalg.svd(samples - mean, full_matrices=False)
    variances = s ** 2 / (len(samples) - 1)
    return variances[:num], vt[:num], mean


def ganspace(G, num, samples=100_000, seed=0, layers=None, batch=4096):
    """PCA of w = mapping(z) for `samples` z drawn from N(0, I) with `seed` (unconditional networks, or
    classes drawn uniformly for conditional ones)."""
    layers = check_layers(layers or (0, G.num_ws - 1), G)
    if samples < 2:
        raise EditingError(f"--samples {samples}: need at least 2")
    rng = np.random.RandomState(seed)
    ws = []
    for start in range(0, samples, batch):
        n = min(batch, samples - start)
        z = rng.randn(n, G.config.z_dim).astype(np.float32)
        c = None
        if G.config.c_dim:
            c = np.eye(G.config.c_dim, dtype=np.float32)[rng.randint(G.config.c_dim, size=n)]
        ws.append(G.mapping(z, c, truncation_psi=1.0).numpy()[:, 0])
    num = check_num(num, G.config.w_dim)
    variances, vectors, _ = pca_directions(np.concatenate(ws), num)
    return Directions(vectors.astype(np.float32), variances, np.sqrt(variances).astype(np.float32), layers,
                      "ganspace", {"samples": samples, "seed": seed, "layers": list(layers)}, network_digest(G))


def check_num(num, available):
    if not 1 <= num <= available:
        raise EditingError(f"--num {num}: between 1 and {available} directions exist")
    return num
