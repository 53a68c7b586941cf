"""The explorer's HTTP server (standard library): the page, and a JSON API.

  GET  /                    the page (static/)
  GET  /api/info            the network: sizes, classes, layers, directions, networks to switch to
  POST /api/render          a RenderRequest as JSON -> {image, features, torgb, ms} (PNG data URLs)
  POST /api/download        {"what": "png"|"npz", "request": {...}} -> the image or its w (.npz)
  POST /api/network         {"name": "x.pkl"} -> switch to a network of the --networks folder
  POST /api/project         the image file as the body -> starts a projection
  GET  /api/project         its progress

Renders that arrive while one is running are coalesced: only the newest waiting one runs, the others
are answered {"superseded": true}. A bad request gets 400 and {"error": "..."}; the server goes on.
"""

import base64
import http.server
import io
import json
import os
import threading

import numpy as np

from ..errors import UserError
from . import pictures
from .errors import ExplorerError
from .projection import MAX_UPLOAD_BYTES, ProjectionJob
from .renderer import Renderer
from .requests import parse_render_request

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css",
                 ".png": "image/png"}
MAX_JSON_BYTES = 1 << 20


def data_url(array):
    return "data:image/png;base64," + base64.b64encode(pictures.png(array)).decode()


class ExplorerApp:
    """The state behind the server: the loaded network, its renderer and directions, the projection."""

    def __init__(self, network, networks_dir=None, directions=None, lpips_files=None, projection_steps=1000):
        self.networks_dir = os.path.abspath(networks_dir) if networks_dir else None
        self.directions_path, self.lpips_files, self.projection_steps = directions, lpips_files, projection_steps
        self.switch_lock = threading.Lock()
        self.pending = 0  # the newest render request waiting (coalescing)
        self.pending_lock = threading.Lock()
        self.load(network)

    # ----------------------------------------------------------------- network

    def networks(self):
        if not self.networks_dir:
            return []
        return sorted(f for f in os.listdir(self.networks_dir) if f.endswith(".pkl"))

    def load(self, path):
        from ..editing import ganspace, load_directions, sefa
        from ..loading import load_generator
        G = load_generator(path)
        if self.directions_path:
            directions = load_directions(self.directions_path, G)
        else:
            try:
                directions = sefa(G, min(10, G.config.w_dim))
            except UserError:  # configs A-D: no modulated styles to factorise
                directions = ganspace(G, min(10, G.config.w_dim), samples=10000)
        renderer = Renderer(G, directions)
        self.path, self.G, self.renderer = path, G, renderer
        self.job = ProjectionJob(lambda: load_generator(path), self.lpips_files, self.projection_steps)
        cfg = G.config
        psi, cutoff = cfg.default_truncation
        self.info = {
            "network": os.path.basename(path), "resolution": cfg.img_resolution, "channels": cfg.img_channels,
            "num_ws": G.num_ws, "z_dim": cfg.z_dim, "w_dim": cfg.w_dim, "c_dim": cfg.c_dim,
            "default_psi": psi, "default_cutoff": cutoff, "architecture": cfg.architecture,
            "layers": renderer.layers(), "torgb_layers": renderer.torgb_layers(),
            "directions": [{"index": i, "method": directions.method, "value": float(v),
                            "layers": list(directions.layers)} for i, v in enumerate(directions.values)],
            "networks": self.networks(), "projection": bool(self.lpips_files),
        }

    def switch(self, body):
        name = body.get("name") if isinstance(body, dict) else None
        names = self.networks()
        if not isinstance(name, str) or name not in names:  # a name from the list, never a path
            raise ExplorerError(f"name: {name!r} is not one of the networks offered "
                                f"({', '.join(names) or 'none: start with --networks DIR'})")
        with self.switch_lock, self.renderer.lock:
            self.load(os.path.join(self.networks_dir, name))
        return self.info

    # ----------------------------------------------------------------- render

    def render(self, body):
        req = parse_render_request(body, self.info)  # bad input is answered even when superseded
        with self.pending_lock:
            self.pending += 1
            ticket = self.pending
        with self.renderer.lock:  # wait for the running render; then only the newest goes on
            if ticket != self.pending:
                return {"superseded": True}
        out = self.renderer.render(req)
        result = {"image": data_url(out["image"]), "ms": round(out["ms"], 1), "superseded": False,
                  "features": None, "torgb": {k: data_url(v) for k, v in out["torgb"].items()}}
        if out["features"] is not None:
            shown = pictures.channel_grid(out["features"]) if req.view == "channels" else \
                pictures.magnitude_map(out["features"])
            result["features"] = data_url(shown)
            result["feature_shape"] = list(out["features"].shape)
        return result

    def download(self, body):
        if not isinstance(body, dict) or body.get("what") not in ("png", "npz"):
            raise ExplorerError("what: expected png or npz")
        req = parse_render_request(body.get("request", {}), self.info)
        out = self.renderer.render(req)
        stem = f"seed{req.seed:04d}" if req.source == "seed" else "projection"
        if body["what"] == "png":
            return pictures.png(out["image"]), "image/png", stem + ".png"
        buf = io.BytesIO()
        np.savez(buf, w=out["ws"], request=json.dumps(body.get("request", {}), sort_keys=True))
        return buf.getvalue(), "application/octet-stream", stem + "-w.npz"


