"""stylegan2-ada-pytorch network pickles (and stylegan3's `--cfg=stylegan2` ones) -> the
StyleGAN2-ADA TF1 layout that tf1_format turns into our networks.

A snapshot is a pickled dict: G, D, G_ema (modules of `training/networks.py`, made persistent
by NVIDIA's torch_utils.persistence), augment_pipe and training_set_kwargs. The unpickler
(unpickler.py) reads it without running anything: every persistent module becomes a passive
`TorchModule`, every tensor a numpy array. Here the modules are matched to the classes of
that file by class name, constructor arguments, child modules and tensor names, and written
as the same network in the TF1 names and memory layouts of NVlabs/stylegan2-ada (the mapping
NVIDIA's `legacy.py` converts the other way):

  PyTorch                                  StyleGAN2-ADA TF1
  mapping.embed / fc{i}  [out, in]         G_mapping/LabelEmbed, Dense{i}  [in, out]
  mapping.w_avg                            dlatent_avg
  synthesis.b4.const [C, 4, 4]             G_synthesis/4x4/Const/const [1, C, 4, 4]
  synthesis.b{r}.conv0 [out, in, k, k]     {r}x{r}/Conv0_up [k, k, in, out], spatially flipped
  synthesis.b{r}.conv1, .torgb             {r}x{r}/Conv1 (4x4/Conv), ToRGB [k, k, in, out]
  .affine.weight, .affine.bias             mod_weight (transposed), mod_bias = bias - 1
  .noise_const [R, R]                      noise{i} [1, 1, R, R]
  synthesis.b{r}.skip                      {r}x{r}/Skip, spatially flipped
  D b{r}.fromrgb, conv0, conv1, skip       {r}x{r}/FromRGB, Conv0, Conv1_down, Skip
  D mapping.embed / fc{i}                  LabelEmbed, Mapping{i}
  D b4.fromrgb, conv, fc, out              4x4/FromRGB, 4x4/Conv, 4x4/Dense0, Output
The constructors' defaults are those of the code that made the pickle -- stylegan2-ada-pytorch's
training/networks.py, or stylegan3's training/networks_stylegan2.py (told apart by the state it
keeps: its FullyConnectedLayer records in_features), which has other defaults (float16 in the
4 highest resolutions, conv_clamp 256, w_avg_beta 0.998) and takes the synthesis arguments in
the Generator's own. Both differ from the TF1 ones: D's mapping has 8 layers with lr
multiplier 0.01, its minibatch-stddev group is 4, channel_base = 2 x fmap_base. The values the
modules recorded (conv clamps, float16 blocks, mapping gains, group sizes) are checked against
them. Anything that does not fit -- another class (stylegan3's alias-free networks),
an unknown constructor argument, a tensor too many or too few or of another shape -- is refused
with one line.
"""

import hashlib
import logging

import numpy as np

from .unpickler import NetworkPickleError, NetworkState, TorchModule

log = logging.getLogger(__name__)

# sha256 of the module sources NVIDIA released (the text a persistent module embeds), by the file
# and commit they are.
KNOWN_SOURCES = {
    "df49fc78a0364015a09b592bb43546af83a6cdaad753d89a2a1a69bd6e171c24":
        "stylegan2-ada-pytorch training/networks.py (375a436)",
    "b6f14e8fa2a95de4d38218fef31380c6a70de770f585107e209ff83075c307ef":
        "stylegan3 training/networks_stylegan2.py (583f2bd)",
    "137a76d163766bad469acb7a0835a6598419fb17585e5e0a72e3f0008668811c":
        "stylegan3 training/networks_stylegan2.py (8fb5177)",
}

# Constructor arguments of training/networks.py that this reader understands, with their defaults.
G_ARGS = dict(z_dim=None, c_dim=None, w_dim=None, img_resolution=None, img_channels=None, mapping_kwargs={},
              synthesis_kwargs={})
MAPPING_ARGS = dict(num_layers=8, embed_features=None, layer_features=None, activation="lrelu", lr_multiplier=0.01,
                    w_avg_beta=0.995)
SYNTHESIS_ARGS = dict(channel_base=32768, channel_max=512, num_fp16_res=0, architecture="skip",
                      resample_filter=[1, 3, 3, 1], conv_clamp=None, use_noise=True, activation="lrelu",
                      # implementation choices only (memory layout, grouped conv): the same numbers
                      fp16_channels_last=False, fused_modconv_default=None, channels_last=False)
