"""The explorer: its API (every endpoint, bad input included) and the page in headless Chromium, whose
images are compared with the generator's own output. Screenshots go to test-artifacts/explorer/."""

import base64
import io
import json
import os
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from conftest import FIXTURES, ROOT, subprocess_env
from feature_net_weights import write_tiny_feature_files

pytestmark = pytest.mark.slow

DIGITS = ROOT / "pretrained" / "stylegan2-digits32.pkl"
ARTIFACTS = ROOT / "test-artifacts" / "explorer"


class Client:
    def __init__(self, app):
        from stylegan2_tf.explorer import make_server
        self.app = app
        self.server = make_server(app, port=0)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def call(self, path, body=None, raw=None):
        """(status, parsed JSON or bytes)."""
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(self.base + path, data=data, method="GET" if data is None else "POST")
        try:
            with urllib.request.urlopen(req, timeout=300) as r:
                status, payload, ctype = r.status, r.read(), r.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            status, payload, ctype = e.code, e.read(), e.headers.get("Content-Type", "")
        return status, json.loads(payload) if "json" in ctype else payload

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def decode(data_url):
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))))


def reference(G, seed, psi, cutoff=None, direction=None, noise_mode="const"):
    """The generator's own image for these settings, eagerly, outside the explorer."""
    from stylegan2_tf.generate import seed_to_z, to_uint8
    ws = G.mapping(seed_to_z(seed, G.config.z_dim), truncation_psi=psi, truncation_cutoff=cutoff).numpy()
    if direction is not None:
        vector, strength, (first, last) = direction
        ws[:, first:last + 1] += strength * vector
    img = to_uint8(G.synthesis(ws, noise_mode=noise_mode)).numpy()[0]
    return img[..., 0] if img.shape[-1] == 1 else img, ws


def block_features(G, ws, block_name):
    """The output of a block's last conv, by running the synthesis blocks one by one."""
    x = img = None
    for block in G.synthesis.blocks:
        x, img = block(x, img, ws, noise_mode="const")
        if block.name == block_name:
            return x.numpy()[0]
    raise KeyError(block_name)


def max_diff(a, b):
    return int(np.max(np.abs(np.asarray(a, np.int64) - np.asarray(b, np.int64))))


@pytest.fixture(scope="module")
def digits_client():
    from stylegan2_tf.explorer import ExplorerApp
    client = Client(ExplorerApp(str(DIGITS), networks_dir=str(FIXTURES)))
    yield client
    client.close()


def test_render_api_matches_the_generator(digits_client):
    c = digits_client
    G = c.app.G
    status, info = c.call("/api/info")
    assert status == 200 and info["num_ws"] == G.num_ws and info["resolution"] == 32 and len(info["directions"]) == 10
    status, out = c.call("/api/render", {"seed": 7, "psi": 0.6})
    assert status == 200 and not out["superseded"]
    want, _ = reference(G, 7, 0.6)
    assert max_diff(decode(out["image"]), want) <= 1
    d = c.app.renderer.directions
    status, out = c.call("/api/render", {"seed": 7, "psi": 0.6, "directions": {"2": 3.0}})
    edited, _ = reference(G, 7, 0.6, direction=(d.vectors[2], 3.0, d.layers))
    assert max_diff(decode(out["image"]), edited) <= 1 and max_diff(edited, want) > 10
    status, out = c.call("/api/render", {"seed": 7, "psi": 0.6, "pad": {"x": 2.0, "y": 0.0, "dirs": [2, 5]}})
    assert max_diff(decode(out["image"]), reference(G, 7, 0.6, direction=(d.vectors[2], 2.0, d.layers))[0]) <= 1


