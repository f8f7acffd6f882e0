"""verify_shards / 'efnas data-check --shards': corruption, count mismatches, missing files, bad manifests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edgeflownas.data.loader import BatchLoader, ShardSource
from edgeflownas.data.shards import MANIFEST_NAME, open_shard, verify_shards
from edgeflownas.errors import DataError


@pytest.fixture
def shards_copy(packed_fc2, tmp_path) -> Path:
    """A private copy of the packed set that a test may damage."""
    out = tmp_path / "shards"
    shutil.copytree(packed_fc2, out)
    return out


def flip_sample_byte(shard: Path, dataset: str, sample: int) -> None:
    """Invert one byte in the middle of a sample's data in a dataset (not HDF5 metadata)."""
    with open_shard(shard) as handle:
        sample_bytes = handle[dataset][0].nbytes
        middle = handle[dataset].id.get_offset() + sample * sample_bytes + sample_bytes // 2
    with open(shard, "r+b") as raw:
        raw.seek(middle)
        byte = raw.read(1)[0]
        raw.seek(middle)
        raw.write(bytes([byte ^ 0x01]))


def edit_manifest(directory: Path, edit) -> None:
    path = directory / MANIFEST_NAME
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


def test_fresh_pack_verifies(packed_fc2):
    report = verify_shards(packed_fc2)
    assert report.ok, report.problems
    assert report.samples == {"train": 10, "val": 4} and report.shards == {"train": 3, "val": 1}


def test_flipped_sample_byte_is_found_by_sha256_and_the_sample_hash(shards_copy):
    flip_sample_byte(shards_copy / "train-00001.h5", "flow", 2)
    problems = verify_shards(shards_copy).problems
    assert len(problems) == 2
    assert "train-00001.h5: sha256" in problems[0]
    assert "train-00001.h5: sample 2 (id 0000006) cannot be read (dataset 'flow': xxh3_64" in problems[1]


def test_loader_read_of_a_corrupted_sample_names_the_shard_and_sample(shards_copy):
    flip_sample_byte(shards_copy / "train-00001.h5", "img1", 3)
    source = ShardSource(shards_copy, "train", 48, 64, verify_sha256=False)  # the read-time check
    source.get(6)  # an intact sample of the same shard still reads
    with pytest.raises(DataError, match=r"train-00001\.h5: sample 3 \(id 0000007\) cannot be read \(dataset 'img1': "
                                        r"xxh3_64 [0-9a-f]{16} differs from the [0-9a-f]{16} stored when it was packed"):
        source.get_batch([4, 7])
    source.close()


def test_flipped_byte_in_a_batch_read_by_worker_threads_is_an_error(shards_copy):
    flip_sample_byte(shards_copy / "val-00000.h5", "img0", 1)
    source = ShardSource(shards_copy, "val", 48, 64, verify_sha256=False)
    with BatchLoader(source, 4, seed=0, num_workers=2) as loader:
        with pytest.raises(DataError, match=r"val-00000\.h5: sample 1 \(id 0000001\) cannot be read \(dataset 'img0'"):
            list(loader.batches(0))


def test_old_format_shard_set_is_refused_with_a_repack_hint(shards_copy, synth_fc2):
    edit_manifest(shards_copy, lambda manifest: manifest.update(format_version=1))
    with pytest.raises(DataError, match=rf"manifest.json: format_version 1 is not read by this efnas, which reads 2 "
                                        rf".*re-pack the source \({synth_fc2}\) into a new directory"):
        ShardSource(shards_copy, "train", 48, 64)
    assert "format_version 1 is not read" in verify_shards(shards_copy).problems[0]


def test_shard_truncated_after_opening_is_an_error_not_a_crash(shards_copy):
    """Mapping past the end of a file would kill the reader with SIGBUS when the sample is copied."""
    path = shards_copy / "train-00002.h5"
    source = ShardSource(shards_copy, "train", 48, 64)
    with open(path, "r+b") as raw:
        raw.truncate(path.stat().st_size // 2)  # into the sample data
    with pytest.raises(DataError, match=r"train-00002\.h5: \d+ bytes, shorter than its datasets"):
        source.get(9)


def test_manifest_count_larger_than_the_shard_is_reported(shards_copy):
    def claim_one_more(manifest):
        manifest["splits"]["val"]["shards"][0]["samples"] += 1
        manifest["splits"]["val"]["samples"] += 1

    edit_manifest(shards_copy, claim_one_more)
    problems = verify_shards(shards_copy).problems
    assert any("val-00000.h5: dataset 'img0' should be (5, 48, 64, 3)" in p and "manifest says 5" in p
               for p in problems)
    with pytest.raises(DataError, match="val-00000.h5: holds 4 samples but .*manifest.json lists 5"):
        ShardSource(shards_copy, "val", 48, 64)


def test_split_total_disagreeing_with_its_shards_is_reported(shards_copy):
    edit_manifest(shards_copy, lambda manifest: manifest["splits"]["train"].update(samples=11))
    assert verify_shards(shards_copy).problems == [
        f"{shards_copy / MANIFEST_NAME}: split 'train' declares 11 samples but its shards list 10"]


def test_missing_shard_is_reported_by_name(shards_copy):
    (shards_copy / "train-00002.h5").unlink()
    problems = verify_shards(shards_copy).problems
    assert problems == [f"{shards_copy / 'train-00002.h5'}: shard listed in manifest.json does not exist"]
    with pytest.raises(DataError, match="train-00002.h5: shard listed in manifest.json does not exist"):
        ShardSource(shards_copy, "train", 48, 64)


def test_missing_or_unreadable_manifest(shards_copy):
    (shards_copy / MANIFEST_NAME).write_text("{not json")
    assert "manifest.json: unreadable manifest" in verify_shards(shards_copy).problems[0]
    (shards_copy / MANIFEST_NAME).unlink()
    assert "manifest.json: no shard manifest" in verify_shards(shards_copy).problems[0]


def test_incomplete_pack_is_reported(shards_copy):
    edit_manifest(shards_copy, lambda manifest: manifest.update(complete=False))
    assert "pack is incomplete (interrupted)" in verify_shards(shards_copy).problems[0]


def test_cli_data_check_shards_exit_codes(cli, shards_copy, tmp_path):
    good = cli("data-check", "--shards", shards_copy, "--report", tmp_path / "r.json")
    assert good.exit_code == 0 and "train_samples: 10 (3 shards)" in good.output, good.output
    flip_sample_byte(shards_copy / "val-00000.h5", "img0", 0)
    bad = cli("data-check", "--shards", shards_copy, "--report", tmp_path / "r.json")
    assert bad.exit_code == 1
    assert "val-00000.h5: sample 0 (id 0000000) cannot be read (dataset 'img0'" in bad.output
    assert "problems in the packed set" in bad.output
