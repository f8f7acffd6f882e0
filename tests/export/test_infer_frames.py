"""efnas infer as optical-flow users expect it: a folder of plain frames, ground truth scored, sizes HxW."""

from __future__ import annotations

import os
import re
import shutil

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model(search_run, tmp_path_factory):
    """The tiny supernet run's baseline subnet as TFLite float."""
    from edgeflownas.export.api import export_run

    out = tmp_path_factory.mktemp("frames_export") / "model"
    export_run(search_run, "baseline", out, ("tflite",))
    return out


def _frames(tiny_fc2, folder, names):
    """Copies of the tiny set's val images under plain frame names (one image per name)."""
    folder.mkdir()
    sources = sorted((tiny_fc2 / "val").glob("*-img_*.png"))
    for name, source in zip(names, sources):
        shutil.copy(source, folder / name)
    return folder


def test_a_folder_of_frames_gives_one_flow_per_consecutive_pair(cli, model, tiny_fc2, tmp_path):
    from edgeflownas.data.io import read_flo, read_image_rgb, write_flo
    from edgeflownas.export.model import ExportedModel

    names = ["frame_1.png", "frame_2.png", "frame_10.png", "frame_9.png"]  # natural order: 1, 2, 9, 10
    frames = _frames(tiny_fc2, tmp_path / "frames", names)
    # Ground truth beside the first frame of two of the three pairs: made-up flow of the images' size.
    height, width = read_image_rgb(frames / "frame_1.png").shape[:2]
    rng = np.random.default_rng(1)
    truths = {stem: rng.normal(0, 3, (height, width, 2)).astype(np.float32) for stem in ("frame_1", "frame_9")}
    for stem, truth in truths.items():
        write_flo(frames / f"{stem}.flo", truth)
    result = cli("infer", "--model", model, frames, "--out", tmp_path / "flows")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "flows").glob("*.flo")) == ["frame_1.flo", "frame_2.flo",
                                                                          "frame_9.flo"]
    assert len(list((tmp_path / "flows").glob("*.png"))) == 3
    assert "wrote 3 flow file(s) (.flo and .png) of consecutive frames" in result.output

    # The flows are the model's on those pairs, and the printed scores are recomputed here with numpy.
    net = ExportedModel(model)
    errors = []
    for first, second in (("frame_1", "frame_2"), ("frame_2", "frame_9"), ("frame_9", "frame_10")):
        flow = read_flo(tmp_path / "flows" / f"{first}.flo")
        expected = net.flow(read_image_rgb(frames / f"{first}.png"), read_image_rgb(frames / f"{second}.png"))
        np.testing.assert_allclose(flow, expected, atol=1e-5)
        if first in truths:
            errors.append(np.sqrt(((flow - truths[first]) ** 2).sum(axis=-1)).ravel())
    error = np.concatenate(errors)
    line = next(l for l in result.output.splitlines() if l.startswith("ground truth beside 2 of 3 pair(s):"))
    assert f"EPE {error.mean():.3f} px" in line
    for px in (1, 3, 5):
        assert f">{px}px {100 * (error > px).mean():.1f}%" in line


def test_a_pair_with_ground_truth_beside_it_is_scored_and_sizes_read_hxw(cli, model, tiny_fc2, tmp_path):
    from edgeflownas.data.io import read_flo

    img0, img1 = (tiny_fc2 / "val" / f"0000002-img_{i}.png" for i in range(2))
    result = cli("infer", "--model", model, img0, img1, "--out", tmp_path / "flow.flo")
    assert result.exit_code == 0, result.output
    flow, truth = read_flo(tmp_path / "flow.flo"), read_flo(tiny_fc2 / "val" / "0000002-flow_01.flo")
    assert f"({flow.shape[0]}x{flow.shape[1]} HxW," in result.output
    epe = np.sqrt(((flow - truth) ** 2).sum(axis=-1)).mean()
    assert re.search(rf"ground truth .*0000002-flow_01\.flo: EPE {epe:.3f} px, >1px", result.output)


def test_a_ground_truth_of_another_size_and_a_single_frame_are_one_line(cli, model, tiny_fc2, tmp_path):
    from edgeflownas.data.io import write_flo

    frames = _frames(tiny_fc2, tmp_path / "frames", ["a.png", "b.png"])
    write_flo(frames / "a.flo", np.zeros((5, 7, 2), np.float32))
    result = cli("infer", "--model", model, frames, "--out", tmp_path / "flows")
    assert result.exit_code == 1 and "a.flo holds 5x7 (HxW) flow" in result.output and "Traceback" not in result.output
    single = _frames(tiny_fc2, tmp_path / "single", ["only.png"])
    result = cli("infer", "--model", model, single, "--out", tmp_path / "flows2")
    assert result.exit_code == 1 and "holds no pair" in result.output