D_ARGS = dict(c_dim=None, img_resolution=None, img_channels=None, architecture="resnet", channel_base=32768,
              channel_max=512, num_fp16_res=0, conv_clamp=None, cmap_dim=None, block_kwargs={}, mapping_kwargs={},
              epilogue_kwargs={})
D_BLOCK_ARGS = dict(activation="lrelu", resample_filter=[1, 3, 3, 1], freeze_layers=0, fp16_channels_last=False)
EPILOGUE_ARGS = dict(mbstd_group_size=4, mbstd_num_channels=1, activation="lrelu")
# stylegan3's training/networks_stylegan2.py: other defaults, synthesis arguments in the Generator's.
SG3_MAPPING_ARGS = dict(MAPPING_ARGS, w_avg_beta=0.998)
SG3_SYNTHESIS_ARGS = dict(SYNTHESIS_ARGS, num_fp16_res=4, conv_clamp=256, fused_modconv_default=True)
SG3_D_ARGS = dict(D_ARGS, num_fp16_res=4, conv_clamp=256)
CODES = {"stylegan2-ada-pytorch": (MAPPING_ARGS, SYNTHESIS_ARGS, D_ARGS),
         "stylegan3": (SG3_MAPPING_ARGS, SG3_SYNTHESIS_ARGS, SG3_D_ARGS)}
# The classes each network is made of (a StyleGAN3 generator has SynthesisInput and others).
G_CLASSES = {"Generator", "MappingNetwork", "SynthesisNetwork", "SynthesisBlock", "SynthesisLayer", "ToRGBLayer",
             "FullyConnectedLayer", "Conv2dLayer"}
D_CLASSES = {"Discriminator", "DiscriminatorBlock", "DiscriminatorEpilogue", "MappingNetwork", "MinibatchStdLayer",
             "FullyConnectedLayer", "Conv2dLayer"}


def is_pytorch_snapshot(obj):
    return isinstance(obj, dict) and any(isinstance(obj.get(k), TorchModule) for k in ("G", "D", "G_ema"))


def _args(given, known, where):
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise NetworkPickleError(f"{where}: constructor argument(s) {', '.join(unknown)} not understood (a "
                                 f"network of another kind or version of stylegan2-ada-pytorch)")
    return {**known, **{k: v for k, v in given.items()}}


def _modules(module):
    """Every module below `module`, itself included."""
    out, stack = [], [module]
    while stack:
        m = stack.pop()
        out.append(m)
        stack.extend(c for c in m.children.values() if isinstance(c, TorchModule))
    return out


def code_of(module):
    """Which code made the network: stylegan3's networks_stylegan2.py records in_features in its
    FullyConnectedLayer, stylegan2-ada-pytorch's networks.py does not."""
    layers = [m for m in _modules(module) if m.class_name == "FullyConnectedLayer"]
    return "stylegan3" if any("in_features" in m.state for m in layers) else "stylegan2-ada-pytorch"


def _recorded(module, path, attr, want, where):
    """The value a submodule recorded (`path`: dotted child names) must be the one computed here."""
    m = module
    for name in path.split("."):
        m = m.children.get(name)
        if m is None:
            return
    have = m.state.get(attr, want)
    close = isinstance(have, float) and isinstance(want, float) and abs(have - want) <= 1e-6 * abs(want)
    if have != want and not close:
        raise NetworkPickleError(f"{where}: {path}.{attr} is {have!r}, the constructor arguments give {want!r} "
                                 f"(a network of another kind or version)")


def _check_classes(module, allowed, where):
    other = sorted({m.class_name for m in _modules(module)} - allowed)
    if other:
        hint = " (a StyleGAN3 alias-free network: not supported)" if "SynthesisInput" in other else ""
        raise NetworkPickleError(f"{where}: module class(es) {', '.join(other)} are not those of "
                                 f"stylegan2-ada-pytorch's training/networks.py{hint}")


def _filter(kernel):
    """The normalized 2-D FIR filter that stylegan2-ada-pytorch's setup_filter makes of `kernel`."""
    k = np.asarray(kernel, np.float64)
    k = np.outer(k, k) if k.ndim == 1 else k
    return k / k.sum()


