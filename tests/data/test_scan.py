"""Folder scan: every bad sample counted with its reason and path, nothing skipped."""

from __future__ import annotations

import numpy as np
import pytest

from edgeflownas.data.io import write_flo, write_image_rgb
from edgeflownas.data.scan import (
    BAD_FLO, FLOW_SIZE_MISMATCH, INCONSISTENT_IMAGE_SIZE, MISSING_PARTNER, UNREADABLE_IMAGE, require_samples,
    scan_split,
)
from edgeflownas.errors import DataError


def test_clean_split_lists_every_sample_sorted(fc2_root):
    for deep in (False, True):
        scan = scan_split(fc2_root / "train", deep=deep, workers=1)
        assert [s.sample_id for s in scan.samples] == [f"{i:07d}" for i in range(5)]
        assert scan.bad == [] and scan.image_size == (24, 32)
        first = scan.samples[0]
        assert first.img1.name == "0000000-img_1.png" and first.flow.name == "0000000-flow_01.flo"


def test_other_fc2_files_are_ignored_and_counted(fc2_root):
    split = fc2_root / "train"
    for name in ("0000000-flow_10.flo", "0000000-occ_01.png", "0000000-mb_01.png", "0000000-oids_0.png",
                 "0000000-disp_0.pfm", "README.txt"):
        (split / name).write_bytes(b"x")
    scan = scan_split(split)
    assert len(scan.samples) == 5 and scan.bad == [] and scan.ignored_files == 6


def _missing_img1(split):
    (split / "0000002-img_1.png").unlink()
    return "0000002-img_1.png"


def _zero_byte_png(split):
    (split / "0000002-img_0.png").write_bytes(b"")
    return "0000002-img_0.png"


def _not_an_image_png(split):
    (split / "0000002-img_1.png").write_text("hello, I am not a PNG")
    return "0000002-img_1.png"


def _bad_magic_flo(split):
    path = split / "0000002-flow_01.flo"
    path.write_bytes(b"\0\0\0\0" + path.read_bytes()[4:])
    return "0000002-flow_01.flo"


def _truncated_flo(split):
    path = split / "0000002-flow_01.flo"
    path.write_bytes(path.read_bytes()[:-1])
    return "0000002-flow_01.flo"


def _image_flow_size_mismatch(split):
    write_flo(split / "0000002-flow_01.flo", np.zeros((24, 30, 2), np.float32))
    return "0000002-flow_01.flo"


def _img0_img1_size_mismatch(split):
    write_image_rgb(split / "0000002-img_1.png", np.zeros((20, 32, 3), np.uint8))
    return "0000002-img_1.png"


def _odd_size_in_split(split):
    for part in ("img_0.png", "img_1.png"):
        write_image_rgb(split / f"0000002-{part}", np.zeros((12, 16, 3), np.uint8))
    write_flo(split / "0000002-flow_01.flo", np.zeros((12, 16, 2), np.float32))
    return "0000002-img_0.png"


@pytest.mark.parametrize("corrupt, reason, expected", [
    (_missing_img1, MISSING_PARTNER, "missing img_1.png (found only img_0.png, flow_01.flo)"),
    (_zero_byte_png, UNREADABLE_IMAGE, "zero-byte file"),
    (_not_an_image_png, UNREADABLE_IMAGE, "not a"),
    (_bad_magic_flo, BAD_FLO, "bad .flo magic"),
    (_truncated_flo, BAD_FLO, "truncated .flo"),
    (_image_flow_size_mismatch, FLOW_SIZE_MISMATCH, "flow is 24x30 (HxW) but the images are 24x32 (HxW)"),
    (_img0_img1_size_mismatch, INCONSISTENT_IMAGE_SIZE, "image is 20x32 (HxW) but 0000002-img_0.png is 24x32"),
    (_odd_size_in_split, INCONSISTENT_IMAGE_SIZE, "images are 12x16 (HxW) but most samples of"),
], ids=["missing_img1", "zero_byte.png", "not_an_image.png", "bad_magic.flo", "truncated.flo",
        "image_flow_size_mismatch", "img0_img1_size_mismatch", "odd_size_in_split"])
@pytest.mark.parametrize("deep", [False, True], ids=["quick", "deep"])
def test_each_bad_sample_is_reported_with_reason_and_file(fc2_root, corrupt, reason, expected, deep):
    split = fc2_root / "train"
    bad_file = split / corrupt(split)
    scan = scan_split(split, deep=deep, workers=1)
    assert [s.sample_id for s in scan.samples] == ["0000000", "0000001", "0000003", "0000004"]
    assert len(scan.bad) == 1
    bad = scan.bad[0]
    assert (bad.sample_id, bad.reason, bad.path) == ("0000002", reason, bad_file)
    assert expected in bad.detail and str(bad_file) in bad.detail


def test_deep_scan_decodes_what_the_quick_scan_cannot_see(fc2_root):
    split = fc2_root / "train"
    path = split / "0000003-img_0.png"
    path.write_bytes(path.read_bytes()[:60])  # header intact, pixel data cut
    flo = split / "0000001-flow_01.flo"
    write_flo(flo, np.full((24, 32, 2), np.nan, np.float32))
    assert scan_split(split).bad == []
    deep = scan_split(split, deep=True, workers=2)  # worker processes
    assert [(b.sample_id, b.reason, b.path) for b in deep.bad] == [
        ("0000001", BAD_FLO, flo), ("0000003", UNREADABLE_IMAGE, path)]
    assert "1536 non-finite values" in deep.bad[0].detail


def test_empty_split_names_directory_and_pattern(tmp_path):
    empty = tmp_path / "val"
    empty.mkdir()
    scan = scan_split(empty)
    assert scan.samples == [] and scan.bad == []
    with pytest.raises(DataError) as info:
        require_samples(scan, "val")
    message = str(info.value)
    assert f"val split is empty: no usable sample matching NNNNNNN-img_0.png" in message
    assert str(empty) in message and "data.val_dir" in message


def test_nonexistent_root_is_an_error(tmp_path):
    with pytest.raises(DataError, match="nowhere/train: directory does not exist"):
        scan_split(tmp_path / "nowhere" / "train")
