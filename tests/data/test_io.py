"""Strict readers and writers: .flo, PNG (RGB order), resize with flow rescaling."""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest

from edgeflownas.data.io import (
    read_flo, read_flo_header, read_image_rgb, read_png_size, read_sample, resize_sample, write_flo,
    write_image_rgb,
)
from edgeflownas.errors import DataError


@pytest.fixture
def good_flo(tmp_path):
    flow = np.random.default_rng(0).normal(size=(4, 6, 2)).astype(np.float32)
    path = tmp_path / "good.flo"
    write_flo(path, flow)
    return path, flow


def test_flo_round_trip_is_exact_little_endian(good_flo):
    path, flow = good_flo
    data = path.read_bytes()
    assert data[:12] == struct.pack("<fii", 202021.25, 6, 4)
    assert len(data) == 12 + 8 * 6 * 4
    assert np.array_equal(read_flo(path), flow)
    assert read_flo(path).dtype == np.float32
    assert read_flo_header(path) == (4, 6)


def _bad_magic(data):
    return struct.pack("<f", 1.0) + data[4:]


def _big_endian_header(data):
    return struct.pack(">fii", 202021.25, 6, 4) + data[12:]


def _truncated(data):
    return data[:-5]


def _trailing_bytes(data):
    return data + b"\0" * 8


def _size_mismatch_header(data):
    return struct.pack("<fii", 202021.25, 7, 4) + data[12:]


def _header_only_partly(data):
    return data[:7]


@pytest.mark.parametrize("name, corrupt, expected", [
    ("bad_magic.flo", _bad_magic, "bad .flo magic, expected 202021.25"),
    ("big_endian.flo", _big_endian_header, "bad .flo magic"),
    ("truncated.flo", _truncated, "truncated .flo, header says width=6 height=4 so the file must be 12 + 8*6*4 = 204 bytes, found 199"),
    ("trailing_bytes.flo", _trailing_bytes, ".flo has trailing bytes"),
    ("size_mismatch.flo", _size_mismatch_header, "header says width=7 height=4 so the file must be 12 + 8*7*4 = 236 bytes, found 204"),
    ("short_header.flo", _header_only_partly, "file is 7 bytes but the header alone needs 12"),
])
def test_bad_flo_files_raise_naming_the_file(tmp_path, good_flo, name, corrupt, expected):
    path = tmp_path / name
    path.write_bytes(corrupt(good_flo[0].read_bytes()))
    for reader in (read_flo, read_flo_header):
        with pytest.raises(DataError) as info:
            reader(path)
        assert expected in str(info.value)
        assert str(path) in str(info.value)


def test_missing_flo_names_the_file(tmp_path):
    with pytest.raises(DataError, match="missing.flo: file does not exist"):
        read_flo(tmp_path / "missing.flo")


def test_image_is_returned_in_rgb_order(tmp_path):
    path = tmp_path / "blue.png"
    bgr_blue = np.zeros((3, 5, 3), np.uint8)
    bgr_blue[..., 0] = 255  # OpenCV writes BGR: this pixel is pure blue
    cv2.imwrite(str(path), bgr_blue)
    rgb = read_image_rgb(path)
    assert rgb.shape == (3, 5, 3) and rgb.dtype == np.uint8
    assert (rgb[..., 2] == 255).all() and (rgb[..., :2] == 0).all()
    assert read_png_size(path) == (3, 5)


def test_write_then_read_image_is_identity(tmp_path):
    image = np.random.default_rng(1).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    write_image_rgb(tmp_path / "a.png", image)
    assert np.array_equal(read_image_rgb(tmp_path / "a.png"), image)


@pytest.mark.parametrize("name, content, expected", [
    ("zero_byte.png", b"", "zero-byte file, expected a PNG image"),
    ("not_an_image.png", b"this is a text file, not a picture\n", "not a PNG image"),
])
def test_bad_png_files_raise_naming_the_file(tmp_path, name, content, expected):
    """The decoder checks the PNG header first, so it says the same as the header check."""
    path = tmp_path / name
    path.write_bytes(content)
    for reader in (read_image_rgb, read_png_size):
        with pytest.raises(DataError) as info:
            reader(path)
        assert expected in str(info.value) and str(path) in str(info.value)


def test_truncated_png_body_fails_to_decode(tmp_path):
    path = tmp_path / "truncated_body.png"
    write_image_rgb(path, np.random.default_rng(2).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:200])
    assert read_png_size(path) == (32, 32)  # the header survives
    with pytest.raises(DataError, match="truncated_body.png: not a decodable image"):
        read_image_rgb(path)


def test_resize_rescales_flow_to_new_pixels():
    img = np.zeros((384, 512, 3), np.uint8)
    flow = np.empty((384, 512, 2), np.float32)
    flow[..., 0], flow[..., 1] = 10.0, -6.0
    img0, img1, resized = resize_sample(img, img, flow, 180, 240)
    assert img0.shape == img1.shape == (180, 240, 3) and img0.dtype == np.uint8
    assert resized.shape == (180, 240, 2) and resized.dtype == np.float32
    np.testing.assert_allclose(resized[..., 0], 10.0 * 240 / 512, rtol=1e-6)
    np.testing.assert_allclose(resized[..., 1], -6.0 * 180 / 384, rtol=1e-6)


def test_resize_rejects_parts_of_different_sizes():
    with pytest.raises(DataError, match="parts differ in size"):
        resize_sample(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 2)), 2, 2)


def test_read_sample_checks_flow_matches_image(tmp_path, write_sample):
    img0 = write_sample(tmp_path, 0)
    flow_path = tmp_path / "0000000-flow_01.flo"
    write_flo(flow_path, np.zeros((24, 31, 2), np.float32))
    with pytest.raises(DataError) as info:
        read_sample(img0, tmp_path / "0000000-img_1.png", flow_path)
    assert f"{flow_path}: flow size 24x31 differs from image" in str(info.value)