def test_style_mixing_and_noise(digits_client):
    from stylegan2_tf.generate import seed_to_z, to_uint8
    c = digits_client
    G = c.app.G
    status, out = c.call("/api/render", {"seed": 3, "psi": 1, "mix_seed": 9, "mix_layers": [0, 3]})
    w3 = G.mapping(seed_to_z(3, G.config.z_dim)).numpy()
    w3[:, 0:4] = G.mapping(seed_to_z(9, G.config.z_dim)).numpy()[:, 0:4]
    assert max_diff(decode(out["image"]), to_uint8(G.synthesis(w3, noise_mode="const")).numpy()[0, ..., 0]) <= 1
    _, none = c.call("/api/render", {"seed": 3, "psi": 1, "noise_mode": "none"})
    _, zero = c.call("/api/render", {"seed": 3, "psi": 1, "noise_strength": 0})
    assert max_diff(decode(none["image"]), decode(zero["image"])) <= 1  # strength 0 = no noise
    _, loud = c.call("/api/render", {"seed": 3, "psi": 1, "noise_strength": 8})
    variables = c.app.renderer.noise_strengths
    kept = [v.numpy() for v in variables]
    for v, value in zip(variables, kept):  # the reference: every layer's noise strength times 8
        v.assign(value * 8)
    w3 = G.mapping(seed_to_z(3, G.config.z_dim)).numpy()
    want = to_uint8(G.synthesis(w3, noise_mode="const")).numpy()[0, ..., 0]
    for v, value in zip(variables, kept):
        v.assign(value)
    assert max_diff(decode(loud["image"]), want) <= 1 and max_diff(want, decode(zero["image"])) > 4
    assert all(np.all(v.numpy() == k) for v, k in zip(variables, kept))  # the explorer restored them


def test_feature_maps_and_torgb(digits_client):
    from stylegan2_tf.explorer import pictures
    c = digits_client
    G = c.app.G
    _, ws = reference(G, 11, 0.5)
    status, out = c.call("/api/render", {"seed": 11, "psi": 0.5, "layer": "b16/conv1", "view": "channels",
                                         "torgb": True})
    assert status == 200 and out["feature_shape"] == [16, 16, G.synthesis.blocks[2].conv1.out_channels]
    features = block_features(G, ws, "b16")
    assert max_diff(decode(out["features"]), pictures.channel_grid(features)[..., 0]) <= 1
    _, out = c.call("/api/render", {"seed": 11, "psi": 0.5, "layer": "b16/conv1", "view": "magnitude"})
    assert max_diff(decode(out["features"]), pictures.magnitude_map(features)) <= 2
    assert sorted(out["torgb"]) == [] and len(c.call("/api/render", {"seed": 11, "torgb": True})[1]["torgb"]) == 4


def test_bad_requests_get_one_error_and_the_server_goes_on(digits_client):
    c = digits_client
    cases = [
        ({"seed": "abc"}, "seed: expected an integer in [0, 4294967295], got 'abc'"),
        ({"seed": -1}, "seed: -1 is out of range [0, 4294967295]"),
        ({"psi": 7}, "psi: 7 is out of range [-1.0, 2.0]"),
        ({"psi": "nan"}, "psi: 'nan' is out of range [-1.0, 2.0]"),
        ({"noise_mode": "loud"}, "noise_mode: expected one of const, random, none, got 'loud'"),
        ({"layer": "../../etc/passwd"}, "layer: '../../etc/passwd' is not a layer of this network"),
        ({"directions": {"99": 1}}, "directions: 99 is out of range [0, 9]"),
        ({"mix_layers": [5, 2]}, "mix_layers: 2 is out of range [5, 7]"),
    ]
    for body, message in cases:
        status, out = c.call("/api/render", body)
        assert status == 400 and out == {"error": message}, (body, out)
    assert c.call("/api/render", raw=b"{not json")[1]["error"].startswith("the request body is not JSON")
    status, out = c.call("/api/network", {"name": "../../pretrained/stylegan2-digits32.pkl"})
    assert status == 400 and "is not one of the networks offered" in out["error"]
    status, out = c.call("/api/network", {"name": str(DIGITS)})
    assert status == 400
    assert c.call("/../setup.cfg")[0] == 404 and c.call("/api/nothing", {})[0] == 404
    status, out = c.call("/api/project", raw=b"not an image")
    assert status == 400 and "LPIPS" in out["error"]  # this server has no projection weights
    assert c.call("/api/render", {"seed": 1})[0] == 200  # still serving


