"""Bad data and crash points of the data layer: one line naming the file, never a traceback.

Each test builds its own tiny input; the shard and pack tests reuse the session's
small synthetic FC2 (``synth_fc2``, 96x128) and its pack (``packed_fc2``, 48x64).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeflownas.config_types import DataConfig
from edgeflownas.data.io import write_flo
from edgeflownas.data.loader import BatchLoader, open_source
from edgeflownas.data.pack import pack
from edgeflownas.data.scan import scan_split
from edgeflownas.data.shards import MANIFEST_NAME, read_manifest, sha256_file
from edgeflownas.errors import DataError, LockedError
from edgeflownas.locks import exclusive_lock

EFNAS = [sys.executable, "-c", "import sys; from edgeflownas.cli import main; sys.argv[0] = 'efnas'; main()"]


def folders_config(train_dir: Path, val_dir: Path, height: int = 24, width: int = 32) -> DataConfig:
    """A folder-source data config at a tiny training size."""
    return DataConfig(source="folders", train_dir=str(train_dir), val_dir=str(val_dir), shards_dir=None,
                      input_height=height, input_width=width, num_workers=0, prefetch_batches=1)


def one_error_line(stderr: str) -> str:
    """The single line a refused command prints (no traceback, no second line)."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def run_efnas(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(EFNAS + [str(arg) for arg in args], capture_output=True, text=True, timeout=300, env=env)


SLOW_PACK = """
import sys, time
from edgeflownas.data import pack as p
real = p.load_sample
p.load_sample = lambda task: (time.sleep(0.3), real(task))[1]
p.pack(sys.argv[1], sys.argv[2], height=48, width=64, shard_size=2, workers=1)
"""


def test_second_pack_into_one_out_is_refused_naming_the_holder(synth_fc2, tmp_path):
    out = tmp_path / "out"
    first = subprocess.Popen([sys.executable, "-c", SLOW_PACK, str(synth_fc2), str(out)])
    deadline = time.monotonic() + 60
    while not (out / MANIFEST_NAME).exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    second = run_efnas("pack", "--src", synth_fc2, "--out", out, "--height", 48, "--width", 64, "--shard_size", 2,
                       "--workers", 1)
    assert first.poll() is None, "the first pack must still be running when the second starts"
    assert first.wait(timeout=120) == 0
    assert second.returncode == 1
    line = one_error_line(second.stderr)
    assert f"{out} is in use by pid {first.pid} on host" in line and "efnas pack --src" in line
    assert read_manifest(out)["complete"] is True  # the first pack finished undisturbed
    assert not list(out.glob(".*.tmp-*"))


def test_refused_pack_into_an_empty_out_leaves_it_empty(synth_fc2, tmp_path):
    """A pack refused by the lock, or failing before its first shard, leaves no lock file behind."""
    out = tmp_path / "out"
    out.mkdir()
    (synth_fc2.parent / "missing").mkdir(exist_ok=True)
    with pytest.raises(DataError, match="directory does not exist"):
        pack(synth_fc2.parent / "missing", out, height=48, width=64, workers=1)
    assert list(out.iterdir()) == []
    with pytest.raises(DataError, match="directory does not exist"):  # and the parents it made are gone too
        pack(synth_fc2.parent / "missing", tmp_path / "new" / "deeper" / "out", height=48, width=64, workers=1)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out"]
    with exclusive_lock(out, "a test holding the lock"):
        with pytest.raises(LockedError, match=f"in use by pid {os.getpid()}"):
            pack(synth_fc2, out, height=48, width=64, shard_size=4, workers=1)
        assert [path.name for path in out.iterdir()] == [".efnas.lock"]  # the holder's own file


NO_SPACE_CHECK = """
import sys
from edgeflownas.data import pack_output as p
p.require_space = lambda *args: None  # let HDF5 itself run into the full disk
from edgeflownas.cli import main
sys.argv[0] = "efnas"
main()
"""


