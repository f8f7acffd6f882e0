"""efnas export / infer on a tiny trained supernet: equivalence bounds, manifest, .flo round trip, bad input."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

pytestmark = pytest.mark.slow

ALL_FORMATS = ("saved_model", "tflite", "tflite_int8")
MIXED = (1, 0, 2, 1, 0, 2, 1, 0, 2)


@pytest.fixture(scope="module")
def exported(search_run, tmp_path_factory):
    """All three formats of the baseline subnet of the tiny supernet run."""
    from edgeflownas.export.api import export_run

    out = tmp_path_factory.mktemp("export") / "baseline"
    return out, export_run(search_run, "baseline", out, ALL_FORMATS)


def test_every_format_meets_its_equivalence_bound_and_is_scored(exported):
    from edgeflownas.export.manifest import sha256_of

    out, doc = exported
    formats = doc["formats"]
    assert list(formats) == list(ALL_FORMATS)
    assert formats["saved_model"]["max_abs_diff_vs_toolkit_px"] <= 1e-4
    assert formats["tflite"]["max_abs_diff_vs_toolkit_px"] <= 1e-3
    # the SavedModel's EPE is the evaluator's (recalibrated BN) on the same validation batches
    assert formats["saved_model"]["epe"] == pytest.approx(doc["evaluator_epe"], rel=1e-4)
    assert doc["int8_epe_increase"] == pytest.approx(formats["tflite_int8"]["epe"] - formats["tflite"]["epe"])
    for fmt, entry in formats.items():
        assert entry["sha256"] == sha256_of(out / entry["file"]), fmt
    for fmt in ("tflite", "tflite_int8"):
        assert formats[fmt]["latency_ms"] > 0 and formats[fmt]["latency"]["threads"] == 1
    assert formats["tflite_int8"]["size_bytes"] < formats["tflite"]["size_bytes"] / 2
    manifest = json.loads((out / "export_manifest.json").read_text())
    assert manifest["arch_code"] == [0, 0, 0, 0, 2, 1, 2, 2, 2] and manifest["input_hw"] == [32, 48]
    assert len(manifest["checkpoint_sha256"]) == 64 and manifest["params"] > 0 and manifest["macs"] > 0


def test_int8_model_is_full_integer_with_uint8_image_inputs(exported):
    import tensorflow as tf

    out, _ = exported
    interpreter = tf.lite.Interpreter(model_path=str(out / "model_int8.tflite"))
    assert {d["dtype"] for d in interpreter.get_input_details()} == {np.uint8}
    assert {d["dtype"] for d in interpreter.get_output_details()} == {np.int8}
    float_kinds = {d["dtype"] for d in interpreter.get_tensor_details()} & {np.float32}
    assert not float_kinds


def test_infer_pair_of_another_size_writes_a_flo_opencv_reads(cli, exported, tiny_fc2, tmp_path):
    import cv2

    from edgeflownas.data.io import read_flo, read_image_rgb

    out, _ = exported
    img0, img1 = tiny_fc2 / "val" / "0000000-img_0.png", tiny_fc2 / "val" / "0000000-img_1.png"
    result = cli("infer", "--model", out, img0, img1, "--out", tmp_path / "flow.flo", "--png", tmp_path / "flow.png")
    assert result.exit_code == 0, result.output
    by_opencv = cv2.readOpticalFlow(str(tmp_path / "flow.flo"))
    height, width = read_image_rgb(img0).shape[:2]
    assert by_opencv.shape == (height, width, 2) and (height, width) != (32, 48)
    np.testing.assert_array_equal(by_opencv, read_flo(tmp_path / "flow.flo"))
    assert read_image_rgb(tmp_path / "flow.png").shape[0] >= height


def test_infer_flow_is_resized_back_and_scaled_to_the_input_pixels(exported):
    from edgeflownas.export.model import ExportedModel

    out, _ = exported
    model = ExportedModel(out, "saved_model")
    rng = np.random.default_rng(3)
    small = [rng.integers(0, 256, (32, 48, 3), dtype=np.uint8) for _ in range(2)]
    large = [np.repeat(np.repeat(image, 2, axis=0), 2, axis=1) for image in small]  # 64x96, same content
    flow_small, flow_large = model.flow(*small), model.flow(*large)
    assert flow_large.shape == (64, 96, 2)
    # the same scene at twice the size moves twice as many pixels
    np.testing.assert_allclose(flow_large.mean(axis=(0, 1)), 2 * flow_small.mean(axis=(0, 1)), rtol=0.05, atol=0.05)


def test_export_at_another_input_size_scores_through_resizing(search_run, exported, tmp_path):
    from edgeflownas.export.api import export_run
    from edgeflownas.export.model import ExportedModel

    _, at_training_size = exported
    doc = export_run(search_run, "baseline", tmp_path / "big", ("tflite",), height=64, width=96)
    assert doc["input_hw"] == [64, 96] and doc["training_hw"] == [32, 48]
    assert doc["macs"] == 4 * at_training_size["macs"]
    assert doc["formats"]["tflite"]["max_abs_diff_vs_toolkit_px"] is None  # not the same computation
    assert np.isfinite(doc["formats"]["tflite"]["epe"])
    assert ExportedModel(tmp_path / "big").flow(*[np.zeros((32, 48, 3), np.uint8)] * 2).shape == (32, 48, 2)


def test_export_gives_a_subnet_the_cost_efnas_eval_gives_it(search_run, exported, monkeypatch, tmp_path):
    """params and MACs come from the run's cost table, as eval's and search's: no graph is built to count them."""
    from edgeflownas.export.api import export_run
    from edgeflownas.model import cost
    from edgeflownas.report.eval_run import evaluate_run
    from edgeflownas.train.trained_run import TrainedRun

    _, baseline = exported
    rows = {tuple(row["arch_code"]): row
            for row in evaluate_run(search_run, ["baseline", ",".join(map(str, MIXED))], native_epe=False).rows}
    assert (baseline["params"], baseline["macs"]) == (rows[tuple(baseline["arch_code"])]["params"],
                                                      rows[tuple(baseline["arch_code"])]["macs"])

    def counted(*args, **kwargs):
        raise AssertionError("export counted a cost by building a graph instead of reading the run's cost table")

    monkeypatch.setattr(cost, "subnet_cost", counted)
    doc = export_run(search_run, ",".join(map(str, MIXED)), tmp_path / "mixed", ("saved_model",))
    assert (doc["params"], doc["macs"]) == (rows[MIXED]["params"], rows[MIXED]["macs"])
    assert {"params": doc["params"], "macs": doc["macs"]} == TrainedRun.open(search_run).cost(MIXED)


