"""run_metrics.py end to end on a fixture network, a tiny dataset and tiny feature networks."""

import json
import math
import os
import pickle
import types

import pytest

from conftest import ROOT, run_python
from feature_net_weights import write_tiny_feature_files

pytestmark = pytest.mark.slow

NETWORK = ROOT / "tests" / "fixtures" / "stylegan2_pkl" / "sg2-tiny16.pkl"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from stylegan2_tf.data.synthetic import create_shapes_dataset
    root = tmp_path_factory.mktemp("run_metrics")
    create_shapes_dataset(str(root / "shapes16"), num_images=24, resolution=16)
    return types.SimpleNamespace(root=root, files=write_tiny_feature_files(root))


def _run(setup, *args):
    root = setup.root
    base = ["--network", NETWORK, "--data-dir", root, "--result-dir", root / "results", "--cache-dir",
            root / "cache", "--inception", setup.files["inception"], "--vgg16", setup.files["vgg16"],
            "--lpips", setup.files["lpips"]]
    return run_python([ROOT / "run_metrics.py", *base, *args], timeout=600)


def test_run_metrics_writes_results(setup):
    r = _run(setup, "--dataset", "shapes16", "--metrics", "fid50k_full,kid50k_full,pr50k3_full,ppl2_wend",
             "--num-images", "8")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "a shortened run, not the paper's protocol" in r.stdout
    assert "ETA" in r.stdout
    for name, keys in [("fid50k_full", ["fid50k_full"]), ("kid50k_full", ["kid50k_full"]),
                       ("pr50k3_full", ["pr50k3_full_precision", "pr50k3_full_recall"]), ("ppl2_wend", ["ppl2_wend"])]:
        line = (setup.root / "results" / f"metric-{name}.txt").read_text().strip().splitlines()[-1]
        assert line.startswith("sg2-tiny16 time ") and "[shortened: 8 fakes" in line, line
        record = json.loads((setup.root / "results" / f"metric-{name}.jsonl").read_text().splitlines()[-1])
        assert sorted(record["results"]) == sorted(keys) and record["protocol"] == "shortened"
        for key, value in record["results"].items():  # real numbers in each metric's range
            assert math.isfinite(value), (key, value)
            if key.startswith("pr50k3"):
                assert 0.0 <= value <= 1.0, (key, value)
            elif not key.startswith("kid"):  # KID's unbiased estimate can dip below 0 on 8 images
                assert value >= 0.0, (key, value)
        assert record["num_fakes"] == 8 and record["settings"]["num_images"] == 8 and record["timestamp"]
    # Real statistics were cached, keyed by dataset, resolution, count, mirroring, network and file digest.
    cached = sorted(p.name for p in (setup.root / "cache").iterdir())
    assert any(n.startswith("shapes16-16-8-nomirror-inception-") and n.endswith("-meancov0.npz") for n in cached)
    assert any(n.startswith("shapes16-16-8-nomirror-vgg16-") for n in cached)


def _evil_pickle(path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))
    path.write_bytes(pickle.dumps(Evil(), protocol=2))


# (Missing files, another resolution and the other refusals are tested in-process in
# test_metrics_evaluate.py / test_metrics_feature_networks.py; here the CLI's one-line form.)
@pytest.mark.parametrize("case,args,message", [
    ("unknown", ["--metrics", "fid5k"], "error: unknown metric 'fid5k'"),
    ("fewer", ["--metrics", "fid50k"], "shapes16: 24 images but 50000 reals are needed"),
    ("code", ["--metrics", "fid50k_full"], "evil.pkl: refusing to load global"),
])
def test_bad_input_is_a_one_line_error(setup, case, args, message):
    extra = []
    if case == "code":
        _evil_pickle(setup.root / "evil.pkl")
        extra = ["--inception", setup.root / "evil.pkl"]
    if "--dataset" not in args:
        extra += ["--dataset", "shapes16"]
    r = _run(setup, *args, *extra)
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last, r.stderr[-2000:]
    assert "pwned" not in r.stdout
