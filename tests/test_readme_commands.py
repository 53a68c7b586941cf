"""README.md's quick start and tiny-training example, run as written (in a scratch directory that
sees the repository's files), so that a README command cannot break unnoticed.

The `pip install` before `&&` in the quick start is left to .ci/run, which runs README command 1
verbatim in its fresh environment before the test command; the test command itself (pytest) is
what runs this file. The training example runs with a smaller --total-kimg."""

import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, subprocess_env
from readme_commands import readme_blocks

pytestmark = pytest.mark.slow

BLOCKS = readme_blocks()


def test_readme_marks_the_blocks_and_ci_runs_its_commands():
    assert set(BLOCKS) >= {"quickstart", "tiny-training"}
    quick = BLOCKS["quickstart"]
    assert len(quick) == 2 and quick[0].startswith("pip install . && python run_generator.py")
    assert quick[1] == 'pip install -e ".[test]" && python -m pytest tests -q'
    ci = (ROOT / ".ci" / "run").read_text()
    # CI runs both as written: printed from README by readme_commands.py and run by `bash -c`, so a
    # failure anywhere in either command list fails CI.
    assert 'bash -euo pipefail -c "$(python "$SRC/tests/readme_commands.py" quickstart 1)"' in ci
    assert 'bash -euo pipefail -c "$(python tests/readme_commands.py quickstart 2)"' in ci
    assert "set -euo pipefail" in ci


def _scratch(tmp_path):
    """A directory whose entries link to the repository's, minus what the commands create."""
    for entry in ROOT.iterdir():
        if entry.name not in ("datasets", "results", "out", ".git") and not entry.name.startswith(".venv"):
            (tmp_path / entry.name).symlink_to(entry)
    (tmp_path / "datasets").mkdir()
    for entry in (ROOT / "datasets").iterdir():  # the dataset tool, if a command uses it
        (tmp_path / "datasets" / entry.name).symlink_to(entry)
    return tmp_path


def _run(command, cwd):
    env = subprocess_env(PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    r = subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, f"{command}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def test_quickstart_generates_digits(tmp_path):
    cwd = _scratch(tmp_path)
    command = BLOCKS["quickstart"][0].split("&&", 1)[1].strip()  # after `pip install .`
    _run(command, cwd)
    seeds = re.search(r"--seeds (\S+)", command).group(1)
    lo, hi = map(int, seeds.split("-"))
    outdir = pathlib.Path(cwd) / re.search(r"--outdir (\S+)", command).group(1)
    pngs = sorted(outdir.glob("seed*.png"))
    assert [p.name for p in pngs] == [f"seed{s:04d}.png" for s in range(lo, hi + 1)]
    images = np.stack([np.asarray(Image.open(p)) for p in pngs])
    assert images.shape[1:3] == (32, 32)
    # Digits: white strokes on a black ground (mostly dark pixels, some bright), not noise.
    assert np.median(images) < 40 and (images > 200).mean() > 0.05


def test_tiny_training_example_runs(tmp_path):
    cwd = _scratch(tmp_path)
    for command in BLOCKS["tiny-training"]:
        if "run_training.py" in command:
            assert "--total-kimg" in command
            command = re.sub(r"--total-kimg \S+", "--total-kimg 0.064", command)
        _run(command, cwd)
    runs = sorted((pathlib.Path(cwd) / "results").iterdir())
    assert len(runs) == 1
    files = set(os.listdir(runs[0]))
    assert {"network-final.pkl", "reals.png", "fakes_init.png", "log.txt", "stats.jsonl"} <= files
    assert "Done." in (runs[0] / "log.txt").read_text()


@pytest.mark.parametrize("text, want", [
    ("<!-- tested: a -->\n```sh\n# comment\npip x && y  # note\npython z \\\n    --k 1\n```\n", ["pip x && y",
                                                                                                 "python z --k 1"]),
])
def test_block_parsing(text, want):
    assert readme_blocks(text) == {"a": want}
