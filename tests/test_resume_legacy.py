"""Runs written before the training package was restructured still resume, and continue exactly.

tests/fixtures/legacy_run/ holds a run directory after tick 1 (training_options.json, the
checkpoint, a snapshot) written by the earlier trainer, and every variable (networks, Adam's
slots, pl_mean) that the earlier trainer reached after continuing straight on to tick 2
(make_fixture.py says how they were made). Today's trainer resumes the copy of that run and
must reach the same state."""

import os
import re
import shutil

import numpy as np
import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow

LEGACY = ROOT / "tests" / "fixtures" / "legacy_run"


def test_a_run_of_the_earlier_trainer_resumes_and_continues_exactly(tmp_path):
    from stylegan2_tf.training import Trainer, saved_options
    results = tmp_path / "results"
    run_dir = results / "00000-shapes16-config-f-1gpu"
    shutil.copytree(LEGACY / "run", run_dir)
    opts = saved_options(str(run_dir), str(results)).replace(data_dir=str(LEGACY / "data"))
    trainer = Trainer(opts, resume=str(run_dir), echo=False)
    assert int(trainer.state.cur_nimg.numpy()) == 64 and int(trainer.state.cur_tick.numpy()) == 1
    trainer.train()

    want = np.load(LEGACY / "after_tick2.npz")
    state = trainer.state
    got = {"pl_mean": state.pl_mean.numpy(), "cur_nimg": int(state.cur_nimg.numpy())}
    for net, model in (("G", state.G), ("D", state.D), ("G_ema", state.G_ema)):
        got.update({f"{net}/{i:03d}/{v.path}": v.numpy() for i, v in enumerate(model.variables)})
    for name, opt in (("opt_G", state.opt_G), ("opt_D", state.opt_D)):
        got.update({f"{name}/{i:03d}/{v.path}": np.asarray(v.numpy()) for i, v in enumerate(opt.variables)})
    # Keras numbers optimizer names per process (fused_adam_1, fused_adam_14, ...): not part of the state.
    def unnumbered(key):
        return re.sub(r"fused_adam_\d+", "fused_adam", key)
    got = {unnumbered(k): v for k, v in got.items()}
    want = {unnumbered(k): want[k] for k in want.files}
    assert sorted(got) == sorted(want)
    assert got["cur_nimg"] == 128
    # Bitwise on the machine that made the fixture; other CPUs' kernels may round differently.
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-4, atol=1e-6, err_msg=key)
    assert os.path.isfile(run_dir / "network-final.pkl")
