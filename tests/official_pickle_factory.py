"""Fabricate official-format TF1 StyleGAN2 network pickles from the format specs.

The specs in `tests/fixtures/stylegan2_pkl/specs/*.txt` list, for one network
configuration, the three pickled networks (G, D, Gs): their names, build-function
names, static kwargs, components and every variable's local name, shape and type in
TF1 creation order. `write_pickle_from_spec(spec, out)` writes a file with exactly
that structure -- `pickle.dump((G, D, Gs), f, protocol=4)` of objects that pickle as
`dnnlib.tflib.network.Network` -- filled with seeded random values:

  weight        N(0, 1) / lrmul      (mapping lrmul from the kwargs, default 0.01 for
                                      G_mapping/Dense*, 0.1 for the D label Mapping*)
  bias          N(0, 0.1^2) / lrmul
  mod_weight    N(0, 1);  mod_bias N(0, 0.1^2)
  noise_strength  +-U(0.05, 0.3) (random sign)
  const, noise<i> N(0, 1);  dlatent_avg N(0, 0.5^2);  lod 0

Every variable draws from its own `RandomState`, seeded from (seed, top-level network
name, component path, variable name), so G, Gs and D differ and the output does not
depend on dict or set ordering. Same arguments -> byte-identical file.

This module deliberately shares no code with `stylegan2_tf`: it knows the file
format only through the spec text, so tests built on it check our loader against
the format rather than against itself. numpy objects are written under their
numpy-1.x global names (`numpy.core.multiarray._reconstruct` / `scalar`) as in the
official files, and the pickle contains no source code (`build_module_src` is a
placeholder comment).
"""

import hashlib
import io
import json
import pickle
import re

import numpy as np

NETWORK_MODULE = "dnnlib.tflib.network"
NETWORK_CLASS = "Network"
PLACEHOLDER_SRC = ("# build_module_src placeholder: official pickles embed the source of the module "
                   "that defines the build function here.\n")


# ---------------------------------------------------------------------------------------------
# Spec parsing.

class NetSpec:
    """One network of a spec: name, build_func_name, static_kwargs, variables, components."""

    def __init__(self, name, build_func_name):
        self.name = name
        self.build_func_name = build_func_name
        self.static_kwargs = {}
        self.variables = []         # [(local name, shape tuple, is_scalar)]
        self.components = {}        # {key: NetSpec}

    def __repr__(self):
        return f"NetSpec({self.name!r}, {self.build_func_name!r}, {len(self.variables)} vars)"


_HEADER = re.compile(r"^pickle = \((\w+), (\w+), (\w+)\); each a dnnlib\.tflib\.network\.Network "
                     r"with state version (\d+)$")
_NETWORK = re.compile(r"^(?:components\['(\w+)'\]: )?Network name='([^']+)' build_func_name='([^']+)'$")
_KWARGS = re.compile(r"^static_kwargs = (\{.*\})$")
_VAR = re.compile(r"^(\S+): \[([0-9, ]*)\] (float32|numpy\.float32 scalar)$")
_SECTION = re.compile(r"^--- (\w+) ---$")
_SHA = re.compile(r"^sha256 of file: ([0-9a-f]{64})$")    # the spec's real pickle, if there is one
_NOTE = re.compile(r"^(sha256 of the .*|build_module_src of the official pickle: .*)$")   # facts, not layout


def parse_spec(text):
    """-> (version, {'G': NetSpec, 'D': NetSpec, 'Gs': NetSpec}, order) from a spec file's text."""
    lines = [ln.rstrip("\n") for ln in text.splitlines() if ln.strip()]
    m = _HEADER.match(lines[0].strip())
    if not m:
        raise ValueError(f"unrecognised spec header: {lines[0]!r}")
    order = m.groups()[:3]
    version = int(m.group(4))
    nets = {}
    stack = []                      # [(indent, NetSpec)]
    section = None
    for ln in lines[1:]:
        indent = len(ln) - len(ln.lstrip(" "))
        body = ln.strip()
        if _SHA.match(body) or _NOTE.match(body):
            continue
        sm = _SECTION.match(body)
        if sm:
            section, stack = sm.group(1), []
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        nm = _NETWORK.match(body)
        if nm:
            comp, name, func = nm.groups()
            net = NetSpec(name, func)
            if comp is None:
                if section is None or section in nets:
                    raise ValueError(f"unexpected top-level network line {body!r}")
                nets[section] = net
            else:
                stack[-1][1].components[comp] = net
            stack.append((indent, net))
            continue
        if not stack:
            raise ValueError(f"line outside a network: {body!r}")
        owner = stack[-1][1]
        km = _KWARGS.match(body)
        if km:
            owner.static_kwargs = json.loads(km.group(1))
            continue
        vm = _VAR.match(body)
        if vm:
            name, dims, kind = vm.groups()
            shape = tuple(int(d) for d in dims.replace(" ", "").split(",") if d)
            owner.variables.append((name, shape, kind != "float32"))
            continue
        raise ValueError(f"unrecognised spec line: {body!r}")
    if set(nets) != set(order):
        raise ValueError(f"spec lists networks {sorted(nets)}, header says {order}")
    return version, nets, order


