"""The int8 TFLite file of a supernet run and of a retrain (fixed-arch) run is full-integer, or the export fails.

Each export's int8 and float EPEs (and so the int8 EPE change in the manifest)
are recomputed here with ``tf.lite.Interpreter`` and numpy on the run's
validation pairs.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

pytestmark = pytest.mark.slow


def _run_config(run_dir):
    from edgeflownas.config import resolve_mapping
    from edgeflownas.train import checkpoint

    return resolve_mapping(checkpoint.read_state(run_dir / "supernet_best.ckpt")["config"], {}).config


def _val_pairs(run_dir):
    """Every validation pair of the run at its training size (the export scores all 4 of the tiny split)."""
    from edgeflownas.data.loader import open_source

    source = open_source(_run_config(run_dir).data, "val")
    try:
        batch = source.get_batch(np.arange(len(source)))
    finally:
        source.close()
    return batch.img0, batch.img1, batch.flow


def _interpreter_epe(path, img0, img1, flow):
    """Mean end-point error over all pixels of a TFLite file's flow output, dequantised by hand."""
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(path))
    runner = interpreter.get_signature_runner("serving_default")
    inputs, outputs = runner.get_input_details(), runner.get_output_details()
    errors = []
    for a, b, gt in zip(img0, img1, flow):
        feeds = {}
        for name, image in (("img0", a), ("img1", b)):
            scale, zero = inputs[name]["quantization"]
            value = np.round(image / scale + zero) if scale else image
            feeds[name] = value[None].astype(inputs[name]["dtype"])
        out = runner(**feeds)["flow"][0].astype(np.float64)
        scale, zero = outputs["flow"]["quantization"]
        predicted = (out - zero) * scale if scale else out
        errors.append(np.sqrt(((predicted - gt) ** 2).sum(axis=-1)))
    return float(np.mean(errors))


def _kernel_types(path):
    """Types of the weight kernel (input 1) of every convolution in a TFLite file, as the interpreter reads it."""
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(path))
    tensors = {d["index"]: d for d in interpreter.get_tensor_details()}
    return [tensors[op["inputs"][1]]["dtype"] for op in interpreter._get_ops_details()
            if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV")]


def _assert_full_integer(out):
    """uint8 inputs, int8 outputs, no float tensor, every kernel of the float file int8 here; the int8 count."""
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(out / "model_int8.tflite"))
    assert [d["dtype"] for d in interpreter.get_input_details()] == [np.uint8, np.uint8]
    assert [d["dtype"] for d in interpreter.get_output_details()] == [np.int8, np.int8]
    kinds = [d["dtype"] for d in interpreter.get_tensor_details()]
    assert np.float32 not in kinds and np.float16 not in kinds
    float_kernels = _kernel_types(out / "model_float.tflite")
    assert float_kernels and set(float_kernels) == {np.float32}
    assert _kernel_types(out / "model_int8.tflite") == [np.int8] * len(float_kernels)
    return kinds.count(np.int8)


@pytest.fixture(scope="module", params=["supernet", "retrain"])
def int8_export(request, search_run, tmp_path_factory):
    from edgeflownas.export.api import export_run

    run_dir = search_run if request.param == "supernet" else request.getfixturevalue("retrain_run")
    out = tmp_path_factory.mktemp("int8") / request.param
    doc = export_run(run_dir, "baseline" if request.param == "supernet" else None, out, ("tflite", "tflite_int8"))
    return run_dir, out, doc


def test_int8_file_is_full_integer_and_its_manifest_epe_is_measured(int8_export):
    run_dir, out, doc = int8_export
    int8_tensors = _assert_full_integer(out)
    entry = doc["formats"]["tflite_int8"]
    assert entry["integer_check"]["input_types"] == ["uint8", "uint8"]
    assert entry["integer_check"]["output_types"] == ["int8", "int8"]
    assert entry["integer_check"]["tensors"]["int8"] == int8_tensors
    assert entry["integer_check"]["float_ops"] == {}
    assert entry["calibration"]["split"] == "train" and entry["calibration"]["pairs"] == 16  # the whole tiny split
    # a quarter of the float file, roughly: int8 kernels
    assert entry["size_bytes"] < doc["formats"]["tflite"]["size_bytes"] / 2

    img0, img1, flow = _val_pairs(run_dir)
    assert doc["val_images"] == len(img0) == 4
    int8_epe = _interpreter_epe(out / "model_int8.tflite", img0, img1, flow)
    float_epe = _interpreter_epe(out / "model_float.tflite", img0, img1, flow)
    assert entry["epe"] == pytest.approx(int8_epe, rel=1e-5)
    assert doc["formats"]["tflite"]["epe"] == pytest.approx(float_epe, rel=1e-5)
    assert doc["int8_epe_increase"] == pytest.approx(int8_epe - float_epe, rel=1e-4, abs=1e-6)
    assert int8_epe != float_epe  # a quantised model computes something else
    manifest = json.loads((out / "export_manifest.json").read_text())
    assert manifest["formats"]["tflite_int8"] == entry and manifest["int8_epe_increase"] == doc["int8_epe_increase"]


def test_int8_only_export_still_measures_its_change_over_float(retrain_run, tmp_path):
    """Without a float format the float graph the converter read is scored for the int8 change."""
    from edgeflownas.export.api import export_run

    doc = export_run(retrain_run, None, tmp_path / "int8", ("tflite_int8",))
    entry = doc["formats"]["tflite_int8"]
    assert entry["float_epe_of"] == "float graph before conversion"
    img0, img1, flow = _val_pairs(retrain_run)
    assert doc["int8_epe_increase"] == pytest.approx(entry["epe"] - entry["float_epe"])
    assert entry["epe"] == pytest.approx(_interpreter_epe(tmp_path / "int8" / "model_int8.tflite", img0, img1, flow),
                                         rel=1e-5)
    assert sorted(p.name for p in (tmp_path / "int8").iterdir()) == [".efnas.lock", "export_manifest.json",
                                                                     "model_int8.tflite"]


def test_a_converter_that_falls_back_to_float_fails_the_export(cli, retrain_run, monkeypatch, tmp_path):
    """What the converter did silently for fixed-arch runs (float kernels and I/O in model_int8.tflite) is refused."""
    from edgeflownas.export import tflite

    monkeypatch.setattr(tflite, "convert_int8", lambda graph, pairs: tflite.convert_float(graph))
    result = cli("export", "--run", retrain_run, "--out", tmp_path / "out", "--format", "tflite_int8")
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    error = [line for line in result.output.splitlines() if "did not make a full-integer model" in line]
    assert len(error) == 1 and "model_int8.tflite" in error[0] and "input types float32" in error[0], result.output
    assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == []
