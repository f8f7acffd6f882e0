"""Checkpoint directories are swapped in whole: a failed or killed save never breaks 'last'."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from edgeflownas.errors import CheckpointError
from edgeflownas.train import checkpoint as ck


def _state(step):
    return {"config_hash": "h", "global_step": step, "epoch": step, "next_batch_index": 0, "cycle_index": step}


def _writer(version):
    def save_model(prefix):
        with open(prefix + ".index", "w") as handle:
            handle.write(version)
        with open(prefix + ".data-00000-of-00001", "w") as handle:
            handle.write(version * 100)
    return save_model


def test_save_then_read_state(tmp_path):
    target = tmp_path / "supernet_last.ckpt"
    assert not ck.has_checkpoint(target)
    ck.save_checkpoint(target, _writer("v1"), _state(3), verify_variables=False)
    assert ck.has_checkpoint(target)
    assert ck.read_state(target)["global_step"] == 3
    assert ck.read_state(target)["format"] == ck.STATE_FORMAT
    assert (target / "model.index").read_text() == "v1"


def test_failure_mid_save_keeps_the_previous_checkpoint(tmp_path):
    target = tmp_path / "supernet_last.ckpt"
    ck.save_checkpoint(target, _writer("v1"), _state(3), verify_variables=False)

    def half_then_fail(prefix):
        with open(prefix + ".index", "w") as handle:
            handle.write("partial")
        raise OSError("disk full while writing variables")

    with pytest.raises(OSError, match="disk full"):
        ck.save_checkpoint(target, half_then_fail, _state(4), verify_variables=False)
    assert ck.read_state(target)["global_step"] == 3
    assert (target / "model.index").read_text() == "v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["supernet_last.ckpt"]


KILLED_SAVE = """
import sys, time
from pathlib import Path
from edgeflownas.train import checkpoint as ck
target, marker = Path(sys.argv[1]), Path(sys.argv[2])
def slow(prefix):
    Path(prefix + ".index").write_text("v2-partial")
    marker.write_text("inside save")
    time.sleep(60)
ck.save_checkpoint(target, slow, {"config_hash": "h", "global_step": 9, "epoch": 9,
                                  "next_batch_index": 0, "cycle_index": 9}, verify_variables=False)
"""


def test_sigkill_mid_save_keeps_the_previous_checkpoint(tmp_path):
    target, marker = tmp_path / "supernet_last.ckpt", tmp_path / "marker"
    ck.save_checkpoint(target, _writer("v1"), _state(3), verify_variables=False)
    proc = subprocess.Popen([sys.executable, "-c", KILLED_SAVE, str(target), str(marker)])
    deadline = time.time() + 60
    while not marker.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert marker.exists(), "child never reached the save"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert ck.has_checkpoint(target)
    assert ck.read_state(target)["global_step"] == 3
    assert not list(tmp_path.glob(".supernet_last.ckpt.tmp-*")), "stale staging dir not cleaned"


def test_interrupted_swap_is_recovered(tmp_path):
    target = tmp_path / "supernet_last.ckpt"
    ck.save_checkpoint(target, _writer("v1"), _state(3), verify_variables=False)
    os.replace(target, tmp_path / "supernet_last.ckpt.old")
    assert ck.read_state(target)["global_step"] == 3


def test_malformed_state_names_the_file(tmp_path):
    target = tmp_path / "supernet_last.ckpt"
    ck.save_checkpoint(target, _writer("v1"), _state(3), verify_variables=False)
    (target / "state.json").write_text(json.dumps({"format": 1}))
    with pytest.raises(CheckpointError, match=r"state\.json lacks config_hash"):
        ck.read_state(target)
    with pytest.raises(CheckpointError, match="missing"):
        ck.read_state(tmp_path / "nothing")


def test_state_digest_survives_the_json_round_trip_and_catches_an_edit(tmp_path):
    target = tmp_path / "supernet_last.ckpt"
    state = dict(_state(3), counts={10: 1, 9: 2}, shape=(2, 3), best_metric=float("nan"))
    ck.save_checkpoint(target, _writer("v1"), state, verify_variables=False)
    assert ck.read_state(target)["counts"] == {"10": 1, "9": 2}
    doc = json.loads((target / "state.json").read_text())
    (target / "state.json").write_text(json.dumps(dict(doc, epoch=4), indent=2))
    with pytest.raises(CheckpointError, match=r"state\.json is damaged: its content does not match the state_sha256"):
        ck.read_state(target)