# ---------------------------------------------------------------------------------------------
# Values.

def _rng(seed, *path):
    digest = hashlib.sha256("/".join([str(seed), *path]).encode()).digest()
    return np.random.RandomState(int.from_bytes(digest[:4], "little"))


def _lrmul(net_name, var_name, kwargs):
    scope = var_name.split("/")[0]
    if net_name == "G_mapping" and re.fullmatch(r"Dense\d+", scope):
        return float(kwargs.get("mapping_lrmul", 0.01))
    if net_name not in ("G_mapping", "G_synthesis") and re.fullmatch(r"Mapping\d+", scope):
        return float(kwargs.get("mapping_lrmul", 0.1))     # label mapping of the ADA discriminator
    return 1.0


def _value(rng, net_name, var_name, shape, kwargs):
    leaf = var_name.split("/")[-1]
    lrmul = _lrmul(net_name, var_name, kwargs)
    if leaf == "lod":
        return np.zeros(shape, np.float32)
    if leaf == "noise_strength":
        return np.asarray(rng.choice([-1.0, 1.0]) * rng.uniform(0.05, 0.3, size=shape), np.float32)
    if leaf == "dlatent_avg":
        return (0.5 * rng.randn(*shape)).astype(np.float32)
    if leaf == "mod_bias":
        return (0.1 * rng.randn(*shape)).astype(np.float32)
    if leaf == "bias":
        return (0.1 * rng.randn(*shape) / lrmul).astype(np.float32)
    if leaf in ("weight", "mod_weight", "const") or re.fullmatch(r"noise\d+", leaf):
        return (rng.randn(*shape) / lrmul).astype(np.float32)
    raise ValueError(f"no value rule for variable {net_name}/{var_name}")


# ---------------------------------------------------------------------------------------------
# Pickled objects.

class FabricatedNetwork:
    """Pickles like `dnnlib.tflib.network.Network`: a class reference plus a state dict."""

    def __init__(self, state):
        self._state = state

    def __getstate__(self):
        return self._state


# The written file names the official module/class; see _FormatPickler.
FabricatedNetwork.__module__ = NETWORK_MODULE
FabricatedNetwork.__qualname__ = NETWORK_CLASS


def _io_shapes(spec, top):
    """Entries of the version-5 state (input/output shapes and names), from the kwargs."""
    kw = dict(top.static_kwargs)
    kw.update(spec.static_kwargs)
    res, ch, c_dim = kw.get("resolution", 1024), kw.get("num_channels", 3), kw.get("label_size", 0)
    z_dim, w_dim = kw.get("latent_size", 512), kw.get("dlatent_size", 512)
    num_ws = int(spec.static_kwargs.get("dlatent_broadcast", 2 * int(np.log2(res)) - 2))
    img = [None, ch, res, res]
    if spec.build_func_name == "G_main":
        return [[None, z_dim], [None, c_dim]], [img], ["latents_in", "labels_in"], ["images_out"]
    if spec.build_func_name == "G_mapping":
        return ([[None, z_dim], [None, c_dim]], [[None, num_ws, w_dim]], ["latents_in", "labels_in"],
                ["dlatents_out"])
    if spec.build_func_name.startswith("G_synthesis"):
        return [[None, 2 * int(np.log2(res)) - 2, w_dim]], [img], ["dlatents_in"], ["images_out"]
    return [img, [None, c_dim]], [[None, 1]], ["images_in", "labels_in"], ["scores_out"]


