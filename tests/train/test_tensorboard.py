"""TensorBoard flow panels: layout, shared colour scale, PNG round trip through a Summary."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgeflownas.flow_viz import flow_to_rgb
from edgeflownas.train.tensorboard import encode_png, flow_image_summary, flow_panel


def sample(height=8, width=12):
    rng = np.random.default_rng(5)
    img0 = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    gt = rng.normal(size=(height, width, 2)) * 2
    return img0, gt


def test_panel_is_img0_gt_pred_error_side_by_side():
    img0, gt = sample()
    panel = flow_panel(img0, gt, gt)
    assert panel.shape == (8, 48, 3) and panel.dtype == np.uint8
    assert np.array_equal(panel[:, :12], img0)
    assert np.array_equal(panel[:, 12:24], flow_to_rgb(gt))
    assert np.array_equal(panel[:, 24:36], panel[:, 12:24])  # perfect prediction looks like the GT
    assert (panel[:, 36:] == panel[0, 36]).all()  # zero error everywhere: one colour


def test_prediction_uses_the_gt_scale():
    img0, gt = sample()
    panel = flow_panel(img0, gt, gt / 2)
    assert not np.array_equal(panel[:, 24:36], flow_to_rgb(gt / 2))  # own scale would saturate it
    assert np.array_equal(panel[:, 24:36], flow_to_rgb(gt / 2, max_flow=np.sqrt((gt ** 2).sum(-1)).max()))


def test_mismatched_shapes_are_refused():
    img0, gt = sample()
    with pytest.raises(ValueError, match="shapes differ"):
        flow_panel(img0, gt, gt[:4])


def test_summary_holds_decodable_pngs():
    img0, gt = sample()
    panels = [flow_panel(img0, gt, gt * 0.9), flow_panel(img0, gt, -gt)]
    summary = flow_image_summary("flow/best_pool", panels)
    assert [v.tag for v in summary.value] == ["flow/best_pool/0", "flow/best_pool/1"]
    for value, panel in zip(summary.value, panels):
        decoded = cv2.imdecode(np.frombuffer(value.image.encoded_image_string, np.uint8), cv2.IMREAD_COLOR)
        assert np.array_equal(decoded[..., ::-1], panel)
        assert (value.image.height, value.image.width) == panel.shape[:2]
    assert encode_png(panels[0])[:8] == b"\x89PNG\r\n\x1a\n"
