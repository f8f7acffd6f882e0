"""Synthetic FC2: exact layout, determinism, and a ground truth that really is the motion."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from edgeflownas.data.io import read_flo, read_image_rgb
from edgeflownas.data.scan import scan_split
from edgeflownas.data.synth import make_sample, sample_rng, write_dataset
from edgeflownas.errors import DataError

SIZE = (96, 128)


def test_same_seed_same_sample_and_splits_differ():
    a = make_sample(sample_rng(7, "train", 3), *SIZE)
    b = make_sample(sample_rng(7, "train", 3), *SIZE)
    for left, right in ((a.img0, b.img0), (a.img1, b.img1), (a.flow, b.flow), (a.visible, b.visible)):
        assert np.array_equal(left, right)
    for other in (sample_rng(8, "train", 3), sample_rng(7, "val", 3), sample_rng(7, "train", 4)):
        assert not np.array_equal(make_sample(other, *SIZE).img0, a.img0)


def test_sample_types_and_shapes():
    s = make_sample(sample_rng(0, "train", 0), *SIZE)
    assert s.img0.shape == s.img1.shape == (*SIZE, 3) and s.img0.dtype == np.uint8
    assert s.flow.shape == (*SIZE, 2) and s.flow.dtype == np.float32
    assert s.visible.shape == SIZE and s.visible.dtype == bool
    assert np.isfinite(s.flow).all() and np.abs(s.flow).max() > 0.5


@pytest.mark.parametrize("index", range(6))
def test_warping_img1_back_with_flow_reproduces_img0(index):
    sample = make_sample(sample_rng(0, "val", index), *SIZE)
    ys, xs = np.mgrid[0:SIZE[0], 0:SIZE[1]].astype(np.float32)
    warped = cv2.remap(sample.img1, xs + sample.flow[..., 0], ys + sample.flow[..., 1], cv2.INTER_LINEAR)
    visible = sample.visible
    assert visible.mean() > 0.5
    error_warped = np.abs(warped.astype(np.float32) - sample.img0)[visible].mean()
    error_unwarped = np.abs(sample.img1.astype(np.float32) - sample.img0)[visible].mean()
    assert error_warped < 0.15 * error_unwarped, (error_warped, error_unwarped)
    assert error_warped < 3.0  # grey levels: bilinear resampling error only


def test_written_dataset_has_fc2_layout_and_matches_generator(tmp_path):
    counts = write_dataset(tmp_path, train=4, val=2, seed=5, height=SIZE[0], width=SIZE[1], workers=2)
    assert counts == {"train": 4, "val": 2}
    assert sorted(p.name for p in (tmp_path / "val").iterdir()) == [
        "0000000-flow_01.flo", "0000000-img_0.png", "0000000-img_1.png",
        "0000001-flow_01.flo", "0000001-img_0.png", "0000001-img_1.png"]
    info = json.loads((tmp_path / "synth.json").read_text())
    assert (info["seed"], info["train"], info["val"], info["height"], info["width"]) == (5, 4, 2, *SIZE)
    expected = make_sample(sample_rng(5, "train", 3), *SIZE)
    assert np.array_equal(read_image_rgb(tmp_path / "train" / "0000003-img_0.png"), expected.img0)
    assert np.array_equal(read_image_rgb(tmp_path / "train" / "0000003-img_1.png"), expected.img1)
    assert np.array_equal(read_flo(tmp_path / "train" / "0000003-flow_01.flo"), expected.flow)
    scan = scan_split(tmp_path / "train", deep=True, workers=1)
    assert len(scan.samples) == 4 and scan.bad == [] and scan.image_size == SIZE


def test_refuses_to_write_into_a_split_that_holds_files(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "0000000-img_0.png").write_bytes(b"old")
    with pytest.raises(DataError, match="train: already holds files"):
        write_dataset(tmp_path, train=1, val=1, seed=0, height=SIZE[0], width=SIZE[1])


def test_too_small_size_is_refused(tmp_path):
    with pytest.raises(DataError, match="height and width >= 16"):
        write_dataset(tmp_path, train=1, val=1, seed=0, height=8, width=8)
    assert not (tmp_path / "train").exists()


def test_learnable_preset_moves_every_layer_by_a_pure_translation(tmp_path):
    """learnable: background + 1-3 shapes, each translated by at most 4% of the width; named in synth.json."""
    for index in range(6):
        sample = make_sample(sample_rng(0, "val", index), 64, 96, preset="learnable")
        vectors = np.unique(sample.flow.reshape(-1, 2).round(3), axis=0)  # float32 rounding of x + t - x
        assert 2 <= len(vectors) <= 4
        assert np.abs(sample.flow).max() <= 0.04 * 96 + 1e-4
    chairs = make_sample(sample_rng(0, "val", 0), 64, 96)  # rotation and zoom: a different vector per pixel
    assert len(np.unique(chairs.flow.reshape(-1, 2).round(3), axis=0)) > 100
    write_dataset(tmp_path, train=1, val=1, seed=0, height=32, width=48, preset="learnable")
    assert json.loads((tmp_path / "synth.json").read_text())["preset"] == "learnable"
    expected = make_sample(sample_rng(0, "train", 0), 32, 48, preset="learnable")
    assert np.array_equal(read_flo(tmp_path / "train" / "0000000-flow_01.flo"), expected.flow)


def test_unknown_preset_is_refused_with_the_known_ones(tmp_path):
    with pytest.raises(DataError, match=r"preset 'fc3' is unknown: expected one of \['chairs', 'learnable'\]"):
        write_dataset(tmp_path, train=1, val=1, seed=0, height=32, width=48, preset="fc3")
    assert not (tmp_path / "train").exists()


def test_synth_cli_preset_option(cli, tmp_path):
    result = cli("synth", "--out", tmp_path / "s", "--train_samples", 1, "--val_samples", 1,
                 "--height", 32, "--width", 48, "--preset", "learnable")
    assert result.exit_code == 0 and "preset learnable" in result.output
    assert json.loads((tmp_path / "s" / "synth.json").read_text())["preset"] == "learnable"
