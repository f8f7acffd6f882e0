"""The ``edge`` install: ``efnas infer`` on a TFLite model with LiteRT only, no TensorFlow anywhere."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

pytestmark = pytest.mark.slow

# The exported model runs at the pair's own size (tiny_fc2 is 48x64), so the reference below needs no resizing.
HEIGHT, WIDTH = 48, 64


@pytest.fixture(scope="module")
def exported_tflite(search_run, tmp_path_factory) -> Path:
    """SavedModel, float and int8 TFLite of the baseline subnet of the tiny run, at the tiny data's size."""
    from edgeflownas.export.api import export_run

    out = tmp_path_factory.mktemp("edge_export") / "baseline"
    export_run(search_run, "baseline", out, ("saved_model", "tflite", "tflite_int8"), height=HEIGHT, width=WIDTH)
    return out


def _env_without_checkout() -> dict:
    """This environment without PYTHONPATH, so only what a venv installed can be imported."""
    return {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}


def _reference_flow(model: Path, img0: np.ndarray, img1: np.ndarray) -> np.ndarray:
    """The flow by TensorFlow's own tf.lite.Interpreter, dequantised from the output's details."""
    import tensorflow as tf

    runner = tf.lite.Interpreter(model_path=str(model), num_threads=1).get_signature_runner("serving_default")
    details = runner.get_output_details()["flow"]
    flow = runner(img0=img0[None], img1=img1[None])["flow"][0].astype(np.float32)
    scale, zero = details["quantization"]
    return (flow - zero) * scale if scale else flow


def test_edge_install_has_no_tensorflow_and_infers_like_the_full_install(edge_venv, exported_tflite, tiny_fc2,
                                                                         tmp_path, cli):
    from edgeflownas.data.io import read_flo, read_image_rgb

    python, efnas = edge_venv / "bin" / "python", edge_venv / "bin" / "efnas"
    env = _env_without_checkout()
    probe = subprocess.run([str(python), "-c", "import importlib.util as u; import edgeflownas; "
                            "print(u.find_spec('tensorflow'), u.find_spec('ai_edge_litert') is not None, "
                            "edgeflownas.__file__)"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert probe.stdout.split()[:2] == ["None", "True"] and str(edge_venv) in probe.stdout, probe.stdout
    pair = [tiny_fc2 / "val" / f"0000002-img_{i}.png" for i in range(2)]
    images = [read_image_rgb(path) for path in pair]
    for fmt, file, tolerance in (("tflite", "model_float.tflite", 1e-5), ("tflite_int8", "model_int8.tflite", 0)):
        edge_flo, full_flo = tmp_path / f"edge_{fmt}.flo", tmp_path / f"full_{fmt}.flo"
        done = subprocess.run([str(efnas), "infer", "--model", str(exported_tflite), "--format", fmt, *map(str, pair),
                               "--out", str(edge_flo)], capture_output=True, text=True, env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Traceback" not in done.stderr and "deprecat" not in done.stderr.lower(), done.stderr
        full = cli("infer", "--model", exported_tflite, "--format", fmt, *pair, "--out", full_flo)
        assert full.exit_code == 0, full.output
        np.testing.assert_allclose(read_flo(edge_flo), read_flo(full_flo), atol=1e-5, rtol=0)
        # and both are the model's flow as TensorFlow's interpreter computes it (int8: the same integer kernels)
        np.testing.assert_allclose(read_flo(edge_flo), _reference_flow(exported_tflite / file, *images),
                                   atol=max(tolerance, 1e-5), rtol=0)


def test_edge_install_without_a_format_picks_tflite_and_saved_model_asks_for_tensorflow(edge_venv, exported_tflite,
                                                                                          tiny_fc2, tmp_path):
    efnas, env = edge_venv / "bin" / "efnas", _env_without_checkout()
    pair = [str(tiny_fc2 / "val" / f"0000000-img_{i}.png") for i in range(2)]
    done = subprocess.run([str(efnas), "infer", "--model", str(exported_tflite), *pair, "--out",
                           str(tmp_path / "b.flo")], capture_output=True, text=True, env=env)
    assert done.returncode == 0 and "tflite)" in done.stdout, done.stdout + done.stderr
    done = subprocess.run([str(efnas), "infer", "--model", str(exported_tflite), "--format", "saved_model", *pair,
                           "--out", str(tmp_path / "c.flo")], capture_output=True, text=True, env=env)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1 and len(lines) == 1 and "'tensorflow'" in lines[0] and ".[cpu]" in lines[0], lines
    assert not (tmp_path / "c.flo").exists()


def test_infer_with_tflite_never_imports_tensorflow_where_litert_is_installed(exported_tflite, tiny_fc2, tmp_path):
    pytest.importorskip("ai_edge_litert")
    pair = [str(tiny_fc2 / "val" / f"0000001-img_{i}.png") for i in range(2)]
    script = ("import sys; from edgeflownas.cli import main\n"
              "try:\n    main(sys.argv[1:], standalone_mode=False)\n"
              "finally:\n    print('TF-IMPORTED' if 'tensorflow' in sys.modules else 'TF-FREE')\n")
    for fmt in ("tflite", "tflite_int8"):
        done = subprocess.run([sys.executable, "-c", script, "infer", "--model", str(exported_tflite), "--format", fmt,
                               *pair, "--out", str(tmp_path / f"{fmt}.flo")], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().endswith("TF-FREE"), done.stdout