class Handler(http.server.BaseHTTPRequestHandler):
    app: ExplorerApp = None
    server_version = "stylegan2-tf-explorer"

    def log_message(self, fmt, *args):
        pass

    def _send(self, status, data, content_type, extra_headers=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (extra_headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _json(self, status, obj):
        self._send(status, json.dumps(obj).encode(), "application/json")

    def _body(self, limit):
        length = int(self.headers.get("Content-Length") or 0)
        if length > limit:
            self.rfile.read(length)  # drain it, so that the connection answers cleanly
            raise ExplorerError(f"request body of {length} bytes is more than the {limit} allowed")
        return self.rfile.read(length)

    def _json_body(self):
        try:
            return json.loads(self._body(MAX_JSON_BYTES) or b"{}")
        except json.JSONDecodeError as e:
            raise ExplorerError(f"the request body is not JSON ({e.msg})") from None

    def do_GET(self):
        path = self.path.split("?")[0]
        try:
            if path == "/api/info":
                return self._json(200, self.app.info)
            if path == "/api/project":
                return self._json(200, self.app.job.status())
            name = "index.html" if path == "/" else path.lstrip("/")
            if name not in os.listdir(STATIC):  # only the page's own files
                return self._json(404, {"error": f"{path}: not found"})
            with open(os.path.join(STATIC, name), "rb") as f:
                data = f.read()
            self._send(200, data, CONTENT_TYPES.get(os.path.splitext(name)[1], "application/octet-stream"))
        except UserError as e:
            self._json(400, {"error": str(e)})

    def do_POST(self):
        path = self.path.split("?")[0]
        try:
            if path == "/api/render":
                return self._json(200, self.app.render(self._json_body()))
            if path == "/api/download":
                data, content_type, name = self.app.download(self._json_body())
                return self._send(200, data, content_type, {"Content-Disposition": f'attachment; filename="{name}"'})
            if path == "/api/network":
                return self._json(200, self.app.switch(self._json_body()))
            if path == "/api/project":
                self.app.job.start(self._body(MAX_UPLOAD_BYTES), self.app.renderer)
                return self._json(200, self.app.job.status())
            self._json(404, {"error": f"{path}: not found"})
        except UserError as e:
            self._json(400, {"error": str(e)})


def make_server(app, host="127.0.0.1", port=8000):
    """An HTTP server for `app` (not yet serving: call serve_forever, or run it in a thread)."""
    handler = type("BoundHandler", (Handler,), {"app": app})
    server = http.server.ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server