def _dense(tensors, name):
    """TF1 dense layout [in, out] of a FullyConnectedLayer's weight, and its bias."""
    out = {"weight": tensors.pop(f"{name}.weight").T}
    if f"{name}.bias" in tensors:
        out["bias"] = tensors.pop(f"{name}.bias")
    return out


def _conv(weight, flip=False):
    w = np.transpose(weight, [2, 3, 1, 0])     # [out, in, kh, kw] -> [kh, kw, in, out]
    return w[::-1, ::-1] if flip else w


def _network(name, build_func, static_kwargs, variables, components=None):
    net = NetworkState()
    net.__setstate__(dict(version=4, name=name, static_kwargs=static_kwargs, components=components or {},
                          build_module_src="", build_func_name=build_func, variables=list(variables.items())))
    return net


def _check_filters(tensors, kernel, where):
    """The resample filters are buffers made from the `resample_filter` argument: they must be it."""
    want = _filter(kernel)
    for name in [n for n in tensors if n.endswith("resample_filter")]:
        value = tensors.pop(name)
        if value.shape != want.shape or not np.allclose(value, want, rtol=1e-6, atol=1e-7):
            raise NetworkPickleError(f"{where}: {name} is not the filter of resample_filter={list(kernel)}")


def _leftover(tensors, where):
    if tensors:
        raise NetworkPickleError(f"{where}: tensor(s) {', '.join(sorted(tensors)[:6])} not understood "
                                 f"(another network layout)")


def generator_state(module, where):
    """A stylegan2-ada-pytorch Generator -> NetworkState of the StyleGAN2-ADA TF1 layout."""
    if not isinstance(module, TorchModule) or module.class_name != "Generator":
        raise NetworkPickleError(f"{where}: expected a Generator module, found {module!r}")
    _check_classes(module, G_CLASSES, where)
    code = code_of(module)
    mapping_args, synthesis_args, _ = CODES[code]
    if code == "stylegan3":   # Generator(z_dim, ..., mapping_kwargs, **synthesis_kwargs)
        given = module.init_kwargs
        own = {k: v for k, v in given.items() if k in G_ARGS and k != "synthesis_kwargs"}
        kw = _args(own, G_ARGS, where)
        sk = _args({k: v for k, v in given.items() if k not in own}, synthesis_args, where)
    else:
        kw = _args(module.init_kwargs, G_ARGS, where)
        sk = _args(dict(kw["synthesis_kwargs"] or {}), synthesis_args, f"{where}.synthesis_kwargs")
    mk = _args(dict(kw["mapping_kwargs"] or {}), mapping_args, f"{where}.mapping_kwargs")
    if sk["channel_base"] % 2:
        raise NetworkPickleError(f"{where}: channel_base={sk['channel_base']} is odd (the TF1 layout needs "
                                 f"fmap_base = channel_base / 2)")
    res, w_dim = int(kw["img_resolution"]), int(kw["w_dim"])
    static = dict(latent_size=int(kw["z_dim"]), label_size=int(kw["c_dim"]), dlatent_size=w_dim, resolution=res,
                  num_channels=int(kw["img_channels"]), mapping_layers=int(mk["num_layers"]),
                  mapping_fmaps=mk["layer_features"] or w_dim, label_fmaps=mk["embed_features"] or w_dim,
                  mapping_lrmul=float(mk["lr_multiplier"]), mapping_nonlinearity=mk["activation"],
                  w_avg_beta=mk["w_avg_beta"], fmap_base=int(sk["channel_base"]) // 2,
                  fmap_max=int(sk["channel_max"]), num_fp16_res=int(sk["num_fp16_res"]),
                  conv_clamp=sk["conv_clamp"], architecture=sk["architecture"],
                  resample_kernel=list(sk["resample_filter"]), use_noise=bool(sk["use_noise"]),
                  nonlinearity=sk["activation"])
    _recorded(module, "mapping", "w_avg_beta", mk["w_avg_beta"], where)
    _recorded(module, "mapping.fc0", "bias_gain", float(mk["lr_multiplier"]), where)
    for log2 in range(2, int(np.log2(res)) + 1):
        r = 2 ** log2
        fp16 = r >= max(2 ** (int(np.log2(res)) + 1 - int(sk["num_fp16_res"])), 8)
        _recorded(module, f"synthesis.b{r}", "use_fp16", fp16, where)
        _recorded(module, f"synthesis.b{r}", "architecture", sk["architecture"], where)
        _recorded(module, f"synthesis.b{r}.conv1", "conv_clamp", sk["conv_clamp"], where)
    tensors = module.tensors()
    _check_filters(tensors, sk["resample_filter"], where)
    main = {"dlatent_avg": tensors.pop("mapping.w_avg")} if "mapping.w_avg" in tensors else {}
    mapping = {}
    if "mapping.embed.weight" in tensors:
        mapping.update({f"LabelEmbed/{k}": v for k, v in _dense(tensors, "mapping.embed").items()})
    for i in range(int(mk["num_layers"])):
        mapping.update({f"Dense{i}/{k}": v for k, v in _dense(tensors, f"mapping.fc{i}").items()})
    synthesis = {}
    for log2 in range(2, int(np.log2(res)) + 1):
        r = 2 ** log2
        block = f"synthesis.b{r}"
        if r == 4:
            synthesis["4x4/Const/const"] = tensors.pop(f"{block}.const")[np.newaxis]
            layers = [("conv1", "4x4/Conv", 0, False)]
        else:
            layers = [("conv0", f"{r}x{r}/Conv0_up", 2 * log2 - 5, True),
                      ("conv1", f"{r}x{r}/Conv1", 2 * log2 - 4, False)]
        for child, scope, noise_index, flip in layers:
            prefix = f"{block}.{child}"
            synthesis[f"{scope}/weight"] = _conv(tensors.pop(f"{prefix}.weight"), flip)
            affine = _dense(tensors, f"{prefix}.affine")
            synthesis[f"{scope}/mod_weight"], synthesis[f"{scope}/mod_bias"] = affine["weight"], affine["bias"] - 1
            if f"{prefix}.noise_const" in tensors:
                synthesis[f"noise{noise_index}"] = tensors.pop(f"{prefix}.noise_const")[np.newaxis, np.newaxis]
                synthesis[f"{scope}/noise_strength"] = np.float32(tensors.pop(f"{prefix}.noise_strength"))
            synthesis[f"{scope}/bias"] = tensors.pop(f"{prefix}.bias")
        if f"{block}.torgb.weight" in tensors:
            synthesis[f"{r}x{r}/ToRGB/weight"] = _conv(tensors.pop(f"{block}.torgb.weight"))
            affine = _dense(tensors, f"{block}.torgb.affine")
            synthesis[f"{r}x{r}/ToRGB/mod_weight"] = affine["weight"]
            synthesis[f"{r}x{r}/ToRGB/mod_bias"] = affine["bias"] - 1
            synthesis[f"{r}x{r}/ToRGB/bias"] = tensors.pop(f"{block}.torgb.bias")
        if f"{block}.skip.weight" in tensors:
            synthesis[f"{r}x{r}/Skip/weight"] = _conv(tensors.pop(f"{block}.skip.weight"), flip=True)
    _leftover(tensors, where)
    components = {"synthesis": _network("G_synthesis", "G_synthesis", dict(static), synthesis),
                  "mapping": _network("G_mapping", "G_mapping", dict(static), mapping)}
    return _network(where, "G_main", static, main, components)


