"""Moving w along a direction: w'[:, l] = w[:, l] + strength * scale * direction for the w layers l
of the edit (the direction's own layers unless others are given)."""

import re

import numpy as np

from .directions import EditingError


def parse_layers(text, num_ws):
    """'0-5' or '3' -> (first, last) inclusive, within the network's w layers."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", str(text))
    if not m:
        raise EditingError(f"--layers {text!r}: expected a range like 0-5")
    first = int(m.group(1))
    last = int(m.group(2)) if m.group(2) is not None else first
    if not 0 <= first <= last < num_ws:
        raise EditingError(f"--layers {text}: this network has w layers 0-{num_ws - 1}")
    return first, last


def apply_direction(ws, directions, index, strength, layers=None):
    """ws [N, num_ws, w_dim] moved by `strength` steps of direction `index` (a step is its scale)."""
    if not 0 <= index < len(directions.vectors):
        raise EditingError(f"--index {index}: the file has directions 0-{len(directions.vectors) - 1}")
    first, last = layers or directions.layers
    out = np.array(ws, np.float32, copy=True)
    out[:, first:last + 1] += np.float32(strength * directions.scales[index]) * directions.vectors[index]
    return out
