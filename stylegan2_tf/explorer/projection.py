"""Projection of an uploaded image in a background thread, with progress, through the projector
(paper Appendix D). It runs on its own copy of the network (the projector rewrites noise maps), so
the page keeps rendering meanwhile; the result (w and noise maps) is handed to the renderer."""

import io
import threading

import numpy as np

from .errors import ExplorerError

MAX_UPLOAD_BYTES = 20 << 20


def decode_upload(data, res, channels):
    """Image file bytes -> [res, res, channels] float in [-1, 1] (centre crop, Lanczos resize)."""
    from PIL import Image, UnidentifiedImageError
    if len(data) > MAX_UPLOAD_BYTES:
        raise ExplorerError(f"upload: {len(data)} bytes is more than the {MAX_UPLOAD_BYTES >> 20} MiB allowed")
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            im = im.convert("RGB" if channels == 3 else "L")
    except (UnidentifiedImageError, OSError):
        raise ExplorerError("upload: not an image Pillow can read (PNG, JPEG, ...)") from None
    w, h = im.size
    side = min(w, h)
    im = im.crop(((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side))
    im = im.resize((res, res), Image.LANCZOS)
    arr = np.asarray(im, np.float32).reshape(res, res, channels)
    return arr / 127.5 - 1.0


class ProjectionJob:
    """One projection at a time; `status()` for the page's progress bar."""

    def __init__(self, load_network, lpips_files, num_steps):
        self.load_network, self.lpips_files, self.num_steps = load_network, lpips_files, num_steps
        self.lock = threading.Lock()
        self.state = {"running": False, "step": 0, "total": num_steps, "distance": None, "error": None,
                      "done": False}
        self.thread = None

    def status(self):
        with self.lock:
            return dict(self.state)

    def start(self, data, renderer):
        if not self.lpips_files:
            raise ExplorerError("projection needs LPIPS weights: start run_explorer.py with --lpips FILE "
                                "(or set STYLEGAN2_TF_LPIPS)")
        G = renderer.G
        target = decode_upload(data, G.config.img_resolution, G.config.img_channels)
        with self.lock:
            if self.state["running"]:
                raise ExplorerError("a projection is already running")
            self.state = {"running": True, "step": 0, "total": self.num_steps, "distance": None, "error": None,
                          "done": False}
        self.thread = threading.Thread(target=self._run, args=(target, renderer), daemon=True)
        self.thread.start()

    def _run(self, target, renderer):
        try:
            from ..metrics import load_lpips
            from ..projector import Projector, ProjectorConfig
            G = self.load_network()
            projector = Projector(G, load_lpips(self.lpips_files).network, ProjectorConfig(num_steps=self.num_steps))

            def progress(step, dist, loss, w):
                with self.lock:
                    self.state.update(step=step, distance=dist)
            result = projector.project(target, callback=progress)
            renderer.projection = (result["ws"][np.newaxis].astype(np.float32), result["noise"])
            with self.lock:
                self.state.update(running=False, done=True, distance=result["distance"])
        except Exception as e:  # reported to the page; the server keeps serving
            with self.lock:
                self.state.update(running=False, error=f"{type(e).__name__}: {e}")
