"""Runs written before the training package was restructured still resume, and continue exactly.

tests/fixtures/legacy_run/ holds a run directory after tick 1 (training_options.json, the
checkpoint, a snapshot) written by the earlier trainer, and every variable (networks, Adam's
slots, pl_mean) that the earlier trainer reached after continuing straight on to tick 2
(make_fixture.py says how they were made). Today's trainer resumes the copy of that run and
must reach the same state.

The fixture was made with oneDNN's CPU kernels, so the run continues in a process that has them on
(TF_ENABLE_ONEDNN_OPTS=1; a CPU whose default is Eigen's kernels, AVX2-only ones, would otherwise
use those). Eight minibatches of GAN training with Adam carry one kernel family's rounding far
beyond one rounding step: on a 2-core AVX2-only EPYC, the earlier and today's trainer both reach
the same state with Eigen's kernels (largest difference 3.8e-6, 1 ulp), and that state is up to
2.1e-4 away from the oneDNN one. With oneDNN's kernels on both sides the difference is at most
2.4e-7, on that EPYC as on the AVX-512 Xeon that made the fixture."""

import os
import re
import shutil

import numpy as np
import pytest

from conftest import ROOT, run_python

pytestmark = pytest.mark.slow

LEGACY = ROOT / "tests" / "fixtures" / "legacy_run"

# Resumes argv[1] (a run directory under argv[2]) with its data in argv[3], trains to the end and
# writes every variable of the state to argv[4].
CONTINUE = """
import sys
import numpy as np
from stylegan2_tf.training import Trainer, saved_options
run_dir, results, data_dir, out = sys.argv[1:5]
trainer = Trainer(saved_options(run_dir, results).replace(data_dir=data_dir), resume=run_dir, echo=False)
state = trainer.state
assert int(state.cur_nimg.numpy()) == 64 and int(state.cur_tick.numpy()) == 1
trainer.train()
got = {"pl_mean": state.pl_mean.numpy(), "cur_nimg": int(state.cur_nimg.numpy())}
for net, model in (("G", state.G), ("D", state.D), ("G_ema", state.G_ema)):
    got.update({f"{net}/{i:03d}/{v.path}": v.numpy() for i, v in enumerate(model.variables)})
for name, opt in (("opt_G", state.opt_G), ("opt_D", state.opt_D)):
    got.update({f"{name}/{i:03d}/{v.path}": np.asarray(v.numpy()) for i, v in enumerate(opt.variables)})
np.savez(out, **got)
"""


def test_a_run_of_the_earlier_trainer_resumes_and_continues_exactly(tmp_path):
    results = tmp_path / "results"
    run_dir = results / "00000-shapes16-config-f-1gpu"
    shutil.copytree(LEGACY / "run", run_dir)
    out = tmp_path / "state.npz"
    proc = run_python(["-c", CONTINUE, run_dir, results, LEGACY / "data", out], timeout=600,
                      env={"TF_ENABLE_ONEDNN_OPTS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]

    want = np.load(LEGACY / "after_tick2.npz")
    got = np.load(out)
    # Keras numbers optimizer names per process (fused_adam_1, fused_adam_14, ...): not part of the state.
    def unnumbered(key):
        return re.sub(r"fused_adam_\d+", "fused_adam", key)
    got = {unnumbered(k): got[k] for k in got.files}
    want = {unnumbered(k): want[k] for k in want.files}
    assert sorted(got) == sorted(want)
    assert got["cur_nimg"] == 128
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-4, atol=1e-6, err_msg=key)
    assert os.path.isfile(run_dir / "network-final.pkl")
