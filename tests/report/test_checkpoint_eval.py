"""Checkpoint evaluation refuses what would make its numbers incomparable (no TensorFlow needed)."""

from __future__ import annotations

import hashlib

import pytest

from edgeflownas.errors import CheckpointError, DataError
from edgeflownas.train.checkpoint_eval import check_same_data
from edgeflownas.train.trained_run import checkpoint_dir
from edgeflownas.train.plan import plan_from_state


class Source:
    def __init__(self, ids):
        self.sample_ids = list(ids)

    def __len__(self):
        return len(self.sample_ids)


def digest(ids):
    return hashlib.sha256("\n".join(ids).encode("utf-8")).hexdigest()


def test_other_data_than_the_run_was_evaluated_on_is_refused(tmp_path):
    manifest = {"data": {"train_sample_ids_sha256": digest(["a", "b"]), "val_sample_ids_sha256": digest(["v"]),
                         "val_samples": 1}}
    check_same_data(manifest, Source(["a", "b"]), Source(["v"]), tmp_path)
    with pytest.raises(DataError, match=r"the val split found now \(2 samples\) differs .*train_manifest.json"):
        check_same_data(manifest, Source(["a", "b"]), Source(["v", "w"]), tmp_path)


class ContentSource(Source):
    def __init__(self, ids, content):
        super().__init__(ids)
        self.content = content

    def content_digest(self):
        return self.content


def test_the_same_ids_with_other_content_are_refused_and_moved_data_is_not(tmp_path):
    manifest = {"data": {"train_sample_ids_sha256": digest(["a"]), "val_sample_ids_sha256": digest(["v"]),
                         "train_content_sha256": "folders-v1:" + "1" * 64, "val_content_sha256": "folders-v1:" + "2" * 64}}
    train = ContentSource(["a"], "folders-v1:" + "1" * 64)
    check_same_data(manifest, train, ContentSource(["v"], "folders-v1:" + "2" * 64), tmp_path)
    with pytest.raises(DataError, match="the val split found now has the sample ids recorded .* but other content"):
        check_same_data(manifest, train, ContentSource(["v"], "folders-v1:" + "3" * 64), tmp_path)
    check_same_data(manifest, train, ContentSource(["v"], "shards-v1:" + "3" * 64), tmp_path)  # kinds differ


def test_checkpoint_choice_and_absence_are_named(fake_run):
    with pytest.raises(CheckpointError, match="expected one of best, last"):
        checkpoint_dir(fake_run, "newest")
    with pytest.raises(CheckpointError, match="supernet_best.ckpt is not a complete checkpoint"):
        checkpoint_dir(fake_run, "best")
    assert checkpoint_dir(fake_run, "last").name == "supernet_last.ckpt"


def test_state_without_plan_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="has no 'plan'"):
        plan_from_state({}, tmp_path)