def test_infer_folder_of_fc2_pairs(cli, exported, tiny_fc2, tmp_path):
    from edgeflownas.data.io import read_flo

    out, _ = exported
    result = cli("infer", "--model", out, "--format", "tflite", tiny_fc2 / "val", "--out", tmp_path / "flows")
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in (tmp_path / "flows").glob("*.flo"))
    assert written == [f"{i:07d}-flow_01.flo" for i in range(4)]
    assert read_flo(tmp_path / "flows" / written[0]).shape == (48, 64, 2)


def test_infer_from_a_run_exports_into_the_run_once_and_matches_the_exported_model(cli, search_run, exported,
                                                                                  tiny_fc2, tmp_path, system_tmp,
                                                                                  monkeypatch):
    """The export made on the fly lies in RUN/exports/<subnet>-<key> (none in the system temp directory), the
    next call reuses it, and a damaged one is exported again."""
    from edgeflownas.data.io import read_flo
    from edgeflownas.export import api

    run = tmp_path / "run"
    shutil.copytree(search_run, run)
    out, doc = exported
    pair = [tiny_fc2 / "val" / f"0000001-img_{i}.png" for i in range(2)]
    on_the_fly = cli("infer", "--run", run, "--arch", "baseline", *pair, "--out", tmp_path / "a.flo")
    assert on_the_fly.exit_code == 0, on_the_fly.output
    assert list(system_tmp.iterdir()) == []
    [cached] = [p for p in (run / "exports").iterdir()]
    assert cached.name.startswith("a000021222-")
    manifest = json.loads((cached / "export_manifest.json").read_text())
    assert manifest["checkpoint_sha256"] == doc["checkpoint_sha256"] and manifest["arch_code"] == doc["arch_code"]
    assert cli("infer", "--model", out, *pair, "--out", tmp_path / "b.flo").exit_code == 0
    np.testing.assert_allclose(read_flo(tmp_path / "a.flo"), read_flo(tmp_path / "b.flo"), atol=1e-5)

    def exported_again(*args, **kwargs):
        raise AssertionError("an intact export was made again")

    with monkeypatch.context() as patched:
        patched.setattr(api, "export_run", exported_again)
        again = cli("infer", "--run", run, "--arch", "baseline", *pair, "--out", tmp_path / "c.flo")
    assert again.exit_code == 0, again.output
    assert f"using the export {cached} made earlier" in again.output
    np.testing.assert_array_equal(read_flo(tmp_path / "c.flo"), read_flo(tmp_path / "a.flo"))

    (cached / "saved_model" / "saved_model.pb").write_bytes(b"not a graph")
    repaired = cli("infer", "--run", run, "--arch", "baseline", *pair, "--out", tmp_path / "d.flo")
    assert repaired.exit_code == 0, repaired.output
    assert f"{cached} is damaged" in repaired.output and "exporting it again" in repaired.output
    np.testing.assert_allclose(read_flo(tmp_path / "d.flo"), read_flo(tmp_path / "a.flo"), atol=1e-5)
    assert [p.name for p in (run / "exports").iterdir()] == [cached.name]
    assert list(system_tmp.iterdir()) == []


