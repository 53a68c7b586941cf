"""Arrays to PNG bytes: images, a grid of feature channels, a heat map of feature magnitude."""

import io

import numpy as np
from PIL import Image

MAX_CHANNELS = 64
# A dark-to-bright ramp (black, purple, orange, pale yellow) for the magnitude heat map.
RAMP = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], np.float64)


def png(array):
    """uint8 [H, W, C] (C 1, 3 or 4) -> PNG bytes, lossless."""
    array = np.asarray(array, np.uint8)
    mode = {1: "L", 3: "RGB", 4: "RGBA"}.get(array.shape[-1])
    if mode is None:  # 2 channels: the first, as grey
        array, mode = array[..., :1], "L"
    buf = io.BytesIO()
    Image.fromarray(array[..., 0] if mode == "L" else array, mode).save(buf, format="PNG")
    return buf.getvalue()


def channel_grid(features):
    """[h, w, ch] -> uint8 grey grid of the first MAX_CHANNELS channels, each scaled to its own range,
    1-pixel gaps."""
    f = np.asarray(features, np.float64)[..., :MAX_CHANNELS]
    h, w, n = f.shape
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    grid = np.zeros([rows * (h + 1) - 1, cols * (w + 1) - 1, 1], np.uint8)
    for k in range(n):
        ch = f[..., k]
        lo, hi = ch.min(), ch.max()
        scaled = (ch - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(ch)
        r, c = divmod(k, cols)
        grid[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w, 0] = np.round(scaled).astype(np.uint8)
    return grid


def magnitude_map(features):
    """[h, w, ch] -> uint8 RGB heat map of the per-pixel L2 norm over channels (0 .. its maximum)."""
    m = np.sqrt(np.sum(np.square(np.asarray(features, np.float64)), axis=-1))
    t = m / m.max() if m.max() > 0 else m
    x = t * (len(RAMP) - 1)
    i = np.minimum(np.floor(x).astype(int), len(RAMP) - 2)
    frac = (x - i)[..., None]
    return np.round(RAMP[i] * (1 - frac) + RAMP[i + 1] * frac).astype(np.uint8)
