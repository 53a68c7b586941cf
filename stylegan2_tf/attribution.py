"""Attribution (paper Sec. 5.1): whether an image was made by a network, judged by how close
its projection gets (the LPIPS distance) against a threshold calibrated on the network's own
images and real ones.

calibration.json (written by `write_calibration`, read by `read_calibration`): the threshold
with the accuracy it reached, both distance distributions, and what the distances were
measured with (the network file's and the LPIPS files' sha256 and the projection settings),
so that a threshold is never applied to distances measured otherwise.
"""

import dataclasses
import hashlib
import json
import os

import numpy as np

from .errors import UserError


class AttributionError(UserError):
    """A calibration that cannot be made or does not apply (one line naming the file)."""


THRESHOLD_RULE = "maximum balanced accuracy; midpoint of the widest gap among ties"


def choose_threshold(generated, real):
    """The LPIPS distance that best tells the network's own images (projected: `generated`) from
    others (`real`): an image is attributed when its distance is <= the threshold.

    The rule maximises balanced accuracy, (generated accepted + real rejected) / 2, over the
    midpoints between consecutive distinct distances; among equally good splits it takes the one
    in the widest gap. Separable distributions give the midpoint between the largest generated
    and the smallest real distance. -> dict(threshold, generated_accepted, real_rejected,
    balanced_accuracy).
    """
    g = np.asarray(generated, np.float64).ravel()
    r = np.asarray(real, np.float64).ravel()
    if g.size == 0 or r.size == 0:
        raise AttributionError("choosing a threshold needs distances of generated and of real images")
    if not (np.all(np.isfinite(g)) and np.all(np.isfinite(r))):
        raise AttributionError("choosing a threshold: a distance is not finite")
    u = np.unique(np.concatenate([g, r]))
    candidates = np.concatenate([[u[0] / 2], (u[:-1] + u[1:]) / 2, [u[-1] + max(u[-1] - u[0], u[-1], 1e-12)]])
    gaps = np.concatenate([[u[0]], u[1:] - u[:-1], [np.inf]])
    accepted = (g[np.newaxis] <= candidates[:, np.newaxis]).mean(axis=1)
    rejected = (r[np.newaxis] > candidates[:, np.newaxis]).mean(axis=1)
    balanced = (accepted + rejected) / 2
    best = np.flatnonzero(balanced >= balanced.max() - 1e-12)
    i = best[np.argmax(gaps[best])]
    return dict(threshold=float(candidates[i]), generated_accepted=float(accepted[i]),
                real_rejected=float(rejected[i]), balanced_accuracy=float(balanced[i]))


def file_digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def measured_with(network_path, cfg, lpips_files):
    """What the distances depend on: the network file, the LPIPS files (comma-separated paths) and
    the projection settings (a ProjectorConfig)."""
    return dict(network=file_digest(network_path),
                lpips=sorted(file_digest(p.strip()) for p in lpips_files.split(",")),
                projection=dataclasses.asdict(cfg))


def write_calibration(path, generated, real, network_path, cfg, lpips_files, **details):
    """Choose the threshold for the distances {name: distance} of the network's own images
    (`generated`) and of real ones, and write calibration.json atomically. -> choose_threshold's dict."""
    choice = choose_threshold(list(generated.values()), list(real.values()))
    cal = dict(choice, rule=THRESHOLD_RULE, generated=generated, real=real, network_path=network_path,
               lpips_paths=lpips_files.split(","), measured_with=measured_with(network_path, cfg, lpips_files),
               **details)
    with open(path + ".tmp", "w") as f:
        json.dump(cal, f, indent=1)
    os.replace(path + ".tmp", path)
    return choice


def read_calibration(path, network_path, cfg, lpips_files):
    """-> the threshold of a calibration.json; AttributionError when it was measured with another
    network file, other LPIPS weights or other projection settings."""
    try:
        with open(path) as f:
            cal = json.load(f)
        threshold, theirs = float(cal["threshold"]), cal["measured_with"]
    except FileNotFoundError:
        raise AttributionError(f"{path}: no such file") from None
    except (ValueError, KeyError, TypeError) as e:
        raise AttributionError(f"{path}: not a calibration.json of run_projector.py calibrate "
                               f"({type(e).__name__})") from None
    mine = measured_with(network_path, cfg, lpips_files)
    if theirs.get("network") != mine["network"]:
        raise AttributionError(f"{path}: calibrated for another network file (sha256 "
                               f"{str(theirs.get('network'))[:12]}..., {network_path} is {mine['network'][:12]}...)")
    if theirs.get("lpips") != mine["lpips"]:
        raise AttributionError(f"{path}: calibrated with other LPIPS weights; distances would not be comparable")
    if theirs.get("projection") != mine["projection"]:
        diff = sorted(k for k in mine["projection"] if theirs.get("projection", {}).get(k) != mine["projection"][k])
        raise AttributionError(f"{path}: calibrated with other projection settings ({', '.join(diff)} differ); "
                               f"use the same flags")
    return threshold


def verdict(distance, threshold):
    return "made by this network" if distance <= threshold else "not made by this network"


def histogram_png(groups, threshold, path, bins=20):
    """Histogram of the distances (the paper's Fig. 9), one colour per group, the threshold as a
    red line. groups: [(label, distances)]."""
    from PIL import Image, ImageDraw
    colours = [(70, 110, 180), (230, 140, 40), (90, 160, 90)]
    groups = [(label, np.asarray(d, np.float64)) for label, d in groups if len(d)]
    hi = max(max(float(d.max()) for _, d in groups), threshold or 0.0) * 1.05 + 1e-12
    counts = [np.histogram(d, bins=bins, range=(0.0, hi))[0] for _, d in groups]
    w, h, pad = 640, 360, 40
    im = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(im)
    top = max(max(c.max() for c in counts), 1)
    bw = (w - 2 * pad) / bins
    sub = bw / len(groups)
    for g, c in enumerate(counts):
        for i, n in enumerate(c):
            x0 = pad + i * bw + g * sub
            y0 = h - pad - (h - 2 * pad) * n / top
            draw.rectangle([x0 + 1, y0, x0 + sub - 1, h - pad], fill=colours[g % len(colours)])
    draw.line([pad, h - pad, w - pad, h - pad], fill="black")
    if threshold is not None:
        x = pad + (w - 2 * pad) * threshold / hi
        draw.line([x, pad / 2, x, h - pad], fill=(200, 30, 30), width=2)
        draw.text((x + 4, pad / 2), f"threshold {threshold:.4g}", fill=(200, 30, 30))
    draw.text((pad, h - pad + 8), "0", fill="black")
    draw.text((w - pad - 60, h - pad + 8), f"{hi:.4g}", fill="black")
    legend = ", ".join(f"{label} ({len(d)})" for label, d in groups)
    draw.text((pad, 8), f"LPIPS distance after projection: {legend}", fill="black")
    for g, (label, _) in enumerate(groups):
        draw.rectangle([w - pad - 120, 8 + 14 * g, w - pad - 110, 18 + 14 * g], fill=colours[g % len(colours)])
        draw.text((w - pad - 104, 7 + 14 * g), label, fill="black")
    im.save(path)
