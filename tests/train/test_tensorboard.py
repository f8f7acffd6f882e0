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


def test_caption_says_which_subnet_a_picture_shows():
    from edgeflownas.train.tensorboard import CAPTION_HEIGHT

    img0, gt = sample(height=32, width=48)
    panel = flow_panel(img0, gt, gt)
    summary = flow_image_summary("flow/best_pool", [panel], caption="best pool a012001210 EPE 1.23")
    (value,) = summary.value
    decoded = cv2.imdecode(np.frombuffer(value.image.encoded_image_string, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    assert decoded.shape == (32 + CAPTION_HEIGHT, 4 * 48, 3)
    assert np.array_equal(decoded[CAPTION_HEIGHT:], panel)
    band = decoded[:CAPTION_HEIGHT]
    assert (band > 128).any() and (band == 32).mean() > 0.5  # white text on the dark band


def test_start_summaries_hold_the_resolved_config_as_text_and_the_hparams(default_raw):
    import tensorflow as tf
    from tensorboard.plugins.hparams import metadata as hparams_metadata

    from edgeflownas.config import resolve_mapping
    from edgeflownas.train.tensorboard import hparams, start_summaries

    resolved = resolve_mapping(default_raw, {"train.lr": 3e-4, "experiment.seed": 9})
    text_bytes, experiment_bytes, hparams_bytes = start_summaries(resolved.values)
    (text,) = tf.compat.v1.Summary.FromString(text_bytes).value
    assert text.tag == "config/resolved" and text.metadata.plugin_data.plugin_name == "text"
    shown = tf.make_ndarray(text.tensor).item().decode()
    assert "    lr: 0.0003" in shown and "    seed: 9" in shown
    (session,) = tf.compat.v1.Summary.FromString(hparams_bytes).value
    assert session.tag == hparams_metadata.SESSION_START_INFO_TAG
    info = hparams_metadata.parse_session_start_info_plugin_data(session.metadata.plugin_data.content)
    assert info.hparams["train.lr"].number_value == pytest.approx(3e-4)
    assert info.hparams["experiment.seed"].number_value == 9
    (experiment,) = tf.compat.v1.Summary.FromString(experiment_bytes).value
    assert experiment.tag == hparams_metadata.EXPERIMENT_TAG
    declared = hparams_metadata.parse_experiment_plugin_data(experiment.metadata.plugin_data.content)
    assert [m.name.tag for m in declared.metric_infos] == ["hp_metric", "eval/mean_epe"]
    assert {h.name for h in declared.hparam_infos} == set(info.hparams)
    chosen = hparams(resolved.values)
    assert not any(key.startswith(("data.train_dir", "runtime.", "slurm.", "experiment.output_root"))
                   for key in chosen)


def test_step_scalars_are_tagged_train_step():
    from edgeflownas.train.tensorboard import step_scalar_summary

    summary = step_scalar_summary({"loss_avg": 1.5, "lr": 1e-4, "samples_per_s": 3.0})
    assert [(v.tag, v.simple_value) for v in summary.value] == [
        ("train_step/loss_avg", 1.5), ("train_step/lr", pytest.approx(1e-4)), ("train_step/samples_per_s", 3.0)]


def test_one_tag_set_for_supernet_and_fixed_arch_runs():
    import tensorflow as tf

    from edgeflownas.train import run_dir as rd
    from edgeflownas.train.tensorboard import scalar_summary

    def tags(pool_size, subnet_columns, best):
        header = rd.history_header([(0,) * 9] * pool_size)
        row = {key: 1.0 for key in header if not key.startswith("epe_")}
        row.update({f"epe_{name}": 1.0 for name in subnet_columns})
        values = tf.compat.v1.Summary.FromString(scalar_summary(row, best).SerializeToString()).value
        return {v.tag: v.simple_value for v in values}

    supernet, fixed = tags(12, ["a000021222", "a012001210"], 0.5), tags(1, ["a000021222"], 0.7)
    assert set(supernet) - {"eval_subnet/a012001210"} == set(fixed)
    assert {"eval/mean_epe", "eval/std_epe", "eval/zero_flow_epe", "train/loss_epoch_avg", "train/lr",
            "train/grad_norm_before_clip_epoch_avg", "eval_subnet/a000021222", "hp_metric"} <= set(fixed)
    assert supernet["hp_metric"] == 0.5 and fixed["hp_metric"] == pytest.approx(0.7)
    assert not any(tag.endswith(("_12", "_1")) or "train/train_" in tag for tag in supernet)
    assert "hp_metric" not in tags(12, [], None)  # an epoch without evaluation has no metric
