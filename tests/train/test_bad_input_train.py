"""Advice after a failed save on a full disk names a start that the run directory accepts (no TensorFlow)."""

from __future__ import annotations

import json

import pytest

from edgeflownas.config import resolve
from edgeflownas.errors import CheckpointError, NoSpaceError
from edgeflownas.train import checkpoint
from edgeflownas.train import run_dir as rd
from edgeflownas.train.start import decide_start


def fake_checkpoint(directory, epoch):
    """A complete-looking checkpoint folder (state.json and model.index): what decide_start looks for."""
    directory.mkdir(parents=True)
    (directory / checkpoint.STATE_FILE).write_text(json.dumps({"epoch": epoch}))
    (directory / f"{checkpoint.MODEL_PREFIX}.index").write_bytes(b"index")


def advice_after_failed_save(target):
    def no_space(_prefix):
        raise OSError(28, "No space left on device")

    with pytest.raises(NoSpaceError) as raised:
        checkpoint.save_checkpoint(target, no_space, {"global_step": 4, "epoch": 1})
    line = str(raised.value)
    assert f"no space left on {target.parent}" in line
    return line


def start_with(run, flags):
    overrides = {"experiment.output_root": str(run.parent), "experiment.name": run.name,
                 "checkpoint.resume": "--resume" in flags}
    return decide_start(resolve(None, overrides), run, log=lambda line: None,
                        resume_from="best" if "best" in flags else "last")


def test_first_epoch_best_saved_last_not_advises_resume_from_best_which_is_accepted(tmp_path):
    run = tmp_path / "runs" / "exp"
    fake_checkpoint(run / rd.BEST, epoch=1)
    (run / rd.HISTORY).write_text("epoch\n1\n")
    line = advice_after_failed_save(run / rd.LAST)
    assert line.endswith("run the same command again with --resume --resume_from best (supernet_last.ckpt was "
                         "not written; the epochs after supernet_best.ckpt are trained again)"), line
    with pytest.raises(CheckpointError):  # the old advice, plain --resume, is refused here
        start_with(run, ["--resume"])
    assert start_with(run, ["--resume", "--resume_from", "best"]).mode == "resume"


def test_a_kept_last_advises_resume(tmp_path):
    run = tmp_path / "runs" / "exp"
    fake_checkpoint(run / rd.LAST, epoch=1)
    fake_checkpoint(run / rd.BEST, epoch=1)
    line = advice_after_failed_save(run / rd.BEST)
    assert "keeps its previous version" in line and line.endswith("run the same command again with --resume")
    assert start_with(run, ["--resume"]).mode == "resume"


def test_nothing_saved_yet_advises_the_same_command(tmp_path):
    run = tmp_path / "runs" / "exp"
    run.mkdir(parents=True)
    line = advice_after_failed_save(run / rd.BEST)
    assert line.endswith("run the same command again (no checkpoint was saved yet, so it starts afresh)")
    assert start_with(run, []).mode == "fresh"