def build_networks(spec_text, seed=0, version=None):
    """-> tuple of FabricatedNetwork in the spec's pickle order (G, D, Gs)."""
    spec_version, nets, order = parse_spec(spec_text)
    version = spec_version if version is None else int(version)

    def make(spec, top_name, path, top):
        variables = []
        for name, shape, is_scalar in spec.variables:
            value = _value(_rng(seed, top_name, path, name), spec.name, name, shape, spec.static_kwargs)
            variables.append((name, np.float32(value) if is_scalar else value))
        state = {
            "version": version,
            "name": spec.name,
            "static_kwargs": dict(spec.static_kwargs),
            "components": {key: make(comp, top_name, f"{path}/{key}", top)
                           for key, comp in spec.components.items()},
            "build_module_src": PLACEHOLDER_SRC,
            "build_func_name": spec.build_func_name,
            "variables": variables,
        }
        if version >= 5:
            ins, outs, in_names, out_names = _io_shapes(spec, top)
            state.update(input_shapes=ins, output_shapes=outs, input_names=in_names, output_names=out_names)
        return FabricatedNetwork(state)

    return tuple(make(nets[key], key, key, nets[key]) for key in order)


class _FormatPickler(pickle._Pickler):
    """Writes chosen globals under fixed (module, name) pairs instead of their current ones."""

    def __init__(self, file, aliases):
        super().__init__(file, protocol=4)
        self._aliases = {id(obj): names for obj, names in aliases}
        self._keep = [obj for obj, _ in aliases]

    def save_global(self, obj, name=None):
        names = self._aliases.get(id(obj))
        if names is None:
            return super().save_global(obj, name)
        module, qualname = names
        self.save(module)
        self.save(qualname)
        self.write(pickle.STACK_GLOBAL)
        self.memoize(obj)


def _numpy_globals():
    reconstruct = np.ndarray.__reduce__(np.zeros(1, np.float32))[0]
    scalar = np.float32(0).__reduce__()[0]
    return [(reconstruct, ("numpy.core.multiarray", "_reconstruct")),
            (scalar, ("numpy.core.multiarray", "scalar"))]


def dumps_networks(networks):
    buf = io.BytesIO()
    aliases = [(FabricatedNetwork, (NETWORK_MODULE, NETWORK_CLASS))] + _numpy_globals()
    _FormatPickler(buf, aliases).dump(tuple(networks))
    return buf.getvalue()


def write_pickle_from_spec(spec_path, out_path, seed=0, version=None):
    """Write an official-format (G, D, Gs) pickle for the spec at `spec_path`; returns `out_path`.

    `version` overrides the dnnlib Network state version named by the spec (5 adds the
    input/output shape and name entries that later dnnlib versions store).
    """
    with open(spec_path, encoding="utf-8") as f:
        text = f.read()
    data = dumps_networks(build_networks(text, seed=seed, version=version))
    with open(out_path, "wb") as f:
        f.write(data)
    return out_path


def spec_summary(spec_path):
    """{'G'|'D'|'Gs': NetSpec} of a spec file (for tests that need kwargs without the pickle)."""
    with open(spec_path, encoding="utf-8") as f:
        return parse_spec(f.read())[1]


def reference_inputs(z_dim, c_dim, res, channels):
    """The inputs NVIDIA's reference outputs of the variants are computed on (batch 4, and 8 for the
    minibatch-stddev check): z of seeds 0-3, one-hot labels i % c_dim, U(-1, 1) images of
    RandomState(1234), and 8 images of RandomState(5678) whose even members are near-copies."""
    z = np.stack([np.random.RandomState(seed).randn(z_dim) for seed in range(4)])
    c = np.zeros([4, c_dim], np.float32)
    c8 = np.zeros([8, c_dim], np.float32)
    if c_dim:
        c[np.arange(4), np.arange(4) % c_dim] = 1
        c8[np.arange(8), np.arange(8) % c_dim] = 1
    rand_img = np.random.RandomState(1234).uniform(-1, 1, [4, channels, res, res]).astype(np.float32)
    rs = np.random.RandomState(5678)
    base = rs.uniform(-1, 1, [channels, res, res])
    rand_img8 = rs.uniform(-1, 1, [8, channels, res, res])
    rand_img8[0::2] = base + 0.05 * rs.randn(4, channels, res, res)   # even samples: near-copies
    return dict(z=z, c=c, c8=c8, rand_img=rand_img, rand_img8=rand_img8.astype(np.float32))


__all__ = ["write_pickle_from_spec", "reference_inputs", "parse_spec", "build_networks", "dumps_networks",
           "spec_summary", "NetSpec", "FabricatedNetwork"]