def test_downloads(digits_client):
    c = digits_client
    status, png = c.call("/api/download", {"what": "png", "request": {"seed": 5, "psi": 0.7}})
    want, ws = reference(c.app.G, 5, 0.7)
    assert status == 200 and max_diff(np.asarray(Image.open(io.BytesIO(png))), want) <= 1
    status, npz = c.call("/api/download", {"what": "npz", "request": {"seed": 5, "psi": 0.7}})
    with np.load(io.BytesIO(npz)) as f:
        np.testing.assert_allclose(f["w"], ws, rtol=0, atol=1e-5)
    assert c.call("/api/download", {"what": "gif", "request": {}})[0] == 400


def test_renders_are_coalesced(digits_client):
    """While a render runs, of the requests that wait only the newest runs; the others are answered
    superseded."""
    c = digits_client
    app = c.app
    results = {}

    def fire(name, body):
        results[name] = c.call("/api/render", body)[1]

    def wait_for_ticket(ticket):
        deadline = time.monotonic() + 60
        while app.pending < ticket:
            assert time.monotonic() < deadline, "a render request never took its ticket"
            time.sleep(0.01)
    waiting = []
    with app.renderer.lock:  # a render is running: the requests below queue behind it, in this order
        for k in range(3):
            ticket = app.pending + 1
            t = threading.Thread(target=fire, args=(k, {"seed": 20 + k}))
            t.start()
            waiting.append(t)
            wait_for_ticket(ticket)
    for t in waiting:
        t.join()
    assert results[0] == {"superseded": True} and results[1] == {"superseded": True}
    assert not results[2]["superseded"] and results[2]["image"].startswith("data:image/png")


def test_switching_networks(digits_client, tmp_path):
    from stylegan2_tf.explorer import ExplorerApp
    client = Client(ExplorerApp(str(DIGITS), networks_dir=str(FIXTURES)))
    try:
        status, info = client.call("/api/network", {"name": "ada-cond-tiny16.pkl"})
        assert status == 200 and info["network"] == "ada-cond-tiny16.pkl" and info["c_dim"] == 3
        status, out = client.call("/api/render", {"seed": 2, "psi": 1, "class": 1})
        from stylegan2_tf.generate import seed_to_z, to_uint8
        G = client.app.G
        want = to_uint8(G(seed_to_z(2, G.config.z_dim), c=np.eye(3, dtype=np.float32)[[1]], truncation_psi=1,
                          noise_mode="const")).numpy()[0]
        assert status == 200 and max_diff(decode(out["image"]), want) <= 1
        assert client.call("/api/render", {"seed": 2, "class": 3})[1]["error"] == "class: 3 is out of range [0, 2]"
    finally:
        client.close()


def test_projection_in_the_background(tmp_path):
    """An uploaded image is projected (a few steps, tiny LPIPS) while the server keeps rendering; the
    projection's image is what its w and noise maps give."""
    from stylegan2_tf.explorer import ExplorerApp
    from stylegan2_tf.generate import to_uint8
    from stylegan2_tf.projector import noise_variables
    lpips = write_tiny_feature_files(tmp_path)["lpips"]
    client = Client(ExplorerApp(str(FIXTURES / "sg2-tiny16.pkl"), lpips_files=lpips, projection_steps=6))
    try:
        status, out = client.call("/api/render", {"seed": 4, "psi": 1})
        upload = base64.b64decode(out["image"].split(",", 1)[1])
        assert client.call("/api/project", raw=b"\x89PNG broken")[1]["error"].startswith("upload: not an image")
        status, state = client.call("/api/project", raw=upload)
        assert status == 200 and state["running"]
        assert client.call("/api/render", {"seed": 1})[0] == 200  # rendering goes on meanwhile
        deadline = time.time() + 300
        while (state := client.call("/api/project")[1])["running"] and time.time() < deadline:
            time.sleep(0.2)
        assert state["done"] and state["step"] == 6 and state["error"] is None and np.isfinite(state["distance"])
        status, out = client.call("/api/render", {"source": "projection"})
        ws, noise = client.app.renderer.projection
        G = client.app.G
        kept = [v.numpy() for v in noise_variables(G)]
        for v, value in zip(noise_variables(G), noise):
            v.assign(value)
        want = to_uint8(G.synthesis(ws, noise_mode="const")).numpy()[0]
        for v, value in zip(noise_variables(G), kept):
            v.assign(value)
        assert status == 200 and max_diff(decode(out["image"]), want) <= 1
        big = b"\0" * (20 * 2 ** 20 + 1)
        assert "more than the" in client.call("/api/project", raw=big)[1]["error"]
    finally:
        client.close()


