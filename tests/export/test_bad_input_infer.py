"""Bad outputs of ``efnas infer``: one line before any work, and nothing half-written when a write fails."""

from __future__ import annotations

import numpy as np
import pytest

from edgeflownas.data.io import read_flo, write_image_rgb
from edgeflownas.errors import NoSpaceError
from edgeflownas.export.infer import infer_pair


@pytest.fixture
def pair(tmp_path):
    """Two small images and a (fake) export folder: every refusal here happens before the model is opened."""
    rng = np.random.default_rng(0)
    paths = []
    for name in ("a.png", "b.png"):
        write_image_rgb(tmp_path / name, rng.integers(0, 255, (16, 24, 3), dtype=np.uint8))
        paths.append(tmp_path / name)
    (tmp_path / "model").mkdir()
    return paths, tmp_path / "model"


def refused(cli, *args):
    result = cli("infer", *args)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def test_dev_full_is_refused_as_an_output(cli, pair, tmp_path):
    (img0, img1), model = pair
    assert "expected .flo" in refused(cli, img0, img1, "--model", model, "--out", "/dev/full")
    link = tmp_path / "full.flo"
    link.symlink_to("/dev/full")
    assert "not a regular file" in refused(cli, img0, img1, "--model", model, "--out", link, "--overwrite")


def test_png_naming_the_flo_file_is_refused_before_anything_is_written(cli, pair, tmp_path):
    (img0, img1), model = pair
    line = refused(cli, img0, img1, "--model", model, "--out", tmp_path / "o" / "same.flo", "--png",
                   tmp_path / "o" / "same.flo")
    assert "--png" in line
    line = refused(cli, img0, img1, "--model", model, "--out", tmp_path / "o" / "same.png", "--png",
                   tmp_path / "o" / "same.png")
    assert "expected .flo" in line
    assert not (tmp_path / "o").exists()


def test_an_input_image_is_never_an_output(cli, pair):
    (img0, img1), model = pair
    before = img1.read_bytes()
    assert "which this command reads" in refused(cli, img0, img1, "--model", model, "--out", "x.flo", "--png",
                                                 img1, "--overwrite")
    assert img1.read_bytes() == before


def test_out_on_a_read_only_folder_is_one_line_before_the_model_runs(cli, pair, read_only_folder):
    (img0, img1), model = pair
    line = refused(cli, img0, img1, "--model", model, "--out", read_only_folder / "flow.flo")
    assert f"cannot write in {read_only_folder}" in line


class ConstantModel:
    """Stands in for an ExportedModel: a known flow for any pair."""

    format = "test"

    def flow(self, img0, img1):
        return np.full(img0.shape[:2] + (2,), 1.5, np.float32)


def test_a_full_disk_leaves_no_half_written_flow(pair, tmpfs, fill_disk):
    (img0, img1), _ = pair
    small_disk = tmpfs("disk", "64k")
    flo = small_disk / "flow.flo"
    infer_pair(ConstantModel(), img0, img1, flo)
    np.testing.assert_array_equal(read_flo(flo), np.full((16, 24, 2), 1.5, np.float32))
    fill_disk(small_disk)
    with pytest.raises(NoSpaceError, match=f"no space left on {small_disk}"):
        infer_pair(ConstantModel(), img0, img1, small_disk / "next.flo", small_disk / "next.png")
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler", "flow.flo"]