def discriminator_state(module, where):
    """A stylegan2-ada-pytorch Discriminator -> NetworkState of the StyleGAN2-ADA TF1 layout (D_main)."""
    if not isinstance(module, TorchModule) or module.class_name != "Discriminator":
        raise NetworkPickleError(f"{where}: expected a Discriminator module, found {module!r}")
    _check_classes(module, D_CLASSES, where)
    kw = _args(module.init_kwargs, CODES[code_of(module)][2], where)
    bk = _args(dict(kw["block_kwargs"] or {}), D_BLOCK_ARGS, f"{where}.block_kwargs")
    mk = _args(dict(kw["mapping_kwargs"] or {}), MAPPING_ARGS, f"{where}.mapping_kwargs")
    ek = _args(dict(kw["epilogue_kwargs"] or {}), EPILOGUE_ARGS, f"{where}.epilogue_kwargs")
    if kw["channel_base"] % 2:
        raise NetworkPickleError(f"{where}: channel_base={kw['channel_base']} is odd (the TF1 layout needs "
                                 f"fmap_base = channel_base / 2)")
    if mk["activation"] != bk["activation"] or ek["activation"] != bk["activation"]:
        raise NetworkPickleError(f"{where}: the mapping, blocks and epilogue use different activations")
    res, c_dim = int(kw["img_resolution"]), int(kw["c_dim"])
    cmap_dim = kw["cmap_dim"] if kw["cmap_dim"] is not None else min(int(kw["channel_base"]) // 4,
                                                                      int(kw["channel_max"]))
    static = dict(label_size=c_dim, resolution=res, num_channels=int(kw["img_channels"]),
                  architecture=kw["architecture"], fmap_base=int(kw["channel_base"]) // 2,
                  fmap_max=int(kw["channel_max"]), num_fp16_res=int(kw["num_fp16_res"]),
                  conv_clamp=kw["conv_clamp"], nonlinearity=bk["activation"],
                  resample_kernel=list(bk["resample_filter"]), mbstd_group_size=ek["mbstd_group_size"],
                  mbstd_num_features=int(ek["mbstd_num_channels"]))
    if c_dim:
        static.update(mapping_layers=int(mk["num_layers"]), mapping_fmaps=int(cmap_dim),
                      mapping_lrmul=float(mk["lr_multiplier"]))
    _recorded(module, "b4.mbstd", "group_size", ek["mbstd_group_size"], where)
    _recorded(module, "b4.conv", "conv_clamp", kw["conv_clamp"], where)
    if c_dim:
        _recorded(module, "mapping.fc0", "bias_gain", float(mk["lr_multiplier"]), where)
    tensors = module.tensors()
    _check_filters(tensors, bk["resample_filter"], where)
    variables = {}
    if c_dim:
        variables.update({f"LabelEmbed/{k}": v for k, v in _dense(tensors, "mapping.embed").items()})
        for i in range(int(mk["num_layers"])):
            variables.update({f"Mapping{i}/{k}": v for k, v in _dense(tensors, f"mapping.fc{i}").items()})
    for log2 in range(int(np.log2(res)), 1, -1):
        r = 2 ** log2
        block = f"b{r}"
        names = [("fromrgb", "FromRGB")] + ([("conv0", "Conv0"), ("conv1", "Conv1_down"), ("skip", "Skip")]
                                            if r > 4 else [("conv", "Conv")])
        for child, scope in names:
            if f"{block}.{child}.weight" not in tensors:
                continue
            variables[f"{r}x{r}/{scope}/weight"] = _conv(tensors.pop(f"{block}.{child}.weight"))
            if f"{block}.{child}.bias" in tensors:
                variables[f"{r}x{r}/{scope}/bias"] = tensors.pop(f"{block}.{child}.bias")
    variables.update({f"4x4/Dense0/{k}": v for k, v in _dense(tensors, "b4.fc").items()})
    variables.update({f"Output/{k}": v for k, v in _dense(tensors, "b4.out").items()})
    _leftover(tensors, where)
    return _network(where, "D_main", static, variables)