def test_infer_from_a_run_whose_export_fails_leaves_nothing(cli, search_run, tiny_fc2, tmp_path, system_tmp,
                                                            monkeypatch):
    import errno

    from edgeflownas.export import api

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    run = tmp_path / "run"
    shutil.copytree(search_run, run)
    before = sorted(str(p.relative_to(run)) for p in run.rglob("*"))
    monkeypatch.setattr(api, "write_manifest", full_disk)
    pair = [tiny_fc2 / "val" / f"0000001-img_{i}.png" for i in range(2)]
    result = cli("infer", "--run", run, "--arch", "baseline", *pair, "--out", tmp_path / "a.flo")
    assert result.exit_code == 1 and "no space left on" in result.output and "Traceback" not in result.output
    assert sorted(str(p.relative_to(run)) for p in run.rglob("*")) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "system_tmp"]
    assert list(system_tmp.iterdir()) == []


def test_infer_from_a_run_takes_no_tflite_format(cli, search_run, tiny_fc2, tmp_path):
    pair = [tiny_fc2 / "val" / f"0000001-img_{i}.png" for i in range(2)]
    result = cli("infer", "--run", search_run, "--arch", "baseline", "--format", "tflite", *pair, "--out",
                 tmp_path / "a.flo")
    assert result.exit_code == 2 and "--format tflite needs --model" in result.output
    assert not (search_run / "exports").exists()


def _retrain_like_run(search_run, run_dir, upsample: str = "resize_conv"):
    """A fixed-arch run dir: MIXED restored by name from the supernet checkpoint, saved as its own; its names."""
    import tensorflow as tf

    from edgeflownas.config import resolve_mapping
    from edgeflownas.model.supernet import Supernet
    from edgeflownas.train import checkpoint

    source = search_run / "supernet_best.ckpt"
    state = checkpoint.read_state(source)
    config = json.loads(json.dumps(state["config"]))
    config["train"]["supernet_mode"] = "fixed_arch"
    config["model"]["fixed_arch_code"] = list(MIXED)
    config["model"]["upsample"] = upsample
    cfg = resolve_mapping(config, {}).config
    with tf.Graph().as_default() as graph:
        tf.compat.v1.set_random_seed(0)
        net = Supernet(cfg.model, cfg.loss, 32, 48, fixed_arch=MIXED)
        step = tf.Variable(state["global_step"], dtype=tf.int64, name="train/global_step")
        saver = tf.compat.v1.train.Saver(net.variables + [step])
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            tf.compat.v1.train.Saver(net.variables).restore(session, checkpoint.model_prefix(source))
            names = sorted(v.name.split(":")[0] for v in net.variables)
            checkpoint.save_checkpoint(run_dir / "supernet_best.ckpt",
                                       lambda prefix: saver.save(session, prefix), dict(state, config=config))
    return names


