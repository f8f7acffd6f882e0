"""A command's console starts with its own lines, not with TensorFlow's one-time notices.

The first graph a process runs makes TensorFlow print "All log messages before
absl::InitializeLog() ..." and "MLIR V1 optimization pass is not enabled" past
``TF_CPP_MIN_LOG_LEVEL``, and the first TFLite interpreter that runs prints
"Created TensorFlow Lite XNNPACK delegate for CPU".  Both are printed once per
process, so each case runs in a fresh Python: ``open_session`` (every training's
and evaluation's session), the latency probes' first graph and ``time_models``
(every latency measurement) must keep them off stderr, while the same steps done plainly still print them (the
control: if TensorFlow stops printing them, the case is skipped, not passed).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTICES = ("absl::InitializeLog", "MLIR V1 optimization pass", "XNNPACK delegate")

SCRIPT = textwrap.dedent("""
    import os, sys, tempfile
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from pathlib import Path
    import tensorflow as tf
    from edgeflownas.config_types import RuntimeConfig
    from edgeflownas.export.runtime import load_interpreter
    from edgeflownas.latency.measure import time_models
    from edgeflownas.train.runtime import open_session

    plain = sys.argv[1] == "plain"
    if sys.argv[1] == "probes":  # efnas latency's first graph: the probes' random initial weights
        from edgeflownas.config import resolve
        from edgeflownas.latency.probes import random_values
        assert random_values(resolve(None).config.model, 16, 16)
        print("--- converted", file=sys.stderr)
        print("done")
        sys.exit(0)
    graph = tf.Graph()
    with graph.as_default():
        weight = tf.compat.v1.get_variable("w", [3], initializer=tf.compat.v1.ones_initializer())
        doubled = weight * 2.0
    runtime = RuntimeConfig(gpu_device=None, deterministic=True, debug_trace=False, fast_mode=False,
                            graph_optimizations=True)
    session = tf.compat.v1.Session(graph=graph) if plain else open_session(graph, runtime)
    with session:
        session.run(weight.initializer)
        assert session.run(doubled).tolist() == [2.0, 2.0, 2.0]

    @tf.function(input_signature=[tf.TensorSpec([1, 4, 4, 2], tf.float32)])
    def model(x):
        return tf.nn.relu(x) * 3.0

    converter = tf.lite.TFLiteConverter.from_concrete_functions([model.get_concrete_function()], model)
    path = Path(tempfile.mkdtemp()) / "model.tflite"
    path.write_bytes(converter.convert())
    sys.stderr.flush()
    print("--- converted", file=sys.stderr, flush=True)  # the converter's own chatter is not what is checked
    if plain:
        interpreter = load_interpreter(path, 1)
        interpreter.allocate_tensors()
        interpreter.invoke()
    else:
        times = time_models({"m": path}, threads=1, runs=3, warmup=1)
        assert times["m"]["runs"] == 3
    print("done")
""")


def _stderr(mode: str) -> tuple:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "done", done.stderr
    before, _, after = done.stderr.partition("--- converted")
    return before, after


def test_sessions_and_latency_timing_keep_tensorflows_one_time_notices_off_the_console():
    plain_session, plain_interpreter = _stderr("plain")
    if not any(n in plain_session for n in NOTICES[:2]) or NOTICES[2] not in plain_interpreter:
        pytest.skip("this TensorFlow does not print its one-time notices: nothing to keep off")
    session, timing = _stderr("efnas")
    probes, _ = _stderr("probes")
    for notice in NOTICES:
        assert notice not in session, session
        assert notice not in timing, timing
        assert notice not in probes, probes
