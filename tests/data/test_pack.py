"""efnas pack: manifest contents, refusal of bad sources (nothing written), atomic shards, resume."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import xxhash
import pytest

from edgeflownas.data import pack as pack_module
from edgeflownas.data.io import read_flo, read_image_rgb, write_flo
from edgeflownas.data.pack import pack
from edgeflownas.data.shards import MANIFEST_NAME, open_shard, read_manifest, sha256_file, verify_shards
from edgeflownas.errors import DataError


def leftovers(out: Path) -> list:
    """Temp files a pack may leave behind (there must be none after it returns or raises)."""
    return sorted(path.name for path in out.glob(".*.tmp-*"))


def test_pack_writes_self_describing_manifest(packed_fc2, synth_fc2):
    manifest = read_manifest(packed_fc2)
    assert manifest["complete"] is True and manifest["format_version"] == 2
    assert manifest["resolution"] == {
        "mode": "train", "height": 48, "width": 64, "source_height": 96, "source_width": 128,
        "resize": manifest["resolution"]["resize"]}
    assert "u *= width / source_width" in manifest["resolution"]["resize"]
    assert manifest["source"]["splits"] == {split: str((synth_fc2 / split).resolve()) for split in ("train", "val")}
    assert manifest["source"]["scan"]["train_samples"] == 10 and manifest["source"]["scan"]["val_samples"] == 4
    train = manifest["splits"]["train"]
    assert train["samples"] == 10 and [entry["samples"] for entry in train["shards"]] == [4, 4, 2]
    assert [entry["file"] for entry in manifest["splits"]["val"]["shards"]] == ["val-00000.h5"]
    for info in manifest["splits"].values():
        for entry in info["shards"]:
            assert sha256_file(packed_fc2 / entry["file"]) == entry["sha256"]
    assert leftovers(packed_fc2) == []


def test_shard_layout_contiguous_samples_with_an_xxh3_hash_each(packed_fc2):
    with open_shard(packed_fc2 / "train-00000.h5") as handle:
        for name in ("img0", "img1", "flow"):
            assert handle[name].chunks is None and not handle[name].fletcher32 and handle[name].compression is None
        assert handle["img0"].dtype == np.uint8 and handle["flow"].dtype == np.float32
        assert list(handle["sample_ids"].asstr()[:]) == ["0000000", "0000001", "0000002", "0000003"]
        assert handle["sample_ids"].fletcher32
        hashes = handle["xxh3_64"][:]
        assert hashes.shape == (4, 3) and hashes.dtype == np.uint64
        for sample in range(4):
            assert [xxhash.xxh3_64_intdigest(handle[name][sample]) for name in ("img0", "img1", "flow")] == \
                hashes[sample].tolist()


def test_native_resolution_keeps_source_pixels(synth_fc2, tmp_path):
    out = tmp_path / "native"
    pack(synth_fc2, out, resolution="native", shard_size=8, workers=1)
    assert read_manifest(out)["resolution"]["resize"] == "none"
    with open_shard(out / "val-00000.h5") as handle:
        np.testing.assert_array_equal(handle["flow"][2], read_flo(synth_fc2 / "val" / "0000002-flow_01.flo"))
        np.testing.assert_array_equal(handle["img1"][2], read_image_rgb(synth_fc2 / "val" / "0000002-img_1.png"))


def copy_root(synth_fc2: Path, tmp_path: Path) -> Path:
    root = tmp_path / "FC2"
    shutil.copytree(synth_fc2, root)
    return root


def truncate_flo(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-8])


def bad_magic(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[:4] = b"HEIP"  # the real magic reads "PIEH"
    path.write_bytes(bytes(data))


def wrong_flo_size(path: Path) -> None:
    write_flo(path, np.zeros((96, 100, 2), np.float32))


BAD_INPUTS = {
    # damaged file name -> (how to damage it, words the error must contain)
    "0000003-flow_01.flo": (truncate_flo, "truncated .flo"),
    "0000004-flow_01.flo": (bad_magic, "bad .flo magic"),
    "0000005-flow_01.flo": (wrong_flo_size, "flow is 96x100"),
    "0000006-img_1.png": (Path.unlink, "missing img_1.png"),
    "0000007-img_0.png": (lambda path: path.write_bytes(b""), "zero-byte"),
    "0000008-img_1.png": (lambda path: path.write_text("not a png"), "not a PNG"),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_is_refused_naming_the_file_and_nothing_is_written(synth_fc2, tmp_path, name):
    root = copy_root(synth_fc2, tmp_path)
    damage, words = BAD_INPUTS[name]
    damage(root / "train" / name)
    out = tmp_path / "out"
    with pytest.raises(DataError) as caught:
        pack(root, out, height=48, width=64, workers=1)
    assert name in str(caught.value) and words in str(caught.value) and "nothing was packed" in str(caught.value)
    assert not out.exists()


def test_empty_val_is_refused_naming_the_folder_and_pattern(synth_fc2, tmp_path):
    root = copy_root(synth_fc2, tmp_path)
    for path in (root / "val").iterdir():
        path.unlink()
    with pytest.raises(DataError, match=r"val split is empty: .*NNNNNNN-img_0\.png.* in .*FC2/val"):
        pack(root, tmp_path / "out", workers=1)
    assert not (tmp_path / "out").exists()


def test_nonexistent_root_is_refused(tmp_path):
    with pytest.raises(DataError, match="nowhere: FC2 root does not exist"):
        pack(tmp_path / "nowhere", tmp_path / "out", workers=1)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("workers", [1, 2])
def test_decode_failure_in_first_shard_removes_the_new_output(synth_fc2, tmp_path, workers):
    """A PNG with a valid header but corrupt pixels passes the quick scan and fails while packing."""
    root = copy_root(synth_fc2, tmp_path)
    png = root / "train" / "0000001-img_0.png"
    png.write_bytes(png.read_bytes()[:40])
    with pytest.raises(DataError, match="0000001-img_0.png: not a decodable image"):
        pack(root, tmp_path / "out", height=48, width=64, shard_size=4, workers=workers)
    assert not (tmp_path / "out").exists()


def test_decode_failure_leaves_a_previously_empty_output_empty(synth_fc2, tmp_path):
    root = copy_root(synth_fc2, tmp_path)
    png = root / "train" / "0000001-img_0.png"
    png.write_bytes(png.read_bytes()[:40])
    (tmp_path / "out").mkdir()
    with pytest.raises(DataError, match="0000001-img_0.png: not a decodable image"):
        pack(root, tmp_path / "out", height=48, width=64, shard_size=4)
    assert list((tmp_path / "out").iterdir()) == []


def test_interrupted_pack_resumes_without_redoing_finished_shards(synth_fc2, tmp_path, monkeypatch):
    out = tmp_path / "out"
    calls = {"count": 0}
    real_load = pack_module.load_sample

    def fail_in_second_shard(task):
        calls["count"] += 1
        if calls["count"] == 6:
            raise DataError("injected failure while decoding")
        return real_load(task)

    monkeypatch.setattr(pack_module, "load_sample", fail_in_second_shard)
    with pytest.raises(DataError, match="injected"):
        pack(synth_fc2, out, height=48, width=64, shard_size=4, workers=1)
    manifest = read_manifest(out)
    assert manifest["complete"] is False
    assert [entry["file"] for entry in manifest["splits"]["train"]["shards"]] == ["train-00000.h5"]
    assert sorted(path.name for path in out.iterdir()) == [MANIFEST_NAME, "train-00000.h5"]
    finished = (out / "train-00000.h5").stat()

    monkeypatch.setattr(pack_module, "load_sample", real_load)
    result = pack(synth_fc2, out, height=48, width=64, shard_size=4, workers=1)
    assert result.reused == ["train-00000.h5"] and result.redone == []
    assert result.written == ["train-00001.h5", "train-00002.h5", "val-00000.h5"]
    assert (out / "train-00000.h5").stat().st_ino == finished.st_ino
    assert read_manifest(out)["complete"] is True and verify_shards(out).ok and leftovers(out) == []


SLOW_PACK = """
import sys, time
from edgeflownas.data import pack as p
real = p.load_sample
p.load_sample = lambda task: (time.sleep(0.15), real(task))[1]
p.pack(sys.argv[1], sys.argv[2], height=48, width=64, shard_size=2, workers=1)
"""


def listed_shards(out: Path) -> list:
    manifest_path = out / MANIFEST_NAME
    if not manifest_path.exists():
        return []
    return [entry for info in json.loads(manifest_path.read_text())["splits"].values() for entry in info["shards"]]


def test_killed_pack_never_leaves_a_trusted_incomplete_shard_and_rerun_completes(synth_fc2, tmp_path):
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-c", SLOW_PACK, str(synth_fc2), str(out)])
    deadline = time.monotonic() + 60
    while len(listed_shards(out)) < 2 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    listed = listed_shards(out)
    assert 2 <= len(listed) < 7, "the pack must be killed part-way (2..6 of 7 shards listed)"
    for entry in listed:  # everything the manifest trusts is complete
        assert sha256_file(out / entry["file"]) == entry["sha256"]

    result = pack(synth_fc2, out, height=48, width=64, shard_size=2, workers=1)
    assert result.reused == [entry["file"] for entry in listed]
    assert verify_shards(out).ok and leftovers(out) == []


def test_rerun_rewrites_a_listed_shard_whose_sha256_no_longer_matches(packed_fc2, synth_fc2, tmp_path):
    out = tmp_path / "shards"
    shutil.copytree(packed_fc2, out)
    with open(out / "train-00001.h5", "r+b") as handle:
        handle.seek(-100, 2)
        byte = handle.read(1)
        handle.seek(-100, 2)
        handle.write(bytes([byte[0] ^ 0xFF]))
    result = pack(synth_fc2, out, height=48, width=64, shard_size=4, workers=1)
    assert result.redone == ["train-00001.h5"] and result.written == ["train-00001.h5"]
    assert verify_shards(out).ok


def test_out_with_another_pack_is_refused(packed_fc2, synth_fc2, tmp_path):
    out = tmp_path / "shards"
    shutil.copytree(packed_fc2, out)
    with pytest.raises(DataError, match="holds a pack of another source, sample set or settings"):
        pack(synth_fc2, out, height=48, width=64, shard_size=3, workers=1)


def test_non_empty_out_without_manifest_is_refused(synth_fc2, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty and has no manifest.json"):
        pack(synth_fc2, out, workers=1)
    assert sorted(path.name for path in out.iterdir()) == ["notes.txt"]


def test_parallel_workers_write_the_same_shards(packed_fc2, synth_fc2, tmp_path):
    out = tmp_path / "parallel"
    pack(synth_fc2, out, height=48, width=64, shard_size=4, workers=2)
    for entry in read_manifest(packed_fc2)["splits"]["train"]["shards"]:
        with open_shard(packed_fc2 / entry["file"]) as serial, open_shard(out / entry["file"]) as parallel:
            for name in ("img0", "img1", "flow"):
                np.testing.assert_array_equal(serial[name][:], parallel[name][:])


def test_cli_pack_prints_counts_and_refuses_a_missing_root(cli, synth_fc2, tmp_path):
    result = cli("pack", "--src", synth_fc2, "--out", tmp_path / "out", "--height", 48, "--width", 64,
                 "--shard_size", 4, "--workers", 1)
    assert result.exit_code == 0, result.output
    assert "train_samples: 10 (3 shards)" in result.output and "val_samples: 4 (1 shards)" in result.output
    missing = cli("pack", "--src", tmp_path / "missing", "--out", tmp_path / "out2")
    assert missing.exit_code == 1 and "missing: FC2 root does not exist" in missing.output


def test_the_pack_bar_says_it_counts_the_whole_pack(synth_fc2, tmp_path, capsys):
    pack(synth_fc2, tmp_path / "shards", height=32, width=48, shard_size=2, progress=True)
    bar = capsys.readouterr().err
    entries = [entry for info in read_manifest(tmp_path / "shards")["splits"].values() for entry in info["shards"]]
    last = bar.replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith(f"pack (shard {len(entries)}/{len(entries)}: ")
    samples = sum(entry["samples"] for entry in entries)
    assert f"{samples}/{samples}" in last  # every sample of the pack, under a label that says so