def test_fixed_arch_run_exports_its_own_weights(search_run, tmp_path):
    """A retrain-like run: a fixed-arch network restored by name from the supernet checkpoint, saved as its own."""
    from edgeflownas.export.api import export_run

    names = _retrain_like_run(search_run, tmp_path / "retrain")
    doc = export_run(tmp_path / "retrain", None, tmp_path / "out", ("saved_model", "tflite"))
    assert doc["source_kind"] == "fixed_arch" and doc["arch_code"] == list(MIXED)
    assert doc["formats"]["saved_model"]["max_abs_diff_vs_toolkit_px"] <= 1e-4
    assert doc["formats"]["tflite"]["max_abs_diff_vs_toolkit_px"] <= 1e-3
    assert not any(name.startswith("supernet/EB0/res2/") for name in names)  # only the path was saved


def test_conv_resize_run_exports_in_its_own_order(cli, search_run, tmp_path):
    """model.upsample=conv_resize: the export builds that order (equal to the toolkit's graph), fewer MACs."""
    import dataclasses

    from edgeflownas.config import resolve
    from edgeflownas.model.cost import subnet_cost

    _retrain_like_run(search_run, tmp_path / "conv_resize", "conv_resize")
    result = cli("export", "--run", tmp_path / "conv_resize", "--out", tmp_path / "out", "--format",
                 "saved_model,tflite")
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "out" / "export_manifest.json").read_text())
    assert doc["formats"]["saved_model"]["max_abs_diff_vs_toolkit_px"] <= 1e-4
    assert doc["formats"]["tflite"]["max_abs_diff_vs_toolkit_px"] <= 1e-3
    model = dataclasses.replace(resolve(None, {"model.init_neurons": 8}).config.model, upsample="conv_resize")
    assert doc["macs"] == subnet_cost(MIXED, 32, 48, model).macs
    assert doc["macs"] < subnet_cost(MIXED, 32, 48, dataclasses.replace(model, upsample="resize_conv")).macs


# --- bad input: one clear line each ---------------------------------------------------------------------------

def one_line_error(result, *fragments):
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert any(all(f in line for f in fragments) for line in lines), result.output


def test_unknown_arch_is_one_line(cli, search_run, tmp_path):
    result = cli("export", "--run", search_run, "--arch", "0,1,2,3", "--out", tmp_path / "x")
    assert result.exit_code == 2
    one_line_error(result, "arch code", "length=9")
    assert not (tmp_path / "x").exists()


def test_model_size_not_a_multiple_of_4_is_one_line(cli, search_run, tmp_path):
    result = cli("export", "--run", search_run, "--arch", "baseline", "--out", tmp_path / "x", "--height", "30")
    assert result.exit_code == 2
    one_line_error(result, "--height 30", "multiple of 4")


def test_export_of_a_run_without_checkpoint_is_one_line(cli, tmp_path):
    (tmp_path / "run").mkdir()
    one_line_error(cli("export", "--run", tmp_path / "run", "--arch", "baseline", "--out", tmp_path / "x"),
                   "not a complete checkpoint")


def test_export_into_a_non_empty_folder_is_one_line(cli, search_run, tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    one_line_error(cli("export", "--run", search_run, "--arch", "baseline", "--out", tmp_path / "x"),
                   "not an empty directory")


def test_infer_pair_of_different_sizes_is_one_line(cli, exported, tmp_path):
    from edgeflownas.data.io import write_image_rgb

    out, _ = exported
    write_image_rgb(tmp_path / "a.png", np.zeros((32, 48, 3), np.uint8))
    write_image_rgb(tmp_path / "b.png", np.zeros((36, 48, 3), np.uint8))
    one_line_error(cli("infer", "--model", out, tmp_path / "a.png", tmp_path / "b.png", "--out", tmp_path / "f.flo"),
                   "same size")


def test_infer_into_a_non_empty_folder_is_one_line(cli, exported, tiny_fc2, tmp_path):
    out, _ = exported
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "old.flo").write_bytes(b"x")
    one_line_error(cli("infer", "--model", out, tiny_fc2 / "val", "--out", tmp_path / "flows"),
                   "not an empty directory")
