"""What the page may ask for, checked field by field: one message naming the field and the problem."""

import dataclasses
import math

from ..generate import PSI_RANGE
from ..layers import NOISE_MODES
from .errors import ExplorerError

MAX_SEED = 2 ** 32 - 1
MAX_NOISE_STRENGTH = 10.0
MAX_STRENGTH = 50.0
VIEWS = ("channels", "magnitude")
SOURCES = ("seed", "projection")


@dataclasses.dataclass(frozen=True)
class RenderRequest:
    seed: int = 0
    psi: float = 1.0
    cutoff: int | None = None  # truncate the first `cutoff` w layers (None: all)
    class_idx: int | None = None
    noise_mode: str = "const"
    noise_strength: float = 1.0  # multiplies every layer's learned noise strength
    mix_seed: int | None = None  # style mixing: w layers mix_layers taken from this seed
    mix_layers: tuple = (0, 0)
    directions: tuple = ()  # ((index, strength), ...)
    pad: tuple | None = None  # (direction x, direction y, x, y): the 2-D pad over two directions
    layer: str | None = None  # feature maps of this layer
    view: str = "channels"
    torgb: bool = False  # per-resolution ToRGB outputs (skip generators)
    source: str = "seed"  # or "projection": the last projection's w and noise


def _int(body, key, low, high, default=None):
    value = body.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ExplorerError(f"{key}: expected an integer in [{low}, {high}], got {value!r}")
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ExplorerError(f"{key}: expected an integer in [{low}, {high}], got {value!r}") from None
    if not low <= number <= high:
        raise ExplorerError(f"{key}: {number} is out of range [{low}, {high}]")
    return number


def _float(body, key, low, high, default):
    value = body.get(key, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ExplorerError(f"{key}: expected a number in [{low}, {high}], got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(number) or not low <= number <= high:
        raise ExplorerError(f"{key}: {value!r} is out of range [{low}, {high}]")
    return number


def _choice(body, key, choices, default):
    value = body.get(key, default)
    if value not in choices:
        raise ExplorerError(f"{key}: expected one of {', '.join(map(str, choices))}, got {value!r}")
    return value


def parse_render_request(body, info):
    """body: the page's JSON object; info: the network's facts (num_ws, c_dim, layers, directions)."""
    if not isinstance(body, dict):
        raise ExplorerError("expected a JSON object")
    num_ws, c_dim, num_dirs = info["num_ws"], info["c_dim"], len(info["directions"])
    class_idx = _int(body, "class", 0, max(c_dim - 1, 0)) if c_dim else None
    if c_dim and class_idx is None:
        class_idx = 0
    mix_layers = body.get("mix_layers", [0, 0])
    if not (isinstance(mix_layers, list) and len(mix_layers) == 2):
        raise ExplorerError(f"mix_layers: expected [first, last], got {mix_layers!r}")
    first = _int({"mix_layers": mix_layers[0]}, "mix_layers", 0, num_ws - 1)
    last = _int({"mix_layers": mix_layers[1]}, "mix_layers", first, num_ws - 1)
    directions = body.get("directions", {})
    if not isinstance(directions, dict):
        raise ExplorerError(f"directions: expected {{index: strength}}, got {directions!r}")
    dirs = tuple((_int({"directions": k}, "directions", 0, num_dirs - 1),
                  _float({"strength": v}, "strength", -MAX_STRENGTH, MAX_STRENGTH, 0.0))
                 for k, v in sorted(directions.items()))
    pad = body.get("pad")
    if pad is not None:
        if not isinstance(pad, dict):
            raise ExplorerError(f"pad: expected {{x, y, dirs: [i, j]}}, got {pad!r}")
        pair = pad.get("dirs", [0, 1])
        if not (isinstance(pair, list) and len(pair) == 2):
            raise ExplorerError(f"pad.dirs: expected two direction indices, got {pair!r}")
        pad = (_int({"pad.dirs": pair[0]}, "pad.dirs", 0, num_dirs - 1),
               _int({"pad.dirs": pair[1]}, "pad.dirs", 0, num_dirs - 1),
               _float(pad, "x", -MAX_STRENGTH, MAX_STRENGTH, 0.0), _float(pad, "y", -MAX_STRENGTH, MAX_STRENGTH, 0.0))
    layer = body.get("layer")
    if layer is not None and layer not in info["layers"]:
        raise ExplorerError(f"layer: {layer!r} is not a layer of this network")
    torgb = body.get("torgb", False)
    if not isinstance(torgb, bool):
        raise ExplorerError(f"torgb: expected true or false, got {torgb!r}")
    return RenderRequest(
        seed=_int(body, "seed", 0, MAX_SEED, 0), psi=_float(body, "psi", *PSI_RANGE, info["default_psi"]),
        cutoff=_int(body, "cutoff", 0, num_ws), class_idx=class_idx,
        noise_mode=_choice(body, "noise_mode", NOISE_MODES, "const"),
        noise_strength=_float(body, "noise_strength", 0.0, MAX_NOISE_STRENGTH, 1.0),
        mix_seed=_int(body, "mix_seed", 0, MAX_SEED), mix_layers=(first, last), directions=dirs, pad=pad,
        layer=layer, view=_choice(body, "view", VIEWS, "channels"), torgb=torgb,
        source=_choice(body, "source", SOURCES, "seed"))