def test_page_in_chromium(digits_client):
    """The page: change the seed, psi, a direction slider and the layer view; the displayed images are
    the generator's."""
    from cdp_browser import Browser, chromium_path
    from test_export import chromium
    chromium()
    assert chromium_path()
    c = digits_client
    G = c.app.G
    d = c.app.renderer.directions
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser = Browser()
    try:
        browser.navigate(c.base + "/")
        browser.wait_for("window.explorer && window.explorer.renders >= 1 && window.explorer.last")

        def set_value(element, value):
            n = browser.eval("window.explorer.renders")
            browser.eval(f"(() => {{ const e = document.getElementById({element!r}); e.value = {value!r}; "
                         f"e.dispatchEvent(new Event('input')); }})()")
            browser.wait_for(f"window.explorer.renders > {n} && document.getElementById('image').complete")
            browser.wait_for("!document.querySelector('#status').textContent.startsWith('loading')")

        def shown(element="image"):
            return decode(browser.eval(f"document.getElementById({element!r}).src"))

        set_value("seed", "42")
        want, _ = reference(G, 42, 0.5)
        assert browser.eval("window.explorer.error") is None
        assert max_diff(shown(), want) <= 1
        browser.screenshot(ARTIFACTS / "seed42.png")
        set_value("psi", "0.9")
        assert max_diff(shown(), reference(G, 42, 0.9)[0]) <= 1
        set_value("dir-0", "2.5")
        edited, ws = reference(G, 42, 0.9, direction=(d.vectors[0], 2.5, d.layers))
        assert max_diff(shown(), edited) <= 1
        browser.screenshot(ARTIFACTS / "direction0.png")
        set_value("layer", "b16/conv1")
        from stylegan2_tf.explorer import pictures
        assert max_diff(shown("features"), pictures.channel_grid(block_features(G, ws, "b16"))[..., 0]) <= 1
        assert "b16/conv1: 16 x 16" in browser.eval("document.getElementById('feature-caption').textContent")
        browser.screenshot(ARTIFACTS / "features.png")
    finally:
        browser.close()
    assert os.path.getsize(ARTIFACTS / "features.png") > 10_000


def test_run_explorer_command(tmp_path):
    """run_explorer.py serves on 127.0.0.1 and prints the address; a bad flag is one error line."""
    import subprocess
    import sys
    env = subprocess_env()
    proc = subprocess.Popen([sys.executable, str(ROOT / "run_explorer.py"), "--network", str(DIGITS), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT)
    try:
        line = proc.stdout.readline()
        assert line.startswith("Explorer of ") and "http://127.0.0.1:" in line, line
        url = line.split()[3]
        with urllib.request.urlopen(url + "api/info", timeout=60) as r:
            assert json.loads(r.read())["resolution"] == 32
    finally:
        proc.kill()
        proc.wait()
    r = subprocess.run([sys.executable, str(ROOT / "run_explorer.py"), "--network", str(DIGITS), "--networks",
                        str(tmp_path / "none")], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == f"error: --networks {tmp_path / 'none'}: not a folder"
