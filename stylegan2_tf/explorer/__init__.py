"""A local web explorer of a generator: `run_explorer.py` serves it on 127.0.0.1.

`requests.py` validates what the page asks for, `renderer.py` turns it into images with traced
functions (feature maps and ToRGB outputs included), `pictures.py` encodes them, `projection.py`
runs the projector in the background, `server.py` is the HTTP layer (standard library), and
`static/` the page."""

from .errors import ExplorerError
from .renderer import Renderer
from .requests import RenderRequest, parse_render_request
from .server import ExplorerApp, make_server

__all__ = ["ExplorerApp", "ExplorerError", "RenderRequest", "Renderer", "make_server", "parse_render_request"]