@pytest.mark.parametrize("space_check", [True, False], ids=["checked_before_the_shard", "hdf5_write_fails"])
def test_pack_onto_a_full_disk_says_no_space_left(synth_fc2, tmpfs, space_check):
    full_disk = tmpfs("small_fs", "2m")
    out = full_disk / "shards"
    args = ["pack", "--src", synth_fc2, "--out", out, "--height", 96, "--width", 128, "--shard_size", 4,
            "--workers", 2]
    if space_check:
        result = run_efnas(*args)
    else:
        result = subprocess.run([sys.executable, "-c", NO_SPACE_CHECK] + [str(arg) for arg in args],
                                capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    assert f"no space left on {out}" in one_error_line(result.stderr)
    manifest = read_manifest(out)
    assert manifest["complete"] is False
    listed = [entry for info in manifest["splits"].values() for entry in info["shards"]]
    assert listed, "the 2 MiB disk holds at least one complete shard"
    for entry in listed:  # what the manifest lists is complete; nothing else is left
        assert sha256_file(out / entry["file"]) == entry["sha256"]
    assert sorted(path.name for path in out.iterdir()) == sorted([MANIFEST_NAME] + [e["file"] for e in listed])
    data = DataConfig(source="shards", train_dir="unused", val_dir="unused", shards_dir=str(out), input_height=96,
                      input_width=128, num_workers=0, prefetch_batches=1)
    with pytest.raises(DataError, match="pack is incomplete"):
        open_source(data, "train")


def test_folder_loader_rejects_nan_flo_naming_the_file(fc2_root):
    flo = fc2_root / "train" / "0000003-flow_01.flo"
    flow = np.zeros((24, 32, 2), np.float32)
    flow[5, 7, 1] = np.nan
    flow[0, 0, 0] = np.inf
    write_flo(flo, flow)
    source = open_source(folders_config(fc2_root / "train", fc2_root / "val"), "train")  # headers are fine
    with BatchLoader(source, batch_size=5, seed=0, num_workers=1) as loader:
        with pytest.raises(DataError, match=f"{flo}: flow holds 2 non-finite values"):
            list(loader.batches(0))


def png_header_only(height: int, width: int) -> bytes:
    """A PNG whose valid IHDR claims height x width, followed by a tiny (insufficient) IDAT."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("deep", [False, True], ids=["quick", "deep"])
def test_huge_png_is_refused_from_its_header_before_decoding(fc2_root, deep):
    png = fc2_root / "train" / "0000002-img_1.png"
    png.write_bytes(png_header_only(9000, 9000))
    scan = scan_split(fc2_root / "train", deep=deep, workers=1)
    assert [bad.sample_id for bad in scan.bad] == ["0000002"]
    detail = scan.bad[0].detail
    assert detail.startswith(f"{png}: PNG header says 9000x9000") and "larger than 8192" in detail
    assert "not decoded" in detail


@pytest.mark.parametrize("deep", [False, True], ids=["quick", "deep"])
def test_jpeg_named_png_is_bad_in_quick_and_deep_check(fc2_root, deep):
    png = fc2_root / "train" / "0000001-img_0.png"
    image = np.random.default_rng(3).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    png.write_bytes(cv2.imencode(".jpg", image)[1].tobytes())
    scan = scan_split(fc2_root / "train", deep=deep, workers=1)
    assert [(bad.sample_id, bad.reason) for bad in scan.bad] == [("0000001", "unreadable_image")]
    assert scan.bad[0].detail.startswith(f"{png}: not a PNG image") and "a JPEG image" in scan.bad[0].detail


def test_val_dir_equal_to_train_dir_is_refused(cli, fc2_root, tmp_path):
    train = fc2_root / "train"
    (tmp_path / "alias").symlink_to(train)
    for val in (train, tmp_path / "alias", Path(os.path.relpath(train))):
        result = cli("data-check", "--train_dir", train, "--val_dir", val, "--report", tmp_path / "r.json")
        assert result.exit_code == 1 and "train and val are the same folder" in result.output
        assert json.loads((tmp_path / "r.json").read_text())["ok"] is False
        with pytest.raises(DataError, match="train and val are the same folder"):
            open_source(folders_config(train, val), "train")


def test_samples_copied_into_both_splits_are_refused(cli, fc2_root, synth_fc2, tmp_path):
    """FC2 numbers each split from 0000000, so equal ids are normal; equal bytes are not."""
    shutil.copy2(fc2_root / "train" / "0000001-img_0.png", fc2_root / "val")
    with_one_copy = scan_split(fc2_root / "val")
    assert with_one_copy.bad == []  # same id, partly same files: a different sample, accepted
    for part in ("img_1.png", "flow_01.flo"):
        shutil.copy2(fc2_root / "train" / f"0000001-{part}", fc2_root / "val")
    expected = "1 samples of .* are byte-identical copies of the train samples with the same id .*first: 0000001"
    result = cli("data-check", "--train_dir", fc2_root / "train", "--val_dir", fc2_root / "val",
                 "--report", tmp_path / "r.json")
    assert result.exit_code == 1 and "byte-identical copies" in result.output
    with pytest.raises(DataError, match=expected):
        open_source(folders_config(fc2_root / "train", fc2_root / "val"), "val")
    leaky = tmp_path / "leaky"
    shutil.copytree(synth_fc2, leaky)
    shutil.rmtree(leaky / "val")
    shutil.copytree(leaky / "train", leaky / "val")
    with pytest.raises(DataError, match="10 samples of .* are byte-identical .*nothing was packed"):
        pack(leaky, tmp_path / "shards", height=48, width=64, workers=1)
    assert not (tmp_path / "shards").exists()


@pytest.mark.parametrize("option, value", [("--height", 17), ("--width", 30)])
def test_pack_size_that_training_cannot_use_is_refused(synth_fc2, tmp_path, option, value):
    sizes = {"--height": 48, "--width": 64, option: value}
    result = run_efnas("pack", "--src", synth_fc2, "--out", tmp_path / "out", *sum(map(list, sizes.items()), []),
                       "--workers", 1)
    assert result.returncode == 2
    line = one_error_line(result.stderr)
    assert f"{option} {value}: training needs data.input_" in line and "a multiple of 4" in line
    assert not (tmp_path / "out").exists()


def test_training_start_refuses_a_damaged_shard_it_has_not_read_yet(packed_fc2, tmp_path):
    shards_dir = tmp_path / "shards"
    shutil.copytree(packed_fc2, shards_dir)
    damaged = shards_dir / "train-00002.h5"
    with open(damaged, "r+b") as handle:  # one flipped byte near the end: sample data, not the HDF5 header
        handle.seek(-200, os.SEEK_END)
        byte = handle.read(1)
        handle.seek(-200, os.SEEK_END)
        handle.write(bytes([byte[0] ^ 0x01]))
    data = DataConfig(source="shards", train_dir="unused", val_dir="unused", shards_dir=str(shards_dir),
                      input_height=48, input_width=64, num_workers=0, prefetch_batches=1)
    with pytest.raises(DataError, match=r"train-00002\.h5: sha256 [0-9a-f]{64} differs from the [0-9a-f]{64} in "):
        open_source(data, "train")
    assert len(open_source(data, "val")) == 4  # the other split is intact


def test_a_split_is_identified_by_content_not_only_by_ids(synth_fc2, tmp_path):
    """Another synth seed has the same FC2 names but other pictures; a moved copy has the same content."""
    from edgeflownas.data.loader import FolderSource, content_mismatch
    from edgeflownas.data.synth import write_dataset

    write_dataset(tmp_path / "other", train=10, val=4, seed=8, height=96, width=128)
    shutil.copytree(synth_fc2, tmp_path / "moved")
    original, other, moved = (FolderSource(root / "val", "val", 48, 64)
                              for root in (synth_fc2, tmp_path / "other", tmp_path / "moved"))
    assert original.sample_ids == other.sample_ids == moved.sample_ids
    assert original.content_digest() == moved.content_digest()
    assert content_mismatch(original.content_digest(), other.content_digest())
    assert not content_mismatch(original.content_digest(), moved.content_digest())
    assert not content_mismatch(None, other.content_digest())  # a checkpoint from before the digest


def test_a_shard_split_is_identified_by_its_manifest_digests(packed_fc2):
    import hashlib

    from edgeflownas.data.loader import ShardSource, content_mismatch

    source = ShardSource(packed_fc2, "val", 48, 64)
    listed = [entry["sha256"] for entry in read_manifest(packed_fc2)["splits"]["val"]["shards"]]
    assert source.content_digest() == "shards-v1:" + hashlib.sha256("\n".join(listed).encode()).hexdigest()
    folder_kind = "folders-v1:" + "0" * 64
    assert not content_mismatch(folder_kind, source.content_digest())  # other kinds are not compared
