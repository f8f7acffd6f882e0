"""Opening a run: the weights digest is verified against state.json, a checkpoint saved meanwhile is read again
once and then refused, and nothing but the data's location can be changed (no TensorFlow)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeflownas.errors import CheckpointError, ConfigError
from edgeflownas.train import checkpoint, run_dir as rd
from edgeflownas.train import trained_run
from edgeflownas.train.trained_run import TrainedRun, recorded_weights_sha256


def _save_again(ckpt: Path, content: bytes) -> None:
    state = checkpoint.read_state(ckpt)
    state["global_step"] += 1
    checkpoint.save_checkpoint(ckpt, lambda prefix: Path(prefix + ".index").write_bytes(content), state,
                               verify_variables=False)


def test_the_digest_is_the_one_state_json_records(fake_run):
    ckpt = fake_run / rd.LAST
    state, sha = trained_run._read_verified(ckpt)
    assert sha == checkpoint.weights_sha256(ckpt) == recorded_weights_sha256(state)


def test_damaged_weights_are_refused_in_one_line(fake_run):
    index = fake_run / rd.LAST / "model.index"
    index.write_bytes(b"not the same bytes at all")
    with pytest.raises(CheckpointError, match=r"model\.index is damaged: 25 bytes, 24 when saved"):
        trained_run._read_verified(fake_run / rd.LAST)


def test_a_checkpoint_saved_while_hashing_is_read_again(fake_run, monkeypatch):
    ckpt = fake_run / rd.LAST
    real = checkpoint.weights_sha256
    saves = []

    def hash_after_a_save(target):
        if not saves:
            saves.append(1)
            _save_again(ckpt, b"newer weights")
        return real(target)

    monkeypatch.setattr(checkpoint, "weights_sha256", hash_after_a_save)
    state, sha = trained_run._read_verified(ckpt)
    assert state == checkpoint.read_state(ckpt) and sha == recorded_weights_sha256(state) == real(ckpt)


def test_a_checkpoint_that_keeps_changing_is_refused(fake_run, monkeypatch):
    ckpt = fake_run / rd.LAST
    real = checkpoint.weights_sha256
    count = []

    def always_saved_meanwhile(target):
        count.append(1)
        _save_again(ckpt, b"weights %d" % len(count))
        return real(target)

    monkeypatch.setattr(checkpoint, "weights_sha256", always_saved_meanwhile)
    with pytest.raises(CheckpointError, match="changed while it was being read"):
        trained_run._read_verified(ckpt)


def test_only_the_data_location_can_be_given(fake_run):
    with pytest.raises(ConfigError, match="experiment.seed: a trained run is read with the config it was trained"):
        TrainedRun.open(fake_run, "last", {"experiment.seed": 42, "data.val_dir": "/elsewhere"})
