"""The restricted unpickler never runs code from a pickle; bad files get one clear error."""

import os
import pickle

import numpy as np
import pytest

from conftest import FIXTURES
from stylegan2_tf.official import (NetworkPickleError, UnsafePickleError, load_network_pkl, read_network_pickle,
                                   restricted_loads)


class _RunsCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_reduce_payload_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    with open(path, "wb") as f:
        pickle.dump((_RunsCommand(marker), 1, 2), f)
    # Sanity: the plain pickle module would run the command.
    with pytest.raises(UnsafePickleError, match=r"evil\.pkl.*refusing to load global '(posix|os)\.system'"):
        read_network_pickle(path)
    assert not marker.exists()


def test_eval_and_exec_globals_are_refused():
    for module, name in (("builtins", "eval"), ("builtins", "exec"), ("subprocess", "Popen"),
                         ("builtins", "__import__"), ("copyreg", "_reconstructor")):
        payload = b"\x80\x04c" + module.encode() + b"\n" + name.encode() + b"\n" + b"\x85."
        with pytest.raises(UnsafePickleError, match="refusing"):
            restricted_loads(payload)


def test_build_module_src_is_never_executed(tmp_path):
    """A state whose embedded module source would create a file loads as data only."""
    G, D, Gs = read_network_pickle(FIXTURES / "sg2-tiny16.pkl")
    marker = tmp_path / "ran"
    for net in (G, D, Gs):
        net.state["build_module_src"] = f"open({str(marker)!r}, 'w').write('x')\n"
    path = tmp_path / "src.pkl"
    _dump_states(path, (G, D, Gs))
    nets = load_network_pkl(path)
    assert not marker.exists()
    assert nets["G_ema"].config.img_resolution == 16


def _dump_states(path, states):
    """Write NetworkState objects back in the official class name (for tampered-file tests)."""
    import io
    import sys
    import types

    class Network:
        def __init__(self, state):
            self.state = state

        def __getstate__(self):
            return self.state

    Network.__module__ = "dnnlib.tflib.network"
    Network.__qualname__ = "Network"
    mods = {m: types.ModuleType(m) for m in ("dnnlib", "dnnlib.tflib", "dnnlib.tflib.network")}
    mods["dnnlib.tflib.network"].Network = Network
    saved = {m: sys.modules.get(m) for m in mods}
    sys.modules.update(mods)
    try:
        def wrap(s):
            state = dict(s.state)
            state["components"] = {k: wrap(v) for k, v in s.components.items()}
            return Network(state)
        buf = io.BytesIO()
        pickle.dump(tuple(wrap(s) for s in states), buf, protocol=4)
    finally:
        for m, old in saved.items():
            if old is None:
                sys.modules.pop(m, None)
            else:
                sys.modules[m] = old
    path.write_bytes(buf.getvalue())


def test_tampered_round_trip_loads_identically(tmp_path, fixture_nets):
    states = read_network_pickle(FIXTURES / "sg2-tiny16.pkl")
    path = tmp_path / "copy.pkl"
    _dump_states(path, states)
    a = fixture_nets["sg2-tiny16"]["G_ema"]
    b = load_network_pkl(path, load=("G_ema",))["G_ema"]
    for va, vb in zip(a.variables, b.variables):
        np.testing.assert_array_equal(va.numpy(), vb.numpy())


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    (b"", "empty file"),
    (b"hello, this is text\n", "not a readable pickle"),
    ("truncated", "not a readable pickle"),
    (pickle.dumps({"a": 1}), r"not a StyleGAN2 network pickle .*found dict"),
    (pickle.dumps((1, 2, 3)), r"not a StyleGAN2 network pickle"),
])
def test_bad_files_give_one_line_errors(tmp_path, content, message):
    path = tmp_path / "net.pkl"
    if content == "truncated":
        content = (FIXTURES / "sg2-tiny16.pkl").read_bytes()[:5000]
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(NetworkPickleError, match=message) as e:
        load_network_pkl(path)
    assert "\n" not in str(e.value)
    assert str(path) in str(e.value)


@pytest.mark.parametrize("tamper, message", [
    (lambda G, D, Gs: Gs.components["synthesis"].state.update(build_func_name="G_synthesis_custom"),
     "G_main with synthesis network 'G_synthesis_custom' is not supported"),
    # G_style exists (config A), but only with StyleGAN1's G_synthesis.
    (lambda G, D, Gs: Gs.state.update(build_func_name="G_style"),
     "G_style with synthesis network 'G_synthesis_stylegan2' is not supported"),
    (lambda G, D, Gs: D.state.update(build_func_name="D_custom"), "'D_custom' is not supported"),
    # A supported build function whose variables are another network's.
    (lambda G, D, Gs: D.state.update(build_func_name="D_basic"), "the variables do not match"),
    (lambda G, D, Gs: Gs.state["static_kwargs"].update(architecture="dense"), "unsupported generator configuration"),
    (lambda G, D, Gs: Gs.components["synthesis"].state["variables"].pop(), "missing variables"),
    (lambda G, D, Gs: D.state["variables"].append(("4x4/Extra/weight", np.zeros(3, np.float32))),
     "unexpected variables"),
    (lambda G, D, Gs: Gs.state["variables"].__setitem__(0, ("lod", np.float32(1.0))),
     "Gs: lod=1 in a network that does not grow progressively"),
])
def test_unsupported_networks_are_refused_with_reason(tmp_path, tamper, message):
    states = read_network_pickle(FIXTURES / "sg2-tiny16.pkl")
    tamper(*states)
    path = tmp_path / "tampered.pkl"
    _dump_states(path, states)
    with pytest.raises(NetworkPickleError, match=message):
        load_network_pkl(path)