def source_of(module):
    """Which released file a module's embedded source is, or 'unknown (sha256 ...)'."""
    sha = hashlib.sha256(module.module_src.encode("utf-8")).hexdigest()
    return KNOWN_SOURCES.get(sha, f"unknown (sha256 {sha[:12]})")


def snapshot_states(obj, path):
    """The dict of a stylegan2-ada-pytorch snapshot -> {'G', 'D', 'Gs'} NetworkStates (those
    present), and what else the pickle holds (augment_pipe's class, training_set_kwargs)."""
    states = {}
    for key, ours, convert in (("G", "G", generator_state), ("G_ema", "Gs", generator_state),
                               ("D", "D", discriminator_state)):
        if obj.get(key) is not None:
            states[ours] = convert(obj[key], f"{path}: {key}")
    if "Gs" not in states:
        raise NetworkPickleError(f"{path}: a stylegan2-ada-pytorch pickle without G_ema")
    pipe = obj.get("augment_pipe")
    sources = {key: source_of(obj[key]) for key in ("G", "D", "G_ema") if isinstance(obj.get(key), TorchModule)}
    for key, source in sources.items():
        if source.startswith("unknown"):
            # Not refused: the classes, arguments, recorded values and tensors matched. A change to the
            # code's arithmetic would not show in them, so it is said.
            log.warning("%s: %s embeds a module source that is not one NVIDIA released (%s); it is read as "
                        "stylegan2-ada-pytorch's networks", path, key, source)
    extras = {"augment_pipe": None if pipe is None else getattr(pipe, "class_name", type(pipe).__name__),
              "training_set_kwargs": dict(obj.get("training_set_kwargs") or {}), "module_source": sources}
    return states, extras
